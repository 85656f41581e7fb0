#!/usr/bin/env bash
# Syslog off a terminal: agctl cycle logs its summary as agkit-cycle, agimport
# as agimport (errors at LOG_ERR); nothing with $JOURNAL_STREAM (systemd logs
# stdout already) or AGKIT_SYSLOG=0.  A private mount namespace gets a /dev
# whose /dev/log is a socket this test reads; needs root and unshare.
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/deploy/lib-deploy.sh"
[ "$(id -u)" = 0 ] || skip_all "needs root (a mount namespace with its own /dev/log)"
need unshare mount
timeout -k 5 10 unshare -m true 2>/dev/null || skip_all "unshare -m not permitted here"
cd "$WORK" || exit 1
keygen k; keygen evil
mkbundle app 1 k.key b1 || { echo "Bail out! build failed"; exit 1; }
mkbundle app 2 evil.key bevil || { echo "Bail out! build failed"; exit 1; }
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
cat > listen.py <<'PYEOF'
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[2], "w").close()  # ready
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536).replace(b"\n", b" ") + b"\n")
PYEOF
cat > inner.sh <<'SHEOF'
set -u
mkdir -p "$WORK/dev0"
mount --rbind /dev "$WORK/dev0" || exit 90
mount -t tmpfs tmpfs /dev || exit 91
for n in null zero urandom random full; do : > /dev/$n; mount --bind "$WORK/dev0/$n" /dev/$n || exit 92; done
/usr/bin/python3 "$WORK/listen.py" "$WORK/log.txt" "$WORK/ready" &
lp=$!
for _ in $(seq 100); do [ -e "$WORK/ready" ] && break; sleep 0.05; done
run() { local tag=$1; shift; echo "--- $tag" >> "$WORK/log.txt"; sleep 0.2; "$@" >/dev/null 2>&1; echo "rc $?" >> "$WORK/rc.txt"; sleep 0.3; }
run cycle-empty "$AGCTL" --root "$R" cycle
run stage "$AGIMPORT" "$WORK/b1" --root "$R"
run evil "$AGIMPORT" "$WORK/bevil" --root "$R"
# (this cycle marks the staged v1 bad: no health suite, exit 7, an error line)
run journal env JOURNAL_STREAM=8:1234 "$AGCTL" --root "$R" cycle
run off env AGKIT_SYSLOG=0 "$AGIMPORT" "$WORK/bevil" --root "$R"
echo "--- end" >> "$WORK/log.txt"
kill $lp
SHEOF
export WORK R AGCTL AGIMPORT
timeout -k 5 120 unshare -m bash inner.sh
rc=$?
if [ $rc != 0 ] && [ $rc != 143 ]; then skip_all "could not set up the namespace's /dev (exit $rc)"; fi
section() { awk -v t="--- $1" '$0 == t {p=1; next} /^--- / {p=0} p' log.txt; }
if section cycle-empty | grep -Eq '^<29>.* agkit-cycle\[[0-9]+\]: cycle: '; then
	ok "agctl cycle: the summary in syslog as agkit-cycle (daemon.notice)"
else not_ok "cycle not in syslog"; fi
if section stage | grep -Eq '^<29>.* agimport\[[0-9]+\]: .*staged bundle app channel stable version 1 into slot blue'; then
	ok "agimport stage: staged line in syslog as agimport"
else not_ok "stage not in syslog"; fi
if section evil | grep -Eq '^<27>.* agimport\[[0-9]+\]: .*no valid signature by a trusted key'; then
	ok "agimport refusal: the error in syslog at daemon.err"
else not_ok "error not in syslog"; fi
if [ -z "$(section journal)" ]; then ok "\$JOURNAL_STREAM set (under systemd): nothing sent to syslog"; else not_ok "journal case logged: $(section journal)"; fi
if [ -z "$(section off)" ]; then ok "AGKIT_SYSLOG=0: nothing sent"; else not_ok "AGKIT_SYSLOG=0 logged"; fi
if [ "$(tr '\n' ' ' < rc.txt)" = "rc 0 rc 0 rc 3 rc 7 rc 3 " ]; then ok "the commands' exit codes are unchanged"; else not_ok "exit codes: $(tr '\n' ' ' < rc.txt)"; fi
done_testing
