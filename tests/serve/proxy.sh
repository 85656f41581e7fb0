#!/bin/bash
# The external-engine proxy (tools/agserve/proxy.c) with a second agserve
# standing in as the engine: proxy_harness serves 127.0.0.1 the way agserve
# does and forwards every request with proxy_handle(); the official SDKs run
# their whole suite through it (greedy equality with agrun, streams, 8
# concurrent clients); usage is read from the engine's answers for the audit;
# the engine runs in its own process group, which is gone after SIGTERM;
# engines that exit, never get ready or are described wrongly are refused.
. "$(dirname "$0")/../lib.sh"
: "${AGRUN:?AGRUN must point at the agrun binary}"
AGRUN=$(realpath "$AGRUN")
. "$(dirname "$0")/sdk-lib.sh"
[ -n "${PROXY_HARNESS:-}" ] || skip_all "agserve built without libcurl: no proxy"
need curl
cd "$WORK"
# The artifact: engine.json and the model beside it (m/, named as clients name it).
mkdir art
check "small model" $PY "$SERVE_DIR/mkmodel.py" art/m llama --dims 256,512,2,4,2
printf '{"command": ["%s", "--model", "{model}/{name}", "--listen", "127.0.0.1:{port}", "--threads", "2", "--parallel", "4"], "ready_path": "/health", "ready_timeout_s": 60}\n' \
	"$AGSERVE" > art/engine.json
sdk_expect art/m
# harness NAME DIR: starts proxy_harness on DIR; sets HPID and HURL
harness() {
	"$PROXY_HARNESS" "$2" m > "$1.out" 2> "$1.err" &
	HPID=$!
	on_exit "kill $HPID 2>/dev/null"
	local i
	HURL=
	for i in $(seq 600); do
		HURL=$(sed -n 's/^proxy_harness: listening on //p' "$1.err")
		[ -n "$HURL" ] && return 0
		kill -0 $HPID 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
if ! harness h art; then
	not_ok "the proxy starts the engine and listens"; sed 's/^/#   /' h.err; done_testing; exit
fi
ok "the proxy starts the engine, waits for /health and listens"
epid=$(sed -n 's/^engine: pid \([0-9]*\) .*/\1/p' h.err)
check "the engine leads its own process group" test "$(ps -o pgid= -p "$epid" | tr -d ' ')" = "$epid"
check "/v1/models through the proxy names the model" sh -c "curl -s '$HURL/v1/models' | grep -q '\"id\": *\"m\"'"
p0=$($PY -c 'import json; print(json.load(open("expect.json"))["completions"][0]["prompt"])')
t0=$($PY -c 'import json; print(json.load(open("expect.json"))["completions"][0]["text"], end="")')
got=$(curl -s "$HURL/v1/completions" -H 'Content-Type: application/json' \
	-d "{\"model\":\"m\",\"prompt\":\"$p0\",\"max_tokens\":$N,\"temperature\":0}" |
	$PY -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"], end="")')
check "completions through the proxy: agrun's greedy text" test "$got" = "$t0"
sleep 0.2
check "the proxy reads the engine's usage (for the audit)" grep -q "^done 200 [0-9][0-9]* $N complete$" h.out
code=$(curl -s -o err.json -w '%{http_code}' "$HURL/v1/completions" -d '{"model":"m","prompt":"x","max_tokens":0}')
check "an engine's 400 passes through with its body" sh -c "[ $code = 400 ] && grep -q invalid_request_error err.json"
if [ -d "$NODE_MODULES/openai" ] && command -v node >/dev/null; then
	SDK_NO_AUTH=1 AGSERVE_URL=$HURL AGSERVE_KEY=unused AGSERVE_KEY2=unused AGSERVE_MODEL=m EXPECT=expect.json \
		timeout 300 node "$SERVE_DIR/sdk.mjs" > node.out 2> node.err
	rc=$?
	tap_from "through the proxy: " < node.out
	[ $rc = 0 ] && ok "sdk.mjs through the proxy (exit 0)" || { not_ok "sdk.mjs through the proxy (exit $rc)"; sed 's/^/#   /' node.err | tail -20; }
else
	ok "the SDKs through the proxy # SKIP tests/serve/node_modules not installed"
fi
# A client that goes away mid-stream: the proxy ends its transfer.
curl -sN --max-time 0.3 "$HURL/v1/completions" -d '{"model":"m","prompt":"go","max_tokens":200,"temperature":0,"stream":true}' > /dev/null 2>&1
check "the harness still serves after a client left mid-stream" sh -c "curl -s '$HURL/v1/models' | grep -q '\"m\"'"
kill -TERM $HPID; wait $HPID; rc=$?
check "SIGTERM: the proxy stops the engine's process group and exits 0" test $rc = 0
grep -q "engine stopped" h.err && ok "the engine's process group is gone" || { not_ok "the engine's process group is gone"; sed 's/^/#   /' h.err | tail -5; }

# Engines that do not come up.
refuse() { # refuse NAME ENGINE_JSON PATTERN
	mkdir -p "$1" && printf '%s\n' "$2" > "$1/engine.json"
	"$PROXY_HARNESS" "$1" m > "$1.out" 2> "$1.err"
	local rc=$?
	if [ $rc = 3 ] && grep -q -- "$3" "$1.err"; then ok "$1: refused ($3)"; else not_ok "$1: refused ($3), exit $rc"; sed 's/^/#   /' "$1.err"; fi
}
refuse exits '{"command": ["false"]}' "exited (status 1) before it was ready"
refuse missing '{"command": ["/nonexistent/engine"]}' "exited (status 127) before it was ready"
refuse slow '{"command": ["sleep", "37.25"], "ready_timeout_s": 1}' "not ready within 1 s"
check "slow: the engine that never got ready was killed" sh -c '! pgrep -f "[s]leep 37[.]25" >/dev/null'
refuse nocmd '{"command": []}' '"command" must be an array'
refuse badjson '{"command": ["x"' "engine.json"
refuse badtimeout '{"command": ["true"], "ready_timeout_s": 0}' '"ready_timeout_s" must be'
done_testing
