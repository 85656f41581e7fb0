#!/bin/bash
# Blue/green slots, promote/rollback, anti-rollback, m-of-n, validation window,
# switch hook, lock, expiry, trust rotation and audit tampering.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-deploy.sh"
cd "$WORK"
keygen k1; keygen k2; keygen k3; keygen evil
for v in 1 2 3 4; do mkbundle app $v k1.key b$v; done

check "init" "$AGCTL" --root "$R" init --pubkey k1.pub
expect_exit 4 "init twice is refused" "$AGCTL" --root "$R" init --pubkey k1.pub
check "status on a fresh root" sh -c "'$AGCTL' --root '$R' status | grep -q 'active: (none)'"
check "import v1" "$AGIMPORT" b1 --root "$R"
check "v1 staged in blue" test "$(st 's["slots"]["blue"]["state"]')" = staged
expect_exit 4 "rollback with nothing to roll back to" "$AGCTL" --root "$R" rollback
check "promote v1" "$AGCTL" --root "$R" promote
check "blue active, serving v1" sh -c "test \"\$(cat '$R/active/model/weights.bin')\" = 'weights of app v1'"
check "agimport stage v2 (explicit verb)" "$AGIMPORT" stage b2 --root "$R"
check "v2 went to the idle slot green" test "$(st 's["slots"]["green"]["state"]')" = staged
check "active slot untouched by the import" test "$(active_content)" = "weights of app v1"
check "promote v2" "$AGCTL" --root "$R" promote
check "green active, blue previous" test "$(st 's["active"], s["previous"], s["slots"]["blue"]["state"]')" = "green blue previous"
check "inside the validation window" test "$(st 's["in_validation_window"]')" = True
expect_exit 5 "import into the rollback target inside the window is refused" "$AGIMPORT" b3 --root "$R"
last_output | grep -q "validation window" && ok "message explains the window" || not_ok "message explains the window"
check "previous slot content intact" test "$(cat "$R/slots/blue/model/weights.bin")" = "weights of app v1"
check "rollback" "$AGCTL" --root "$R" rollback --reason "test rollback"
check "blue active again, serving v1" test "$(active_content)" = "weights of app v1"
check "green marked bad with the reason" test "$(st 's["slots"]["green"]["state"], s["slots"]["green"]["reason"]')" = "bad test rollback"
check "import v3 into the bad slot" "$AGIMPORT" b3 --root "$R"
check "promote v3" "$AGCTL" --root "$R" promote
check "serving v3" test "$(active_content)" = "weights of app v3"
check "mark-good ends the window" "$AGCTL" --root "$R" mark-good
check "import v4 into the old previous slot after mark-good" "$AGIMPORT" b4 --root "$R"
check "mark-bad the staged slot" "$AGCTL" --root "$R" mark-bad
check "staged v4 is bad" test "$(st 's["slots"]["blue"]["state"]')" = bad
expect_exit 4 "promote with nothing staged" "$AGCTL" --root "$R" promote

# Anti-rollback: replays and downgrades.
expect_exit 5 "replayed v2 is refused" "$AGIMPORT" b2 --root "$R"
last_output | grep -q "not above the last accepted" && ok "message names the floor" || not_ok "message names the floor"
expect_exit 5 "same version as the active v3 replayed is refused" "$AGIMPORT" b3 --root "$R"
# The floor rises at promotion: v4, staged and refused, does not block v4 itself.
check "v4, marked bad, never promoted, may be staged again" "$AGIMPORT" b4 --root "$R"
check "--allow-downgrade accepts v2" "$AGIMPORT" b2 --root "$R" --allow-downgrade
check "the downgrade is audited" grep -q '"version":2,"result":"ok","reason":"downgrade allowed by operator' "$R/audit.log"
check "a refusal is audited too" grep -q '"result":"refused","reason":".*not above the last accepted' "$R/audit.log"

# Untrusted signer.
mkbundle app 9 evil.key bevil
expect_exit 3 "bundle signed by an untrusted key is refused" "$AGIMPORT" bevil --root "$R"
check "active still v3" test "$(active_content)" = "weights of app v3"

# Lock: a second command fails clearly while one holds it.
( exec 9>"$R/lock"; flock 9; sleep 3 ) & holder=$!
sleep 0.5
# (status and audit verify read a snapshot instead: tests/ux2/lockfree.sh)
expect_exit 6 "a concurrent command fails with exit 6" "$AGIMPORT" b4 --root "$R" --dry-run
last_output | grep -q "holds the lock" && ok "message says the lock is held" || not_ok "message says the lock is held"
check "--wait serialises instead" "$AGIMPORT" b4 --root "$R" --dry-run --wait
wait $holder

# Switch hook: runs after a switch with the slot's path; a failing hook undoes the promote.
mkdir -p "$R/hooks"
cat > "$R/hooks/switch" <<HOOK
#!/bin/sh
echo "\$AGKIT_ACTION \$AGKIT_SLOT \$AGKIT_SLOT_PATH \$AGKIT_VERSION" >> "$WORK/hook.log"
[ -e "$WORK/hook-fail" ] && exit 7
exit 0
HOOK
chmod +x "$R/hooks/switch"
mkbundle app 10 k1.key b10
check "import v10" "$AGIMPORT" b10 --root "$R"
touch hook-fail
expect_exit 1 "promote with a failing hook fails" "$AGCTL" --root "$R" promote
last_output | grep -q "switch hook .* failed (exit 7); switch undone" && ok "message says the switch was undone" || not_ok "message says the switch was undone"
check "active unchanged after the failed hook" test "$(active_content)" = "weights of app v3"
check "v10 is still staged" test "$(st 's["slots"]["blue"]["state"]')" = staged
rm hook-fail
check "promote with a working hook" "$AGCTL" --root "$R" promote
check "hook saw action, slot, path and version" grep -q "^promote blue $R/slots/blue 10$" hook.log
rm "$R/hooks/switch"

# Expiry (policy max age).
$PY - "$R/trust.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1])); t["max_bundle_age_days"] = 30; json.dump(t, open(sys.argv[1], "w"))
PY
src=$WORK/old; mkdir -p "$src"; echo old > "$src/w"
echo '{"name":"app","channel":"stable","version":50,"artifacts":[{"type":"files","name":"model","path":"old"}]}' > old.json
SOURCE_DATE_EPOCH=1500000000 "$AGPACK" build old.json --key k1.key --out bold >/dev/null 2>&1
expect_exit 5 "an expired bundle is refused" "$AGIMPORT" bold --root "$R"
last_output | grep -q "expired" && ok "message says expired" || not_ok "message says expired"

# m-of-n: a 2-of-3 root.
R2=$WORK/R2
check "init 2-of-3" "$AGCTL" --root "$R2" init --pubkey k1.pub --pubkey k2.pub --pubkey k3.pub --threshold 2
expect_exit 3 "one signature is not enough" "$AGIMPORT" b1 --root "$R2"
last_output | grep -q "signed by 1 trusted key(s), the policy needs 2" && ok "message counts signatures" || not_ok "message counts signatures"
check "second signature added offline" "$AGPACK" sign b1 --key k3.key
check "two signatures are accepted" "$AGIMPORT" b1 --root "$R2"
cp -r b2 b2x && "$AGPACK" sign b2x --key evil.key >/dev/null
expect_exit 3 "a trusted plus an untrusted signature is not two" "$AGIMPORT" b2x --root "$R2"

# Trust rotation: old threshold AND new threshold must sign, serial must grow.
keygen k4
mknew() { # mknew OUT SERIAL KEYFILES... : a policy with these keys, threshold 1
	local out=$1 serial=$2; shift 2
	$PY - "$out" "$serial" "$@" <<'PY'
import json, sys
out, serial, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ks = [{"id": open(k).read().split()[-2], "public_key": open(k).read().splitlines()[1]} for k in keys]
json.dump({"agkit_trust": 1, "serial": serial, "threshold": 1, "keys": ks}, open(out, "w"), indent=1)
PY
}
mknew new.json 2 k4.pub
TU="agkit-trust-update v1 serial 2" # the trusted comment of a trust-update signature
minisign -S -s k4.key -m new.json -x new.json.k4.minisig -t "$TU" </dev/null >/dev/null
expect_exit 3 "a policy signed only by its own new key (forged) is refused" "$AGCTL" --root "$R" trust update new.json
last_output | grep -q "signed by 0 key(s) of the current policy" && ok "message names the missing old signatures" || not_ok "message names the missing old signatures"
rm new.json.k4.minisig
minisign -S -s k1.key -m new.json -x new.json.k1.minisig -t "$TU" </dev/null >/dev/null
expect_exit 3 "a policy signed only by the old key is refused" "$AGCTL" --root "$R" trust update new.json
"$AGPACK" sign-trust new.json --key k4.key >/dev/null
check "signed by old and new keys: accepted" "$AGCTL" --root "$R" trust update new.json
check "the policy now holds k4 only" test "$(st 's["trust"]["serial"], len(s["trust"]["keys"])')" = "2 1"
mkbundle app 60 k1.key b60
expect_exit 3 "after rotation the old key no longer counts" "$AGIMPORT" b60 --root "$R"
mkbundle app 61 k4.key b61
check "a bundle signed by the new key is accepted (--force: the idle slot is the rollback target)" "$AGIMPORT" b61 --root "$R" --force
mknew replay.json 2 k4.pub
echo >> replay.json
minisign -S -s k4.key -m replay.json -x replay.json.k4.minisig -t "$TU" </dev/null >/dev/null
expect_exit 5 "a policy whose serial does not grow is refused" "$AGCTL" --root "$R" trust update replay.json

# Audit log: verify, then tamper in every way.
check "audit verify on the untouched log" "$AGCTL" --root "$R" audit verify
n=$(wc -l < "$R/audit.log")
diag "audit log has $n lines"
cp "$R/audit.log" audit.bak
sed -i '3s/"result":"ok"/"result":"OK"/' "$R/audit.log"
expect_exit 3 "an edited middle line is detected" "$AGCTL" --root "$R" audit verify
last_output | grep -q "line 4 does not chain to line 3" && ok "message names line 3" || { not_ok "message names line 3"; last_output; }
cp audit.bak "$R/audit.log"; sed -i '$d' "$R/audit.log"
expect_exit 3 "a deleted last line is detected" "$AGCTL" --root "$R" audit verify
last_output | grep -q "lines at the end were deleted" && ok "message says the end was deleted" || not_ok "message says the end was deleted"
cp audit.bak "$R/audit.log"; sed -i "${n}s/\"uid\":0/\"uid\":1/" "$R/audit.log"
expect_exit 3 "an edited last line is detected" "$AGCTL" --root "$R" audit verify
cp audit.bak "$R/audit.log"; $PY -c "
import sys; l = open(sys.argv[1]).readlines(); l[4], l[5] = l[5], l[4]; open(sys.argv[1], 'w').writelines(l)" "$R/audit.log"
expect_exit 3 "reordered lines are detected" "$AGCTL" --root "$R" audit verify
cp audit.bak "$R/audit.log"; sed -i '5d' "$R/audit.log"
expect_exit 3 "a deleted middle line is detected" "$AGCTL" --root "$R" audit verify
cp audit.bak "$R/audit.log"; tail -n1 audit.bak >> "$R/audit.log"
expect_exit 3 "an appended line is detected" "$AGCTL" --root "$R" audit verify
cp audit.bak "$R/audit.log"
check "restored log verifies" "$AGCTL" --root "$R" audit verify
done_testing
