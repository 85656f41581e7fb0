#!/bin/bash
# The CycloneDX SBOM of every bundle (docs/SBOM.md): written by agpack build
# into the artifact "sbom", covered by the signature, valid against the
# official CycloneDX 1.6 JSON schema (tests/sbom/validate.mjs, skipped without
# node or the pinned npm packages), listing what the inputs really hold.
. "$(dirname "$0")/../lib.sh"
need node
VALIDATE=$TESTS_DIR/sbom/validate.mjs
[ -d "$TESTS_DIR/sbom/node_modules/@cyclonedx/cyclonedx-library" ] ||
	skip_all "CycloneDX library not installed (tests/sbom/npm-install.sh)"
cd "$WORK"
keygen k
# said DESC PATTERN / not_said DESC PATTERN: the previous command's output
# (saved first: check overwrites it; an empty output keeps the saved one)
# matches / does not match.
said() { [ -s "$WORK/.out" ] && cp "$WORK/.out" "$WORK/.said"; check "$1" grep -q -- "$2" "$WORK/.said"; }
not_said() { [ -s "$WORK/.out" ] && cp "$WORK/.out" "$WORK/.said"; check "$1" sh -c '! grep -q -- "$1" "$2"' _ "$2" "$WORK/.said"; }
MK=$TESTS_DIR/sbom/mkinputs.py
$PY "$MK" image img expected.json
$PY "$MK" model model
mkdir pkgs
echo deb > pkgs/curl_7.88.1-10+deb12u5_amd64.deb
echo whl > pkgs/Jinja2-3.1.2-py3-none-any.whl
cat > suite.json <<'JEOF'
{"agkit_health_suite": 1, "tolerances": {"logit_margin": 1.0, "kl_max": 0.01, "top_k": 8},
 "prompts": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
JEOF
cat > s.json <<'JEOF'
{"name": "demo", "channel": "edge", "version": 7, "artifacts": [
 {"type": "files", "name": "model", "path": "model", "health": "suite.json"},
 {"type": "files", "name": "pkgs", "path": "pkgs"},
 {"type": "oci-archive", "name": "runtime", "path": "img"}]}
JEOF

check "build a bundle with a model, files and an image" "$AGPACK" build s.json --key k.key --out b1
check "extract it" "$AGIMPORT" extract b1 --pubkey k.pub --to out1
SB=out1/sbom/sbom.cdx.json
check "the artifact sbom holds sbom.cdx.json" test -f $SB
check "the signed manifest lists it with the file's hash" $PY -c '
import hashlib, json, sys
m = json.load(open("b1/manifest.json"))
a = [a for a in m["artifacts"] if a["name"] == "sbom"][0]
e = [e for e in a["entries"] if e["type"] == "file"]
assert [x["path"] for x in e] == ["sbom.cdx.json"], e
assert e[0]["sha256"] == hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()' $SB
check "valid against the CycloneDX 1.6 schema" node "$VALIDATE" $SB

# The validator does fail on invalid SBOMs.
$PY -c 'import json,sys; b=json.load(open(sys.argv[1])); b["components"][0]["type"]="model"; json.dump(b,open("bad1.json","w"))' $SB
$PY -c 'import json,sys; b=json.load(open(sys.argv[1])); b["serialNumber"]="urn:uuid:nope"; json.dump(b,open("bad2.json","w"))' $SB
expect_exit 1 "the validator refuses a bad component type" node "$VALIDATE" bad1.json
expect_exit 1 "the validator refuses a bad serial number" node "$VALIDATE" bad2.json

check "metadata: the bundle (name, channel, version) and agpack as the tool" $PY -c '
import json, sys
b = json.load(open(sys.argv[1]))
assert b["bomFormat"] == "CycloneDX" and b["specVersion"] == "1.6"
md = b["metadata"]; c = md["component"]
assert c["name"] == "demo" and c["version"] == "7", c
p = {x["name"]: x["value"] for x in c["properties"]}
assert p["agkit:bundle:channel"] == "edge", p
t = md["tools"]["components"][0]
assert t["name"] == "agpack" and t["version"], t
assert "timestamp" not in md, "no wall-clock timestamp without SOURCE_DATE_EPOCH"' $SB

check "the model: a machine-learning-model with its model card and file hashes" $PY - $SB model suite.json <<'PYEOF'
import hashlib, json, os, struct, sys
b = json.load(open(sys.argv[1])); d = sys.argv[2]
m = [c for c in b["components"] if c["name"] == "model"][0]
assert m["type"] == "machine-learning-model", m["type"]
mc = m["modelCard"]; mp = mc["modelParameters"]
cfg = json.load(open(d + "/config.json"))
assert mp["modelArchitecture"] == cfg["architectures"][0] and mp["architectureFamily"] == cfg["model_type"], mp
p = {x["name"]: x["value"] for x in mc["properties"]}
# parameters and dtypes, from the safetensors header read here
raw = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); h.pop("__metadata__", None)
params = 0
for t in h.values():
    c = 1
    for s in t["shape"]: c *= s
    params += c
assert p["agkit:model:parameters"] == str(params), (p, params)
assert set(p["agkit:model:tensor_dtypes"].split(",")) == {t["dtype"] for t in h.values()}, p
assert p["agkit:model:context_length"] == str(cfg["max_position_embeddings"]), p
assert p["agkit:model:torch_dtype"] == "bfloat16" and p["agkit:model:quantization"] == "none", p
assert "BPE" in p["agkit:model:tokenizer"], p
tpl = json.load(open(d + "/tokenizer_config.json"))["chat_template"]
assert p["agkit:model:chat_template_sha256"] == hashlib.sha256(tpl.encode()).hexdigest(), p
suite = json.load(open(sys.argv[3]))
assert p["agkit:health:prompts"] == str(len(suite["prompts"])), p
assert json.loads(p["agkit:health:tolerances"]) == suite["tolerances"], p
files = {c["name"]: c["hashes"][0]["content"] for c in m["components"]}
want = {f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest() for f in os.listdir(d)}
assert files == want, (files, want)
PYEOF

check "files artifacts: hashes, and purls for debs and wheels" $PY - $SB <<'PYEOF'
import hashlib, json, sys
b = json.load(open(sys.argv[1]))
c = [c for c in b["components"] if c["name"] == "pkgs"][0]
got = {x["name"]: (x.get("purl"), x["hashes"][0]["content"]) for x in c["components"]}
assert got["curl_7.88.1-10+deb12u5_amd64.deb"] == ("pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5?arch=amd64",
    hashlib.sha256(b"deb\n").hexdigest()), got
assert got["Jinja2-3.1.2-py3-none-any.whl"][0] == "pkg:pypi/jinja2@3.1.2", got
PYEOF

check "the image: the packages its layers hold (whiteouts honoured), none of the host's" $PY - $SB expected.json <<'PYEOF'
import json, sys
b = json.load(open(sys.argv[1])); e = json.load(open(sys.argv[2]))
r = [c for c in b["components"] if c["name"] == "runtime"][0]
img = r["components"][0]
assert img["type"] == "container" and img["version"] == e["digest"], img
assert img["hashes"][0]["content"] == e["digest"][7:]
props = {}
for x in img["properties"]:
    props.setdefault(x["name"], []).append(x["value"])
assert props["agkit:image:os-release:id"] == ["debian"], props
got = []
for p in img["components"]:
    db = [x["value"] for x in p["properties"] if x["name"] == "agkit:package:database"][0]
    kind = p["purl"].split(":")[1].split("/")[0]
    arch = None
    if "arch=" in p["purl"]:
        arch = p["purl"].split("arch=")[1].split("&")[0]
    got.append([kind, p["name"], p["version"], arch, db])
want = [list(x) for x in e["packages"]]
assert sorted(got) == sorted(want), ("got", sorted(got), "want", sorted(want))
names = {g[1] for g in got}
for gone in e["removed"]:
    assert gone not in names, gone
deb = [p for p in img["components"] if p["purl"].startswith("pkg:deb/")]
assert all(p["purl"].startswith("pkg:deb/debian/") and "distro=debian-12" in p["purl"] for p in deb), deb
PYEOF

check "image env findings recorded in the SBOM" $PY -c '
import json, sys
b = json.load(open(sys.argv[1]))
r = [c for c in b["components"] if c["name"] == "runtime"][0]
f = [x["value"] for x in r["properties"] if x["name"] == "agkit:offline:finding"]
assert any("HF_HUB_OFFLINE" in x for x in f) and any("vLLM usage stats" in x for x in f), f' $SB

# Reproducible: a rebuild gives the same SBOM bytes; SOURCE_DATE_EPOCH sets the timestamp.
check "rebuild" "$AGPACK" build s.json --key k.key --out b2
check "extract the rebuild" "$AGIMPORT" extract b2 --pubkey k.pub --to out2
check "identical SBOM, serial number included" cmp $SB out2/sbom/sbom.cdx.json
check "build with SOURCE_DATE_EPOCH" env SOURCE_DATE_EPOCH=1700000000 "$AGPACK" build s.json --key k.key --out b3
check "extract it" "$AGIMPORT" extract b3 --pubkey k.pub --to out3
check "timestamp from SOURCE_DATE_EPOCH, new serial number" $PY -c '
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert b["metadata"]["timestamp"] == "2023-11-14T22:13:20Z", b["metadata"]
assert a["serialNumber"] != b["serialNumber"]' $SB out3/sbom/sbom.cdx.json
check "that SBOM is valid too" node "$VALIDATE" out3/sbom/sbom.cdx.json

check "build --no-sbom" "$AGPACK" build s.json --key k.key --out b4 --no-sbom
check "no sbom artifact then" $PY -c '
import json; m = json.load(open("b4/manifest.json"))
assert "sbom" not in [a["name"] for a in m["artifacts"]]'
$PY -c 'import json; s=json.load(open("s.json")); s["sbom"]=False; json.dump(s,open("s-nosbom.json","w"))'
check "a spec with \"sbom\": false" "$AGPACK" build s-nosbom.json --key k.key --out b5
check "no sbom artifact then either" $PY -c '
import json; m = json.load(open("b5/manifest.json"))
assert "sbom" not in [a["name"] for a in m["artifacts"]]'
spec clash.json demo 1 files:sbom:pkgs
expect_exit 2 "an artifact named sbom is refused unless --no-sbom" "$AGPACK" build clash.json --key k.key --out b6
check "it builds with --no-sbom" "$AGPACK" build clash.json --key k.key --out b6 --no-sbom

# Hostile image: a dpkg status that claims 1 GiB is refused before reading.
$PY "$MK" image huge huge.json --huge-db
spec h.json demo 1 oci-archive:runtime:huge
expect_exit 3 "a 1 GiB package database is refused" "$AGPACK" build h.json --key k.key --out b7
said "saying why" "over the .* limit"
check "nothing written" test ! -e b7
# rpm databases are named as not covered.
$PY "$MK" image rpmimg rpm.json --rpm
spec r.json demo 1 oci-archive:runtime:rpmimg
check "an image with an rpm database" "$AGPACK" build r.json --key k.key --out b8
check "extract it" "$AGIMPORT" extract b8 --pubkey k.pub --to out8
check "the SBOM says rpm is not covered, and is valid" sh -c "grep -q 'not-covered' out8/sbom/sbom.cdx.json && node '$VALIDATE' out8/sbom/sbom.cdx.json"
done_testing
