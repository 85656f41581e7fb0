#!/bin/bash
# Offline readiness at pack time (docs/SBOM.md): model directories that would
# run code (auto_map, *.py, trust_remote_code) are refused unless the artifact
# says "allow_remote_code": true (then recorded in the manifest and the SBOM);
# hub pointers are reported; a missing tokenizer file is an error; image env
# is reported and "offline_env": true sets the offline variables.
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
keygen k
# said DESC PATTERN / not_said DESC PATTERN: the previous command's output
# (saved first: check overwrites it; an empty output keeps the saved one)
# matches / does not match.
said() { [ -s "$WORK/.out" ] && cp "$WORK/.out" "$WORK/.said"; check "$1" grep -q -- "$2" "$WORK/.said"; }
not_said() { [ -s "$WORK/.out" ] && cp "$WORK/.out" "$WORK/.said"; check "$1" sh -c '! grep -q -- "$1" "$2"' _ "$2" "$WORK/.said"; }
MK=$TESTS_DIR/sbom/mkinputs.py
art() { # art SPEC NAME PATH [EXTRA-JSON]
	$PY -c 'import json,sys; a={"type":"files","name":sys.argv[2],"path":sys.argv[3]}; a.update(json.loads(sys.argv[4]))
json.dump({"name":"m","version":1,"artifacts":[a]},open(sys.argv[1],"w"))' "$1" "$2" "$3" "${4:-{\}}"
}

$PY "$MK" model clean
art clean.json model clean
check "a clean model is accepted" "$AGPACK" build clean.json --key k.key --out b0
not_said "without warnings" 'warning'

$PY "$MK" model py --py
art py.json model py
expect_exit 3 "a model directory with a .py file is refused" "$AGPACK" build py.json --key k.key --out b1
said "naming the file and the way out" "modeling_x.py.*\|allow_remote_code"
check "nothing written" test ! -e b1
$PY "$MK" model am --auto-map
art am.json model am
expect_exit 3 "auto_map in config.json is refused" "$AGPACK" build am.json --key k.key --out b2
said "saying auto_map" auto_map
$PY "$MK" model tr --trust
art tr.json model tr
expect_exit 3 "trust_remote_code: true in generation_config.json is refused" "$AGPACK" build tr.json --key k.key --out b3
said "saying trust_remote_code" trust_remote_code

art ok.json model py '{"allow_remote_code": true}'
check "allow_remote_code: true accepts it" "$AGPACK" build ok.json --key k.key --out b4
said "and says so" "remote code allowed"
check "recorded in the signed manifest" $PY -c '
import json; m = json.load(open("b4/manifest.json"))
a = [a for a in m["artifacts"] if a["name"] == "model"][0]
assert a["source"]["allow_remote_code"] is True, a'
check "extract it" "$AGIMPORT" extract b4 --pubkey k.pub --to out4
check "recorded in the SBOM" $PY -c '
import json; b = json.load(open("out4/sbom/sbom.cdx.json"))
m = [c for c in b["components"] if c["name"] == "model"][0]
p = {x["name"]: x["value"] for x in m["modelCard"]["properties"]}
assert p["agkit:offline:allow_remote_code"] == "true", p'
art bad.json model py '{"allow_remote_code": "yes"}'
expect_exit 2 "allow_remote_code must be a boolean" "$AGPACK" build bad.json --key k.key --out b5

$PY "$MK" model hub --hub
art hub.json model hub
check "hub pointers are accepted" "$AGPACK" build hub.json --key k.key --out b6
said "but reported (base_model URL)" 'hub pointer "base_model": "https://huggingface.co'
said "and the adapter's base repo id" 'hub pointer "base_model_name_or_path"'
not_said "_name_or_path is not reported" '"_name_or_path"'

$PY "$MK" model notok --no-tokenizer
art notok.json model notok
expect_exit 3 "tokenizer_config.json without a tokenizer file is an error" "$AGPACK" build notok.json --key k.key --out b7
said "saying so" "no tokenizer file"

# Images: env reported; offline_env sets the variables with a new digest.
$PY "$MK" image img exp.json
spec i.json m 1 oci-archive:runtime:img
check "an image without offline env builds" "$AGPACK" build i.json --key k.key --out b8
said "with a warning about HF_HUB_OFFLINE" "HF_HUB_OFFLINE is not 1"
said "and vLLM usage stats" "vLLM usage stats left on"
$PY -c 'import json; s=json.load(open("i.json")); s["artifacts"][0]["offline_env"]=True; json.dump(s,open("oe.json","w"))'
before=$(cat img/index.json img/blobs/sha256/* | sha256sum)
check "offline_env: true" "$AGPACK" build oe.json --key k.key --out b9
check "the input image is left as it was" test "$before" = "$(cat img/index.json img/blobs/sha256/* | sha256sum)"
check "no env warnings then" sh -c "! grep -q 'is not 1' '$WORK/.out'"
check "extract it" "$AGIMPORT" extract b9 --pubkey k.pub --to out9
check "the image config has the offline env, the index the original digest" $PY - out9/runtime exp.json <<'PYEOF'
import hashlib, json, sys
d = sys.argv[1]; e = json.load(open(sys.argv[2]))
idx = json.load(open(d + "/index.json"))
desc = idx["manifests"][0]
assert desc["annotations"]["dev.agkit.offline-env.original-digest"] == e["digest"], desc
assert desc["digest"] != e["digest"]
blob = lambda dg: open(d + "/blobs/sha256/" + dg[7:], "rb").read()
mb = blob(desc["digest"])
assert "sha256:" + hashlib.sha256(mb).hexdigest() == desc["digest"] and len(mb) == desc["size"]
man = json.loads(mb)
cb = blob(man["config"]["digest"])
assert "sha256:" + hashlib.sha256(cb).hexdigest() == man["config"]["digest"] and len(cb) == man["config"]["size"]
env = json.loads(cb)["config"]["Env"]
for v in ["HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "HF_HUB_DISABLE_TELEMETRY=1", "VLLM_NO_USAGE_STATS=1"]:
    assert v in env, env
assert "PATH=/usr/bin" in env, env
PYEOF
if command -v skopeo >/dev/null; then
	export XDG_RUNTIME_DIR=$WORK/run; mkdir -p run
	check "skopeo reads the rewritten image" skopeo --policy "$TESTS_DIR/bundle/skopeo-policy.json" inspect oci:out9/runtime:v1
fi
art oef.json model clean '{"offline_env": true}'
expect_exit 2 "offline_env on a files artifact is refused" "$AGPACK" build oef.json --key k.key --out b10
done_testing
