#!/bin/sh
# Fetch throughput from a loopback docker-registry: agpack's image source
# (fetch-tool) against `skopeo copy docker://... oci:...` for the same image.
#   bench/fetch/bench.sh [BUILD_DIR] [SIZE_MB] [RUNS]     (defaults: build-f 200 3)
# Each run starts with an empty cache / empty destination; best-of-RUNS times.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-f}
SIZE_MB=${2:-200}
RUNS=${3:-3}
export FETCH_TOOL=${FETCH_TOOL:-$BUILD/tests/fetch/fetch-tool}
export FETCH_TESTDIR=$ROOT/tests/fetch
[ -x "$FETCH_TOOL" ] || { echo "build first: ninja -C $BUILD ($FETCH_TOOL missing)"; exit 1; }
. "$ROOT/tests/fetch/lib.sh"
need docker-registry skopeo

LAYERS=4
python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --layers $LAYERS \
	--layer-mb "$(python3 -c "print($SIZE_MB/$LAYERS)")" >/dev/null
P=$(free_port); H=127.0.0.1:$P
start_plain_registry reg "$P"
seed_image "$WORK/src" v1 "$H" bench/big

now() { python3 -c 'import time; print(time.monotonic())'; }
: >"$WORK/times"
i=0
while [ $i -lt "$RUNS" ]; do
	rm -rf "$WORK/c" "$WORK/o" "$WORK/sk"
	t0=$(now)
	"$FETCH_TOOL" image "$H/bench/big:v1" "$WORK/o" --cache "$WORK/c" --insecure "$H" --quiet >"$WORK/p" ||
		fail "fetch-tool failed"
	t1=$(now)
	skopeo copy --quiet --src-tls-verify=false "docker://$H/bench/big:v1" "oci:$WORK/sk:v1" || fail "skopeo failed"
	t2=$(now)
	python3 -c "print($t1-$t0, $t2-$t1)" | tee -a "$WORK/times" | awk -v n=$((i + 1)) '{printf "run %d: agfetch %.2fs  skopeo %.2fs\n", n, $1, $2}'
	i=$((i + 1))
done
bytes=$(counter "$WORK/p" total_bytes)
python3 - "$bytes" "$LAYERS" "$WORK/times" <<'PY'
import statistics, sys
b, n = int(sys.argv[1]), sys.argv[2]
rows = [tuple(map(float, l.split())) for l in open(sys.argv[3]) if l.strip()]
ag = [r[0] for r in rows]; sk = [r[1] for r in rows]
mib = b / 1048576
print("image: %.1f MiB in %s layers, loopback docker-registry (plain http), %d runs" % (mib, n, len(rows)))
for name, t in (("agfetch (fetch-tool: sequential, sha256, cache, layout)", ag), ("skopeo copy docker:// -> oci:", sk)):
    print("%-56s best %.2fs (%.0f MiB/s)  median %.2fs (%.0f MiB/s)" %
          (name, min(t), mib / min(t), statistics.median(t), mib / statistics.median(t)))
print("throughput ratio agfetch/skopeo: best %.2f, median %.2f" %
      (min(sk) / min(ag), statistics.median(sk) / statistics.median(ag)))
PY
