#!/bin/bash
# agserve's queue under --parallel 1 (tests/serve/FINDINGS.md, "Queued
# requests and --conn-timeout"): requests whose clients go away (one while
# its sequence runs, one while queued) must not leave the others in the
# queue with the scheduler asleep; and --conn-timeout must not cut a request
# the server is still working on (queued, prefilling or decoding).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
# about a millisecond a token: a 3000-token request holds the sequence for seconds
$PY "$TESTS_DIR/serve/mkmodel.py" m llama --dims 384,1024,4,6,2 >/dev/null
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); c["max_position_embeddings"]=4096; json.dump(c,open(sys.argv[1],"w"))' m/config.json

# 1. lost wakeup: A runs, B (queued) and A disconnect, C and D must finish
start_server srv.log --model m --parallel 1 --conn-timeout 60 &&
	ok "agserve --parallel 1 starts" || { not_ok "agserve starts"; cat srv.log; done_testing; exit 1; }
$PY - "$(cat port)" <<'PY' > wake.out 2>&1 && ok "a running and a queued request cancelled by their clients: the queued others complete" || { not_ok "lost wakeup"; sed 's/^/#   /' wake.out; }
import http.client, json, socket, sys, threading, time
port = int(sys.argv[1])
def raw(body):
    s = socket.create_connection(("127.0.0.1", port))
    b = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
    return s
def metrics():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics"); t = c.getresponse().read().decode()
    return {l.split()[0]: float(l.split()[1]) for l in t.splitlines() if l.startswith(("agserve_queue_depth", "agserve_active_sequences"))}
a = raw({"prompt": "a", "max_tokens": 3000, "temperature": 0, "stream": True})
a.settimeout(20)
got = b""
while b"data: " not in got:
    d = a.recv(4096)
    assert d, "A streams"
    got += d
b = raw({"prompt": "b", "max_tokens": 3000, "temperature": 0})
res = {}
def run(name, stream):
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/completions", json.dumps({"prompt": name, "max_tokens": 20, "temperature": 0, "stream": stream}))
    r = c.getresponse(); d = r.read().decode()
    res[name] = (r.status, "[DONE]" in d if stream else json.loads(d)["choices"][0]["finish_reason"] == "length", time.time() - t0)
ts = [threading.Thread(target=run, args=(n, s), daemon=True) for n, s in (("c", False), ("d", True))]
for t in ts: t.start()
time.sleep(0.5)
m = metrics()
print("before the cancels:", m)
assert m["agserve_active_sequences"] == 1 and m["agserve_queue_depth"] == 3, m
b.close()          # cancelled while queued
time.sleep(0.3)
a.close()          # cancelled while its sequence runs: the queue must move on
for t in ts: t.join(15)
print(res)
assert all(not t.is_alive() for t in ts), "a queued request still waits (the scheduler slept with a queue)"
assert res["c"][:2] == (200, True) and res["d"][:2] == (200, True), res
m = metrics()
assert m["agserve_active_sequences"] == 0 and m["agserve_queue_depth"] == 0, m
PY
stop_server

# 2. --conn-timeout 1 while requests wait seconds in the queue: none is cut
start_server srv2.log --model m --parallel 1 --conn-timeout 1 &&
	ok "agserve --parallel 1 --conn-timeout 1 starts" || { not_ok "agserve starts"; cat srv2.log; done_testing; exit 1; }
$PY - "$(cat port)" <<'PY' > ct.out 2>&1 && ok "--conn-timeout 1: requests queued for seconds (streamed and not, completions, chat, messages) all complete" || { not_ok "conn-timeout cuts queued requests"; sed 's/^/#   /' ct.out; }
import http.client, json, sys, threading, time
port = int(sys.argv[1])
res = {}
def run(name, path, body, stream):
    t0 = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body = dict(body, temperature=0, stream=stream)
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse(); d = r.read().decode()
        if not stream:
            done = "choices" in json.loads(d) or json.loads(d).get("type") == "message"
        else:
            done = "data: [DONE]" in d or "event: message_stop" in d
        res[name] = (r.status, done, round(time.time() - t0, 2))
    except Exception as e:
        res[name] = ("exception", repr(e)[:80], round(time.time() - t0, 2))
msg = {"model": "m", "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]}
jobs = [("long", "/v1/completions", {"prompt": "a", "max_tokens": 2500}, False),
        ("compl-stream", "/v1/completions", {"prompt": "b", "max_tokens": 300}, True),
        ("compl", "/v1/completions", {"prompt": "c", "max_tokens": 300}, False),
        ("chat-stream", "/v1/chat/completions", msg, True),
        ("msgs-stream", "/v1/messages", msg, True),
        ("msgs", "/v1/messages", msg, False)]
ts = []
for j in jobs:
    ts.append(threading.Thread(target=run, args=j, daemon=True)); ts[-1].start(); time.sleep(0.1)
for t in ts: t.join(90)
print(res)
assert len(res) == len(jobs) and all(v[:2] == (200, True) for v in res.values()), res
assert max(v[2] for v in res.values()) > 2, "nothing waited longer than --conn-timeout: the test proves nothing"
# the idle timeout still holds for a keep-alive connection that sends nothing
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request("GET", "/health"); c.getresponse().read()
t0 = time.time()
assert c.sock.recv(10) == b"" and time.time() - t0 < 5, "an idle keep-alive connection stays open"
PY
stop_server
done_testing
