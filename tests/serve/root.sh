#!/bin/bash
# agserve --root R follows the deployment: it serves the active slot's model
# artifact, and after agctl promote / rollback switches R/active it loads
# the new slot and moves new requests there while a running stream finishes
# on the old model; a model that fails to load leaves the old one serving.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
keygen k
# v1 is a little larger and allows 4096 positions, so a long stream on it
# is still running when v2 takes over
$PY "$TESTS_DIR/runtime/gen_tiny.py" llama f32 m1 --dims 384,1024,4,6,2,267 >/dev/null
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); c["max_position_embeddings"]=4096; json.dump(c,open(sys.argv[1],"w"))' m1/config.json
$PY "$TESTS_DIR/runtime/gen_tiny.py" qwen2 f32 m2 --dims 64,128,2,4,2,267 >/dev/null
cp -r m1 m3 && echo '{"architectures": ["Nope"]}' > m3/config.json
pack() { # pack OUT VERSION MODEL_DIR
	printf '{"name":"llm","channel":"stable","version":%s,"artifacts":[{"type":"files","name":"model","path":"%s"}]}' \
		"$2" "$3" > "spec-$1.json"
	"$AGPACK" build "spec-$1.json" --key k.key --out "$1" >/dev/null 2>&1
}
check "pack v1, v2 and a v3 whose model cannot load" sh -c "$(declare -f pack); AGPACK='$AGPACK'; pack b1 1 m1 && pack b2 2 m2 && pack b3 3 m3"
check "init, import v1, promote" sh -c "'$AGCTL' --root '$R' init --pubkey k.pub && '$AGIMPORT' b1 --root '$R' && '$AGCTL' --root '$R' promote"

start_server srv.log --root "$R" --parallel 2 && ok "agserve --root starts" || { not_ok "agserve --root starts"; cat srv.log; done_testing; exit 1; }
health() { http GET /health >/dev/null; j 'r["status"], r["bundle"], r["channel"], r["version"], r["slot"]'; }
[ "$(health)" = "ok llm stable 1 blue" ] && ok "/health names bundle, channel, version 1, slot blue" || not_ok "health: $(cat resp)"
P="Once upon a time"
w1=$("$AGRUN" m1 --prompt "$P" -n 8 --threads 1 --no-eos 2>/dev/null)
w2=$("$AGRUN" m2 --prompt "$P" -n 8 --threads 1 --no-eos 2>/dev/null)
[ "$w1" != "$w2" ] && ok "the two models answer differently" || not_ok "models answer alike"
complete() { http POST /v1/completions "{\"model\":\"llm\",\"prompt\":\"$P\",\"max_tokens\":8,\"temperature\":0}" >/dev/null; j 'r["choices"][0]["text"]'; }
[ "$(complete)" = "$w1" ] && ok "v1 answers (model name = bundle name)" || not_ok "v1 answer: $(cat resp)"
check "the query log is R/query-audit.log, mode 0600" test "$(stat -c %a "$R/query-audit.log")" = 600

# a long stream runs while v2 is promoted
curl -sN "$BASE/v1/completions" -d '{"model":"llm","prompt":"x","max_tokens":2000,"temperature":0,"stream":true}' > s1 &
cpid=$!
check "import v2 while agserve runs (agserve holds no lock)" "$AGIMPORT" b2 --root "$R"
check "agctl promote v2" "$AGCTL" --root "$R" promote
for i in $(seq 100); do [ "$(health)" = "ok llm stable 2 green" ] && break; sleep 0.1; done
[ "$(health)" = "ok llm stable 2 green" ] && ok "after promote /health names v2 in green" || not_ok "health after promote: $(cat resp)"
kill -0 $cpid 2>/dev/null && ok "the stream started on v1 is still running after the switch" || not_ok "the stream ended before the switch: $(tail -c 300 s1)"
[ "$(complete)" = "$w2" ] && ok "new requests are answered by v2" || not_ok "v2 answer: $(cat resp)"
wait $cpid
tail -c 15 s1 | grep -q 'data: \[DONE\]' && ok "the stream that started on v1 finished" || not_ok "stream across the switch: $(tail -c 200 s1)"
grep -q "switched to llm v2 in slot green" srv.log && ok "the switch is logged" || not_ok "switch log: $(cat srv.log)"

check "agctl rollback" "$AGCTL" --root "$R" rollback --reason test
for i in $(seq 100); do [ "$(health)" = "ok llm stable 1 blue" ] && break; sleep 0.1; done
[ "$(health)" = "ok llm stable 1 blue" ] && ok "after rollback /health names v1 in blue" || not_ok "health after rollback: $(cat resp)"
[ "$(complete)" = "$w1" ] && ok "v1 answers again" || not_ok "v1 again: $(cat resp)"

check "import and promote v3 (its model cannot load)" sh -c "'$AGIMPORT' b3 --root '$R' --force && '$AGCTL' --root '$R' promote"
for i in $(seq 100); do grep -q "cannot load the model" srv.log && break; sleep 0.1; done
grep -q "slot switch to .*cannot load the model, still serving the previous one" srv.log && ok "the failed load is logged in one line" || not_ok "load failure log: $(cat srv.log)"
[ "$(health)" = "ok llm stable 1 blue" ] && ok "v1 keeps serving" || not_ok "health after failed load: $(cat resp)"
[ -n "$(j 'r.get("last_load_error", "")')" ] && ok "/health reports last_load_error" || not_ok "no last_load_error: $(cat resp)"
[ "$(complete)" = "$w1" ] && ok "requests still answered by v1" || not_ok "v1 after failed load: $(cat resp)"
http GET /metrics >/dev/null
grep -q '^agserve_model_load_failures_total 1$' resp && ok "agserve_model_load_failures_total 1" || not_ok "load failures metric: $(grep load_fail resp)"
grep -q '^agserve_model_info{bundle="llm",channel="stable",version="1",slot="blue"} 1$' resp && ok "agserve_model_info names v1" || not_ok "model_info: $(grep model_info resp)"
stop_server && ok "SIGTERM: exit 0" || not_ok "SIGTERM exit"
expect_exit 0 "the query log's chain is intact" "$AGCTL" audit verify --file "$R/query-audit.log"
grep -q '"version":2' "$R/query-audit.log" && grep -q '"version":1' "$R/query-audit.log" && ok "audit lines name the version that answered" || not_ok "audit versions"

# R/config.json's cpu_kernels picks the kernels agserve --root serves with
# (agctl's checks of R get the same: tests/health/limits.sh)
check "agctl rollback to v1 (the model that loads)" "$AGCTL" --root "$R" rollback --reason test
$PY -c 'import json,sys; c=json.load(open(sys.argv[1])); c["cpu_kernels"]="generic"; json.dump(c,open(sys.argv[1],"w"))' "$R/config.json"
unset AGRT_SIMD
start_server srv2.log --root "$R" && ok "agserve --root starts with cpu_kernels generic" || not_ok "start: $(cat srv2.log)"
grep -q "serving llm v1 from slot blue (cpu/generic)" srv2.log && ok "... and serves on the generic kernels" || not_ok "kernels: $(cat srv2.log)"
g1=$(AGRT_SIMD=generic "$AGRUN" m1 --prompt "$P" -n 8 --threads 1 --no-eos 2>/dev/null)
[ "$(complete)" = "$g1" ] && ok "... greedy output equals agrun's with AGRT_SIMD=generic" || not_ok "generic answer: $(cat resp) vs $g1"
stop_server && ok "SIGTERM: exit 0" || not_ok "SIGTERM exit"
AGRT_SIMD=avx2 start_server srv3.log --root "$R"
grep -q "serving llm v1 from slot blue (cpu/avx2)" srv3.log && ok "an AGRT_SIMD of agserve's own wins over cpu_kernels" || not_ok "kernels: $(cat srv3.log)"
stop_server
done_testing
