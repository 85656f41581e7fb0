#!/bin/bash
# Media sets: agpack build --media lays the bundle out as medium-NN
# directories; each medium verifies alone, the set verifies and extracts
# (rebuilding a lost medium with parity), and a medium of another bundle is
# refused.
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
export AGKIT_REPAIR_DIR="$WORK/repair"
mkdir -p repair tree
head -c 560000 /dev/urandom > tree/random.bin
seq 1 2000 > tree/numbers.txt
keygen k
keygen k2
spec spec.json mediatest 7 files:payload:tree
"$AGPACK" build spec.json --key k.key --out set --volume-size 64K --chunk-size 16K --parity 1 --media 400K >build.out 2>&1 ||
	{ echo "Bail out! cannot build: $(cat build.out)"; exit 1; }
nmed=$(ls -d set/medium-* | wc -l)
diag "$(grep media build.out)"
[ "$nmed" -ge 3 ] && ok "the set has $nmed media" || not_ok "the set has several media (got $nmed)"
[ "$(ls set)" = "$(ls set | grep '^medium-[0-9][0-9]$')" ] && ok "the set directory holds only medium-NN" || not_ok "the set directory holds only medium-NN"
grep -q '"media"' set/medium-01/manifest.json && ok "the manifest records the media assignment" || not_ok "the manifest records the media assignment"
$PY - set/medium-01/manifest.json "$nmed" <<'PY' && ok "every volume is on the medium the manifest says" || not_ok "every volume is on the medium the manifest says"
import json, os, sys
m = json.load(open(sys.argv[1])); md = m["media"]
assert md["count"] == int(sys.argv[2])
for v, mi in zip(m["volumes"], md["volumes"]):
    assert os.path.exists("set/medium-%02d/%s" % (mi, v["name"])), v["name"]
for v, mi in zip(m["parity"]["volumes"], md["parity_volumes"]):
    assert os.path.exists("set/medium-%02d/%s" % (mi, v["name"])), v["name"]
PY

all_alone=1 all_sums=1
for d in set/medium-*; do
	n=${d#set/medium-}; n=$((10#$n))
	"$AGIMPORT" verify "$d" --pubkey k.pub >v.out 2>&1 && grep -q "OK: medium $n of $nmed of bundle mediatest channel stable version 7" v.out || { all_alone=0; sed 's/^/#   /' v.out; }
	grep -q "^medium $n of $nmed$" "$d/LABEL.txt" || all_alone=0
	(cd "$d" && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 || all_sums=0
done
[ $all_alone = 1 ] && ok "each medium verifies alone and says which set it belongs to" || not_ok "each medium verifies alone"
[ $all_sums = 1 ] && ok "each medium's SHA256SUMS checks with sha256sum -c" || not_ok "each medium's SHA256SUMS checks"
check "the whole set verifies" "$AGIMPORT" verify set --pubkey k.pub
check "the whole set extracts" "$AGIMPORT" extract set --pubkey k.pub --to out
check "the extracted tree is the input" same_tree tree out/payload
expect_exit 3 "extracting from a single medium is refused" "$AGIMPORT" extract set/medium-01 --pubkey k.pub --to out1
last_output | grep -q "holds only part of the bundle" && ok "message says why" || not_ok "message says why"

flip() { $PY -c 'import sys; f,o=sys.argv[1],int(sys.argv[2]); h=open(f,"r+b"); h.seek(o); b=h.read(1); h.seek(o); h.write(bytes([b[0]^1]))' "$1" "$2"; }
rm -rf t && cp -a set t && flip t/medium-02/$(cd t/medium-02 && ls vol-*.agv | head -1) 500
expect_exit 3 "a medium with a corrupted volume fails its own check" "$AGIMPORT" verify t/medium-02 --pubkey k.pub
check "... while the set rebuilds it from parity" "$AGIMPORT" verify t --pubkey k.pub

rm -rf t out && cp -a set t && rm -rf t/medium-02
check "a lost medium: the set extracts" "$AGIMPORT" extract t --pubkey k.pub --to out
check "a lost medium: the tree is intact" same_tree tree out/payload
rm -rf t && cp -a set t && rm -rf t/medium-01 t/medium-03
expect_exit 3 "two lost media with --parity 1: refused" "$AGIMPORT" verify t --pubkey k.pub
last_output | grep -q "missing or damaged" && ok "message names the missing volumes" || not_ok "message names the missing volumes"

# A medium of another bundle (same key, other content) is refused in a set.
echo other > tree/other.txt
"$AGPACK" build spec.json --key k.key --out set2 --volume-size 64K --chunk-size 16K --parity 1 --media 400K >/dev/null 2>&1
rm tree/other.txt
rm -rf t && cp -a set t && rm -rf t/medium-02 && cp -a set2/medium-02 t/
expect_exit 3 "a medium of another bundle in the set is refused" "$AGIMPORT" verify t --pubkey k.pub
last_output | grep -q "medium-02: manifest.json is not the signed manifest of this set" && ok "message names the foreign medium" ||
	{ not_ok "message names the foreign medium"; last_output | sed 's/^/#   /'; }
expect_exit 3 "... and extract refuses it too" "$AGIMPORT" extract t --pubkey k.pub --to out2
check "target absent" test ! -e out2
# A foreign medium alone is a valid medium of its own bundle, and says so.
"$AGIMPORT" verify set2/medium-02 --pubkey k.pub >v.out 2>&1
grep -q "medium 2 of" v.out && ok "a medium alone names the bundle it belongs to" || not_ok "a medium alone names its bundle"

rm -rf t && cp -a set t && cp set/medium-01/vol-00001.agv t/medium-02/
expect_exit 3 "a volume on the wrong medium is refused" "$AGIMPORT" verify t/medium-02 --pubkey k.pub
last_output | grep -q "vol-00001.agv: belongs on medium 1, not here" && ok "message says where it belongs" || not_ok "message says where it belongs"
rm -rf t && cp -a set t && sed -i 's/^medium 1 of/medium 2 of/' t/medium-01/LABEL.txt
expect_exit 3 "a medium with another medium's label is refused" "$AGIMPORT" verify t/medium-01 --pubkey k.pub
expect_exit 3 "a medium verified with an untrusted key is refused" "$AGIMPORT" verify set/medium-01 --pubkey k2.pub

# A set with a lost medium staged into a deployment root.
if [ -n "${AGCTL:-}" ]; then
	"$AGCTL" --root R init --pubkey k.pub >/dev/null
	rm -rf t && cp -a set t && rm -rf t/medium-01
	check "a set with a lost medium stages" "$AGIMPORT" stage t --root R
	last_output | grep -q "medium-01/vol-00001.agv: missing; rebuilt from parity" && ok "stage reports the rebuilt volumes" || { not_ok "stage reports the rebuilt volumes"; last_output | sed 's/^/#   /'; }
	check "the staged tree is the input" same_tree tree R/slots/blue/payload
fi

check "agpack sign signs every medium" "$AGPACK" sign set --key k2.key
check "every medium now has two signatures" sh -c 'for d in set/medium-*; do [ $(ls $d/signatures | wc -l) = 2 ] || exit 1; done'
check "the set verifies with threshold 2" "$AGIMPORT" verify set --pubkey k.pub --pubkey k2.pub --threshold 2
done_testing
