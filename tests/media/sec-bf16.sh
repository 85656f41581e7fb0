#!/bin/bash
# Security review (issue 13), finding 8: a BF16 safetensors model (byte-
# grouped chunks) through every import path: the set directory, one medium
# at a time, the one-way stream; the staged bytes are the input's.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
cd "$WORK"
export TMPDIR="$WORK" AGKIT_REPAIR_DIR="$WORK"
GEN="$TESTS_DIR/../bench/bundle/mksafetensors.py"
keygen k
mkdir m
$PY "$GEN" m/model.safetensors 3 --dtype BF16 --seed 11
echo '{"note": "config"}' > m/config.json
spec s.json bf 1 files:model:m
"$AGPACK" build s.json --key k.key --out set --chunk-size 64K --volume-size 256K --media 512K >b.out 2>&1 ||
	{ echo "Bail out! cannot build: $(tail -2 b.out)"; exit 1; }
grep -q '"bytegroup2"' set/medium-01/manifest.json && ok "the bundle has byte-grouped chunks" || not_ok "the bundle has byte-grouped chunks"
nmed=$(ls -d set/medium-* | wc -l)
[ "$nmed" -ge 2 ] && ok "a set of $nmed media" || not_ok "a set of $nmed media (want 2 or more)"
"$AGPACK" build s.json --key k.key --out flat --chunk-size 64K --volume-size 256K >b.out 2>&1 &&
	"$AGPACK" stream flat > s.bin 2>b.out || { echo "Bail out! cannot stream: $(tail -2 b.out)"; exit 1; }
grep -q '"bytegroup2"' flat/manifest.json && ok "the streamed bundle has byte-grouped chunks" || not_ok "the streamed bundle has byte-grouped chunks"

# 1. The set directory.
"$AGCTL" --root R1 init --pubkey k.pub >/dev/null
check "set directory: staged" "$AGIMPORT" stage set --root R1
check "set directory: the staged bytes are the input" cmp m/model.safetensors R1/slots/blue/model/model.safetensors
# 2. One medium at a time, last medium first.
"$AGCTL" --root R2 init --pubkey k.pub >/dev/null
okall=1
for med in $(cd set && ls -d medium-* | sort -r); do
	"$AGIMPORT" stage "set/$med" --root R2 >m.out 2>&1 || { okall=0; sed 's/^/#   /' m.out; break; }
done
[ $okall = 1 ] && ok "one medium at a time: every medium taken" || not_ok "one medium at a time: every medium taken"
check "one medium at a time: the staged bytes are the input" cmp m/model.safetensors R2/slots/blue/model/model.safetensors
check "one medium at a time: config.json too" cmp m/config.json R2/slots/blue/model/config.json
# 3. The stream.
"$AGCTL" --root R3 init --pubkey k.pub >/dev/null
check "stream: staged" sh -c '"$AGIMPORT" stage --stream --root R3 < s.bin'
check "stream: the staged bytes are the input" cmp m/model.safetensors R3/slots/blue/model/model.safetensors
done_testing
