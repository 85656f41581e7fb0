#!/usr/bin/env bash
# agimport inspect: a bundle's contents without importing it, UNVERIFIED
# unless a key or a root is given; --json; --sbom; one medium of a set.
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/deploy/lib-deploy.sh"
cd "$WORK" || exit 1
keygen k; keygen other
mkdir -p src/sub
printf 'weights\n' > src/w.bin
printf 'tok' > src/sub/tok.json
ln -s w.bin src/link
$PY - <<'PYEOF'
import json
json.dump({"name": "insp", "channel": "stable", "version": 7, "artifacts": [
    {"type": "files", "name": "model", "path": "src"}]}, open("s.json", "w"))
json.dump({"name": "plain", "channel": "stable", "version": 1, "artifacts": [
    {"type": "files", "name": "model", "path": "src"}]}, open("p.json", "w"))
PYEOF
"$AGPACK" build s.json --key k.key --out b >/dev/null 2>&1 || { echo "Bail out! build failed"; exit 1; }
"$AGPACK" build p.json --key k.key --out p --no-sbom >/dev/null 2>&1 || { echo "Bail out! build failed"; exit 1; }
# agpack's own SBOM (the artifact sbom), as extraction yields it
"$AGIMPORT" extract b --pubkey k.pub --to bx >/dev/null 2>&1 || { echo "Bail out! extract failed"; exit 1; }

check "inspect without a key exits 0" "$AGIMPORT" inspect b
last_output > h.out
if grep -q "UNVERIFIED bundle insp channel stable version 7" h.out && grep -q "^signers: [0-9A-F]\{16\} (UNVERIFIED)" h.out; then
	ok "human output says UNVERIFIED on the bundle line and for each signer"
else not_ok "UNVERIFIED marks"; sed 's/^/#   /' h.out; fi
if grep -q "w.bin  8  sha256:$(sha256sum src/w.bin | cut -c1-64)" h.out && grep -q "model (files): 2 file(s), 11 byte(s)" h.out; then
	ok "files, sizes and digests listed"
else not_ok "files listed"; sed 's/^/#   /' h.out; fi

"$AGIMPORT" inspect b --json > u.json 2>u.err
$PY - "$(sha256sum src/w.bin | cut -c1-64)" "$(sha256sum b/vol-00001.agv | cut -c1-64)" <<'PYEOF' > py.out 2>&1
import json, sys
o = json.load(open("u.json"))
assert o["verified"] is False and o["trust"] == "none", o
assert o["bundle"] == "insp" and o["channel"] == "stable" and o["version"] == 7, o
assert o["created"].endswith("Z")
assert [a["name"] for a in o["artifacts"]] == ["model", "sbom"]
m = o["artifacts"][0]
assert m["type"] == "files" and m["files"] == 2 and m["size"] == 11, m
ents = {e["path"]: e for e in m["entries"]}
assert ents["w.bin"]["sha256"] == sys.argv[1] and ents["w.bin"]["size"] == 8
assert ents["sub"]["type"] == "dir" and ents["link"]["type"] == "symlink" and ents["link"]["target"] == "w.bin"
assert len(o["signers"]) == 1 and o["signers"][0]["verified"] is False
v = o["volumes"]
assert len(v) == 1 and v[0]["name"] == "vol-00001.agv" and v[0]["sha256"] == sys.argv[2] and v[0]["present"] is True
assert o["parity"] is None and o["media"] is None
print("ok")
PYEOF
if grep -qx ok py.out; then ok "inspect --json: one object with artifacts, entries, digests, volumes, unverified"; else not_ok "inspect --json"; sed 's/^/#   /' py.out u.err; fi

"$AGIMPORT" inspect b --json --pubkey k.pub > v.json 2>/dev/null
if $PY -c 'import json; o=json.load(open("v.json")); assert o["verified"] is True and o["trust"] == "pubkey" and o["signers"][0]["verified"] is True and o["signed_at"] > 0'; then
	ok "inspect --pubkey: verified, the signer checked"
else not_ok "inspect --pubkey verified"; fi
check "inspect --pubkey (human) says verified" "$AGIMPORT" inspect b --pubkey k.pub
if last_output | grep -q "UNVERIFIED"; then not_ok "no UNVERIFIED with a key"; else ok "no UNVERIFIED with a key"; fi
expect_exit 3 "inspect with a key that did not sign: verification failed" "$AGIMPORT" inspect b --pubkey other.pub
# A tampered manifest: parsed happily without a key, refused with one.
cp -a b t
sed -i 's/"version": 7/"version": 8/' t/manifest.json
check "tampered manifest without a key: shown (UNVERIFIED)" "$AGIMPORT" inspect t
expect_exit 3 "tampered manifest with the key: refused before any field is shown" "$AGIMPORT" inspect t --pubkey k.pub
if last_output | grep -q "version 8"; then not_ok "no field of the tampered manifest printed"; else ok "no field of the tampered manifest printed"; fi

"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
"$AGIMPORT" inspect b --root "$R" --json > r.json 2>/dev/null
if $PY -c 'import json; o=json.load(open("r.json")); assert o["verified"] is True and o["trust"] == "root"'; then ok "inspect --root: verified under the root's trust policy"; else not_ok "inspect --root"; fi
expect_exit 2 "--pubkey and --root together: usage" "$AGIMPORT" inspect b --root "$R" --pubkey k.pub

"$AGIMPORT" inspect b --sbom --pubkey k.pub > sbom.out 2>sbom.err
if cmp -s sbom.out bx/sbom/sbom.cdx.json; then ok "--sbom prints sbom/sbom.cdx.json byte for byte"; else not_ok "--sbom output"; sed 's/^/#   /' sbom.out sbom.err; fi
expect_exit 4 "--sbom on a bundle without an SBOM: exit 4" "$AGIMPORT" inspect p --sbom --pubkey k.pub
if last_output | grep -q "no SBOM"; then ok "... saying there is no SBOM"; else not_ok "no SBOM message"; last_output | sed 's/^/#   /'; fi
expect_exit 2 "--sbom without a key or root: usage (the SBOM is read from verified volumes)" "$AGIMPORT" inspect b --sbom
# A damaged SBOM chunk (the volume's last: artifacts are packed in order) is refused, not printed.
cp -a b d
size=$(stat -c %s d/vol-00001.agv)
printf 'X' | dd of=d/vol-00001.agv bs=1 seek=$((size - 3)) conv=notrunc 2>/dev/null
expect_exit 3 "--sbom with the SBOM's chunk damaged: verification failed" "$AGIMPORT" inspect d --sbom --pubkey k.pub

expect_exit 2 "inspect with no directory: usage" "$AGIMPORT" inspect
expect_exit 4 "inspect of a directory with no manifest: exit 4" "$AGIMPORT" inspect src

# One medium of a media set, with parity.
head -c 300000 /dev/urandom > src/big.bin
"$AGPACK" build p.json --key k.key --out set --volume-size 64K --chunk-size 16K --parity 1 --media 400K >/dev/null 2>&1 ||
	{ echo "Bail out! media build failed"; exit 1; }
"$AGIMPORT" inspect set/medium-02 --json --pubkey k.pub > med.json 2>med.err
[ -f set/medium-02/LABEL.txt ] || echo "Bail out! no medium-02"
$PY - <<'PYEOF' > py.out 2>&1
import json, os
o = json.load(open("med.json"))
assert o["verified"] is True
md = o["media"]
assert md["count"] >= 2 and md["this_medium"] == 2, md
# Parity volumes go on media of their own: medium 2 holds them, not the data.
p = o["parity"]
assert p and p["groups"][0]["parity"] == 1 and len(p["volumes"]) >= 1, p
here = [v for v in p["volumes"] if v["medium"] == 2]
assert here and all(v["present"] for v in here), p
assert all(v["present"] == (v["medium"] == 2) for v in o["volumes"] + p["volumes"])
print("ok")
PYEOF
if grep -qx ok py.out; then ok "inspect of one medium: media count, this medium, its volumes present, parity"; else not_ok "medium inspect"; sed 's/^/#   /' py.out med.err; fi
"$AGIMPORT" inspect set --json > setall.json 2>/dev/null
if $PY -c 'import json; o=json.load(open("setall.json")); assert o["media"]["this_medium"] is None and all(v["present"] for v in o["volumes"] + o["parity"]["volumes"])'; then
	ok "inspect of the whole set: every volume present on its medium-NN/"
else not_ok "inspect of the whole set"; fi
check "inspect of one medium without a key" "$AGIMPORT" inspect set/medium-01
if last_output | grep -q "this is medium 1" && last_output | grep -q "^parity: "; then ok "... names the medium and the parity"; else not_ok "medium human output"; last_output | sed 's/^/#   /'; fi
done_testing
