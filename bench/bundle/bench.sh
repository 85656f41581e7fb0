#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agkit pack/verify/extract against the shell baselines, in the same run.
#
# usage: bench/bundle/bench.sh [BUILD_DIR]     (default: build)
# env:   BENCH_DIR   work directory (default: a new dir under /var/tmp; needs
#                    ~8 GiB free; on disk, so fsync costs are real)
#        ROUNDS      timed rounds per command, median reported (default 3)
#        WEIGHTS_MIB size of the bf16 safetensors file (default 512)
#        IMAGE_DIRS  directories of / tarred into the image-like input
#                    (default "usr/bin usr/include usr/share/doc"; a smaller
#                    set such as "usr/include" for quick runs)
#        THREADS     passed as --threads to agpack/agimport (default: unset,
#                    i.e. online CPUs)
#
# Inputs: a bf16 safetensors file of normally distributed weights
# (mksafetensors.py) and an image-like tar of binaries and text (/usr/bin,
# /usr/include, /usr/share/doc of this machine).  Baselines:
#   pack    = tar | zstd -3 -T0 | split -b 4095M, then sha256sum > SHA256SUMS
#   verify  = sha256sum -c SHA256SUMS
#   extract = sha256sum -c SHA256SUMS, then cat volumes | zstd -d | tar -x
# agkit fsyncs what it writes (volumes; extracted files and directories); the
# baselines do not.  Peak RSS is the largest process's (time -f %M); CPU is
# user + system seconds of all processes of the command (time -f %U %S),
# which a loaded machine distorts less than wall time.
set -eu
BUILD=$(realpath "${1:-build}")
AGPACK=$BUILD/tools/agpack/agpack
AGIMPORT=$BUILD/tools/agimport/agimport
HERE=$(cd "$(dirname "$0")" && pwd)
ROUNDS=${ROUNDS:-3}
WEIGHTS_MIB=${WEIGHTS_MIB:-512}
IMAGE_DIRS=${IMAGE_DIRS:-usr/bin usr/include usr/share/doc}
TOPT=()
[ -n "${THREADS:-}" ] && TOPT=(--threads "$THREADS")
for b in "$AGPACK" "$AGIMPORT" /usr/bin/time zstd sha256sum tar split; do
	command -v "$b" >/dev/null || { echo "bench: $b missing" >&2; exit 2; }
done
W=${BENCH_DIR:-$(mktemp -d /var/tmp/agkit-bench.XXXXXX)}
mkdir -p "$W"
cd "$W"
RES=$W/results.tsv
: > "$RES"

echo "# machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# zstd $(zstd -V | grep -o 'v[0-9.]*'), $(sha256sum --version | head -1)"

"$AGPACK" keygen --out k --no-passphrase --force >/dev/null
if [ ! -f in-weights/model.safetensors ]; then
	mkdir -p in-weights
	/usr/bin/python3 "$HERE/mksafetensors.py" in-weights/model.safetensors "$WEIGHTS_MIB" --dtype BF16 --seed 1
fi
if [ ! -f in-image/image.tar ]; then
	mkdir -p in-image
	# shellcheck disable=SC2086 # a list of directories
	tar --sort=name --warning=none -cf in-image/image.tar -C / $IMAGE_DIRS 2>/dev/null || true
fi
for in in weights image; do
	printf '{"name": "bench", "channel": "c", "version": 1, "artifacts": [{"type": "files", "name": "%s", "path": "in-%s"}]}\n' \
		"$in" "$in" > "spec-$in.json"
done

# timed LABEL CMD...: runs CMD under time, appends "LABEL seconds peak_kib user
# sys load", load being the 1-minute load average when CMD ended.
timed() {
	local label=$1; shift
	/usr/bin/time -o .t -f '%e %M %U %S' "$@" >/dev/null 2>.err || { echo "bench: $label failed:" >&2; cat .err >&2; exit 1; }
	echo "$label $(cat .t) $(cut -d' ' -f1 /proc/loadavg)" >> "$RES"
}

for in in weights image; do
	raw=$(du -b --apparent-size "in-$in" | tail -1 | cut -f1)
	echo "$in raw $raw 0" >> "$RES"
	for r in $(seq "$ROUNDS"); do
		# Alternate who goes first so drift in machine load hits both.
		for who in $( [ $((r % 2)) = 1 ] && echo "agkit base" || echo "base agkit"); do
			rm -rf "b-$in" "base-$in" "x-$in" "y-$in"
			sync
			if [ $who = agkit ]; then
				timed "$in pack agkit" "$AGPACK" build "spec-$in.json" --key k.key --out "b-$in" "${TOPT[@]}"
				timed "$in verify agkit" "$AGIMPORT" verify "b-$in" --pubkey k.pub "${TOPT[@]}"
				timed "$in extract agkit" "$AGIMPORT" extract "b-$in" --pubkey k.pub --to "x-$in" "${TOPT[@]}"
				cmp "in-$in/$(ls "in-$in")" "x-$in/$in/$(ls "in-$in")"
				echo "$in size agkit $(cat "b-$in"/vol-* | wc -c) 0" >> "$RES"
			else
				mkdir "base-$in" "y-$in"
				timed "$in pack base" bash -c "tar -cf - -C in-$in . | zstd -3 -T0 -q | split -b 4095M - base-$in/vol- && cd base-$in && sha256sum vol-* > SHA256SUMS"
				timed "$in verify base" bash -c "cd base-$in && sha256sum --quiet -c SHA256SUMS"
				timed "$in extract base" bash -c "cd base-$in && sha256sum --quiet -c SHA256SUMS && cat vol-* | zstd -d -q | tar -xf - -C ../y-$in"
				echo "$in size base $(cat "base-$in"/vol-* | wc -c) 0" >> "$RES"
			fi
		done
	done
	rm -rf "b-$in" "base-$in" "x-$in" "y-$in"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 - "$RES" <<'PY'
import collections, statistics, sys
t = collections.defaultdict(list); rss = collections.defaultdict(list); cpu = collections.defaultdict(list)
load = collections.defaultdict(list)
size = {}; raw = {}
for line in open(sys.argv[1]):
    f = line.split()
    if f[1] == "raw":
        raw[f[0]] = int(f[2])
    elif f[1] == "size":
        size[(f[0], f[2])] = int(f[3])
    else:
        k = (f[0], f[1], f[2])
        t[k].append(float(f[3])); rss[k].append(int(f[4])); cpu[k].append(float(f[5]) + float(f[6]))
        load[(f[0], f[1])].append(float(f[7]))
print("| input | step | agkit s | baseline s | time ratio | agkit CPU s | baseline CPU s | CPU ratio | agkit peak RSS MiB | baseline peak RSS MiB | load (1 min) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ratio = {}
for inp in ("weights", "image"):
    for step in ("pack", "verify", "extract"):
        a, b = t[(inp, step, "agkit")], t[(inp, step, "base")]
        if not a or not b:
            continue
        ma, mb = statistics.median(a), statistics.median(b)
        ca, cb = statistics.median(cpu[(inp, step, "agkit")]), statistics.median(cpu[(inp, step, "base")])
        print(f"| {inp} | {step} | {ma:.2f} | {mb:.2f} | {ma / mb:.2f} | {ca:.2f} | {cb:.2f} | {ca / cb:.2f} | "
              f"{max(rss[(inp, step, 'agkit')]) / 1024:.0f} | {max(rss[(inp, step, 'base')]) / 1024:.0f} | "
              f"{min(load[(inp, step)]):.1f}-{max(load[(inp, step)]):.1f} |")
        ratio[(inp, step)] = (ma / mb, ca / cb)
print()
print("| input | raw bytes | agkit bytes | baseline bytes | size ratio (agkit/baseline) | agkit/raw |")
print("|---|---|---|---|---|---|")
for inp in ("weights", "image"):
    a, b = size[(inp, "agkit")], size[(inp, "base")]
    print(f"| {inp} | {raw[inp]} | {a} | {b} | {a / b:.3f} | {a / raw[inp]:.3f} |")
print()
# Targets of issue 15 (wall-time ratios; CPU ratios beside them, which a
# loaded machine distorts less).
goal = {"pack": 0.4, "verify": 0.2, "extract": 0.5}
print("| target | wall ratio | CPU ratio | met (wall)? |")
print("|---|---|---|---|")
for (inp, step), (w, c) in ratio.items():
    print(f"| {inp} {step} <= {goal[step]}x | {w:.2f} | {c:.2f} | {'yes' if w <= goal[step] else 'no'} |")
peak = max(max(v) for k, v in rss.items() if k[2] == "agkit") / 1024
print(f"| agkit peak RSS <= 256 MiB | {peak:.0f} MiB | | {'yes' if peak <= 256 else 'no'} |")
print()
print("rounds per time:", {k[0] + " " + k[1] + " " + k[2]: v for k, v in sorted(t.items())})
PY
