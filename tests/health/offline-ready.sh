#!/bin/bash
# Issue 20: agctl health runs agpack's offline-readiness check again on the
# slot's model directory and records that it passed: a plain model passes
# ("model directory offline-ready", --json offline_ready true); a model with
# remote code passes only because its signed provenance says the bundle
# allowed it; a slot whose model gains a *.py file after the import fails the
# check with the reason, before agrun runs.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
cd "$WORK"
out_has() { local d=$1; shift; cp "$WORK/.out" "$WORK/.said"; check "$d" grep -q "$@" "$WORK/.said"; }
keygen k
export AGKIT_AGRUN=$AGRUN
m=$WORK/m
$PY "$TESTS_DIR/runtime/gen_tiny.py" llama bf16 "$m" >/dev/null 2>&1 || { echo "Bail out! gen_tiny"; exit 1; }
R=$WORK/R
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null 2>&1
# no latency verdicts and no data limit: the check's RLIMIT_DATA leaves
# AddressSanitizer no room for its shadow memory (ci-sanitize.sh)
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c.update({'latency_regression': 100, 'health_memory_limit_mb': 0}); json.dump(c, open(sys.argv[1],'w'))" "$R/config.json"
printf '{"name":"llm","version":1,"artifacts":[{"type":"files","name":"model","path":"m","health":{"record":true}}]}' > s1.json
check "a plain model builds" "$AGPACK" build s1.json --key k.key --out b1
check "... and stages" "$AGIMPORT" b1 --root "$R"
check "agctl health passes" "$AGCTL" --root "$R" health
out_has "... recording that the model directory is offline-ready" "model directory offline-ready"
"$AGCTL" --root "$R" health --json > h.json 2>/dev/null
check "--json says offline_ready" $PY -c 'import json; o=json.load(open("h.json")); assert o["offline_ready"] is True and o["pass"] is True, o'
check "agctl cycle promotes it" "$AGCTL" --root "$R" cycle
"$AGCTL" --root "$R" mark-good >/dev/null 2>&1

# v2: remote code, allowed by the bundle (recorded in the signed manifest)
cp -r m m2 && $PY - m2/config.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["auto_map"] = {"AutoModelForCausalLM": "modeling_x.X"}
json.dump(c, open(sys.argv[1], "w"))
PY
printf 'class X: pass\n' > m2/modeling_x.py
suite=$($PY -c 'import json; m=json.load(open("b1/manifest.json")); print([a for a in m["artifacts"] if a["name"]=="model"][0]["health"])')
"$AGIMPORT" extract b1 --pubkey k.pub --to x1 >/dev/null 2>&1
printf '{"name":"llm","version":2,"artifacts":[{"type":"files","name":"model","path":"m2","health":"x1/%s","allow_remote_code":true}]}' "$suite" > s2.json
check "a model with auto_map and a .py builds with allow_remote_code" "$AGPACK" build s2.json --key k.key --out b2
check "... and stages" "$AGIMPORT" b2 --root "$R"
check "agctl health passes it" "$AGCTL" --root "$R" health
out_has "... saying the bundle allowed the remote code" "remote code allowed by the bundle"

# v3: the v1 model; after staging, a .py file appears in the slot's model directory
printf '{"name":"llm","version":3,"artifacts":[{"type":"files","name":"model","path":"m","health":"x1/%s"}]}' "$suite" > s3.json
check "v3 builds" "$AGPACK" build s3.json --key k.key --out b3
"$AGCTL" --root "$R" cycle >/dev/null 2>&1   # v2 promoted
"$AGCTL" --root "$R" mark-good >/dev/null 2>&1
check "v3 stages" "$AGIMPORT" b3 --root "$R"
idle=$("$AGCTL" --root "$R" status --json | $PY -c 'import json,sys; s=json.load(sys.stdin); print([k for k,v in s["slots"].items() if v["version"]==3][0])')
printf 'import os\n' > "$R/slots/$idle/model/modeling_evil.py"
expect_exit 7 "agctl health fails v3 with a .py file in its model directory" "$AGCTL" --root "$R" health
out_has "... saying it is not offline-ready" "model directory not offline-ready"
done_testing
