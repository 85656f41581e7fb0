#!/bin/bash
# Switch hooks run in their own process group: on timeout, and once the hook
# has exited, the whole group is killed, so nothing a hook starts outlives it.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-deploy.sh"
cd "$WORK"
keygen k1
for v in 1 2 3; do mkbundle app $v k1.key b$v; done
check "init" "$AGCTL" --root "$R" init --pubkey k1.pub
check "import v1" "$AGIMPORT" b1 --root "$R"
check "promote v1" "$AGCTL" --root "$R" promote
# gone PID: true when the process has ended (waits up to 5 s; a zombie counts as ended).
gone() {
	local i
	for i in $(seq 50); do
		[ -e "/proc/$1" ] || return 0
		[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return 0
		sleep 0.1
	done
	return 1
}
on_exit 'for f in "$WORK"/*.pid; do [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done'

# A hook that hangs past its timeout with a child of its own.
$PY - "$R/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["hook_timeout_s"] = 1; json.dump(c, open(sys.argv[1], "w"))
PY
mkdir -p "$R/hooks"
cat > "$R/hooks/switch" <<HOOK
#!/bin/sh
[ "\$1" = promote ] || exit 0
sleep 120 & echo \$! > "$WORK/hung-child.pid"
sleep 120
HOOK
chmod +x "$R/hooks/switch"
check "import v2" "$AGIMPORT" b2 --root "$R"
start=$(date +%s)
expect_exit 1 "a promote whose hook hangs fails" timeout -k 5 60 "$AGCTL" --root "$R" promote
last_output | grep -q "switch hook .* timed out after 1 s" && ok "message says the hook timed out" || not_ok "message says the hook timed out"
check "the promote came back soon after the timeout" test $(($(date +%s) - start)) -lt 30
check "the switch was undone" test "$(active_content)" = "weights of app v1"
check "the hook's child was started" test -s hung-child.pid
check "the hook's child died with the hook on timeout" gone "$(cat hung-child.pid)"

# A hook that exits at once, leaving a background child behind.
cat > "$R/hooks/switch" <<HOOK
#!/bin/sh
sleep 120 >/dev/null 2>&1 & echo \$! > "$WORK/left-child.pid"
exit 0
HOOK
check "promote with a hook that leaves a child" timeout -k 5 60 "$AGCTL" --root "$R" promote
check "serving v2" test "$(active_content)" = "weights of app v2"
check "the hook's child was started" test -s left-child.pid
check "nothing the hook started outlives it" gone "$(cat left-child.pid)"

# The hook's environment is still complete.
cat > "$R/hooks/switch" <<HOOK
#!/bin/sh
echo "\$1 \$AGKIT_ACTION \$AGKIT_SLOT \$AGKIT_VERSION \$AGKIT_BUNDLE \$AGKIT_CHANNEL \$AGKIT_ROOT" >> "$WORK/env.log"
HOOK
check "mark-good" "$AGCTL" --root "$R" mark-good
check "import v3" "$AGIMPORT" b3 --root "$R"
check "promote v3" timeout -k 5 60 "$AGCTL" --root "$R" promote
check "hook saw action, slot, version, bundle, channel and root" grep -qx "promote promote blue 3 app stable $R" env.log
done_testing
