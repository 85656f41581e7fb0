#!/bin/bash
# kill -9 at every named step of import, promote and rollback, and at random
# moments during imports: afterwards the active slot is intact and serving,
# the state is consistent, the audit chain verifies, and a re-run completes.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-deploy.sh"
cd "$WORK"
export AGKIT_CHECKPOINT_BYTES=1048576
keygen k
mkbundle app 1 k.key b1
# v2 is big enough for checkpoints and for random kills to land mid-extraction.
mkdir -p big && printf 'weights of app v2\n' > big/weights.bin && head -c 24M /dev/urandom > big/blob.bin
echo '{"name":"app","channel":"stable","version":2,"artifacts":[{"type":"files","name":"model","path":"big"}]}' > big.json
"$AGPACK" build big.json --key k.key --out b2 --chunk-size 256K >/dev/null 2>&1

# Base states: A = v1 active; B = A plus v2 staged; C = v2 active, v1 previous.
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root "$R" >/dev/null && "$AGCTL" --root "$R" promote >/dev/null
cp -a "$R" base-A
"$AGIMPORT" b2 --root "$R" >/dev/null
cp -a "$R" base-B
"$AGCTL" --root "$R" promote >/dev/null
cp -a "$R" base-C
blobsum=$(sha256sum big/blob.bin | cut -c1-64)

# consistent WHAT: the invariants after a crash (status runs recovery first).
consistent() {
	local what=$1 a v link
	if ! "$AGCTL" --root "$R" status --json > st.json 2> st.err; then not_ok "$what: status after the crash"; sed 's/^/#   /' st.err; return; fi
	a=$($PY -c 'import json; s=json.load(open("st.json")); print(s["active"])')
	v=$($PY -c 'import json; s=json.load(open("st.json")); print(s["slots"][s["active"]]["version"])')
	link=$(readlink "$R/active")
	if [ "$link" = "slots/$a" ] && [ "$(active_content | head -1)" = "weights of app v$v" ]; then
		ok "$what: active slot $a intact and serving v$v"
	else
		not_ok "$what: active slot broken (link $link, state $a v$v, content $(active_content | head -1))"
	fi
	if [ "$v" = 2 ] && [ "$(sha256sum "$R/active/model/blob.bin" | cut -c1-64)" != "$blobsum" ]; then not_ok "$what: v2 content damaged"; fi
	if "$AGCTL" --root "$R" audit verify >/dev/null 2>&1; then ok "$what: audit chain intact"; else not_ok "$what: audit chain broken"; fi
	if $PY -c 'import json,sys; s=json.load(open("st.json")); sys.exit(any(x["state"] == "importing" for x in s["slots"].values()))'; then :; else not_ok "$what: a slot is left importing"; fi
}
crash() { # crash BASE STEP CMD...: from BASE, run CMD with a crash at STEP; expect SIGKILL
	local base=$1 step=$2; shift 2
	rm -rf "$R" && cp -a "$base" "$R"
	(AGKIT_CRASH_AT=$step "$@" >/dev/null 2>&1)
	local rc=$?
	[ $rc = 137 ] && ok "$step: killed" || not_ok "$step: killed (exit $rc; the step was never reached)"
}

for step in import:verified import:intent extract:checkpoint extract:before-rename extract:after-rename \
            import:extracted commit:saved audit:appended; do
	crash base-A "$step" "$AGIMPORT" b2 --root "$R"
	consistent "$step"
	check "$step: active is still v1" test "$(active_content)" = "weights of app v1"
	"$AGIMPORT" b2 --root "$R" > rerun.out 2>&1
	rc=$?
	if [ "$step" = commit:saved ] || [ "$step" = audit:appended ]; then
		# The import had completed: a re-run is a replay and is refused by the floor.
		[ $rc = 5 ] && ok "$step: import had completed (replay refused)" || not_ok "$step: re-run exit $rc"
	else
		[ $rc = 0 ] && ok "$step: re-run completes" || { not_ok "$step: re-run completes (exit $rc)"; sed 's/^/#   /' rerun.out; }
	fi
	[ "$step" = extract:checkpoint ] && { grep -q "(resumed)" rerun.out && ok "$step: re-run resumed from the checkpoint" || not_ok "$step: re-run resumed from the checkpoint"; }
	check "$step: v2 staged" test "$(st 's["slots"]["green"]["state"], s["slots"]["green"]["version"]')" = "staged 2"
	consistent "$step (after re-run)"
done

for step in promote:intent promote:switched promote:hooked commit:saved audit:appended; do
	crash base-B "$step" "$AGCTL" --root "$R" promote
	consistent "$step"
	if [ "$(st 's["active"]')" = green ]; then
		ok "$step: promote had completed"
	else
		check "$step: re-run of promote completes" "$AGCTL" --root "$R" promote
	fi
	check "$step: v2 active" test "$(active_content)" = "weights of app v2"
	consistent "$step (after re-run)"
done

for step in rollback:intent rollback:switched rollback:hooked commit:saved audit:appended; do
	crash base-C "$step" "$AGCTL" --root "$R" rollback
	consistent "$step"
	check "$step: rollback finished: v1 active, green bad" test "$(st 's["active"], s["slots"]["green"]["state"]')" = "blue bad"
	check "$step: v1 serving" test "$(active_content)" = "weights of app v1"
done

# Random moments during imports.
resumed=0
for i in $(seq 1 ${CRASH_RANDOM:-40}); do
	rm -rf "$R" && cp -a base-A "$R"
	"$AGIMPORT" b2 --root "$R" >/dev/null 2>&1 & pid=$!
	sleep "0.$((RANDOM % 40))"
	{ kill -9 $pid; wait $pid; } 2>/dev/null
	out=$(consistent "random kill $i" | grep '^not ok' || true)
	[ -z "$out" ] && ok "random kill $i: consistent" || { not_ok "random kill $i: consistent"; echo "$out"; }
	if "$AGIMPORT" b2 --root "$R" > rerun.out 2>&1 || grep -Eq "not above the (last accepted|staged)" rerun.out; then
		ok "random kill $i: re-run completes"
	else
		not_ok "random kill $i: re-run completes"; sed 's/^/#   /' rerun.out
	fi
	grep -q "(resumed)" rerun.out && resumed=$((resumed + 1))
	[ "$(active_content)" = "weights of app v1" ] || not_ok "random kill $i: active changed"
done
diag "$resumed random kills were resumed from a checkpoint"

# Random moments during promote, rollback and cycle (cycle: check + promote;
# these bundles carry no health suite, which this root is told to accept).
for base in base-A base-B base-C; do
	$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['require_health_suite']=False; json.dump(c,open(sys.argv[1],'w'))" "$base/config.json"
done
random_kills() { # random_kills BASE COUNT CMD...: kill CMD at random moments; check, finish, check
	local base=$1 count=$2 i pid; shift 2
	for i in $(seq 1 "$count"); do
		rm -rf "$R" && cp -a "$base" "$R"
		"$@" >/dev/null 2>&1 & pid=$!
		sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
		{ kill -9 $pid; wait $pid; } 2>/dev/null
		out=$(consistent "$1 $2 kill $i" | grep '^not ok' || true)
		[ -z "$out" ] && ok "$* killed at random ($i): consistent" || { not_ok "$* killed at random ($i): consistent"; echo "$out"; }
		"$@" >/dev/null 2>&1 # finish (or find nothing left to do)
		out=$(consistent "$1 $2 rerun $i" | grep '^not ok' || true)
		[ -z "$out" ] && ok "$* re-run after the kill ($i): consistent" || { not_ok "$* re-run after the kill ($i)"; echo "$out"; }
	done
}
random_kills base-B ${CRASH_RANDOM_CYCLE:-25} "$AGCTL" --root "$R" cycle
check "after the cycles v2 ends up active" test "$(active_content)" = "weights of app v2"
random_kills base-B 15 "$AGCTL" --root "$R" promote
random_kills base-C 15 "$AGCTL" --root "$R" rollback
check "after the rollbacks v1 ends up active" test "$(active_content)" = "weights of app v1"
diag "sampled kill moments: 18 named steps, ${CRASH_RANDOM:-40} during import, ${CRASH_RANDOM_CYCLE:-25} during cycle, 15 during promote, 15 during rollback"
done_testing
