#!/bin/bash
# agserve driven by the official SDKs, unchanged: openai (chat, completions,
# models, streaming, logprobs, echo, stop, usage) and @anthropic-ai/sdk
# (messages, messages.stream() with its event sequence), a wrong key giving
# each SDK's AuthenticationError, 8 concurrent clients; greedy output equal to
# agrun's for the same prompt (chat: the template rendered by python3-jinja2
# with transformers' settings, tokenized as transformers does, without BOS).
# Needs node and tests/serve/node_modules (tests/serve/npm-install.sh); skips
# otherwise.
. "$(dirname "$0")/../lib.sh"
: "${AGRUN:?AGRUN must point at the agrun binary}"
: "${AGCTL:?AGCTL must point at the agctl binary}"
AGRUN=$(realpath "$AGRUN"); AGCTL=$(realpath "$AGCTL")
. "$(dirname "$0")/sdk-lib.sh"
need node curl
[ -d "$NODE_MODULES/openai" ] && [ -d "$NODE_MODULES/@anthropic-ai/sdk" ] ||
	skip_all "SDKs not installed: run tests/serve/npm-install.sh"
cd "$WORK"
N=12
check "small model with a ChatML template" $PY "$SERVE_DIR/mkmodel.py" m llama --dims 256,512,2,4,2
PROMPTS=("Hello there" "The capital of France is" "Once upon a time" "In the beginning"
	"A quick brown fox" "Serving models offline" "one two three four" "Air-gapped networks")
NL=96  # the concurrent requests: long enough to overlap
for i in "${!PROMPTS[@]}"; do
	agrun_expect m "${PROMPTS[$i]}" $N > "c$i.json" || not_ok "agrun on prompt $i"
	agrun_expect m "${PROMPTS[$i]}" $NL > "l$i.json" || not_ok "agrun on prompt $i, $NL tokens"
done
# Chat conversations; the Anthropic tests send c1 as system + messages.
cat > chats.json <<'JSON'
[{"messages": [{"role": "user", "content": "What is the capital of France?"}]},
 {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]},
 {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! x200"},
               {"role": "user", "content": "Count: one two"}]}]
JSON
chat_ref=none
if $PY -c 'import jinja2' 2>/dev/null; then
	chat_ref=jinja2
	$PY - m chats.json <<'PY' || not_ok "python3-jinja2 renders the template"
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
cfg = json.load(open(sys.argv[1] + "/tokenizer_config.json"))
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
t = env.from_string(cfg["chat_template"])
for i, c in enumerate(json.load(open(sys.argv[2]))):
    open(f"chat{i}.txt", "w").write(t.render(messages=c["messages"], add_generation_prompt=True,
                                              bos_token=cfg["bos_token"], eos_token=cfg["eos_token"]))
PY
fi
for i in 0 1 2; do
	$PY -c 'import json,sys; c=json.load(open("chats.json"))[int(sys.argv[1])]; c["add_generation_prompt"]=True; json.dump(c,open(sys.argv[2],"w"))' $i "chatreq$i.json"
	# The chat reference is agrun on the rendered prompt, tokenized as
	# transformers' apply_chat_template does (no special tokens added; the
	# template itself opens with bos_token).
	if "$AGRUN" m --render-chat "chatreq$i.json" > "render$i.txt" 2>/dev/null; then
		if [ $chat_ref = jinja2 ]; then
			check "agrun --render-chat equals python3-jinja2 (conversation $i)" cmp "render$i.txt" "chat$i.txt"
		fi
		"$AGRUN" m --prompt-file "render$i.txt" --no-special -n $N --json --device cpu --threads 2 > "chat$i.json" 2>/dev/null ||
			not_ok "agrun on rendered conversation $i"
	fi
done
[ -f chat0.json ] || diag "agrun --render-chat not available: chat greedy equality skipped"
$PY - $N $NL "${PROMPTS[@]}" > expect.json <<'PY'
import json, os, sys
n, nl, prompts = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
comp = []
for i, p in enumerate(prompts):
    r = json.load(open(f"c{i}.json"))
    comp.append({"prompt": p, "text": r["text"], "prompt_tokens": len(r["prompt_ids"]), "eos": r["hit_eos"],
                 "text_long": json.load(open(f"l{i}.json"))["text"]})
chats = json.load(open("chats.json"))
for i, c in enumerate(chats):
    if os.path.exists(f"chat{i}.json"):
        r = json.load(open(f"chat{i}.json"))
        c.update({"text": r["text"], "prompt_tokens": len(r["prompt_ids"]), "eos": r["hit_eos"]})
json.dump({"n": n, "n_long": nl, "completions": comp, "chats": chats}, sys.stdout, indent=1)
PY
keys_file keys alice sk-alice-0123456789 bob "sha256:$(printf 'sk-bob-secret' | sha256sum | cut -d' ' -f1)"
if ! serve_start s --model m --api-keys keys --audit audit.log --parallel 4 --threads 2 --ctx 256; then
	not_ok "agserve starts"; done_testing; exit
fi
ok "agserve --model starts with a keys file and an audit log"
check "/health answers 200" serve_wait_health "$URL_s" 60
AGSERVE_URL=$URL_s AGSERVE_KEY=sk-alice-0123456789 AGSERVE_KEY2=sk-bob-secret AGSERVE_MODEL=m \
	EXPECT=expect.json NODE_PATH=$NODE_MODULES timeout 300 node "$SERVE_DIR/sdk.mjs" > node.out 2> node.err
rc=$?
tap_from "" < node.out
[ $rc = 0 ] && ok "sdk.mjs finished (exit 0)" || { not_ok "sdk.mjs finished (exit $rc)"; sed 's/^/#   /' node.err | tail -20; }
expect_exit 0 "SIGTERM: agserve drains and exits 0" serve_stop s
lines=$(wc -l < audit.log 2>/dev/null || echo 0)
diag "query audit: $lines lines"
check "every request is in the query audit log (>= 40 lines)" test "$lines" -ge 40
check "the query audit names both keys" sh -c 'grep -q "\"alice\"" audit.log && grep -q "\"bob\"" audit.log'
check "the query audit chain verifies (agctl audit verify --file)" "$AGCTL" audit verify --file audit.log
check "no prompt text in the audit without --audit-content" sh -c '! grep -q "capital of France" audit.log'
done_testing
