#!/bin/bash
# agserve --model DIR where DIR holds engine.json (an external engine; here
# a second agserve): the front agserve starts the engine in its own process
# group, enforces its own API keys, forwards every /v1/* request, streams
# the answers through, writes one audit line per request (tokens from the
# engine's usage, prompt sha256 of the forwarded prompt) and on SIGTERM
# stops the engine's whole process group.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
AGCTL=$(realpath "$AGCTL")
cd "$WORK"
# m/ is what clients call "m": engine.json, and the engine's model in m/m
mkdir m
# about a millisecond a token: a 3000-token request holds an engine sequence for seconds
$PY "$TESTS_DIR/serve/mkmodel.py" m/m llama --dims 384,1024,4,6,2 >/dev/null
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); c["max_position_embeddings"]=4096; json.dump(c,open(sys.argv[1],"w"))' m/m/config.json
engine_json m --parallel 2
printf 'alice s3cret\n' > keys && chmod 600 keys
start_server srv.log --model m --api-keys keys --audit audit.log --conn-timeout 1
engine_started "the front agserve starts the engine and listens"
K=(-H 'Authorization: Bearer s3cret')
code=$(http GET /health)
check "/health answered by the front" test "$code" = 200
code=$(http POST /v1/completions '{"model":"m","prompt":"hello","max_tokens":4}')
[ "$code" = 401 ] && [ "$(j 'r["error"]["code"]')" = invalid_api_key ] && ok "no key: 401 from the front (the engine has none)" || not_ok "no key: $code $(cat resp)"
code=$(http POST /v1/messages '{"model":"m","max_tokens":4,"messages":[{"role":"user","content":"x"}]}' -H 'x-api-key: wrong')
[ "$code" = 401 ] && [ "$(j 'r["error"]["type"]')" = authentication_error ] && ok "a wrong key on /v1/messages: 401 authentication_error" || not_ok "wrong key: $code $(cat resp)"
code=$(http GET /v1/models "" "${K[@]}")
[ "$code" = 200 ] && [ "$(j 'r["data"][0]["id"]')" = m ] && ok "/v1/models with the key: the engine's model m" || not_ok "models: $code $(cat resp)"
P="the engine behind the front"
want=$("$AGRUN" m/m --prompt "$P" -n 12 --no-eos --threads 1 2>/dev/null)
code=$(http POST /v1/completions "{\"model\":\"m\",\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0}" "${K[@]}")
[ "$code" = 200 ] && [ -n "$want" ] && [ "$(j 'r["choices"][0]["text"]')" = "$want" ] &&
	ok "completions through the front: agrun's greedy text" || not_ok "completions: $code $(head -c 300 resp) want '$want'"
# streams pass through chunk by chunk
$PY - "$(cat port)" <<'PY' > stream.out 2>&1 && ok "chat and messages streams through the front: event streams ending [DONE] / message_stop, text == not streamed" || { not_ok "streams"; sed 's/^/#   /' stream.out; }
import http.client, json, sys
port = int(sys.argv[1])
def post(path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json", "x-api-key": "s3cret"})
    return c.getresponse()
msgs = [{"role": "user", "content": "hi"}]
chat = {"model": "m", "max_tokens": 40, "temperature": 0, "messages": msgs}
for path, end in (("/v1/chat/completions", b"data: [DONE]"), ("/v1/messages", b"event: message_stop")):
    r = post(path, dict(chat, stream=True, stream_options={"include_usage": True}) if "chat" in path else dict(chat, stream=True))
    assert r.status == 200 and r.getheader("Content-Type", "").startswith("text/event-stream"), (r.status, r.getheaders())
    lines = [l.rstrip(b"\r\n") for l in r]
    text = ""
    for l in lines:
        if l.startswith(b"data: {"):
            d = json.loads(l[6:])
            if "chat" in path:
                text += "".join(ch["delta"].get("content") or "" for ch in d.get("choices", []))
            elif d.get("type") == "content_block_delta":
                text += d["delta"]["text"]
    assert end in lines, lines[-5:]
    w = json.loads(post(path, chat).read())
    whole = w["choices"][0]["message"]["content"] if "chat" in path else w["content"][0]["text"]
    print(path, len(lines), "lines", repr(text[:40]))
    assert text == whole and len(text) > 0, (text, whole)
# a client that goes away mid-stream: the front stays up, the request is audited
r = post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 3000, "stream": True})
assert r.status == 200 and r.readline().startswith(b"data: ")
r.close()
PY
sleep 0.5
check "the front still answers after a client left mid-stream" test "$(http GET /health)" = 200
# the audit: one chained line per /v1 request, the key's name, the engine's token counts
expect_exit 0 "agctl audit verify --file: the front's audit chain" "$AGCTL" audit verify --file audit.log
$PY - audit.log "$P" <<'PY' > audit.out 2>&1 && ok "audit lines: refused 401s, key alice, status, tokens from the engine's usage, prompt sha256" || { not_ok "audit"; sed 's/^/#   /' audit.out; }
import hashlib, json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
def ev(l): return l.get("event", l)
recs = [ev(l) for l in lines]
assert len(recs) == 9, [(r["endpoint"], r["status"], r["tokens_out"]) for r in recs]
assert [r["status"] for r in recs] == [401, 401] + [200] * 7, [r["status"] for r in recs]
assert recs[8]["finish"] in ("cancelled", None), recs[8]  # None: the whole answer was out before the close
assert recs[0]["result"] == "refused" and recs[0]["key"] is None
assert all(r["key"] == "alice" for r in recs[2:])
c = recs[3]
assert c["endpoint"] == "/v1/completions" and c["tokens_out"] == 12 and c["tokens_in"] > 0, c
assert c["prompt_sha256"] == hashlib.sha256(sys.argv[2].encode()).hexdigest(), c
assert all(r["tokens_out"] == 40 for r in recs[4:8]), recs[4:8]
PY
# --conn-timeout 1 on the front: requests the engine keeps queued for
# seconds (both of its sequences busy) are not cut
$PY - "$(cat port)" <<'PY' > ct.out 2>&1 && ok "front --conn-timeout 1: requests queued by the engine for seconds complete" || { not_ok "conn-timeout through the front"; sed 's/^/#   /' ct.out; }
import http.client, json, sys, threading, time
port = int(sys.argv[1])
res = {}
def run(name, path, body):
    t0 = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", path, json.dumps(dict(body, temperature=0)), {"Content-Type": "application/json", "x-api-key": "s3cret"})
        r = c.getresponse(); d = r.read().decode()
        done = "data: [DONE]" in d if body.get("stream") else "choices" in json.loads(d)
        res[name] = (r.status, done, round(time.time() - t0, 2))
    except Exception as e:
        res[name] = ("exception", repr(e)[:80], round(time.time() - t0, 2))
# the two long ones hold both engine sequences about 4 s at the rate one request measures first
# (a fixed 3000 tokens each ran past the 120 s client timeout under the sanitizers on Zen 3)
t0 = time.time()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
c.request("POST", "/v1/completions", json.dumps({"prompt": "q", "max_tokens": 100, "temperature": 0}),
          {"Content-Type": "application/json", "x-api-key": "s3cret"})
r = c.getresponse()
assert r.status == 200, r.status
n = json.loads(r.read())["usage"]["completion_tokens"]
rate = n / (time.time() - t0)
nlong = max(60, min(3000, int(4 * rate)))
print("calibration: %.1f tok/s, long requests of %d tokens" % (rate, nlong))
jobs = [("long1", "/v1/completions", {"prompt": "a", "max_tokens": nlong}),
        ("long2", "/v1/completions", {"prompt": "b", "max_tokens": nlong}),
        ("stream", "/v1/chat/completions", {"max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "x"}]}),
        ("whole", "/v1/completions", {"prompt": "c", "max_tokens": 50})]
ts = []
for j in jobs:
    ts.append(threading.Thread(target=run, args=j, daemon=True)); ts[-1].start(); time.sleep(0.2)
for t in ts: t.join(120)
print(res)
assert len(res) == 4 and all(v[:2] == (200, True) for v in res.values()), res
assert res["stream"][2] > 1.5, "the stream did not wait longer than --conn-timeout: the test proves nothing"
PY
# SIGTERM: the front exits 0 and the engine's process group is gone
kill -TERM "$SRV_PID"; wait "$SRV_PID"; rc=$?
check "SIGTERM: the front exits 0" test "$rc" = 0
gone=no
for i in $(seq 50); do kill -0 -- "-$epid" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
check "SIGTERM: the engine's process group is gone" test "$gone" = yes
done_testing
