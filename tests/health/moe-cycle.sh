#!/bin/bash
# Issue 18: the whole path on mixture-of-experts models, unchanged: agpack
# records the health suite from the model, agimport stages the bundle, agctl
# cycle checks and promotes it; a bundle whose router was damaged (the gate
# weights of every layer zeroed, which spreads no token the way the reference
# did) is refused by the same check.  For DeepSeek-V3 (multi-head latent
# attention, sigmoid group routing) and Mixtral (softmax top-k).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
cd "$WORK"
keygen k
export AGKIT_AGRUN=$AGRUN
for arch in deepseek_v3 mixtral; do
	m=$WORK/$arch
	$PY "$TESTS_DIR/runtime/gen_tiny.py" "$arch" bf16 "$m" >/dev/null 2>&1 || { not_ok "$arch: generate the tiny model"; continue; }
	printf '{"name":"%s","channel":"stable","version":1,"artifacts":[{"type":"files","name":"model","path":"%s","health":{"record":true}}]}' \
		"$arch" "$m" > "$arch-1.json"
	R=$WORK/R-$arch
	"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null 2>&1
	# no latency verdicts and no data limit: the check's RLIMIT_DATA leaves
	# AddressSanitizer no room for its shadow memory (ci-sanitize.sh)
	$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c.update({'latency_regression': 100, 'health_memory_limit_mb': 0}); json.dump(c, open(sys.argv[1],'w'))" "$R/config.json"
	check "$arch: agpack records the suite from the model and builds" "$AGPACK" build "$arch-1.json" --key k.key --out "b-$arch-1"
	check "$arch: agimport stages it" "$AGIMPORT" "b-$arch-1" --root "$R"
	check "$arch: agctl cycle checks and promotes it" "$AGCTL" --root "$R" cycle
	check "$arch: v1 is active" sh -c "'$AGCTL' --root '$R' status --json | $PY -c 'import json,sys; s=json.load(sys.stdin); assert s[\"slots\"][s[\"active\"]][\"version\"] == 1, s'"
	"$AGCTL" --root "$R" mark-good >/dev/null 2>&1
	# v2: the same model with every router's weights zeroed, packed with v1's suite
	cp -r "$m" "$WORK/$arch-bad"
	$PY - "$WORK/$arch-bad" <<'PY'
import json, os, struct, sys
d = sys.argv[1]
files = [f for f in os.listdir(d) if f.endswith(".safetensors")]
n_zeroed = 0
for f in files:
    p = os.path.join(d, f)
    with open(p, "r+b") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        hdr = json.loads(fh.read(n))
        for name, t in hdr.items():
            if name == "__metadata__" or not name.endswith("gate.weight") or ".experts." in name or "shared_expert_gate" in name:
                continue
            a, b = t["data_offsets"]
            fh.seek(8 + n + a)
            fh.write(b"\0" * (b - a))
            n_zeroed += 1
assert n_zeroed > 0, "no router weights found"
PY
	suite=$($PY -c 'import json,sys; m=json.load(open(sys.argv[1])); print([a for a in m["artifacts"] if a["name"]=="model"][0]["health"])' "b-$arch-1/manifest.json")
	"$AGIMPORT" extract "b-$arch-1" --pubkey k.pub --to "x-$arch" >/dev/null 2>&1
	printf '{"name":"%s","channel":"stable","version":2,"artifacts":[{"type":"files","name":"model","path":"%s","health":"%s"}]}' \
		"$arch" "$WORK/$arch-bad" "$WORK/x-$arch/$suite" > "$arch-2.json"
	check "$arch: v2 (routers zeroed) builds with v1's suite" "$AGPACK" build "$arch-2.json" --key k.key --out "b-$arch-2"
	check "$arch: agimport stages v2" "$AGIMPORT" "b-$arch-2" --root "$R"
	expect_exit 7 "$arch: agctl cycle refuses v2" "$AGCTL" --root "$R" cycle
	last_output | grep -q "wrong answers" && ok "$arch: ... on wrong answers" || { not_ok "$arch: ... on wrong answers"; last_output | sed 's/^/#   /'; }
	check "$arch: v1 still active" sh -c "'$AGCTL' --root '$R' status --json | $PY -c 'import json,sys; s=json.load(sys.stdin); assert s[\"slots\"][s[\"active\"]][\"version\"] == 1, s'"
done
done_testing
