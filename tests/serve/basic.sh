#!/bin/bash
# agserve --model DIR with curl: health, models, greedy equality with agrun
# on every endpoint, streaming framing, stop strings, concurrency, the bad
# requests of issue 14 (each with its API's error body), API keys, the query
# audit chain (verified by agctl) and the SIGTERM drain.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
tiny_model m
printf 'alice s3cret-alice\n# a comment\nbob sha256:%s\n' "$(printf 'bob-key' | sha256sum | cut -d' ' -f1)" > keys
chmod 600 keys
A=(-H 'Authorization: Bearer s3cret-alice')

chmod 644 keys
expect_exit 2 "a group/world-readable keys file is refused" "$AGSERVE" --model m --api-keys keys --listen 127.0.0.1:0
last_output | grep -q "readable or writable by group or others" && ok "the refusal says why" || not_ok "the refusal says why"
chmod 600 keys
expect_exit 2 "--root and --model together are a usage error" "$AGSERVE" --model m --root R

start_server srv.log --model m --api-keys keys --audit q.log --ctx 128 --parallel 4 --max-body 65536 &&
	ok "agserve starts on a free port and says where" || { not_ok "agserve starts"; cat srv.log; done_testing; exit 1; }
check "the query audit log is created with mode 0600" test "$(stat -c %a q.log)" = 600

[ "$(http GET /health)" = 200 ] && ok "/health: 200 without a key" || not_ok "/health: 200 without a key"
[ "$(j 'r["status"], r["model"]')" = "ok m" ] && ok "/health: status ok, model m" || not_ok "/health body: $(cat resp)"
[ "$(http GET /v1/models)" = 401 ] && ok "/v1/models without a key: 401" || not_ok "/v1/models without a key: 401"
[ "$(j 'r["error"]["type"], r["error"]["code"]')" = "authentication_error invalid_api_key" ] &&
	ok "401 body in OpenAI's format" || not_ok "401 body: $(cat resp)"
[ "$(http POST /v1/messages '{}' -H 'x-api-key: wrong')" = 401 ] && ok "/v1/messages with a wrong key: 401" || not_ok "messages wrong key"
[ "$(j 'r["type"], r["error"]["type"]')" = "error authentication_error" ] && ok "401 body in Anthropic's format" || not_ok "anthropic 401 body: $(cat resp)"
[ "$(http GET /v1/models '' -H 'x-api-key: bob-key')" = 200 ] && ok "x-api-key with a sha256: key works" || not_ok "bob's key"
[ "$(http GET /v1/models '' "${A[@]}")" = 200 ] && ok "/v1/models with a Bearer key: 200" || not_ok "models with key"
[ "$(j 'r["object"], r["data"][0]["id"], r["data"][0]["object"]')" = "list m model" ] && ok "/v1/models lists m" || not_ok "models body: $(cat resp)"

# greedy equality with agrun, completions
P="The quick brown fox"
want=$("$AGRUN" m --prompt "$P" -n 12 --threads 1 --no-eos 2>/dev/null)
[ "$(http POST /v1/completions "{\"model\":\"m\",\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0}" "${A[@]}")" = 200 ] &&
	ok "completions: 200" || not_ok "completions: $(cat resp)"
got=$(j 'r["choices"][0]["text"]')
[ -n "$want" ] && [ "$got" = "$want" ] && ok "completions greedy == agrun greedy" || not_ok "completions greedy: '$got' vs agrun '$want'"
[ "$(j 'r["object"], r["id"][:5], r["usage"]["completion_tokens"], r["choices"][0]["finish_reason"]')" = "text_completion cmpl- 12 length" ] &&
	ok "completions: object, id, usage, finish_reason length" || not_ok "completions body: $(cat resp)"
http POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0,\"echo\":true,\"logprobs\":2}" "${A[@]}" >/dev/null
[ "$(j 'r["choices"][0]["text"]')" = "$P$want" ] && ok "completions echo" || not_ok "echo: $(cat resp)"
# with echo (OpenAI, vLLM): the prompt's tokens first, the first one without log-probability
[ "$(j 'len(r["choices"][0]["logprobs"]["tokens"]) - r["usage"]["prompt_tokens"], len(r["choices"][0]["logprobs"]["top_logprobs"][-1]), r["choices"][0]["logprobs"]["token_logprobs"][0], all(x <= 0 for x in r["choices"][0]["logprobs"]["token_logprobs"][1:])')" = "12 2 None True" ] &&
	ok "completions echo+logprobs: the prompt's tokens and 12 more, 2 alternatives, log-probabilities <= 0" || not_ok "logprobs: $(cat resp)"

# streaming framing
curl -sN "${A[@]}" "$BASE/v1/completions" -d "{\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0,\"stream\":true}" > s1
$PY - s1 "$want" <<'PY' && ok "completions stream: data: lines, text == agrun, finish length, [DONE] last" || { not_ok "completions stream"; sed 's/^/#   /' s1 | head; }
import json, sys
raw = open(sys.argv[1]).read()
ev = raw.split("\n\n")
assert ev[-1] == "" and ev[-2] == "data: [DONE]", ev[-3:]
chunks = [json.loads(e[6:]) for e in ev[:-2]]
assert all(e.startswith("data: ") for e in ev[:-1])
text = "".join(c["choices"][0]["text"] for c in chunks)
assert text == sys.argv[2], (text, sys.argv[2])
assert chunks[-1]["choices"][0]["finish_reason"] == "length"
assert all(c["object"] == "text_completion" for c in chunks)
PY

# chat: the rendered template, tokenized as agrun does
MSGS='[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"}]'
[ "$(http POST /apply-template "{\"messages\":$MSGS,\"add_generation_prompt\":true}" "${A[@]}")" = 200 ] && ok "/apply-template: 200" || not_ok "apply-template: $(cat resp)"
j 'r["prompt"]' > rendered
truncate -s -1 rendered
cwant=$("$AGRUN" m --prompt-file rendered -n 10 --threads 1 --no-eos 2>/dev/null)
[ "$(http POST /v1/chat/completions "{\"model\":\"m\",\"messages\":$MSGS,\"max_tokens\":10,\"temperature\":0}" "${A[@]}")" = 200 ] && ok "chat: 200" || not_ok "chat: $(cat resp)"
[ -n "$cwant" ] && [ "$(j 'r["choices"][0]["message"]["content"]')" = "$cwant" ] && ok "chat greedy == agrun greedy on the rendered prompt" || not_ok "chat greedy: $(cat resp) vs '$cwant'"
[ "$(j 'r["object"], r["id"][:9], r["choices"][0]["message"]["role"], r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + 10')" = "chat.completion chatcmpl- assistant True" ] &&
	ok "chat: object, id, role, usage" || not_ok "chat body: $(cat resp)"
http POST /v1/chat/completions "{\"messages\":$MSGS,\"max_tokens\":3,\"temperature\":0,\"logprobs\":true,\"top_logprobs\":3}" "${A[@]}" >/dev/null
[ "$(j 'len(r["choices"][0]["logprobs"]["content"]), len(r["choices"][0]["logprobs"]["content"][0]["top_logprobs"]), isinstance(r["choices"][0]["logprobs"]["content"][0]["bytes"], list)')" = "3 3 True" ] &&
	ok "chat logprobs: content[] with token, bytes, top_logprobs" || not_ok "chat logprobs: $(cat resp)"
curl -sN "${A[@]}" "$BASE/v1/chat/completions" -d "{\"messages\":$MSGS,\"max_tokens\":10,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" > s2
$PY - s2 "$cwant" <<'PY' && ok "chat stream: role chunk, deltas == agrun, finish_reason, usage chunk, [DONE]" || { not_ok "chat stream"; sed 's/^/#   /' s2 | head; }
import json, sys
ev = open(sys.argv[1]).read().split("\n\n")
assert ev[-1] == "" and ev[-2] == "data: [DONE]"
ch = [json.loads(e[6:]) for e in ev[:-2]]
assert ch[0]["choices"][0]["delta"]["role"] == "assistant"
assert all(c["object"] == "chat.completion.chunk" for c in ch)
assert ch[-1]["choices"] == [] and ch[-1]["usage"]["completion_tokens"] == 10
assert ch[-2]["choices"][0]["finish_reason"] == "length"
text = "".join(c["choices"][0]["delta"].get("content", "") for c in ch[:-1])
assert text == sys.argv[2], (text, sys.argv[2])
PY

# Anthropic messages: system + messages, same conversation
AM='{"model":"m","system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hello there"}]}],"max_tokens":10,"temperature":0'
[ "$(http POST /v1/messages "$AM}" -H 'x-api-key: s3cret-alice')" = 200 ] && ok "messages: 200" || not_ok "messages: $(cat resp)"
[ "$(j 'r["type"], r["role"], r["id"][:4], r["content"][0]["type"], r["stop_reason"], r["usage"]["output_tokens"]')" = "message assistant msg_ text max_tokens 10" ] &&
	ok "messages: type, role, id, content block, stop_reason max_tokens, usage" || not_ok "messages body: $(cat resp)"
[ "$(j 'r["content"][0]["text"]')" = "$cwant" ] && ok "messages greedy == agrun greedy" || not_ok "messages text: $(cat resp)"
curl -sN -H 'x-api-key: s3cret-alice' "$BASE/v1/messages" -d "$AM,\"stream\":true}" > s3
$PY - s3 "$cwant" <<'PY' && ok "messages stream: the real event sequence, text == agrun" || { not_ok "messages stream"; sed 's/^/#   /' s3 | head -30; }
import json, sys
ev = [e for e in open(sys.argv[1]).read().split("\n\n") if e]
names, datas = [], []
for e in ev:
    l = e.split("\n")
    assert l[0].startswith("event: ") and l[1].startswith("data: "), e
    names.append(l[0][7:]); datas.append(json.loads(l[1][6:]))
    assert datas[-1]["type"] == names[-1]
assert names[:2] == ["message_start", "content_block_start"], names
assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"], names
assert set(names[2:-3]) <= {"ping", "content_block_delta"}
text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
assert text == sys.argv[2], (text, sys.argv[2])
md = datas[-2]
assert md["delta"]["stop_reason"] == "max_tokens" and md["usage"]["output_tokens"] == 10
assert datas[0]["message"]["usage"]["input_tokens"] > 0
PY

# stop strings: cut before the stop, finish_reason stop, never streamed
stop=${want:4:2}
pre=${want%%"$stop"*}
http POST /v1/completions "{\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0,\"stop\":[$(printf '%s' "$stop" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]}" "${A[@]}" >/dev/null
[ "$(j 'r["choices"][0]["text"]')" = "$pre" ] && [ "$(j 'r["choices"][0]["finish_reason"]')" = stop ] &&
	ok "stop string: text ends before it, finish_reason stop" || not_ok "stop '$stop': $(cat resp) want '$pre'"
curl -sN "${A[@]}" "$BASE/v1/completions" -d "{\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0,\"stream\":true,\"stop\":$(printf '%s' "$stop" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read()))')}" > s4
$PY - s4 "$pre" <<'PY' && ok "stop string while streaming: no byte of it sent" || { not_ok "stream stop"; sed 's/^/#   /' s4 | head; }
import json, sys
ev = open(sys.argv[1]).read().split("\n\n")
ch = [json.loads(e[6:]) for e in ev[:-2]]
assert "".join(c["choices"][0]["text"] for c in ch) == sys.argv[2]
assert ch[-1]["choices"][0]["finish_reason"] == "stop"
PY

# Anthropic stop_sequences: stop_reason stop_sequence naming the string
stop=${cwant:3:2}
sj=$(printf '%s' "$stop" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read()))')
http POST /v1/messages "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],\"system\":\"Be brief.\",\"max_tokens\":10,\"temperature\":0,\"stop_sequences\":[$sj]}" "${A[@]}" >/dev/null
case "$cwant" in
*"$stop"*) [ "$($PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["stop_reason"], r["stop_sequence"] == sys.argv[2])' resp "$stop")" = "stop_sequence True" ] &&
	ok "messages stop_sequences: stop_reason stop_sequence, stop_sequence named" || not_ok "messages stop: $(cat resp)" ;;
*) [ "$(j 'r["stop_reason"], r["stop_sequence"]')" = "max_tokens None" ] && ok "messages stop_sequences not hit: max_tokens, stop_sequence null" || not_ok "messages stop: $(cat resp)" ;;
esac
# seeded sampling is reproducible
S='{"prompt":"Seeds","max_tokens":12,"temperature":0.9,"top_p":0.95,"seed":42}'
http POST /v1/completions "$S" "${A[@]}" >/dev/null; s1=$(j 'r["choices"][0]["text"]')
http POST /v1/completions "$S" "${A[@]}" >/dev/null; s2=$(j 'r["choices"][0]["text"]')
[ -n "$s1" ] && [ "$s1" = "$s2" ] && ok "the same seed gives the same sampled text" || not_ok "seeded: '$s1' vs '$s2'"

# concurrency: 6 clients on 4 sequences, each greedy == agrun
for i in 1 2 3 4 5 6; do
	curl -s "${A[@]}" "$BASE/v1/completions" -d "{\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0}" > c$i &
done
wait_ok=1
for i in 1 2 3 4 5 6; do :; done
sleep 0.1; while jobs -r | grep -q curl; do sleep 0.1; done
for i in 1 2 3 4 5 6; do
	[ "$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' c$i 2>/dev/null)" = "$want" ] || wait_ok=0
done
[ $wait_ok = 1 ] && ok "6 concurrent clients on 4 sequences all get agrun's greedy text" || not_ok "concurrent: $(cat c1 c2)"

# bad input: status and the API's error body
bad() { # bad WANT DESC PATH BODY
	local want=$1 d=$2 p=$3 b=$4 got
	got=$(http POST "$p" "$b" "${A[@]}")
	if [ "$got" = "$want" ] && $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["error"]["message"] and (r.get("type") == "error" or "code" in r["error"])' resp 2>/dev/null; then
		ok "$d: $want with an error body"
	else
		not_ok "$d: got $got: $(head -c 300 resp)"
	fi
}
bad 400 "malformed JSON" /v1/completions '{"prompt": "x",'
bad 400 "not an object" /v1/completions '[1,2]'
bad 400 "wrong type (max_tokens a string)" /v1/completions '{"prompt":"x","max_tokens":"5"}'
bad 400 "wrong type (messages a string)" /v1/chat/completions '{"messages":"hi"}'
bad 400 "n=2" /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"n":2}'
bad 400 "logit_bias" /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"logit_bias":{"5":10}}'
bad 400 "tools with a template that has no tools" /v1/chat/completions '{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}'
bad 400 "max_tokens 0" /v1/completions '{"prompt":"x","max_tokens":0}'
bad 400 "max_tokens beyond the context" /v1/completions '{"prompt":"x","max_tokens":100000}'
bad 400 "temperature out of range" /v1/completions '{"prompt":"x","temperature":7}'
bad 400 "messages without max_tokens" /v1/messages '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
bad 400 "image content block" /v1/messages '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}'
bad 400 "prompt longer than the context" /v1/completions "{\"prompt\":\"$(printf 'word %.0s' $(seq 200))\"}"
bad 404 "unknown model" /v1/completions '{"model":"gpt-4","prompt":"x"}'
[ "$(j 'r["error"]["code"]')" = model_not_found ] && ok "unknown model: code model_not_found" || not_ok "model_not_found code"
bad 404 "unknown model (Anthropic)" /v1/messages '{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
[ "$(j 'r["error"]["type"]')" = not_found_error ] && ok "unknown model (Anthropic): not_found_error" || not_ok "not_found_error"
printf '{"prompt":"\xff\xfe","max_tokens":2}' > badutf8
got=$(curl -s -o resp -w '%{http_code}' "${A[@]}" --data-binary @badutf8 "$BASE/v1/completions")
[ "$got" = 400 ] && ok "invalid UTF-8: 400" || not_ok "invalid UTF-8: $got"
head -c 200000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt":"/; s/$/"}/' > big
got=$(curl -s -o resp -w '%{http_code}' "${A[@]}" --data-binary @big "$BASE/v1/completions")
[ "$got" = 413 ] && ok "body over --max-body: 413" || not_ok "huge body: $got"
got=$(curl -s -o resp -w '%{http_code}' "${A[@]}" -H 'Transfer-Encoding: chunked' --data-binary @big "$BASE/v1/completions")
[ "$got" = 413 ] && ok "chunked body over --max-body: 413" || not_ok "huge chunked body: $got"
[ "$(http GET /v1/nothing '' "${A[@]}")" = 404 ] && ok "unknown path: 404" || not_ok "unknown path"
[ "$(http GET /v1/completions '' "${A[@]}")" = 405 ] && ok "GET on a POST endpoint: 405" || not_ok "GET completions"
[ "$(http GET /health)" = 200 ] && ok "still healthy after the bad requests" || not_ok "healthy after bad input"

# a client that goes away frees its sequence
curl -sN -m 0.3 "${A[@]}" "$BASE/v1/completions" -d '{"prompt":"x","max_tokens":100,"temperature":0.8,"stream":true}' >/dev/null 2>&1
sleep 0.5
http GET /metrics >/dev/null
grep -q '^agserve_active_sequences 0$' resp && ok "a disconnected client's sequence is freed" || not_ok "active sequences: $(grep active resp)"
grep -q 'agserve_requests_total{endpoint="/v1/completions",status="200"}' resp && grep -q '^agserve_tokens_out_total [1-9]' resp &&
	grep -q '^agserve_time_to_first_token_seconds_count [1-9]' resp && ok "/metrics: requests, tokens, ttft histogram" || not_ok "metrics: $(head -30 resp)"

# SIGTERM: the running stream finishes, new connections are refused, exit 0
curl -sN "${A[@]}" "$BASE/v1/completions" -d '{"prompt":"x","max_tokens":100,"temperature":1,"stream":true}' > s5 &
cpid=$!
for i in $(seq 50); do [ -s s5 ] && break; sleep 0.05; done
kill -TERM $SRV_PID
wait $cpid
tail -c 15 s5 | grep -q 'data: \[DONE\]' && ok "SIGTERM: the running stream ends with [DONE]" || not_ok "drain: $(tail -c 200 s5)"
wait $SRV_PID
rc=$?
[ $rc = 0 ] && ok "SIGTERM: agserve exits 0" || not_ok "SIGTERM exit $rc"

# the query audit chain
expect_exit 0 "agctl audit verify --file checks the query log" "$AGCTL" audit verify --file q.log
n=$(wc -l < q.log)
last_output | grep -q "audit log OK: $n record(s)" && ok "agctl prints the line count ($n)" || not_ok "agctl output: $(last_output)"
[ "$n" -ge 40 ] && ok "every /v1 request was audited, refused ones too ($n lines)" || not_ok "only $n audit lines"
grep -q '"key":"alice"' q.log && grep -q '"status":401' q.log && grep -q '"key":"bob"' q.log && grep -q '"result":"refused"' q.log &&
	ok "audit lines name the key, the status and the result" || not_ok "audit fields"
$PY - q.log <<'PY' && ok "audit lines: endpoint, prompt_sha256, tokens, duration, request id; no text without --audit-content" || not_ok "audit line shape"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ok = [r for r in recs if r["status"] == 200 and r["endpoint"] == "/v1/completions"]
assert ok and all(len(r["prompt_sha256"]) == 64 and r["tokens_in"] > 0 and r["duration_ms"] >= 0 and r["request_id"].startswith("cmpl-") for r in ok)
assert all("prompt" not in r and "completion" not in r for r in recs)
PY
sed -i '3s/"status":[0-9]*/"status":299/' q.log
expect_exit 3 "an edited audit line breaks the chain" "$AGCTL" audit verify --file q.log
done_testing
