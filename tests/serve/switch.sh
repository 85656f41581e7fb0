#!/bin/bash
# agserve --root follows the slot: with a loop of requests running and a long
# stream open, `agctl promote` and then `agctl rollback` switch the served
# model; the stream finishes on the model it started on, new requests go to
# the new one (/health names its version), no request fails. A promoted
# bundle whose weights do not load leaves the old model serving, with
# last_load_error in /health and a load failure counted in /metrics.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
: "${AGRUN:?AGRUN must point at the agrun binary}"
AGRUN=$(realpath "$AGRUN")
. "$(dirname "$0")/sdk-lib.sh"
need curl
cd "$WORK"
keygen k
L=${SWITCH_STREAM_TOKENS:-2500}  # the long stream: a few seconds of decoding
CTX=4096
# Two different models (same shapes, different widths of the MLP) and a third
# whose weights are cut in half: a valid, signed bundle that does not load.
mk() { $PY "$SERVE_DIR/mkmodel.py" "$1" llama --dims "$2" &&
	$PY -c 'import json,sys; p=sys.argv[1]+"/config.json"; c=json.load(open(p)); c["max_position_embeddings"]=4096; json.dump(c,open(p,"w"))' "$1"; }
check "model v1" mk m1 384,1024,4,6,2
check "model v2" mk m2 384,768,4,6,2
cp -r m1 m3 && truncate -s 1M m3/model.safetensors
pack() {
	printf '{"name":"llm","channel":"stable","version":%s,"artifacts":[{"type":"files","name":"model","path":"%s"}]}' "$1" "$2" > "spec$1.json"
	"$AGPACK" build "spec$1.json" --key k.key --out "b$1" >/dev/null 2>&1
}
for v in 1 2 3; do check "bundle v$v" pack $v m$v; done
check "init" "$AGCTL" --root "$R" init --pubkey k.pub
check "import v1" "$AGIMPORT" b1 --root "$R"
check "promote v1" "$AGCTL" --root "$R" promote
P="Serving across the gap"
for v in 1 2; do
	agrun_expect m$v "$P" 8 > short$v.json || not_ok "agrun v$v short"
	agrun_expect m$v "$P" $L --ctx $CTX > long$v.json || not_ok "agrun v$v long"
done
text() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"], end="")' "$1"; }
check "the two versions answer differently" test "$(text short1.json)" != "$(text short2.json)"

if ! serve_start s --root "$R" --parallel 4 --threads 2 --ctx $CTX; then
	not_ok "agserve --root starts"; done_testing; exit
fi
U=$URL_s
check "/health answers 200" serve_wait_health "$U" 60
field() { curl -s "$U/health" | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1]))' "$1"; }
check "/health names bundle llm, version 1, slot blue" test "$(field bundle) $(field version) $(field slot)" = "llm 1 blue"
check "/v1/models names the bundle" sh -c "curl -s '$U/v1/models' | grep -q '\"id\": *\"llm\"'"
req() { # req PROMPT N: greedy completion text
	curl -s --max-time 60 "$U/v1/completions" -H 'Content-Type: application/json' \
		-d "$($PY -c 'import json,sys; print(json.dumps({"model":"llm","prompt":sys.argv[1],"max_tokens":int(sys.argv[2]),"temperature":0}))' "$1" "$2")" |
		$PY -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"], end="")'
}
check "v1 serves v1's greedy text" test "$(req "$P" 8)" = "$(text short1.json)"

# A loop of short requests for the whole test; every status code is kept.
loop() {
	while [ ! -e stop-loop ]; do
		curl -s -o /dev/null -w '%{http_code}\n' --max-time 60 "$U/v1/completions" -H 'Content-Type: application/json' \
			-d '{"model":"llm","prompt":"ping","max_tokens":4,"temperature":0}' >> codes || echo "curl-$?" >> codes
	done
}
loop & loop_pid=$!
on_exit "touch '$WORK/stop-loop'; kill $loop_pid 2>/dev/null"
# stream N: a long stream of prompt P into stream-N.sse (in the background)
stream() {
	curl -sN --max-time 120 "$U/v1/completions" -H 'Content-Type: application/json' \
		-d "{\"model\":\"llm\",\"prompt\":\"$P\",\"max_tokens\":$L,\"temperature\":0,\"stream\":true}" > "stream-$1.sse" 2> "stream-$1.err"
	echo $? > "stream-$1.rc"
}
# stream_text FILE: the text of an SSE completions stream; fails on an error
# event or a missing [DONE]
stream_text() {
	$PY - "$1" <<'PY'
import json, sys
text, done = "", False
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.rstrip("\n")
    if not line.startswith("data: "):
        continue
    d = line[6:]
    if d == "[DONE]":
        done = True
        continue
    j = json.loads(d)
    if "error" in j:
        sys.exit("error event: " + d)
    for c in j.get("choices", []):
        text += c.get("text", "")
if not done:
    sys.exit("no [DONE]")
print(text, end="")
PY
}
wait_first() { local i; for i in $(seq 300); do grep -q '^data: {' "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }
wait_version() { local i; for i in $(seq 400); do [ "$(field version)" = "$1" ] && return 0; sleep 0.05; done; return 1; }
# switch NAME FROM TO CMD...: a stream on FROM, CMD switches the slot, the
# stream ends on FROM, new requests get TO
switch() {
	local name=$1 from=$2 to=$3; shift 3
	stream "$name" & local spid=$!
	wait_first "stream-$name.sse" && ok "$name: the stream started on v$from" || not_ok "$name: the stream started on v$from"
	check "$name: agctl switches the slot" "$@"
	check "$name: /health reports version $to" wait_version "$to"
	if grep -q '\[DONE\]' "stream-$name.sse"; then
		not_ok "$name: the stream was still running when the switch happened (raise SWITCH_STREAM_TOKENS)"
	else
		ok "$name: the stream was still running when the switch happened"
	fi
	check "$name: a new request after the switch gets v$to's greedy text" test "$(req "$P" 8)" = "$(text short$to.json)"
	wait $spid
	check "$name: the stream ended without a transport error" test "$(cat "stream-$name.rc")" = 0
	if stream_text "stream-$name.sse" > "stream-$name.txt" 2> "stream-$name.why"; then
		ok "$name: the stream ended with [DONE] and no error event"
	else
		not_ok "$name: the stream ended with [DONE] and no error event ($(cat "stream-$name.why"))"
	fi
	text long$from.json > "long$from.txt"
	if cmp -s "stream-$name.txt" "long$from.txt"; then
		ok "$name: the whole stream ($L tokens) is v$from's greedy text"
	else
		not_ok "$name: the whole stream ($L tokens) is v$from's greedy text"
		$PY -c 'import sys; a,b=open(sys.argv[1]).read(),open(sys.argv[2]).read(); i=next((k for k in range(min(len(a),len(b))) if a[k]!=b[k]),min(len(a),len(b))); print(f"#   lengths {len(a)} {len(b)}, first difference at {i}")' "stream-$name.txt" "long$from.txt"
	fi
}
check "import v2" "$AGIMPORT" b2 --root "$R"
switch promote 1 2 "$AGCTL" --root "$R" promote
check "promote: /health names slot green" test "$(field slot)" = green
switch rollback 2 1 "$AGCTL" --root "$R" rollback --reason "switch test"
check "rollback: /health names slot blue" test "$(field slot)" = blue

# v3 does not load: agserve keeps v1.
check "import v3 (broken weights, valid signatures)" "$AGIMPORT" b3 --root "$R" --force
check "promote v3" "$AGCTL" --root "$R" promote
got_err() { local i; for i in $(seq 400); do [ "$(field last_load_error)" != None ] && return 0; sleep 0.05; done; return 1; }
check "/health shows last_load_error" got_err
diag "last_load_error: $(field last_load_error)"
check "/health still reports version 1 (slot blue)" test "$(field version) $(field slot)" = "1 blue"
check "v1 still serves its greedy text" test "$(req "$P" 8)" = "$(text short1.json)"
check "/metrics counts the load failure" sh -c "curl -s '$U/metrics' | grep -Eq '^agserve_model_load_failures_total(\{[^}]*\})? [1-9]'"
check "/metrics agserve_model_info names version 1" sh -c "curl -s '$U/metrics' | grep -E '^agserve_model_info\{' | grep -q 'version=\"1\"'"

touch stop-loop; wait $loop_pid
n=$(wc -l < codes); bad=$(grep -vc '^200$' codes)
diag "request loop: $n requests, $bad not 200: $(sort codes | uniq -c | tr '\n' ' ')"
check "the request loop ran throughout (>= 20 requests)" test "$n" -ge 20
check "no request of the loop failed during the switches" test "$bad" = 0
expect_exit 0 "SIGTERM: agserve exits 0" serve_stop s
done_testing
