#!/bin/bash
# Every tampering case is refused by verify and extract, with TARGET absent.
. "$(dirname "$0")/../lib.sh"
need minisign
cd "$WORK"
keygen k
keygen other
$PY "$TESTS_DIR/bundle/mktree.py" tree 7
head -c 600000 /dev/urandom > tree/random.bin
spec spec.json tamper 5 files:payload:tree
"$AGPACK" build spec.json --key k.key --out good --chunk-size 64K --volume-size 200K >/dev/null 2>&1 || { echo "Bail out! cannot build"; exit 1; }
nvol=$(ls good/vol-*.agv | wc -l)
diag "good bundle has $nvol volumes"
sig=$(ls good/signatures/*.minisig)
sig=${sig#good/}

# refused NAME SETUP-COMMANDS [PATTERN]: copy the good bundle, tamper, expect exit 3 from
# verify and extract, the target absent, no temporary directory left, the error naming PATTERN.
refused() {
	local name=$1 setup=$2 pat=${3:-}
	rm -rf t t.* out out.*
	cp -a good t
	(cd t && eval "$setup")
	expect_exit 3 "$name: verify refuses" "$AGIMPORT" verify t --pubkey k.pub
	if [ -n "$pat" ] && ! last_output | grep -q -- "$pat"; then not_ok "$name: message names '$pat'"; last_output | sed 's/^/#   /'; else [ -n "$pat" ] && ok "$name: message names '$pat'"; fi
	expect_exit 3 "$name: extract refuses" "$AGIMPORT" extract t --pubkey k.pub --to out
	if [ ! -e out ] && ! ls -d out.agtmp-* >/dev/null 2>&1; then ok "$name: target absent, nothing left behind"; else not_ok "$name: target or temp left"; fi
}
flip() { # flip FILE OFFSET
	$PY - "$1" "$2" <<'PY'
import sys
f, off = sys.argv[1], int(sys.argv[2])
with open(f, "r+b") as h:
    h.seek(off); b = h.read(1); h.seek(off); h.write(bytes([b[0] ^ 0x01]))
PY
}
flip_b64() { # flip_b64 FILE LINE: flips one bit inside a base64 line, keeping it valid base64
	$PY - "$1" "$2" <<'PY'
import base64, sys
f, n = sys.argv[1], int(sys.argv[2]) - 1
lines = open(f).read().split("\n")
raw = bytearray(base64.b64decode(lines[n])); raw[len(raw) // 2] ^= 0x10
lines[n] = base64.b64encode(bytes(raw)).decode()
open(f, "w").write("\n".join(lines))
PY
}
export -f flip flip_b64; export PY

check "the good bundle verifies" "$AGIMPORT" verify good --pubkey k.pub
refused "volume 1 byte flipped" 'flip vol-00001.agv 100' "vol-00001.agv: chunk 0 (artifact 'payload', file"
last=$(printf 'vol-%05d.agv' "$nvol")
refused "last volume byte flipped" "flip $last \$((\$(stat -c %s $last) - 1))" "$last"
refused "middle volume byte flipped" 'flip vol-00002.agv 5000' "vol-00002.agv: chunk"
refused "volume truncated" 'truncate -s -1 vol-00002.agv' "truncated"
refused "volume extended" 'echo x >> vol-00002.agv' "extended"
refused "volume missing" 'rm vol-00002.agv' "vol-00002.agv: missing"
refused "volumes swapped" 'mv vol-00001.agv x && mv vol-00002.agv vol-00001.agv && mv x vol-00002.agv' "vol-0000"
refused "extra volume" "cp vol-00001.agv $(printf 'vol-%05d.agv' $((nvol + 1)))" "unexpected file"
refused "stray file in bundle" 'echo hi > README' "unexpected file"
refused "manifest byte flipped" 'flip manifest.json 200' "does not verify"
refused "manifest truncated" 'truncate -s -2 manifest.json' "does not verify"
refused "manifest extended" 'echo " " >> manifest.json' "does not verify"
refused "manifest missing" 'rm manifest.json' "manifest.json: missing"
refused "signature missing" "rm $sig" "no valid signature"
refused "signature line 2 (signature) flipped" "flip_b64 $sig 2" "does not verify"
refused "trusted comment edited" "sed -i '3s/version:5/version:6/' $sig" "does not verify"
refused "global signature flipped" "flip_b64 $sig 4" "does not verify"
refused "key id in the signature changed" "flip_b64 $sig 2" "does not verify"
refused "signature file garbage" "head -c 300 /dev/urandom > $sig" "signatures/"
refused "signature file huge" "head -c 100000 /dev/zero > $sig" "signatures/"

# The untrusted comment is not signed: editing it changes nothing.
rm -rf t && cp -a good t && sed -i '1s/.*/untrusted comment: edited/' "t/$sig"
check "untrusted comment is not covered (still verifies)" "$AGIMPORT" verify t --pubkey k.pub

# Keys.
expect_exit 3 "a bundle signed by an untrusted key is refused" "$AGIMPORT" verify good --pubkey other.pub
last_output | grep -q "no valid signature by a trusted key" && ok "message says no trusted signature" || not_ok "message says no trusted signature"
expect_exit 3 "extract with an untrusted key is refused" "$AGIMPORT" extract good --pubkey other.pub --to out
check "target absent" test ! -e out

# Content swapped with another validly signed bundle's volume (same key).
head -c 600000 /dev/urandom > tree/random.bin
"$AGPACK" build spec.json --key k.key --out good2 --chunk-size 64K --volume-size 200K >/dev/null 2>&1
swap=""
for v in good/vol-*.agv; do v=${v#good/}; if [ -e "good2/$v" ] && ! cmp -s "good/$v" "good2/$v"; then swap=$v; break; fi; done
diag "volume that differs between the two bundles: $swap"
refused "volume taken from another signed bundle" "cp ../good2/$swap $swap" "$swap"
refused "signature taken from another bundle" "cp ../good2/$sig $sig" "does not verify"

# Signed but hostile manifests (a trusted key signed something unsafe or unknown).
resign() { # resign DIR: signs DIR/manifest.json with k.key via stock minisign
	local sha; sha=$(sha256sum "$1/manifest.json" | cut -c1-64)
	rm -f "$1"/signatures/*
	minisign -S -s "$WORK/k.key" -m "$1/manifest.json" -x "$1/signatures/x.minisig" -t "timestamp:1	bundle:tamper	channel:stable	version:5	sha256:$sha" </dev/null >/dev/null
}
export -f resign; export WORK
edit_manifest() { # edit_manifest PYTHON-EXPR-ON-m
	$PY - "$1" <<'PY'
import json, sys
m = json.load(open("manifest.json"))
exec(sys.argv[1])
json.dump(m, open("manifest.json", "w"), indent=1)
PY
	resign .
}
export -f edit_manifest
refused "future format version" "edit_manifest 'm[\"format_version\"] = \"3.0\"'" "unsupported bundle format version 3.0"
refused "path traversal ../ in an entry" "edit_manifest 'm[\"artifacts\"][0][\"entries\"][0][\"path\"] = \"../evil\"'" "unsafe or invalid path"
refused "absolute path in an entry" "edit_manifest 'm[\"artifacts\"][0][\"entries\"][0][\"path\"] = \"/tmp/evil\"'" "unsafe or invalid path"
refused "symlink escaping the artifact" "edit_manifest 'm[\"artifacts\"][0][\"entries\"].insert(0, {\"path\": \"!zzz\", \"type\": \"symlink\", \"target\": \"../../etc/passwd\"})'" "points outside"
refused "absolute symlink" "edit_manifest 'm[\"artifacts\"][0][\"entries\"].insert(0, {\"path\": \"!zzz\", \"type\": \"symlink\", \"target\": \"/etc/passwd\"})'" "points outside"
refused "device node" "edit_manifest 'm[\"artifacts\"][0][\"entries\"].insert(0, {\"path\": \"!zzz\", \"type\": \"chardev\", \"mode\": 438})'" "unsupported type"
refused "setuid bit" "edit_manifest 'next(e for e in m[\"artifacts\"][0][\"entries\"] if e[\"type\"] == \"file\")[\"mode\"] = 0o4755'" "setuid"
refused "content larger than declared (bomb)" "edit_manifest 'm[\"chunks\"][0][\"usize\"] -= 1; m[\"artifacts\"][0][\"size\"] -= 1; f = next(e for e in m[\"artifacts\"][0][\"entries\"] if e[\"type\"] == \"file\" and e[\"size\"] > 0); f[\"size\"] -= 1; [e.__setitem__(\"offset\", e[\"offset\"] - 1) for e in m[\"artifacts\"][0][\"entries\"] if e[\"type\"] == \"file\" and e[\"offset\"] > f[\"offset\"]]'" "chunk 0"
refused "duplicate entries" "edit_manifest 'm[\"artifacts\"][0][\"entries\"].insert(1, m[\"artifacts\"][0][\"entries\"][0])'" "duplicated or out of order"
refused "absurd chunk size" "edit_manifest 'm[\"chunk_size\"] = 1 << 40'" "bad version, chunk_size"
refused "chunk moved to another volume" "edit_manifest 'm[\"chunks\"][1][\"volume\"] = 1'" "out of place"
refused "volume renamed in manifest" "edit_manifest 'm[\"volumes\"][0][\"name\"] = \"../../x\"'" "must be named vol-00001.agv"
refused "duplicate JSON keys" "sed -i '0,/\"name\": \"tamper\"/s//\"name\": \"tamper\", \"name\": \"evil\"/' manifest.json && resign ." "not valid JSON"
refused "deep nesting" "$PY -c 'print(\"[\" * 100000 + \"]\" * 100000)' > manifest.json && resign ." "not valid JSON"
check "nothing escaped to the parent directory" sh -c '! test -e evil && ! test -e ../evil'
done_testing
