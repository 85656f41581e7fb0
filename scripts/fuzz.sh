#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer harnesses of tests/fuzz/ with clang, ASan and UBSan in
# build-fuzz/ and runs each for SECONDS_PER_TARGET (default 60), starting
# from its committed corpus.  New corpus entries go to a scratch directory
# (the committed corpus is not touched); crashes, leaks and timeouts are saved
# in tests/fuzz/crashes/ as TARGET-crash-<sha1>.  Prints executions per target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Needs clang and libFuzzer (Debian: clang-14 and libclang-rt-14-dev).
# A crash reproduces with: build-fuzz/tests/fuzz/fuzz-TARGET FILE
# (or, without clang: build/tests/fuzz/fuzz-TARGET FILE).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-60}
shift || true
B=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
CRASHES=$ROOT/tests/fuzz/crashes
ALL="manifest minisig pubkey seckey trust audit spec schema oci bundle stream media safetensors quant config tokenizer health request template pyindex debcontrol stanza progress pkgdb layer sync toolcall"
TARGETS=${*:-$ALL}
cd "$ROOT"
if [ ! -f "$B/build.ninja" ]; then
	# fuzzer-no-link: coverage instrumentation for libbundle and the tools
	# too, while only the harnesses link libFuzzer's main().
	CC=${CC:-clang} meson setup "$B" -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
		-Dbuildtype=debugoptimized -Dcuda=disabled \
		-Dc_args="-fsanitize=fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
		-Dc_link_args=-fsanitize=fuzzer-no-link || exit 1
fi
ninja -C "$B" $(for t in $TARGETS; do echo "tests/fuzz/fuzz-$t"; done) || exit 1
mkdir -p "$CRASHES"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/agkit-fuzz-run.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}
failed=0
summary=""
for t in $TARGETS; do
	mkdir -p "$SCRATCH/$t"
	log=$SCRATCH/$t.log
	# -rss_limit_mb: extraction and scrypt-free key parsing stay far below;
	# -timeout: one input taking seconds is a finding (a hang) too.
	"$B/tests/fuzz/fuzz-$t" "$SCRATCH/$t" "tests/fuzz/corpus/$t" -max_total_time="$SECS" \
		-artifact_prefix="$CRASHES/$t-" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
		-close_fd_mask=1 >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
	line=$(printf '%-9s %10s execs  cov %-6s exit %s' "$t" "${execs:-?}" "${cov:-?}" "$rc")
	echo "$line"
	summary+="$line"$'\n'
	if [ "$rc" != 0 ]; then
		failed=1
		grep -E 'ERROR|SUMMARY|invariant failed|Test unit written' "$log" | head -10 | sed 's/^/    /'
	fi
done
echo "---"
printf '%s' "$summary"
[ "$failed" = 0 ] && echo "no findings" || echo "findings saved in $CRASHES/"
exit "$failed"
