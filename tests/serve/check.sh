#!/bin/bash
# What the health check needs from /v1/completions (token-id prompts, echo
# with logprobs, max_tokens 0, return_tokens_as_token_ids), compared with
# agrun's teacher-forced logits of the same ids; then `agserve check` on a
# plain model directory (pass, damaged weights, swapped tokenizer) and on a
# directory whose engine.json runs a second agserve (pass, damaged model
# behind the engine, the engine's process group gone afterwards).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
tiny_model m
"$AGRUN" record m --out suite.json -n 8 >/dev/null 2>&1
check "a suite recorded from m" test -s suite.json
start_server srv.log --model m || { not_ok "agserve starts"; sed 's/^/#   /' srv.log; done_testing; exit 1; }
ok "agserve --model m listens"

IDS="1,40,77,5,200,13,99"
"$AGRUN" m --ids "$IDS" --dump-logits lg.bin --threads 1 >/dev/null 2>&1
code=$(http POST /v1/completions "{\"prompt\":[$IDS],\"echo\":true,\"max_tokens\":0,\"logprobs\":20,\"return_tokens_as_token_ids\":true}")
check "echo, logprobs 20, max_tokens 0, a token-id prompt: 200" test "$code" = 200
# The reference: log-softmax of agrun's rows (row i predicts ids[i+1]), written here from the definition.
cat > ref.py <<'EOF'
import json, sys
import numpy as np
ids = [int(x) for x in sys.argv[2].split(",")]
lg = np.fromfile(sys.argv[1], "<f4").reshape(len(ids), -1).astype(np.float64)
lp = lg - lg.max(1, keepdims=True)
lp -= np.log(np.exp(lp).sum(1, keepdims=True))
r = json.load(open(sys.argv[3]))
c = r["choices"][0]
L = c["logprobs"]
assert c["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 0, r
assert L["tokens"] == ["token_id:%d" % i for i in ids], L["tokens"]
assert L["token_logprobs"][0] is None and L["top_logprobs"][0] is None
worst = 0
for i in range(1, len(ids)):
    want = lp[i - 1]
    worst = max(worst, abs(L["token_logprobs"][i] - want[ids[i]]))
    top = L["top_logprobs"][i]
    assert len(top) == 20, len(top)
    ref = sorted(range(len(want)), key=lambda v: -want[v])[:20]
    got = sorted(top, key=lambda k: -top[k])
    # the same ids, best first (ties within float noise may swap)
    for k, v in zip(got, ref):
        g = int(k.split(":")[1])
        assert g == v or abs(want[g] - want[v]) < 1e-5, (i, got, ref)
        worst = max(worst, abs(top[k] - want[g]))
assert worst < 1e-4, worst
print("max |diff| %.2e" % worst)
EOF
check "prompt logprobs and top-20 equal agrun's teacher-forced logits" $PY ref.py lg.bin "$IDS" resp
code=$(http POST /v1/completions "{\"prompt\":[$IDS],\"echo\":true,\"max_tokens\":0}")
[ "$code" = 200 ] && [ "$(j 'r["choices"][0]["logprobs"] is None')" = True ] && ok "echo without logprobs: no logprobs" || not_ok "echo only: $code $(cat resp)"
want=$("$AGRUN" m --ids "$IDS" -n 6 --no-eos --raw --threads 1 2>/dev/null)
code=$(http POST /v1/completions "{\"prompt\":[$IDS],\"max_tokens\":6,\"temperature\":0,\"logprobs\":0,\"ignore_eos\":true,\"return_tokens_as_token_ids\":true}")
got=$(j '" ".join(t.split(":")[1] for t in r["choices"][0]["logprobs"]["tokens"])')
[ "$code" = 200 ] && [ -n "$want" ] && [ "$got" = "$want" ] && ok "greedy from token ids equals agrun --ids ($got)" || not_ok "greedy ids: $code got '$got' want '$want'"
code=$(http POST /v1/completions "{\"prompt\":[[$IDS]],\"echo\":true,\"max_tokens\":2,\"temperature\":0,\"logprobs\":3,\"ignore_eos\":true,\"return_tokens_as_token_ids\":true}")
[ "$code" = 200 ] && [ "$(j 'len(r["choices"][0]["logprobs"]["tokens"]), len(r["choices"][0]["logprobs"]["top_logprobs"][-1])')" = "9 3" ] &&
	ok "echo with generation: 7 prompt + 2 generated tokens, 3 alternatives (a nested id list)" || not_ok "echo+gen: $code $(cat resp)"
text=$("$AGRUN" m --tokenize "The capital of France is" 2>/dev/null | tr ' ' ',')
code=$(http POST /v1/completions '{"prompt":"The capital of France is","echo":true,"max_tokens":0,"logprobs":0,"return_tokens_as_token_ids":true}')
got=$(j '",".join(t.split(":")[1] for t in r["choices"][0]["logprobs"]["tokens"])')
[ "$code" = 200 ] && [ "$got" = "$text" ] && ok "a text prompt's echoed token ids are agrun --tokenize's" || not_ok "text ids: got $got want $text"
# echo while streaming: the prompt first (its scores with it), then the new
# tokens; joined, the same as the whole answer
code=$(http POST /v1/completions "{\"prompt\":[$IDS],\"echo\":true,\"max_tokens\":3,\"temperature\":0,\"logprobs\":2,\"ignore_eos\":true}")
cp resp whole.json
curl -sN "$BASE/v1/completions" -H 'content-type: application/json' -d "{\"prompt\":[$IDS],\"echo\":true,\"max_tokens\":3,\"temperature\":0,\"logprobs\":2,\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":true}}" > echo.sse
$PY - echo.sse whole.json <<'PY' && ok "streamed echo: the prompt (with its logprobs) first, joined equal to the whole answer; usage in every chunk" || { not_ok "streamed echo"; sed 's/^/#   /' echo.sse | head -8; }
import json, sys
chunks = [json.loads(l[6:]) for l in open(sys.argv[1]) if l.startswith("data: {")]
whole = json.load(open(sys.argv[2]))["choices"][0]
text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
toks = sum((c["choices"][0]["logprobs"]["tokens"] for c in chunks if c["choices"] and c["choices"][0]["logprobs"]), [])
lps = sum((c["choices"][0]["logprobs"]["token_logprobs"] for c in chunks if c["choices"] and c["choices"][0]["logprobs"]), [])
first = chunks[0]["choices"][0]
assert first["logprobs"]["token_logprobs"][0] is None and len(first["logprobs"]["tokens"]) == 7, first
assert text == whole["text"], (text, whole["text"])
assert toks == whole["logprobs"]["tokens"], (toks, whole["logprobs"]["tokens"])
assert all((a is None and b is None) or abs(a - b) < 1e-5 for a, b in zip(lps, whole["logprobs"]["token_logprobs"]))
use = [c["usage"]["completion_tokens"] for c in chunks]
assert all(c.get("usage") for c in chunks) and use == sorted(use) and use[-1] == 3, use
PY
bad() { # bad BODY PARAM: 400 naming PARAM
	code=$(http POST /v1/completions "$1")
	[ "$code" = 400 ] && [ "$(j 'r["error"]["param"]')" = "$2" ]
}
check "logprobs 21: 400" bad '{"prompt":"x","logprobs":21}' logprobs
check "max_tokens 0 without echo: 400" bad '{"prompt":"x","max_tokens":0}' max_tokens
check "max_tokens 0 streamed: 400" bad '{"prompt":"x","max_tokens":0,"echo":true,"stream":true}' max_tokens
check "a token id past the vocabulary: 400" bad '{"prompt":[1,267],"max_tokens":1}' prompt
check "a negative token id: 400" bad '{"prompt":[1,-2],"max_tokens":1}' prompt
check "a mixed prompt list: 400" bad '{"prompt":[1,"a"],"max_tokens":1}' prompt
stop_server

# agserve check on a plain model directory
expect_exit 0 "agserve check passes on the recorded model" "$AGSERVE" check --model m --suite suite.json --json --threads 1
last_output > rep.json
check "its report has agrun check's shape" $PY -c '
import json,sys; r=json.loads(open(sys.argv[1]).read())
assert r["pass"] is True and r["latency_only"] is False and r["failures"] == [], r
assert r["ttft_ms"] > 0 and r["decode_tok_s"] > 0 and len(r["prompts"]) == 5, r
assert all(p["pass"] and p["tokenizer_ok"] and p["max_kl"] < 1e-6 and p["bounded_ids"] == 0 for p in r["prompts"]), r' rep.json
$PY "$TESTS_DIR/health/corrupt_model.py" m noisy noise
$PY "$TESTS_DIR/health/corrupt_model.py" m swapped tokenizer
expect_exit 1 "damaged weights: agserve check fails (exit 1)" "$AGSERVE" check --model noisy --suite suite.json --threads 1
a=$("$AGRUN" check noisy --suite suite.json 2>/dev/null | sed -n 2p)
[ -n "$a" ] && last_output | grep -qF -- "$a" && ok "with agrun check's words for the same step:$a" || { not_ok "the same failure as agrun: '$a'"; last_output | sed 's/^/#   /'; }
expect_exit 1 "a swapped tokenizer: agserve check fails" "$AGSERVE" check --model swapped --suite suite.json --threads 1
last_output > rep.txt
check "naming the tokenizer" grep -q "the tokenizer encodes the text to other ids than recorded" rep.txt
expect_exit 3 "not a suite: exit 3" "$AGSERVE" check --model m --suite m/config.json
expect_exit 2 "no --suite: exit 2" "$AGSERVE" check --model m
# The suite's latency budgets, read by agrun check and agserve check alike:
# budgets no host meets fail both, on latency only, naming both budgets.
$PY -c "import json; s=json.load(open('suite.json')); s['budgets'] = {'ttft_ms': 1e-6, 'decode_tok_s': 1e12}; json.dump(s, open('suite-tight.json', 'w'))"
"$AGRUN" check m --suite suite-tight.json --json > tight-agrun.json 2>/dev/null
check "agrun check: budgets no host meets fail (exit 1)" test $? = 1
"$AGSERVE" check --model m --suite suite-tight.json --json --threads 1 > tight-agserve.json 2>/dev/null
check "agserve check: the same suite fails too (exit 1)" test $? = 1
check "both on latency only, naming the time to first token and the decode budgets" $PY -c '
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    fl = r["failures"]
    assert r["pass"] is False and r["latency_only"] is True and len(fl) == 2, (f, r)
    assert fl[0].startswith("time to first token ") and fl[0].endswith(" ms is over the suite\x27s budget of 0.0 ms"), (f, fl)
    assert fl[1].startswith("decode ") and fl[1].endswith(" tok/s is under the suite\x27s budget of 1000000000000.0 tok/s"), (f, fl)
' tight-agrun.json tight-agserve.json

# through an external engine (a second agserve; the wrapper records its pid)
mkengine() { # mkengine DIR MODEL
	mkdir "$1"
	cp -r "$2" "$1/llm"
	printf '{"command": ["sh", "-c", "echo $$ > %s/%s.pid; exec \\"$0\\" \\"$@\\"", "%s", "--model", "{model}/{name}", "--listen", "127.0.0.1:{port}", "--threads", "1"], "ready_path": "/health", "ready_timeout_s": 60}\n' \
		"$WORK" "$1" "$AGSERVE" > "$1/engine.json"
}
mkengine eng m
mkengine engbad noisy
expect_exit 0 "agserve check through an engine (engine.json) passes" "$AGSERVE" check --model eng --name llm --suite suite.json --json
last_output > rep.json
check "the report names the external engine" grep -q '"device": "external engine"' rep.json
epid=$(cat eng.pid 2>/dev/null)
[ -n "$epid" ] && ! kill -0 -- "-$epid" 2>/dev/null && ok "the engine's process group is gone afterwards" || not_ok "engine group $epid still there"
expect_exit 1 "a damaged model behind the engine fails the check" "$AGSERVE" check --model engbad --name llm --suite suite.json
last_output > rep.txt
check "on its divergence" grep -q "top-8 divergence" rep.txt
epid=$(cat engbad.pid 2>/dev/null)
[ -n "$epid" ] && ! kill -0 -- "-$epid" 2>/dev/null && ok "that engine's process group is gone too" || not_ok "engine group $epid still there"
done_testing
