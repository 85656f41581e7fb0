#!/usr/bin/env bash
# agimport --dry-run: every check of an import, a report of what would be
# staged, nothing written but the audit record; a replay exits 5.
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/deploy/lib-deploy.sh"
cd "$WORK" || exit 1
keygen k; keygen other
mkbundle app 3 k.key b3 || { echo "Bail out! build failed"; exit 1; }
mkbundle app 4 k.key b4 || { echo "Bail out! build failed"; exit 1; }
mkbundle app 5 other.key b5other || { echo "Bail out! build failed"; exit 1; }
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
snapshot() { (cd "$R" && find slots staging -mindepth 1 | sort; cat state.json | $PY -c 'import json,sys; s=json.load(sys.stdin); s.pop("generation"); s.pop("audit_head"); print(json.dumps(s, sort_keys=True))'); }
snapshot > before
lines0=$(wc -l < "$R/audit.log")

check "dry run of a new bundle exits 0" "$AGIMPORT" b3 --root "$R" --dry-run
last_output > dr.out
if grep -q "would be staged into slot blue (now empty)" dr.out && grep -q "nothing staged" dr.out; then
	ok "it reports what would be staged where"
else not_ok "dry-run report"; sed 's/^/#   /' dr.out; fi
snapshot > after
if cmp -s before after; then ok "no slot, staging directory or state changed"; else not_ok "dry run changed the root"; diff before after | sed 's/^/#   /'; fi
if [ "$(st 's["slots"]["blue"]["state"]')" = empty ] && [ "$(st 's["channel"]')" = None ]; then
	ok "status: blue still empty, channel not pinned"
else not_ok "status after dry run"; fi
if [ "$(wc -l < "$R/audit.log")" = $((lines0 + 1)) ] &&
	tail -1 "$R/audit.log" | $PY -c 'import json,sys; o=json.load(sys.stdin); assert o["action"] == "import-dry-run" and o["result"] == "ok" and o["version"] == 3, o'; then
	ok "exactly one audit record: import-dry-run ok"
else not_ok "audit record of the dry run"; tail -2 "$R/audit.log" | sed 's/^/#   /'; fi
check "audit chain intact after the dry run" "$AGCTL" --root "$R" audit verify

"$AGIMPORT" b3 --root "$R" --dry-run --json > dr.json 2>dr.err
if $PY -c '
import json; o = json.load(open("dr.json"))
assert o["dry_run"] is True and o["staged"] is False and o["bundle"] == "app" and o["version"] == 3
assert o["slot"] == "blue" and o["replaces"]["state"] == "empty" and o["replaces"]["bundle"] is None
assert o["need_bytes"] > 0 and o["free_bytes"] > o["need_bytes"]'; then
	ok "--dry-run --json: one object (slot, replaces, space)"
else not_ok "--dry-run --json"; sed 's/^/#   /' dr.json dr.err; fi

expect_exit 3 "dry run of a bundle signed by an untrusted key: exit 3" "$AGIMPORT" b5other --root "$R" --dry-run
if tail -1 "$R/audit.log" | grep -q '"action":"import-dry-run".*"result":"refused"'; then ok "... audited as a refused dry run"; else not_ok "untrusted dry-run audit"; fi
cp -a b4 b4missing; rm b4missing/vol-00001.agv
expect_exit 3 "dry run with a volume missing: the file check fails" "$AGIMPORT" b4missing --root "$R" --dry-run

# Stage and promote v3, then a replay of v3 and a downgrade are refused.
"$AGIMPORT" b3 --root "$R" >/dev/null 2>&1 && "$AGCTL" --root "$R" promote >/dev/null || { echo "Bail out! import failed"; exit 1; }
snapshot > before
expect_exit 5 "dry run of the replayed version 3: exit 5 (policy)" "$AGIMPORT" b3 --root "$R" --dry-run
if last_output | grep -q "not above the last accepted"; then ok "... saying why"; else not_ok "replay reason"; last_output | sed 's/^/#   /'; fi
snapshot > after
if cmp -s before after && [ "$(st 's["slots"]["green"]["state"]')" = empty ]; then ok "nothing staged by the refused dry run"; else not_ok "refused dry run staged something"; diff before after | sed 's/^/#   /'; fi
check "dry run of version 4 passes" "$AGIMPORT" b4 --root "$R" --dry-run
if last_output | grep -q "would be staged into slot green (now empty)"; then ok "... into the idle slot green"; else not_ok "slot of v4"; last_output | sed 's/^/#   /'; fi
"$AGIMPORT" b4 --root "$R" >/dev/null 2>&1 && "$AGCTL" --root "$R" promote >/dev/null
# Inside the validation window blue is the rollback target: refused as the import would be.
mkbundle app 6 k.key b6
expect_exit 5 "dry run inside the validation window refuses to overwrite the rollback target" "$AGIMPORT" b6 --root "$R" --dry-run
if last_output | grep -q "rollback target"; then ok "... naming the rollback target"; else not_ok "window reason"; last_output | sed 's/^/#   /'; fi
check "with --force the dry run passes and names what it replaces" "$AGIMPORT" b6 --root "$R" --dry-run --force
if last_output | grep -q "slot blue (now previous: app stable v3)"; then ok "... blue, holding v3"; else not_ok "replaces text"; last_output | sed 's/^/#   /'; fi
expect_exit 2 "--dry-run with --stream: usage" "$AGIMPORT" --stream --dry-run --root "$R"
check "audit chain intact at the end" "$AGCTL" --root "$R" audit verify
done_testing
