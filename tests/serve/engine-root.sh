#!/bin/bash
# agserve --root R where the active slot's model artifact holds engine.json:
# the external engine serves the slot (model name = bundle name), and when
# agctl promote switches to a slot with a plain model, the engine's process
# group is stopped once the old slot is no longer served.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
. "$(dirname "$0")/lib-serve.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
AGCTL=$(realpath "$AGCTL")
cd "$WORK"
keygen k
# v1: the artifact e/ is engine.json and the engine's model e/llm; v2: a plain model
mkdir e
$PY "$TESTS_DIR/serve/mkmodel.py" e/llm llama --dims 64,128,2,4,2 >/dev/null
engine_json e
$PY "$TESTS_DIR/runtime/gen_tiny.py" qwen2 f32 m2 --dims 64,128,2,4,2,267 >/dev/null
pack() { # pack OUT VERSION MODEL_DIR
	printf '{"name":"llm","channel":"stable","version":%s,"artifacts":[{"type":"files","name":"model","path":"%s"}]}' \
		"$2" "$3" > "spec-$1.json"
	"$AGPACK" build "spec-$1.json" --key k.key --out "$1" >/dev/null 2>&1
}
check "pack v1 (external engine) and v2 (plain model)" sh -c "$(declare -f pack); AGPACK='$AGPACK'; pack b1 1 e && pack b2 2 m2"
check "init, import v1, promote" sh -c "'$AGCTL' --root '$R' init --pubkey k.pub && '$AGIMPORT' b1 --root '$R' && '$AGCTL' --root '$R' promote"
start_server srv.log --root "$R"
engine_started "agserve --root starts the slot's engine"
for i in $(seq 50); do grep -q "from slot blue" srv.log && break; sleep 0.1; done
grep -q "^agserve: serving llm v1 from slot blue (external engine)$" srv.log && ok "the log names the external engine as what serves" || not_ok "serving line: $(grep serving srv.log)"
health() { http GET /health >/dev/null; j 'r["status"], r["bundle"], r["version"], r["slot"]'; }
[ "$(health)" = "ok llm 1 blue" ] && ok "/health names v1 in blue" || not_ok "health: $(cat resp)"
P="Once upon a time"
w1=$("$AGRUN" e/llm --prompt "$P" -n 8 --threads 1 --no-eos 2>/dev/null)
w2=$("$AGRUN" m2 --prompt "$P" -n 8 --threads 1 --no-eos 2>/dev/null)
complete() { http POST /v1/completions "{\"model\":\"llm\",\"prompt\":\"$P\",\"max_tokens\":8,\"temperature\":0}" >/dev/null; j 'r["choices"][0]["text"]'; }
[ -n "$w1" ] && [ "$(complete)" = "$w1" ] && ok "v1 answers through its engine (model name = bundle name)" || not_ok "v1 answer: $(cat resp) want '$w1'"
check "import and promote v2" sh -c "'$AGIMPORT' b2 --root '$R' >/dev/null && '$AGCTL' --root '$R' promote >/dev/null"
for i in $(seq 100); do [ "$(health)" = "ok llm 2 green" ] && break; sleep 0.1; done
[ "$(health)" = "ok llm 2 green" ] && ok "after promote /health names v2 in green" || not_ok "health after promote: $(cat resp)"
[ "$w1" != "$w2" ] && [ "$(complete)" = "$w2" ] && ok "v2 answers with the runtime" || not_ok "v2 answer: $(cat resp)"
gone=no
for i in $(seq 150); do kill -0 -- "-$epid" 2>/dev/null || { gone=yes; break; }; sleep 0.1; done
check "the old slot's engine process group is stopped after the switch" test "$gone" = yes
stop_server
check "SIGTERM: exit 0" test $? = 0
done_testing
