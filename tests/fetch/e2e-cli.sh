#!/bin/sh
# End to end through the real CLIs for the url and hf-model sources:
#   nginx (a pinned file and a hub-shaped tree) -> agpack build -> bundle ->
#   agimport extract, byte-identical, provenance in the signed manifest.json;
#   agpack build --dry-run on image + url + hf-model downloads no content;
#   a wrong url sha256 fails with exit 3 and leaves nothing beside --out;
#   an image from a plain-http registry without --insecure-registry is refused.
# Needs AGPACK and AGIMPORT (paths to the binaries).
. "$(dirname "$0")/lib.sh"
need nginx docker-registry skopeo cmp
[ -n "${AGPACK:-}" ] && [ -x "$AGPACK" ] || skip "AGPACK not set to the agpack binary"
[ -n "${AGIMPORT:-}" ] && [ -x "$AGIMPORT" ] || skip "AGIMPORT not set to the agimport binary"
unset HF_TOKEN HF_TOKEN_PATH AGKIT_REGISTRY_USER AGKIT_REGISTRY_PASSWORD

W=$WORK/www
commit=$(python3 "$TESTDIR/mkhub.py" "$W" org/tiny-model)
hubsrc=$W/org/tiny-model/resolve/$commit
mkdir -p "$W/files"
head -c 2500000 /dev/urandom >"$W/files/weights.bin"
sum=$(sha256sum <"$W/files/weights.bin" | cut -d' ' -f1)
P=$(free_port); E=http://127.0.0.1:$P
start_nginx "$P" "$W" 'location /api/ { default_type application/json; }'

# A registry with its access log on, so that blob requests can be counted.
python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --layers 2 >/dev/null
RP=$(free_port); H=127.0.0.1:$RP
registry_config reg "$RP" | sed 's/level: error/level: info/; s/disabled: true/disabled: false/' >"$WORK/reg.yml"
bg reg docker-registry serve "$WORK/reg.yml"
wait_port "$RP"
seed_image "$WORK/src" v1 "$H" demo/app

"$AGPACK" keygen --out "$WORK/K" --no-passphrase >"$WORK/keygen.log" 2>&1 || { cat "$WORK/keygen.log"; fail "agpack keygen"; }

# 1. url + hf-model -> bundle -> extract
cat >"$WORK/spec.json" <<JSON
{"name":"e2e-cli","channel":"stable","version":1,"artifacts":[
 {"type":"url","name":"weights","url":"$E/files/weights.bin","sha256":"$sum"},
 {"type":"hf-model","name":"tiny","repo":"org/tiny-model","endpoint":"$E"}]}
JSON
"$AGPACK" build "$WORK/spec.json" --key "$WORK/K.key" --out "$WORK/B" --cache "$WORK/C" \
	>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; fail "agpack build (url + hf-model)"; }
"$AGIMPORT" extract "$WORK/B" --pubkey "$WORK/K.pub" --to "$WORK/T" >"$WORK/extract.log" 2>&1 ||
	{ cat "$WORK/extract.log"; fail "agimport extract"; }
cmp "$W/files/weights.bin" "$WORK/T/weights/weights.bin" || fail "url artifact differs after the round trip"
[ "$(find "$WORK/T/weights" -type f | wc -l)" = 1 ] || fail "url artifact: expected exactly one file"
n=0
for f in $(cd "$hubsrc" && find . -type f | sort); do
	cmp "$hubsrc/$f" "$WORK/T/tiny/$f" || fail "hf-model file $f differs after the round trip"
	n=$((n + 1))
done
[ $n -eq 6 ] || fail "hub tree has $n files, expected 6"
[ "$(cd "$WORK/T/tiny" && find . -type f | wc -l)" = $n ] || fail "extracted model has extra files"
pass "url and hf-model ($n files) -> agpack build -> agimport extract: every file byte-identical"

# The SBOM of a bundle with fetched artifacts (docs/SBOM.md): the hub model
# with its repository at the commit, valid CycloneDX 1.6 when the validator is
# installed (tests/sbom/npm-install.sh).
/usr/bin/python3 - "$WORK/T/sbom/sbom.cdx.json" <<'PYEOF' || fail "SBOM of the fetched artifacts"
import json, sys
b = json.load(open(sys.argv[1]))
m = [c for c in b["components"] if c["name"] == "tiny"][0]
assert "org/tiny-model/tree/" in m["externalReferences"][0]["url"], m.get("externalReferences")
PYEOF
V=$(dirname "$0")/../sbom
if command -v node >/dev/null && [ -d "$V/node_modules/@cyclonedx/cyclonedx-library" ]; then
	node "$V/validate.mjs" "$WORK/T/sbom/sbom.cdx.json" >/dev/null || fail "SBOM not valid CycloneDX 1.6"
	pass "the SBOM lists the hub model at its commit and is valid CycloneDX 1.6"
else
	pass "the SBOM lists the hub model at its commit (schema check skipped: no CycloneDX library)"
fi

# agimport extract writes only the artifacts to TARGET; the provenance is in the
# bundle's signed manifest.json, which the extract above verified.
python3 - "$WORK/B/manifest.json" "$E" "$sum" "$commit" <<'PY' || fail "provenance in manifest.json"
import json, sys
mpath, endpoint, sha, commit = sys.argv[1:]
m = json.load(open(mpath))
arts = {a["name"]: a for a in m["artifacts"]}
u = arts["weights"]["source"]
assert u["type"] == "url", u
assert u["url"] == endpoint + "/files/weights.bin", u
assert u["sha256"] == sha and u["pinned"] is True and u["size"] == 2500000, u
h = arts["tiny"]["source"]
assert h["type"] == "hf-model" and h["repo"] == "org/tiny-model", h
assert h["commit"] == commit and h["revision"] == "main" and h["endpoint"] == endpoint, h
assert len(h["files"]) == 6 and all(len(f["sha256"]) == 64 for f in h["files"]), h["files"]
PY
pass "manifest records the url and sha256, and the hub commit $commit"

# 2. dry run on image + url + hf-model: sizes printed, no content fetched
cat >"$WORK/dry.json" <<JSON
{"name":"dry","channel":"stable","version":1,"artifacts":[
 {"type":"image","name":"runtime","ref":"$H/demo/app:v1"},
 {"type":"url","name":"weights","url":"$E/files/weights.bin","sha256":"$sum"},
 {"type":"hf-model","name":"tiny","repo":"org/tiny-model","endpoint":"$E"}]}
JSON
: >"$WORK/access.log"
blobgets() { grep -c '"GET /v2/[^ ]*/blobs/sha256:' "$WORK/reg.log" || true; }
regbefore=$(blobgets)
"$AGPACK" build "$WORK/dry.json" --dry-run --cache "$WORK/DC" --insecure-registry "$H" >"$WORK/dry.out" 2>"$WORK/dry.err" ||
	{ cat "$WORK/dry.err"; fail "agpack build --dry-run"; }
cat "$WORK/dry.out"
imgsize=$(python3 -c '
import json,os,sys
d=sys.argv[1]+"/blobs/sha256/"
idx=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]
m=json.load(open(d+idx["digest"][7:]))
print(idx["size"]+m["config"]["size"]+sum(l["size"] for l in m["layers"]))' "$WORK/src")
hubsize=$(find "$hubsrc" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
grep -E "^image +runtime +$imgsize bytes" "$WORK/dry.out" >/dev/null || fail "dry run: no 'image runtime $imgsize bytes' line"
grep -E "^url +weights +2500000 bytes" "$WORK/dry.out" >/dev/null || fail "dry run: no 'url weights 2500000 bytes' line"
grep -E "^hf-model +tiny +$hubsize bytes" "$WORK/dry.out" >/dev/null || fail "dry run: no 'hf-model tiny $hubsize bytes' line"
grep -E '/files/|/resolve/' "$WORK/access.log" | grep -v '^/files/weights.bin 200 0 ' && fail "dry run downloaded a file from nginx"
regafter=$(blobgets)
[ "$regbefore" = "$regafter" ] || { grep '"GET /v2/[^ ]*/blobs/' "$WORK/reg.log" | tail -n 5; fail "dry run asked the registry for a blob"; }
[ -z "$(find "$WORK/DC/tmp" -type f 2>/dev/null)" ] || fail "dry run left partial downloads"
mdig=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$WORK/src/index.json")
for b in "$WORK"/src/blobs/sha256/*; do
	hex=$(basename "$b")
	[ "$hex" != "$mdig" ] || continue   # a dry run keeps manifests in the cache

	[ ! -e "$WORK/DC/blobs/sha256/$hex" ] || fail "dry run cached blob $hex"
done
[ ! -e "$WORK/DC/blobs/sha256/$sum" ] || fail "dry run cached the url file"
# positive control: the same log does show blob GETs for a real build
"$AGPACK" build "$WORK/dry.json" --key "$WORK/K.key" --out "$WORK/B2" --cache "$WORK/DC" --insecure-registry "$H" \
	>"$WORK/build2.log" 2>&1 || { cat "$WORK/build2.log"; fail "agpack build of the dry-run spec"; }
[ "$(blobgets)" -gt "$regafter" ] || fail "registry log shows no blob GETs even for a real build"
grep -q '^/files/weights.bin 200 2500000 ' "$WORK/access.log" || fail "nginx log shows no file GET for a real build"
pass "dry run prints image ($imgsize), url (2500000), hf-model ($hubsize) sizes; no blob or file fetched"

# 3. wrong url sha256: exit 3, nothing left next to --out
bad=$(echo "$sum" | tr '0-9a-f' '1-9a-f0')
sed "s/$sum/$bad/" "$WORK/spec.json" >"$WORK/bad.json"
mkdir "$WORK/outs"
set +e
"$AGPACK" build "$WORK/bad.json" --key "$WORK/K.key" --out "$WORK/outs/bad" --cache "$WORK/C3" >"$WORK/bad.log" 2>&1
rc=$?
set -e
[ $rc -eq 3 ] || { cat "$WORK/bad.log"; fail "wrong sha256: exit $rc, expected 3"; }
grep -q "sha256 mismatch" "$WORK/bad.log" || { cat "$WORK/bad.log"; fail "wrong sha256: no 'sha256 mismatch' message"; }
[ -z "$(ls -A "$WORK/outs")" ] || fail "wrong sha256 left: $(ls -A "$WORK/outs")"
pass "wrong url sha256: exit 3 ($(tail -n 1 "$WORK/bad.log")), no output, no .agtmp-/.stage siblings"

# 4. plain-http registry without --insecure-registry: refused, clearly
set +e
"$AGPACK" build "$WORK/dry.json" --key "$WORK/K.key" --out "$WORK/outs/insec" --cache "$WORK/C4" >"$WORK/insec.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || fail "image from a plain-http registry packed without --insecure-registry"
grep -q "$H" "$WORK/insec.log" && grep -q "runtime" "$WORK/insec.log" && grep -q -- "--insecure-registry $H" "$WORK/insec.log" ||
	{ cat "$WORK/insec.log"; fail "refusal does not name the registry, the artifact and --insecure-registry"; }
[ -z "$(ls -A "$WORK/outs")" ] || fail "refused build left: $(ls -A "$WORK/outs")"
pass "no --insecure-registry: exit $rc: $(tail -n 1 "$WORK/insec.log")"
