#!/bin/sh
# Fetch throughput from a loopback docker-registry: agpack's image source
# (fetch-tool), the whole `agpack build` of a spec holding that image (fetch +
# pack: chunk, zstd, sha256, sign), and `skopeo copy docker://... oci:...` for
# the same image.
#   bench/fetch/bench.sh [BUILD_DIR] [SIZE_MB] [RUNS]     (defaults: build-f 200 3)
# Each run starts with an empty cache / empty destination; best and median of RUNS.
# AGPACK (default BUILD_DIR/tools/agpack/agpack); AGPACK_ARGS adds build options
# (e.g. "--level 1").  Without an agpack binary only fetch-tool and skopeo run.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-f}
SIZE_MB=${2:-200}
RUNS=${3:-3}
export FETCH_TOOL=${FETCH_TOOL:-$BUILD/tests/fetch/fetch-tool}
export FETCH_TESTDIR=$ROOT/tests/fetch
[ -x "$FETCH_TOOL" ] || { echo "build first: ninja -C $BUILD ($FETCH_TOOL missing)"; exit 1; }
AGPACK=${AGPACK:-$BUILD/tools/agpack/agpack}
AGPACK_ARGS=${AGPACK_ARGS:-}
. "$ROOT/tests/fetch/lib.sh"
need docker-registry skopeo

LAYERS=4
python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --layers $LAYERS \
	--layer-mb "$(python3 -c "print($SIZE_MB/$LAYERS)")" >/dev/null
P=$(free_port); H=127.0.0.1:$P
start_plain_registry reg "$P"
seed_image "$WORK/src" v1 "$H" bench/big

now() { python3 -c 'import time; print(time.monotonic())'; }
if [ -x "$AGPACK" ]; then
	"$AGPACK" keygen --out "$WORK/K" --no-passphrase >/dev/null || fail "agpack keygen"
	printf '{"name":"bench","channel":"b","version":1,"artifacts":[{"type":"image","name":"big","ref":"%s"}]}\n' \
		"$H/bench/big:v1" >"$WORK/spec.json"
fi
: >"$WORK/times"
i=0
while [ $i -lt "$RUNS" ]; do
	rm -rf "$WORK/c" "$WORK/o" "$WORK/sk" "$WORK/c2" "$WORK/B"
	t0=$(now)
	"$FETCH_TOOL" image "$H/bench/big:v1" "$WORK/o" --cache "$WORK/c" --insecure "$H" --quiet >"$WORK/p" ||
		fail "fetch-tool failed"
	t1=$(now)
	skopeo copy --quiet --src-tls-verify=false "docker://$H/bench/big:v1" "oci:$WORK/sk:v1" || fail "skopeo failed"
	t2=$(now)
	if [ -x "$AGPACK" ]; then
		# shellcheck disable=SC2086
		"$AGPACK" build "$WORK/spec.json" --key "$WORK/K.key" --out "$WORK/B" --cache "$WORK/c2" \
			--insecure-registry "$H" $AGPACK_ARGS >"$WORK/agpack.log" 2>&1 || { cat "$WORK/agpack.log"; fail "agpack build failed"; }
		t3=$(now)
	else
		t3=$t2
	fi
	python3 -c "print($t1-$t0, $t2-$t1, $t3-$t2)" | tee -a "$WORK/times" |
		awk -v n=$((i + 1)) '{printf "run %d: agfetch %.2fs  skopeo %.2fs  agpack build %.2fs\n", n, $1, $2, $3}'
	i=$((i + 1))
done
bytes=$(counter "$WORK/p" total_bytes)
[ -x "$AGPACK" ] && tail -n 1 "$WORK/agpack.log"
python3 - "$bytes" "$LAYERS" "$WORK/times" "$([ -x "$AGPACK" ] && echo 1 || echo 0)" "$AGPACK_ARGS" <<'PY'
import statistics, sys
b, n, have_agpack, args = int(sys.argv[1]), sys.argv[2], sys.argv[4] == "1", sys.argv[5]
rows = [tuple(map(float, l.split())) for l in open(sys.argv[3]) if l.strip()]
ag = [r[0] for r in rows]; sk = [r[1] for r in rows]; ap = [r[2] for r in rows]
mib = b / 1048576
print("image: %.1f MiB in %s layers, loopback docker-registry (plain http), %d runs" % (mib, n, len(rows)))
tools = [("agfetch (fetch-tool: sequential, sha256, cache, layout)", ag), ("skopeo copy docker:// -> oci:", sk)]
if have_agpack:
    tools.append(("agpack build (fetch + pack + sign)" + (" " + args if args else ""), ap))
for name, t in tools:
    print("%-56s best %.2fs (%.0f MiB/s)  median %.2fs (%.0f MiB/s)" %
          (name, min(t), mib / min(t), statistics.median(t), mib / statistics.median(t)))
print("throughput ratio agfetch/skopeo: best %.2f, median %.2f" %
      (min(sk) / min(ag), statistics.median(sk) / statistics.median(ag)))
if have_agpack:
    print("throughput ratio agpack build/skopeo: best %.2f, median %.2f" %
          (min(sk) / min(ap), statistics.median(sk) / statistics.median(ap)))
PY
