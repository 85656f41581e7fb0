#!/usr/bin/env bash
# agctl status and audit verify without the lock: during another command,
# during a stream of writers, and as a non-root user (nobody).
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/deploy/lib-deploy.sh"
need flock
cd "$WORK" || exit 1
keygen k
mkbundle app 1 k.key b1 || { echo "Bail out! build failed"; exit 1; }
mkbundle app 2 k.key b2 || { echo "Bail out! build failed"; exit 1; }
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
"$AGIMPORT" b1 --root "$R" >/dev/null 2>&1 && "$AGCTL" --root "$R" promote >/dev/null || { echo "Bail out! import failed"; exit 1; }

# Another process holds the exclusive lock (as an import or a cycle does).
timeout -k 5 60 flock "$R/lock" sleep 30 &
holder=$!
on_exit "kill $holder 2>/dev/null; wait $holder 2>/dev/null"
for _ in $(seq 50); do flock -n "$R/lock" true 2>/dev/null || break; sleep 0.1; done
expect_exit 6 "(the lock is held: a writer without --wait exits 6)" "$AGCTL" --root "$R" mark-good
check "status while another command holds the lock" "$AGCTL" --root "$R" status
if last_output | grep -q "active: blue"; then ok "... shows the active slot"; else not_ok "status text"; fi
if [ "$(timeout -k 5 20 "$AGCTL" --root "$R" status --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["active"])')" = blue ]; then
	ok "status --json while the lock is held"
else not_ok "status --json under the lock"; fi
check "audit verify while the lock is held" timeout -k 5 20 "$AGCTL" --root "$R" audit verify
# --wait: the writer waits for the lock instead of failing.
start=$(date +%s.%N)
( sleep 2; kill $holder 2>/dev/null ) &
check "mark-good --wait succeeds once the lock is released" timeout -k 5 30 "$AGCTL" --root "$R" --wait mark-good
end=$(date +%s.%N)
if $PY -c "import sys; sys.exit(0 if $end - $start >= 1.5 else 1)"; then ok "... after waiting for it"; else not_ok "--wait did not wait ($start $end)"; fi
wait $holder 2>/dev/null

# A stream of writers (each dry run appends an audit record) while readers
# check the chain: every read is a consistent snapshot.
(
	for _ in $(seq 15); do "$AGIMPORT" b2 --root "$R" --dry-run --wait >/dev/null 2>&1; done
) &
writers=$!
on_exit "kill $writers 2>/dev/null"
bad=0 n=0
while kill -0 $writers 2>/dev/null; do
	n=$((n + 1))
	if ! out=$(timeout -k 5 20 "$AGCTL" --root "$R" audit verify 2>&1); then bad=$((bad + 1)); diag "$out"; fi
	timeout -k 5 20 "$AGCTL" --root "$R" status --json >/dev/null 2>&1 || bad=$((bad + 1))
done
wait $writers
if [ $bad = 0 ] && [ $n -gt 0 ]; then ok "audit verify and status during $n writer commits: all consistent"; else not_ok "$bad of $n reads failed during writes"; fi
check "audit verify after the writers" "$AGCTL" --root "$R" audit verify

# An import killed after recording its intent: a snapshot shows it pending;
# once the lock is free, status takes it and the recovery finishes it.
AGKIT_CRASH_AT=import:intent "$AGIMPORT" b2 --root "$R" >/dev/null 2>&1
timeout -k 5 60 flock "$R/lock" sleep 30 &
holder=$!
on_exit "kill $holder 2>/dev/null; wait $holder 2>/dev/null"
for _ in $(seq 50); do flock -n "$R/lock" true 2>/dev/null || break; sleep 0.1; done
if [ "$(st 's["pending"]')" = import ] && "$AGCTL" --root "$R" status | grep -q "^pending: import"; then
	ok "status under the lock: the interrupted import shown as pending"
else not_ok "pending import in the snapshot"; "$AGCTL" --root "$R" status | sed 's/^/#   /'; fi
kill $holder; wait $holder 2>/dev/null
if [ "$(st 's["pending"]')" = None ] && [ "$(st 's["slots"]["green"]["state"]')" != importing ]; then
	ok "status with the lock free: recovered, nothing pending"
else not_ok "status did not recover"; fi

# A non-root user: status reads world-readable files; the audit log is
# 0640, readable by the root's group (docs/OPERATIONS.md).
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	chmod 755 "$WORK"
	grp=$(id -gn nobody)
	as_nobody() { setpriv --reuid=nobody --regid="$grp" --clear-groups "$@"; }
	if as_nobody test -x "$AGCTL"; then
		check "status as nobody" as_nobody "$AGCTL" --root "$R" status
		if [ "$(as_nobody "$AGCTL" --root "$R" status --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["active"])')" = blue ]; then
			ok "status --json as nobody"
		else not_ok "status --json as nobody"; fi
		expect_exit 4 "audit verify as nobody, not in the root's group: permission denied (exit 4)" as_nobody "$AGCTL" --root "$R" audit verify
		chgrp "$grp" "$R/audit.log"
		check "audit verify as nobody once the audit log's group is nobody's" as_nobody "$AGCTL" --root "$R" audit verify
		# nobody never takes the lock: every read below is a snapshot, taken
		# while writers commit (each dry run appends a record).
		( for _ in $(seq 20); do "$AGIMPORT" b2 --root "$R" --dry-run --wait >/dev/null 2>&1; done ) &
		writers=$!
		bad=0 n=0
		while kill -0 $writers 2>/dev/null; do
			n=$((n + 1))
			if ! out=$(timeout -k 5 30 setpriv --reuid=nobody --regid="$grp" --clear-groups "$AGCTL" --root "$R" audit verify 2>&1); then
				bad=$((bad + 1)); diag "$out"
			fi
		done
		wait $writers
		if [ $bad = 0 ] && [ $n -gt 0 ]; then ok "audit verify as nobody (snapshots only) during 20 writer commits: $n reads, all consistent"; else not_ok "$bad of $n snapshot reads failed"; fi
		expect_exit 4 "a writer as nobody is refused (the lock is root's, 0600)" as_nobody "$AGCTL" --root "$R" mark-good
		check "the root is unchanged by nobody's attempts" "$AGCTL" --root "$R" audit verify
	else
		diag "nobody cannot run $AGCTL (its directory is not world-readable): skipping the non-root part"
	fi
else
	diag "not root, or no setpriv / nobody: skipping the non-root part"
fi
done_testing
