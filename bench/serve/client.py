#!/usr/bin/python3
"""Concurrent streaming client for bench/serve/bench.sh (standard library only).

usage: client.py URL MODEL CONCURRENCY MAX_TOKENS [EXTRA_JSON [SALT]]
Starts CONCURRENCY streams of POST URL/v1/completions (stream: true) at once
(every connection open first, then the requests together), each with its own
prompt (distinct from its first token on, for every stream and every SALT, so
no run reuses another's cached prompt), and prints one JSON object: aggregate
decode tokens/s (generated tokens after each stream's first / wall time from
the first first-token to the last end), steady decode tokens/s (text events
while every stream decodes, from the last first-token to the first end, over
that window, steady_s long), per-stream decode tokens/s, time to first token
p50/p99 (ms), tokens and wall time. EXTRA_JSON is merged into each
request body (e.g. {"ignore_eos": true} for llama-server).
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse

WORDS = ("gap bundle slot model weights signature audit serve promote health rollback stream token "
         "batch cache decode prefill green blue key chain").split()


def prompt(i, salt=0):
    x = (salt * 7919 + i * 104729 + 1) & 0xffffffff
    words = []
    for _ in range(24):
        x = (x * 1103515245 + 12345) & 0x7fffffff
        words.append(WORDS[(x >> 8) % len(WORDS)])
    return f"{salt}.{i} " + " ".join(words)


def one(u, model, i, n, extra, salt, res, go):
    body = json.dumps(dict({"model": model, "prompt": prompt(i, salt), "max_tokens": n, "temperature": 0,
                            "stream": True}, **extra))
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    c.connect()
    go.wait()  # every stream connected: the requests go out together
    t0 = time.monotonic()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        res[i] = {"error": f"HTTP {r.status}: {r.read()[:200]!r}"}
        return
    first, fin, times = None, None, []
    for line in r:
        line = line.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        d = json.loads(line[6:])
        for ch in d.get("choices", []):
            if ch.get("text"):
                times.append(time.monotonic())
                if first is None:
                    first = times[0]
            fin = ch.get("finish_reason") or fin
    end = time.monotonic()
    if fin != "length":  # the bench model never emits EOS: every stream is max_tokens long
        res[i] = {"error": f"stream ended with finish_reason {fin!r}, not 'length'"}
        return
    res[i] = {"t0": t0, "first": first or end, "end": end, "tokens": n, "times": times}


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main(argv):
    if len(argv) < 5:
        sys.stderr.write(__doc__)
        return 2
    u = urllib.parse.urlparse(argv[1])
    model, conc, n = argv[2], int(argv[3]), int(argv[4])
    extra = json.loads(argv[5]) if len(argv) > 5 else {}
    salt = int(argv[6]) if len(argv) > 6 else 0
    res = [None] * conc
    go = threading.Barrier(conc)
    th = [threading.Thread(target=one, args=(u, model, i, n, extra, salt, res, go)) for i in range(conc)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    errs = [r["error"] for r in res if "error" in r]
    if errs:
        print(json.dumps({"error": errs[0], "failed": len(errs)}))
        return 1
    dec = sum(r["tokens"] - 1 for r in res)
    span = max(r["end"] for r in res) - min(r["first"] for r in res)
    per = [(r["tokens"] - 1) / (r["end"] - r["first"]) for r in res if r["end"] > r["first"]]
    ttft = [(r["first"] - r["t0"]) * 1e3 for r in res]
    # steady state: from the last stream's first token to the first stream's
    # end every stream is decoding; the text events in that window over its
    # length (an event may carry more than one token: never an overcount)
    w0, w1 = max(r["first"] for r in res), min(r["end"] for r in res)
    inwin = sum(sum(1 for t in r["times"] if w0 < t <= w1) for r in res)
    print(json.dumps({"concurrency": conc, "tokens": sum(r["tokens"] for r in res),
                      "aggregate_tok_s": dec / span if span > 0 else 0,
                      "per_stream_tok_s": sum(per) / len(per) if per else 0,
                      "steady_tok_s": inwin / (w1 - w0) if w1 > w0 else 0, "steady_s": max(0.0, w1 - w0),
                      "ttft_p50_ms": pct(ttft, 50), "ttft_p99_ms": pct(ttft, 99),
                      "wall_s": max(r["end"] for r in res) - min(r["t0"] for r in res)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
