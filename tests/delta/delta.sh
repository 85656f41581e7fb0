#!/bin/bash
# Delta bundles (issue 21, docs/FORMAT.md section 12): agpack build --base
# reuses the files (and OCI layers) the site already has; agimport completes
# the delta from the slot holding its base, checks every reused byte against
# the delta's signed hashes, and refuses a missing or modified base.
. "$(dirname "$0")/../lib.sh"
. "$TESTS_DIR/deploy/lib-deploy.sh"
cd "$WORK"
keygen k; keygen other
# vol_bytes DIR: the bytes a bundle carries in its volumes (what goes on media).
vol_bytes() { cat "$1"/vol-*.agv 2>/dev/null | wc -c; }
# mkspec FILE VERSION TYPE:NAME:PATH...
mkspec() { local f=$1 v=$2; shift 2; spec "$f" app "$v" "$@"; }
state() { "$AGCTL" --root "$1" status --json | $PY -c "import json,sys; s=json.load(sys.stdin); print($2)"; }

# A model: 3 MB of weights in two shards, a config and a tokenizer.
mkdir m1
head -c 2000000 /dev/urandom > m1/model-00001-of-00002.safetensors
head -c 1000000 /dev/urandom > m1/model-00002-of-00002.safetensors
echo '{"hidden_size": 64, "rev": 1}' > m1/config.json
$PY -c 'import json; print(json.dumps({"vocab": {"w%d" % i: i for i in range(2000)}}))' > m1/tokenizer.json
cp -r m1 m2
echo '{"hidden_size": 64, "rev": 2}' > m2/config.json
$PY -c 'import json; print(json.dumps({"vocab": {"v%d" % i: i for i in range(2000)}}))' > m2/tokenizer.json
mkspec s1.json 1 files:model:"$WORK/m1"
mkspec s2.json 2 files:model:"$WORK/m2"
check "pack v1 (full)" "$AGPACK" build s1.json --key k.key --out b1
check "pack v2 against v1's manifest.json" "$AGPACK" build s2.json --key k.key --out d2 --base b1/manifest.json
changed=$(cat m2/config.json m2/tokenizer.json | zstd -3 -c | wc -c)
carried=$(vol_bytes d2)
diag "config+tokenizer delta: $carried bytes carried, changed content $changed bytes compressed, full $(vol_bytes b1)"
check "the delta carries the changed files only (at most their compressed size + 64 KiB)" \
	test "$carried" -le $((changed + 65536))
check "a delta is format 2.0" grep -q '"format_version": "2.0"' d2/manifest.json
check "a full bundle stays format 1.0" grep -q '"format_version": "1.0"' b1/manifest.json
check "agimport verify checks the carried chunks" "$AGIMPORT" verify d2 --pubkey k.pub
last_output | grep -q "come from the base bundle app channel stable version 1" && ok "verify says what comes from the base" ||
	not_ok "verify says what comes from the base"
"$AGIMPORT" inspect d2 --pubkey k.pub > insp.txt
check "inspect names the base and the bytes carried vs reused" \
	grep -q "^base: bundle app channel stable version 1 (manifest sha256 $(sha256sum b1/manifest.json | cut -c1-64)): .* carried, 3000000 byte(s) reused" insp.txt
check "inspect --json has base and reused_bytes" sh -c "'$AGIMPORT' inspect d2 --json --pubkey k.pub | $PY -c 'import json,sys; o=json.load(sys.stdin); assert o[\"base\"][\"version\"]==1 and o[\"reused_bytes\"]==3000000, o[\"base\"]'"
expect_exit 3 "extract without a base is refused" "$AGIMPORT" extract d2 --pubkey k.pub --to x
check "... and leaves nothing" test ! -e x

# The clean zone: a missing base is refused, nothing staged.
"$AGCTL" --root R0 init --pubkey k.pub >/dev/null
expect_exit 3 "import of a delta into a root without its base is refused" "$AGIMPORT" d2 --root R0
last_output | grep -q "needs its base bundle app channel stable version 1 .*nothing staged" && ok "the refusal names the base bundle and version" ||
	not_ok "the refusal names the base bundle and version"
expect_exit 3 "--dry-run of the delta without its base is refused the same way" "$AGIMPORT" d2 --root R0 --dry-run
check "... nothing staged" test "$(state R0 's["slots"]["blue"]["state"], s["slots"]["green"]["state"]')" = "empty empty"
check "... no work directory left" sh -c "! ls R0/staging/* >/dev/null 2>&1"

# With the base active: the delta is completed from it.
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
check "import v1" "$AGIMPORT" b1 --root "$R"
check "promote v1" "$AGCTL" --root "$R" promote
check "--dry-run of the delta with its base active" "$AGIMPORT" d2 --root "$R" --dry-run
check "import the delta v2" "$AGIMPORT" d2 --root "$R"
check "v2 staged in green" test "$(state "$R" 's["slots"]["green"]["state"], s["slots"]["green"]["version"]')" = "staged 2"
check "the staged tree is v2's model, byte for byte" same_tree m2 "$R/slots/green/model"
check "the active slot still serves v1" cmp m1/config.json "$R/active/model/config.json"
check "status --json names the manifests the root holds (the site ledger to choose a base)" \
	test "$(state "$R" 's["slots"]["blue"]["manifest_sha256"], s["slots"]["green"]["manifest_sha256"]')" = "$(sha256sum b1/manifest.json | cut -c1-64) $(sha256sum d2/manifest.json | cut -c1-64)"

# A killed delta import resumes (reused chunks are chunks of the one progress record).
"$AGCTL" --root R9 init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root R9 >/dev/null 2>&1 && "$AGCTL" --root R9 promote >/dev/null 2>&1
{ (AGKIT_CHECKPOINT_BYTES=4096 AGKIT_CRASH_AT=extract:checkpoint "$AGIMPORT" d2 --root R9 >/dev/null 2>&1); } 2>/dev/null
rc=$?
[ $rc = 137 ] && ok "a delta import killed at its first checkpoint" || not_ok "a delta import killed at its first checkpoint (exit $rc)"
check "the re-run resumes it" sh -c "'$AGIMPORT' d2 --root R9 2>&1 | grep -q '(resumed)'"
check "the resumed tree is v2's model" same_tree m2 R9/slots/green/model

# A modified base: one flipped byte in a reused file of the active slot.
"$AGCTL" --root R2 init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root R2 >/dev/null 2>&1 && "$AGCTL" --root R2 promote >/dev/null 2>&1
f=R2/slots/blue/model/model-00002-of-00002.safetensors
$PY - "$f" <<'PYEOF'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    f.seek(777777); b = f.read(1); f.seek(777777); f.write(bytes([b[0] ^ 1]))
PYEOF
sum_before=$(sha256sum "$f")
expect_exit 3 "a delta over a base with one flipped byte is refused" "$AGIMPORT" d2 --root R2
last_output | grep -q "model-00002-of-00002.safetensors.*does not match the delta's signed sha256; the base bundle app channel stable version 1" &&
	ok "the refusal names the file and the base bundle and version" || not_ok "the refusal names the file and the base bundle and version"
check "... nothing staged" test "$(state R2 's["slots"]["green"]["state"]')" = empty
check "... no partial tree left" sh -c "! ls R2/staging/* >/dev/null 2>&1 && test ! -e R2/slots/green/model"
check "... the active slot untouched" test "$(state R2 's["active"], s["slots"]["blue"]["state"], s["slots"]["blue"]["version"]')" = "blue active 1" -a "$(sha256sum "$f")" = "$sum_before"
rm "$f"
expect_exit 3 "a base with a reused file missing is refused" "$AGIMPORT" d2 --root R2
last_output | grep -q "base file missing.*base bundle app channel stable version 1" && ok "... naming the base" || not_ok "... naming the base"

# One safetensors shard replaced.
cp -r m2 m3
head -c 1000000 /dev/urandom > m3/model-00002-of-00002.safetensors
mkspec s3.json 3 files:model:"$WORK/m3"
check "pack v3 (one shard replaced) against the delta v2: a delta of a delta" "$AGPACK" build s3.json --key k.key --out d3 --base d2
carried=$(vol_bytes d3)
diag "one shard of two replaced: $carried bytes carried of $(vol_bytes b1) for the full bundle"
check "the shard delta carries about the new shard only" test "$carried" -ge 1000000 -a "$carried" -le $((1000000 + 1000000 / 100 + 65536))
check "promote v2" "$AGCTL" --root "$R" promote
check "mark-good v2" "$AGCTL" --root "$R" mark-good
check "import v3 over the delta v2 (its base, itself a delta)" "$AGIMPORT" d3 --root "$R"
check "the staged tree is v3's model" same_tree m3 "$R/slots/blue/model"

# The base in the previous slot: v4 against v2 after v3 is promoted.
check "promote v3" "$AGCTL" --root "$R" promote
check "mark-good v3 (the previous slot may be reused)" "$AGCTL" --root "$R" mark-good
cp -r m2 m4; echo '{"hidden_size": 64, "rev": 4}' > m4/config.json
mkspec s4.json 4 files:model:"$WORK/m4"
check "pack v4 against v2 (the previous slot)" "$AGPACK" build s4.json --key k.key --out d4 --base d2 --base-pubkey k.pub
check "import v4: its base is the previous slot, the one it replaces" "$AGIMPORT" d4 --root "$R"
check "the staged tree is v4's model" same_tree m4 "$R/slots/green/model"

# --base-pubkey checks the base's signature.
expect_exit 3 "--base with a wrong --base-pubkey is refused" "$AGPACK" build s4.json --key k.key --out d4x --base d2 --base-pubkey other.pub
expect_exit 2 "--base-pubkey without --base is a usage error" "$AGPACK" build s4.json --key k.key --out d4y --base-pubkey k.pub

# Chunk-level reuse in a safetensors file: one tensor fine-tuned, the layout
# unchanged (tensor runs keep their chunk boundaries; the manifest suffices).
mkdir t1
$PY "$TESTS_DIR/../bench/bundle/mksafetensors.py" t1/model.safetensors 8 --dtype BF16 --seed 3
cp -r t1 t2
$PY - t2/model.safetensors <<'PYEOF'
import json, struct, sys
p = sys.argv[1]
with open(p, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]; hdr = json.loads(f.read(n))
    name, t = sorted(((k, v) for k, v in hdr.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])[len(hdr) // 2]
    a, b = t["data_offsets"]; f.seek(8 + n + a); d = bytearray(f.read(min(b - a, 65536)))
    for i in range(0, len(d), 2): d[i] ^= 0x01
    f.seek(8 + n + a); f.write(d)
PYEOF
spec ts1.json tens 1 files:model:t1
spec ts2.json tens 2 files:model:t2
check "pack a safetensors model" "$AGPACK" build ts1.json --key k.key --out tb1 --chunk-size 256K
check "pack it with one tensor changed, against its manifest only" "$AGPACK" build ts2.json --key k.key --out td2 --chunk-size 256K --base tb1/manifest.json
carried=$(vol_bytes td2); full=$(vol_bytes tb1)
diag "one tensor of an 8 MiB BF16 safetensors file changed: $carried bytes carried of $full"
check "only the chunks of the changed tensor are carried" test "$carried" -le $((2 * 262144 + 65536))
"$AGCTL" --root R6 init --pubkey k.pub >/dev/null
"$AGIMPORT" tb1 --root R6 >/dev/null 2>&1 && "$AGCTL" --root R6 promote >/dev/null 2>&1
check "import the tensor delta" "$AGIMPORT" td2 --root R6
check "the staged model is the changed one" cmp t2/model.safetensors R6/slots/green/model/model.safetensors

# Per-tensor boundaries: the first tensor resized, every later tensor moved;
# each tensor starts its chunks, so the moved ones are still found.
mkdir r1 r2
$PY "$TESTS_DIR/delta/mkst.py" r1/model.safetensors 5 256
$PY "$TESTS_DIR/delta/mkst.py" r2/model.safetensors 5 320
spec rs1.json resized 1 files:model:r1
spec rs2.json resized 2 files:model:r2
check "pack a model of 8 tensors" "$AGPACK" build rs1.json --key k.key --out rb1
check "pack it with its first tensor resized, against its manifest only" "$AGPACK" build rs2.json --key k.key --out rd2 --base rb1/manifest.json
carried=$(vol_bytes rd2); t0=$((320 * 1024 * 2))
diag "first of 8 tensors resized (all others moved): $carried bytes carried of $(vol_bytes rb1), the new tensor is $t0 bytes"
check "only the resized tensor (and the header) is carried" test "$carried" -le $((t0 + 65536))
"$AGCTL" --root R10 init --pubkey k.pub >/dev/null
"$AGIMPORT" rb1 --root R10 >/dev/null 2>&1 && "$AGCTL" --root R10 promote >/dev/null 2>&1
check "import the resized-tensor delta" "$AGIMPORT" rd2 --root R10
check "the staged model is the resized one" cmp r2/model.safetensors R10/slots/green/model/model.safetensors

# Chunk-level reuse by content-defined pieces: a text file with a line
# inserted at its start (the base bundle's volumes, checked with --base-pubkey).
mkdir x1 x2
$PY - x1/corpus.txt <<'PYEOF'
import random, sys
r = random.Random(7); words = ["".join(r.choice("etaoinshrdlu") for _ in range(r.randint(2, 9))) for _ in range(3000)]
open(sys.argv[1], "w").write("\n".join(" ".join(r.choice(words) for _ in range(10)) for _ in range(40000)) + "\n")
PYEOF
{ echo "a new first line"; cat x1/corpus.txt; } > x2/corpus.txt
spec xs1.json text 1 files:docs:x1
spec xs2.json text 2 files:docs:x2
check "pack a text corpus" "$AGPACK" build xs1.json --key k.key --out xb1
check "pack it with a line inserted at its start, against the base bundle" "$AGPACK" build xs2.json --key k.key --out xd2 --base xb1 --base-pubkey k.pub
carried=$(vol_bytes xd2); size=$(stat -c %s x2/corpus.txt)
diag "a line inserted at the start of a $size-byte text: $carried bytes carried of $(vol_bytes xb1)"
check "the text delta carries far less than the file (at most 64 KiB)" test "$carried" -le 65536
check "... and the manifest stays small (a few chunks)" test "$(grep -c '"coding"' xd2/manifest.json)" -le 8
"$AGCTL" --root R7 init --pubkey k.pub >/dev/null
"$AGIMPORT" xb1 --root R7 >/dev/null 2>&1 && "$AGCTL" --root R7 promote >/dev/null 2>&1
check "import the text delta" "$AGIMPORT" xd2 --root R7
check "the staged text is the new one" cmp x2/corpus.txt R7/slots/green/docs/corpus.txt
check "without the base's volumes (manifest only) the text is carried whole, still correct" \
	"$AGPACK" build xs2.json --key k.key --out xd2m --base xb1/manifest.json
check "... carried whole" test "$(vol_bytes xd2m)" -ge $(( $(vol_bytes xb1) / 2 ))

# OCI image: one changed layer.
head -c 1500000 /dev/urandom > big.bin
$PY "$TESTS_DIR/delta/mkoci.py" o1 v1 big.bin "app one"
$PY "$TESTS_DIR/delta/mkoci.py" o2 v2 big.bin "app two"
spec os1.json img 1 oci-archive:runtime:o1
spec os2.json img 2 oci-archive:runtime:o2
check "pack image v1" "$AGPACK" build os1.json --key k.key --out ob1
check "pack image v2 (one changed layer) against v1" "$AGPACK" build os2.json --key k.key --out od2 --base ob1
carried=$(vol_bytes od2)
diag "image with one changed layer: $carried bytes carried of $(vol_bytes ob1)"
check "the image delta does not carry the unchanged layer" test "$carried" -le 65536
"$AGCTL" --root R3 init --pubkey k.pub >/dev/null
"$AGIMPORT" ob1 --root R3 >/dev/null 2>&1 && "$AGCTL" --root R3 promote >/dev/null 2>&1
check "import the image delta" "$AGIMPORT" od2 --root R3
check "the staged image layout is v2's" same_tree o2 R3/slots/green/runtime

# A delta as a media set, and through the one-way stream.
check "pack the delta v2 as a media set" "$AGPACK" build s2.json --key k.key --out set2 --base b1 --volume-size 64K --chunk-size 16K --parity 1 --media 200K
check "a media set serves as --base (its manifest)" "$AGPACK" build s4.json --key k.key --out d4set --base set2
check "... naming v2 as the base" grep -q "\"manifest_sha256\": \"$(sha256sum set2/medium-01/manifest.json | cut -c1-64)\"" d4set/manifest.json
check "the set holds only the changed content" test "$(cat set2/medium-*/vol-*.agv | wc -c)" -le 262144
"$AGCTL" --root R4 init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root R4 >/dev/null 2>&1 && "$AGCTL" --root R4 promote >/dev/null 2>&1
cp -r set2 set2-lossy; rm -f set2-lossy/medium-01/vol-*.agv
check "import the media set with one medium's volumes lost (parity)" "$AGIMPORT" set2-lossy --root R4
check "the staged tree is v2's model" same_tree m2 R4/slots/green/model
"$AGCTL" --root R8 init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root R8 >/dev/null 2>&1 && "$AGCTL" --root R8 promote >/dev/null 2>&1
n=$(ls -d set2/medium-* | wc -l); diag "the delta media set has $n media"
for i in $(seq "$n" -1 2); do "$AGIMPORT" "set2/medium-$(printf %02d "$i")" --root R8 >/dev/null 2>&1; done
check "the delta's media one at a time: the last one completes the import" "$AGIMPORT" set2/medium-01 --root R8
check "the staged tree is v2's model" same_tree m2 R8/slots/green/model
"$AGPACK" build s2.json --key k.key --base b1 --volume-size 64K --chunk-size 16K --parity 1 --stream > d2.stream 2>/dev/null
check "receive the delta from a one-way stream" sh -c "'$AGIMPORT' receive rx < d2.stream"
"$AGCTL" --root R5 init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root R5 >/dev/null 2>&1 && "$AGCTL" --root R5 promote >/dev/null 2>&1
check "import the received delta" "$AGIMPORT" rx --root R5
check "the staged tree is v2's model" same_tree m2 R5/slots/green/model
done_testing
