#!/bin/bash
# agserve driven by the official SDKs, unchanged: openai (chat, completions,
# models, streaming, logprobs, echo, stop, usage) and @anthropic-ai/sdk
# (messages, messages.stream() with its event sequence), a wrong key giving
# each SDK's AuthenticationError, 8 concurrent clients; greedy output equal to
# agrun's for the same prompt (chat: agrun --render-chat, itself compared with
# python3-jinja2 with transformers' settings; tokenized without added specials).
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
check "small model with a ChatML template" $PY "$SERVE_DIR/mkmodel.py" m llama --dims 256,512,2,4,2
sdk_expect m
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
