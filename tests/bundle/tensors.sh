#!/bin/bash
# Tensor-aware coding (format 1.1) and the parallel pipeline: byte-exact round
# trips per dtype, identical bytes whatever the thread count, hostile
# safetensors headers falling back to plain zstd, tampered byte-grouped chunks
# refused (also when the manifest is re-signed over the tampered bytes).
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
keygen k
GEN="$TESTS_DIR/../bench/bundle/mksafetensors.py"
# codings BUNDLE: the sorted set of chunk codings in the manifest.
codings() { $PY -c 'import json,sys; print(" ".join(sorted({c["coding"] for c in json.load(open(sys.argv[1]))["chunks"]})))' "$1/manifest.json"; }
fmt() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["format_version"])' "$1/manifest.json"; }

# 1. Each dtype round-trips byte-exact, with the expected coding.
for dt in BF16 F16 F32; do
	mkdir -p "m-$dt"
	$PY "$GEN" "m-$dt/model.safetensors" 3 --dtype $dt --seed 7
	echo '{"note": "not a tensor file"}' > "m-$dt/config.json"
	spec "s-$dt.json" "t$dt" 1 "files:model:m-$dt"
	check "$dt: build" "$AGPACK" build "s-$dt.json" --key k.key --out "b-$dt" --chunk-size 64K
	want=bytegroup2; [ $dt = F32 ] && want=bytegroup4
	check "$dt: manifest uses $want and zstd" sh -c "test \"\$(echo '$(codings "b-$dt")')\" = '$want zstd'"
	check "$dt: format_version is 1.1" test "$(fmt "b-$dt")" = 1.1
	check "$dt: verify" "$AGIMPORT" verify "b-$dt" --pubkey k.pub
	check "$dt: extract" "$AGIMPORT" extract "b-$dt" --pubkey k.pub --to "o-$dt"
	check "$dt: extracted files are byte-identical" same_tree "m-$dt" "o-$dt/model"
done
command -v zstd >/dev/null && check "BF16: byte grouping beats plain zstd by 10% or more" sh -c '
	zs=$(zstd -3 -c m-BF16/model.safetensors | wc -c); ag=$(cat b-BF16/vol-* | wc -c)
	echo "agkit $ag, zstd -3 $zs"; test $((ag * 100)) -le $((zs * 90))'

# 2. Same bytes whatever the thread count (tensors, a tree, several volumes).
$PY "$TESTS_DIR/bundle/mktree.py" tree 3 --small 300
cp m-BF16/model.safetensors tree/
spec sd.json det 1 files:tree:tree files:f32:m-F32
for t in 1 2 5; do
	check "build with --threads $t" env SOURCE_DATE_EPOCH=1700000000 "$AGPACK" build sd.json --key k.key --out "d$t" --chunk-size 32K --volume-size 600K --threads $t
done
check "several volumes were written" test -e d1/vol-00003.agv
for t in 2 5; do
	check "--threads $t: manifest identical to --threads 1" cmp d1/manifest.json "d$t/manifest.json"
	check "--threads $t: volumes identical to --threads 1" sh -c "for v in d1/vol-*; do cmp \"\$v\" \"d$t/\${v#d1/}\" || exit 1; done"
done
check "default threads: manifest identical to --threads 1" sh -c 'SOURCE_DATE_EPOCH=1700000000 "$AGPACK" build sd.json --key k.key --out d0 --chunk-size 32K --volume-size 600K && cmp d1/manifest.json d0/manifest.json'
for t in 1 3; do
	check "verify --threads $t" "$AGIMPORT" verify d1 --pubkey k.pub --threads $t
	check "extract --threads $t" "$AGIMPORT" extract d1 --pubkey k.pub --threads $t --to "x$t"
	check "extract --threads $t: identical" sh -c "$(declare -f same_tree); PY=$PY; same_tree tree x$t/tree && same_tree m-F32 x$t/f32"
done
expect_exit 2 "--threads 0 is a usage error" "$AGIMPORT" verify d1 --pubkey k.pub --threads 0
expect_exit 2 "--threads abc is a usage error" "$AGPACK" build sd.json --key k.key --out dx --threads abc

# 3. Hostile headers: packed as plain zstd, still byte-exact.
$PY "$TESTS_DIR/bundle/mkhostile.py" hostile
spec sh.json hostile 1 files:h:hostile
check "build hostile safetensors files" "$AGPACK" build sh.json --key k.key --out bh --chunk-size 16K
check "every hostile file was coded plain zstd" test "$(codings bh)" = zstd
check "a bundle without byte groups stays format 1.0" test "$(fmt bh)" = 1.0
check "extract hostile files" "$AGIMPORT" extract bh --pubkey k.pub --to oh
check "hostile files are byte-identical" same_tree hostile oh/h

# 4. A tampered byte-grouped chunk is refused before it is decoded.
# bgchunk BUNDLE: "VOLUME OFFSET CSIZE INDEX" of the first byte-grouped chunk.
bgchunk() { $PY -c '
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
for i, c in enumerate(m["chunks"]):
    if c["coding"].startswith("bytegroup"):
        print(m["volumes"][c["volume"]]["name"], c["offset"], c["csize"], i); break' "$1"; }
read -r vol off csize idx < <(bgchunk b-BF16)
refuse() { # refuse NAME PATTERN: verify and extract of t exit 3, message names PATTERN, nothing left
	expect_exit 3 "$1: verify refuses" "$AGIMPORT" verify t --pubkey k.pub
	if last_output | grep -q -- "$2"; then ok "$1: message names '$2'"; else not_ok "$1: message names '$2'"; last_output | sed 's/^/#   /'; fi
	expect_exit 3 "$1: extract refuses" "$AGIMPORT" extract t --pubkey k.pub --to out
	if [ ! -e out ] && ! ls -d out.agtmp-* >/dev/null 2>&1; then ok "$1: target absent"; else not_ok "$1: target left"; fi
}
flipat() { $PY -c '
import sys
f, off, x = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f, "r+b") as h:
    h.seek(off); b = h.read(1); h.seek(off); h.write(bytes([b[0] ^ x]))' "$@"; }
rm -rf t && cp -a b-BF16 t && flipat "t/$vol" $((off + csize / 2)) 1
refuse "byte flipped in a byte-grouped chunk" "chunk $idx (artifact 'model', file 'model.safetensors'"

# resign BUNDLE: recomputes the tampered chunk's csha256 and the volume
# hashes, so only the coding's own checks stand between the bytes and the
# decoder; then signs the new manifest with the trusted key.
resign() { $PY - "$1" "$idx" <<'PY'
import hashlib, json, sys
d, i = sys.argv[1], int(sys.argv[2])
m = json.load(open(d + "/manifest.json"))
c = m["chunks"][i]
vol = open(d + "/" + m["volumes"][c["volume"]]["name"], "rb").read()
c["csha256"] = hashlib.sha256(vol[c["offset"]:c["offset"] + c["csize"]]).hexdigest()
for v in m["volumes"]:
    v["sha256"] = hashlib.sha256(open(d + "/" + v["name"], "rb").read()).hexdigest()
open(d + "/manifest.json", "w").write(json.dumps(m, indent=1))
PY
	rm -f "$1"/signatures/*.minisig && "$AGPACK" sign "$1" --key k.key >/dev/null
}
rm -rf t && cp -a b-BF16 t && flipat "t/$vol" "$off" 6 && resign t
refuse "signed chunk with an unknown stream method" "byte-group stream table"
rm -rf t && cp -a b-BF16 t && flipat "t/$vol" $((off + 1)) 1 && resign t
refuse "signed chunk whose stream lengths do not add up" "byte-group stream table"
# Past the headers: verify cannot see these without decoding; extract must
# refuse them at decode or decoded-hash time.
# streamat BUNDLE-VOLUME OFFSET J: offset of byte 20 of stream J's payload.
streamat() { $PY -c '
import struct, sys
f, off, j = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = open(f, "rb").read()[off:off + 10]
lens = [struct.unpack("<I", b[5 * i + 1:5 * i + 5])[0] for i in range(2)]
print(off + 10 + sum(lens[:j]) + 20, b[5 * j])' "$@"; }
read -r at0 method0 < <(streamat "b-BF16/$vol" "$off" 0)
read -r at1 method1 < <(streamat "b-BF16/$vol" "$off" 1)
check "bf16: low-byte stream stored raw, exponent stream zstd" test "$method0$method1" = 01
for j in 0 1; do
	at=$at0; [ $j = 1 ] && at=$at1
	rm -rf t out && cp -a b-BF16 t && flipat "t/$vol" "$at" 85 && resign t
	check "signed chunk, stream $j body altered: verify (no decoding) accepts" "$AGIMPORT" verify t --pubkey k.pub
	expect_exit 3 "signed chunk, stream $j body altered: extract refuses" "$AGIMPORT" extract t --pubkey k.pub --to out
	if last_output | grep -q "chunk $idx"; then ok "extract names chunk $idx"; else not_ok "extract names chunk $idx"; last_output | sed 's/^/#   /'; fi
	check "target absent" sh -c '! test -e out && ! ls -d out.agtmp-* 2>/dev/null | grep -q .'
done

# 5. A reader that knows only 1.0 codings refuses 1.1 chunks by name (format section 8).
# agpack sign refuses to parse such a manifest, so stock minisign signs it.
if command -v minisign >/dev/null; then
	rm -rf t && cp -a b-BF16 t && sed -i 's/"bytegroup2"/"bytegroup3"/' t/manifest.json && rm -f t/signatures/*.minisig
	tc=$(printf 'timestamp:1\tfile:manifest.json\tprehashed\tbundle:tBF16\tchannel:stable\tversion:1\tsha256:%s' "$(sha256sum t/manifest.json | cut -d' ' -f1)")
	minisign -S -s k.key -m t/manifest.json -x t/signatures/k.minisig -t "$tc" </dev/null >/dev/null
	expect_exit 3 "an unknown coding is refused" "$AGIMPORT" verify t --pubkey k.pub
	if last_output | grep -q "unsupported coding 'bytegroup3'"; then ok "message names the coding"; else not_ok "message names the coding"; last_output | sed 's/^/#   /'; fi
else
	diag "minisign not installed: unknown-coding check skipped"
fi
done_testing
