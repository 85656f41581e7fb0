#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds agkit a second time with AddressSanitizer and UndefinedBehaviorSanitizer
# (in build-sanitize/, beside the normal build) and runs every meson test
# suite there except 'slow' and 'package' (a release build of its own); prints meson's summary.  Exit status: meson's.
#
#   scripts/ci-sanitize.sh [BUILD_DIR]     (default: build-sanitize)
# CC selects the compiler (default: the system cc; gcc and clang both work).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build-sanitize}
cd "$ROOT"
# Tests run shell scripts that start the built binaries: the options reach
# them through the environment.  Leaks fail a run; the first UB report stops it.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}
if [ ! -f "$B/build.ninja" ]; then
	# b_lundef=false: clang's sanitizer runtime is not linked into shared
	# objects; harmless with gcc.  -fno-sanitize-recover: UB aborts the test.
	meson setup "$B" -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug \
		-Dc_args=-fno-sanitize-recover=undefined -Dcuda=disabled
fi
ninja -C "$B"
meson test -C "$B" --no-suite slow --no-suite package --print-errorlogs --num-processes "${MESON_TEST_PROCESSES:-2}"
