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
best_ag=""; best_sk=""
i=0
while [ $i -lt "$RUNS" ]; do
	rm -rf "$WORK/c" "$WORK/o" "$WORK/sk"
	t0=$(now)
	"$FETCH_TOOL" image "$H/bench/big:v1" "$WORK/o" --cache "$WORK/c" --insecure "$H" --quiet >"$WORK/p" ||
		fail "fetch-tool failed"
	t1=$(now)
	skopeo copy --quiet --src-tls-verify=false "docker://$H/bench/big:v1" "oci:$WORK/sk:v1" || fail "skopeo failed"
	t2=$(now)
	ag=$(python3 -c "print($t1-$t0)"); sk=$(python3 -c "print($t2-$t1)")
	echo "run $((i + 1)): agfetch ${ag}s  skopeo ${sk}s"
	best_ag=$(python3 -c "print(min([x for x in [$ag, ${best_ag:-1e9}]]))")
	best_sk=$(python3 -c "print(min([x for x in [$sk, ${best_sk:-1e9}]]))")
	i=$((i + 1))
done
bytes=$(counter "$WORK/p" total_bytes)
python3 - "$bytes" "$best_ag" "$best_sk" "$LAYERS" <<'PY'
import sys
b, ag, sk, n = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
mib = b / 1048576
print("image: %.1f MiB in %s layers, loopback docker-registry (plain http)" % (mib, n))
print("agfetch (fetch-tool, sequential, verify + cache + layout): best %.2fs  %.1f MiB/s" % (ag, mib / ag))
print("skopeo copy docker:// -> oci:                             best %.2fs  %.1f MiB/s" % (sk, mib / sk))
print("ratio agfetch/skopeo throughput: %.2f" % (sk / ag))
PY
