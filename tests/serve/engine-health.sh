#!/bin/bash
# agctl health and cycle for a slot whose model artifact holds engine.json:
# the golden-prompt check runs through the engine (agserve check; here the
# engine is a second agserve) and not through agrun, which this test makes
# unusable; a good model behind the engine is promoted, a damaged one is
# marked bad; each check's engine process group is gone afterwards.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
. "$(dirname "$0")/lib-serve.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
AGCTL=$(realpath "$AGCTL")
cd "$WORK"
keygen k
tiny_model good
$PY "$TESTS_DIR/health/corrupt_model.py" good noisy noise
"$AGRUN" record good --out suite.json -n 8 >/dev/null 2>&1
check "a suite recorded from the good model" test -s suite.json
# e-NAME/: engine.json and the engine's model in e-NAME/llm; the wrapper
# shell records the engine's pid (its process group) on every start
mkengine() {
	mkdir "e-$1"
	cp -r "$1" "e-$1/llm"
	printf '{"command": ["sh", "-c", "echo $$ >> %s/%s.pids; exec \\"$0\\" \\"$@\\"", "%s", "--model", "{model}/{name}", "--listen", "127.0.0.1:{port}", "--threads", "1"], "ready_path": "/health", "ready_timeout_s": 60}\n' \
		"$WORK" "$1" "$AGSERVE" > "e-$1/engine.json"
}
mkengine good
mkengine noisy
pack() { # pack OUT VERSION DIR
	printf '{"name":"llm","channel":"stable","version":%s,"artifacts":[{"type":"files","name":"model","path":"%s","health":"suite.json"}]}' \
		"$2" "$3" > "spec-$1.json"
	"$AGPACK" build "spec-$1.json" --key k.key --out "$1" >/dev/null 2>&1
}
check "pack v1 (good model behind an engine) and v2 (damaged model behind an engine)" sh -c "$(declare -f pack); AGPACK='$AGPACK'; pack b1 1 e-good && pack b2 2 e-noisy"
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
# Latency is not what this test is about: the tiny model's decode rate through
# HTTP swings with the host's load, so only a 10x slowdown counts here.
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['latency_regression']=0.9; json.dump(c,open(sys.argv[1],'w'))" "$R/config.json"
# agctl init sets a data limit (75% of RAM) that AddressSanitizer's shadow memory exceeds
if ldd "$AGSERVE" 2>/dev/null | grep -q libasan || grep -q __asan_init "$AGSERVE"; then
	$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['health_memory_limit_mb']=0; json.dump(c,open(sys.argv[1],'w'))" "$R/config.json"
fi
# agrun must not be what checks these slots
export AGKIT_AGRUN=/nonexistent/agrun AGKIT_AGSERVE="$AGSERVE"
groups_gone() { # groups_gone PIDFILE: every recorded engine process group has ended
	local p
	[ -s "$1" ] || return 1
	for p in $(cat "$1"); do kill -0 -- "-$p" 2>/dev/null && return 1; done
	return 0
}
check "import v1" "$AGIMPORT" b1 --root "$R"
"$AGCTL" --root "$R" health > h.out 2>&1
rc=$?
[ $rc = 0 ] && grep -q "passed" h.out && ok "agctl health passes v1 through its engine" || { not_ok "agctl health v1 (exit $rc)"; sed 's/^/#   /' h.out; }
"$AGCTL" --root "$R" cycle > cyc.out 2>&1
rc=$?
[ $rc = 0 ] && grep -q "staged .* passed .*; promoted" cyc.out && ok "agctl cycle promotes v1 (checked through the engine)" || { not_ok "cycle v1 (exit $rc)"; sed 's/^/#   /' cyc.out; }
[ "$(st 's["slots"][s["active"]]["version"]')" = 1 ] && ok "v1 is active" || not_ok "v1 active"
n=$(wc -l < good.pids)
[ "$n" -ge 2 ] && ok "each check started the engine ($n starts)" || not_ok "engine starts: $n"
check "and each check's engine process group is gone" groups_gone good.pids
check "import v2" "$AGIMPORT" b2 --root "$R"
"$AGCTL" --root "$R" cycle > cyc.out 2>&1
rc=$?
[ $rc = 7 ] && grep -q "refused: wrong answers: prompt .*top-8 divergence" cyc.out && ok "agctl cycle refuses v2: wrong answers (exit 7)" || { not_ok "cycle v2 (exit $rc)"; sed 's/^/#   /' cyc.out; }
[ "$(st 's["slots"][[k for k in s["slots"] if k != s["active"]][0]]["state"]')" = bad ] && ok "v2's slot is marked bad" || not_ok "v2 bad"
[ "$(st 's["slots"][s["active"]]["version"]')" = 1 ] && ok "v1 still active" || not_ok "v1 still active"
check "v2's engine process group is gone" groups_gone noisy.pids
# agserve is found like agrun: a relative config path is refused
unset AGKIT_AGSERVE
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['agserve_path']='agserve'; json.dump(c,open(sys.argv[1],'w'))" "$R/config.json"
"$AGCTL" --root "$R" health > h.out 2>&1
grep -q "config.json agserve_path is not an absolute path" h.out && ok "a relative agserve_path is refused" || { not_ok "relative agserve_path"; sed 's/^/#   /' h.out; }
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['agserve_path']=sys.argv[2]; json.dump(c,open(sys.argv[1],'w'))" "$R/config.json" "$AGSERVE"
expect_exit 0 "config.json agserve_path (absolute) is used" "$AGCTL" --root "$R" health
done_testing
