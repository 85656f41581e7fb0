#!/bin/bash
# Delta bundles (issue 21): the bytes a delta carries and its import time,
# side by side with a full bundle and with `zstd --patch-from` (old -> new
# tar of the same input), for four cases:
#   config    a model with only config.json and tokenizer.json changed
#   shard     a model with one safetensors shard (of two) replaced
#   layer     an OCI image with one changed layer (of two)
#   text      a text file with a line inserted at its start
# usage: bench/delta/bench.sh [BUILD_DIR]   (WEIGHTS_MIB=64, TEXT_MIB=32, BENCH_DIR=...)
# Prints markdown tables; the machine, the zstd version and the load average.
set -eu
BUILD=$(realpath "${1:-build}")
AGPACK=$BUILD/tools/agpack/agpack AGIMPORT=$BUILD/tools/agimport/agimport AGCTL=$BUILD/tools/agctl/agctl
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
WEIGHTS_MIB=${WEIGHTS_MIB:-64}
TEXT_MIB=${TEXT_MIB:-32}
for b in "$AGPACK" "$AGIMPORT" "$AGCTL" /usr/bin/time zstd tar /usr/bin/python3; do
	command -v "$b" >/dev/null || { echo "bench: $b missing" >&2; exit 2; }
done
W=${BENCH_DIR:-$(mktemp -d /var/tmp/agkit-bench-delta.XXXXXX)}
mkdir -p "$W"
[ -n "${BENCH_DIR:-}" ] || trap 'rm -rf "$W"' EXIT
cd "$W"
echo "# machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# zstd $(zstd -V | grep -o 'v[0-9.]*'); weights ${WEIGHTS_MIB} MiB, text ${TEXT_MIB} MiB"
"$AGPACK" keygen --out k --no-passphrase --force >/dev/null

rm -rf in && mkdir -p in
# config: v1 and v2 differ in config.json and tokenizer.json.
mkdir -p in/config1
/usr/bin/python3 "$SRC/bench/bundle/mksafetensors.py" in/config1/model.safetensors "$WEIGHTS_MIB" --dtype BF16 --seed 1
/usr/bin/python3 -c 'import json,sys; json.dump({"hidden_size": 4096, "rev": int(sys.argv[2])}, open(sys.argv[1], "w"))' in/config1/config.json 1
/usr/bin/python3 -c 'import json,sys; json.dump({"model": {"vocab": {"t%d" % i: i for i in range(100000)}}}, open(sys.argv[1], "w"))' in/config1/tokenizer.json
cp -r in/config1 in/config2
/usr/bin/python3 -c 'import json,sys; json.dump({"hidden_size": 4096, "rev": int(sys.argv[2])}, open(sys.argv[1], "w"))' in/config2/config.json 2
/usr/bin/python3 -c 'import json,sys; json.dump({"model": {"vocab": {"u%d" % i: i for i in range(100000)}}}, open(sys.argv[1], "w"))' in/config2/tokenizer.json
echo "config.json tokenizer.json" > in/config.changed
# shard: two shards of WEIGHTS_MIB/2, the second replaced.
mkdir -p in/shard1
/usr/bin/python3 "$SRC/bench/bundle/mksafetensors.py" in/shard1/model-00001-of-00002.safetensors $((WEIGHTS_MIB / 2)) --dtype BF16 --seed 2
/usr/bin/python3 "$SRC/bench/bundle/mksafetensors.py" in/shard1/model-00002-of-00002.safetensors $((WEIGHTS_MIB / 2)) --dtype BF16 --seed 3
cp -r in/shard1 in/shard2
/usr/bin/python3 "$SRC/bench/bundle/mksafetensors.py" in/shard2/model-00002-of-00002.safetensors $((WEIGHTS_MIB / 2)) --dtype BF16 --seed 4
echo "model-00002-of-00002.safetensors" > in/shard.changed
# layer: an OCI layout with a big layer (headers from /usr/include) and a small one that changes.
find /usr/include -name '*.h' -type f | sort | head -4000 | tar -cf big-layer.tar -T - 2>/dev/null || true
/usr/bin/python3 "$SRC/tests/delta/mkoci.py" in/layer1 v1 big-layer.tar "app one"
/usr/bin/python3 "$SRC/tests/delta/mkoci.py" in/layer2 v2 big-layer.tar "app two"
( cd in/layer2 && comm -13 <(cd ../layer1 && find . -type f | sort) <(find . -type f | sort) | sed 's|^\./||' ) > in/layer.changed
echo "index.json" >> in/layer.changed
# text: TEXT_MIB of C headers, then the same with a line inserted at its start.
mkdir -p in/text1 in/text2
find /usr/include -name '*.h' -type f | sort | xargs cat 2>/dev/null | head -c $((TEXT_MIB << 20)) > in/text1/corpus.txt || true
{ echo "/* a new first line */"; cat in/text1/corpus.txt; } > in/text2/corpus.txt
echo "corpus.txt" > in/text.changed

mkspec() { printf '{"name": "bench-%s", "channel": "c", "version": %s, "artifacts": [{"type": "%s", "name": "a", "path": "%s"}]}\n' "$1" "$2" "$3" "$W/in/$1$2" > "spec-$1$2.json"; }
secs() { /usr/bin/time -o .t -f '%e' "$@" >/dev/null 2>.err || { echo "bench: $* failed:" >&2; cat .err >&2; exit 1; }; cat .t; }
vol() { cat "$1"/vol-*.agv 2>/dev/null | wc -c; }

echo "| case | changed content (zstd -3) | full bundle | delta | delta manifest | zstd --patch-from | delta / (changed + 1% + 64 KiB) | import full s | import delta s | load (1 min) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in config shard layer text; do
	t=files; [ $c = layer ] && t=oci-archive
	mkspec $c 1 $t; mkspec $c 2 $t
	rm -rf "b-${c}1" "b-${c}2" "d-${c}2" R-full R-delta
	"$AGPACK" build "spec-${c}1.json" --key k.key --out "b-${c}1" -q >/dev/null 2>&1
	"$AGPACK" build "spec-${c}2.json" --key k.key --out "b-${c}2" -q >/dev/null 2>&1
	"$AGPACK" build "spec-${c}2.json" --key k.key --out "d-${c}2" -q --base "b-${c}1" --base-pubkey k.pub >/dev/null 2>&1
	changed=$(cd "in/${c}2" && cat $(cat "../$c.changed") | zstd -3 -c -q | wc -c)
	total=$(du -b --apparent-size "in/${c}2" | tail -1 | cut -f1)
	tar -cf old.tar -C "in/${c}1" . ; tar -cf new.tar -C "in/${c}2" .
	zstd -q -f -3 --long=30 --patch-from=old.tar new.tar -o patch.zst 2>/dev/null || zstd -q -f -3 --patch-from=old.tar new.tar -o patch.zst
	patch=$(wc -c < patch.zst)
	for R in R-full R-delta; do
		"$AGCTL" --root $R init --pubkey k.pub >/dev/null
		"$AGIMPORT" "b-${c}1" --root $R -q >/dev/null 2>&1
		"$AGCTL" --root $R promote >/dev/null
	done
	sync
	tf=$(secs "$AGIMPORT" "b-${c}2" --root R-full -q)
	sync
	td=$(secs "$AGIMPORT" "d-${c}2" --root R-delta -q)
	cmp <(cd R-delta/slots/green/a && find . -type f | sort | xargs sha256sum) <(cd "in/${c}2" && find . -type f | sort | xargs sha256sum)
	d=$(vol "d-${c}2"); m=$(wc -c < "d-${c}2/manifest.json")
	target=$((changed + total / 100 + 65536))
	echo "| $c | $changed | $(vol "b-${c}2") | $d | $m | $patch | $(/usr/bin/python3 -c "print(f'{$d / $target:.3f}')") | $tf | $td | $(cut -d' ' -f1 /proc/loadavg) |"
	rm -rf "b-${c}1" "b-${c}2" "d-${c}2" R-full R-delta old.tar new.tar patch.zst
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
