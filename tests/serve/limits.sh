#!/bin/bash
# agserve's limits: 10,000 idle connections stay bounded while an existing
# client is served, a slow-loris client is cut at --conn-timeout, a full
# queue answers 429 (OpenAI) / 529 (Anthropic) with Retry-After, and TLS.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
# decoding takes about a millisecond a token here, so a long request occupies its sequence for seconds
$PY "$TESTS_DIR/runtime/gen_tiny.py" llama f32 m --dims 384,1024,4,6,2,267 >/dev/null
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); c["max_position_embeddings"]=4096; json.dump(c,open(sys.argv[1],"w"))' m/config.json
start_server srv.log --model m --max-connections 32 --conn-timeout 2 --parallel 1 --queue 1 &&
	ok "agserve starts" || { not_ok "agserve starts"; cat srv.log; done_testing; exit 1; }
PORT=$(cat port)

$PY - "$PORT" "$SRV_PID" <<'PY' > conn.out 2>&1 && ok "10,000 idle connections: threads stay bounded, an existing client is served, new clients later too" || { not_ok "10,000 idle connections"; sed 's/^/#   /' conn.out; }
import http.client, os, socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
a = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
a.request("GET", "/health"); assert a.getresponse().read()
idle = []
for i in range(10000):
    s = socket.socket(); s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except (BlockingIOError, OSError):
        pass
    idle.append(s)
time.sleep(0.3)
threads = len(os.listdir(f"/proc/{pid}/task"))
print("server threads with 10,000 idle connections:", threads)
assert threads < 32 + 16, threads
t = time.time()
a.request("GET", "/health"); r = a.getresponse(); r.read()
assert r.status == 200, r.status
print("existing client answered in %.3f s" % (time.time() - t))
for s in idle: s.close()
time.sleep(3)
b = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
b.request("GET", "/health"); r = b.getresponse(); r.read()
assert r.status == 200
PY
sed 's/^/# /' conn.out | head -3

$PY - "$PORT" <<'PY' && ok "a slow-loris client (headers never finished) is disconnected after --conn-timeout" || not_ok "slow loris"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
s.settimeout(10)
t = time.time()
try:
    d = s.recv(100)
except ConnectionResetError:
    d = b""
assert d == b"" and 1 < time.time() - t < 8, (d, time.time() - t)
PY

# a long prompt is prefilled in --prefill-chunk pieces (256), with agrun's greedy output
LP=$($PY -c 'print(" ".join("word%d" % i for i in range(120)))')
lwant=$("$AGRUN" m --prompt "$LP" -n 10 --no-eos --threads 1 2>/dev/null)
http POST /v1/completions "{\"prompt\":\"$LP\",\"max_tokens\":10,\"temperature\":0}" >/dev/null
[ "$(j 'r["usage"]["prompt_tokens"] > 512')" = True ] && [ -n "$lwant" ] && [ "$(j 'r["choices"][0]["text"]')" = "$lwant" ] &&
	ok "a prompt of $(j 'r["usage"]["prompt_tokens"]') tokens, prefilled in chunks: greedy == agrun" || not_ok "chunked prefill: $(head -c 300 resp)"

# queue: one sequence, one queued request, then refusals
curl -sN "$BASE/v1/completions" -d '{"prompt":"x","max_tokens":2000,"temperature":0,"stream":true}' > q1 &
p1=$!
for i in $(seq 200); do [ -s q1 ] && break; sleep 0.05; done
curl -s "$BASE/v1/completions" -d '{"prompt":"x","max_tokens":5,"temperature":0}' > q2 &
p2=$!
# until the server holds q2 in its queue (a fixed wait lost that race on a loaded machine)
for i in $(seq 200); do
	curl -s "$BASE/metrics" | grep -q '^agserve_queue_depth 1$' && break
	sleep 0.05
done
code=$(curl -s -D h3 -o q3 -w '%{http_code}' "$BASE/v1/completions" -d '{"prompt":"x","max_tokens":5}')
[ "$code" = 429 ] && grep -qi '^retry-after: 1' h3 && ok "queue full: 429 with Retry-After" || not_ok "queue full: $code $(cat q3)"
code=$(curl -s -o q4 -w '%{http_code}' "$BASE/v1/messages" -d '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}]}')
[ "$code" = 529 ] && grep -q '"overloaded_error"' q4 && ok "queue full on /v1/messages: 529 overloaded_error" || not_ok "messages queue full: $code $(cat q4)"
kill $p1 2>/dev/null; wait $p1 2>/dev/null
wait $p2
grep -q '"finish_reason":"length"' q2 && ok "the queued request ran once the sequence was freed" || not_ok "queued request: $(cat q2)"
# SIGTERM while a stream runs: new requests on open connections get 503,
# new connections are refused, the stream finishes, exit 0
$PY - "$PORT" "$SRV_PID" <<'PY' > drain.out 2>&1 && ok "SIGTERM: 503 on an open connection, no new connections, the running stream finishes" || { not_ok "drain"; sed 's/^/#   /' drain.out; }
import http.client, json, os, signal, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
a = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
a.request("GET", "/health"); a.getresponse().read()
b = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
b.request("POST", "/v1/completions", body=json.dumps({"prompt": "x", "max_tokens": 1500, "temperature": 0, "stream": True}))
rb = b.getresponse()
assert rb.status == 200
rb.read1(100)
os.kill(pid, signal.SIGTERM)
time.sleep(0.3)
a.request("POST", "/v1/completions", body=json.dumps({"prompt": "x", "max_tokens": 2}))
ra = a.getresponse(); body = json.loads(ra.read())
assert ra.status == 503 and body["error"]["code"] == "shutting_down", (ra.status, body)
try:
    c = socket.create_connection(("127.0.0.1", port), timeout=2)
    c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.recv(100) == b"", "a new connection was served"
except (ConnectionRefusedError, ConnectionResetError):
    pass
rest = rb.read().decode()
assert rest.endswith("data: [DONE]\n\n"), rest[-200:]
PY
wait $SRV_PID
rc=$?
[ $rc = 0 ] && ok "exit 0 after the drain" || not_ok "SIGTERM exit $rc"

# TLS
if ! command -v openssl >/dev/null; then
	ok "# SKIP openssl missing"
else
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=127.0.0.1 >/dev/null 2>&1
	"$AGSERVE" --model m --listen 127.0.0.1:0 --port-file port2 --threads 1 --tls-cert cert.pem --tls-key key.pem 2>tls.log &
	tpid=$!
	on_exit "kill $tpid 2>/dev/null"
	for i in $(seq 100); do grep -q "listening on https://" tls.log && break; kill -0 $tpid 2>/dev/null || break; sleep 0.1; done
	if grep -q "without TLS support" tls.log; then
		ok "# SKIP libmicrohttpd without TLS"
	else
		code=$(curl -s --cacert cert.pem -o resp -w '%{http_code}' "https://127.0.0.1:$(cat port2)/health")
		[ "$code" = 200 ] && ok "HTTPS with --tls-cert/--tls-key" || { not_ok "TLS: $code"; cat tls.log; }
		code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(cat port2)/health")
		[ "$code" != 200 ] && ok "plain HTTP is not served on the TLS port" || not_ok "plain HTTP on TLS port"
	fi
	expect_exit 4 "an unreadable certificate file: exit 4" "$AGSERVE" --model m --listen 127.0.0.1:0 --tls-cert nope.pem --tls-key key.pem
fi
done_testing
