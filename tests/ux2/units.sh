#!/usr/bin/env bash
# The systemd units in scripts/systemd: hardened (ProtectSystem,
# NoNewPrivileges, OnFailure=), accepted by systemd-analyze verify without a
# warning, and the cycle unit's command runs; scripts/agkit.logrotate parses.
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/deploy/lib-deploy.sh"
SRC=$(cd "$TESTS_DIR/.." && pwd)
U=$SRC/scripts/systemd
cd "$WORK" || exit 1
for unit in agkit-cycle.service agkit-serve.service; do
	if grep -qx "ProtectSystem=strict" "$U/$unit" && grep -qx "NoNewPrivileges=yes" "$U/$unit" &&
		grep -qx "OnFailure=agkit-alert@%n.service" "$U/$unit"; then
		ok "$unit: ProtectSystem=strict, NoNewPrivileges=yes, OnFailure=agkit-alert@"
	else not_ok "$unit hardening"; fi
done
if grep -qx "ReadWritePaths=/var/lib/agkit" "$U/agkit-cycle.service" && grep -qx "SuccessExitStatus=6" "$U/agkit-cycle.service"; then
	ok "agkit-cycle.service: the root writable, exit 6 (lock busy) not a failure"
else not_ok "cycle unit paths"; fi
[ -f "$U/agkit-alert@.service" ] && ok "agkit-alert@.service exists for OnFailure=" || not_ok "no alert unit"

# Installed paths replaced by the build's programs.
mkdir units
AGSERVE_BIN=${AGSERVE:-$(dirname "$AGCTL")/../agserve/agserve}
for f in "$U"/*; do
	sed "s#/usr/bin/agctl#$AGCTL#; s#/usr/bin/agserve#$(realpath -m "$AGSERVE_BIN")#" "$f" > "units/$(basename "$f")"
done
if command -v systemd-analyze >/dev/null; then
	(cd units && timeout -k 5 120 systemd-analyze verify --man=no ./agkit-cycle.service ./agkit-cycle.timer \
		./agkit-serve.service ./agkit-alert@.service) > verify.out 2>&1
	rc=$?
	if [ $rc = 0 ] && [ ! -s verify.out ]; then ok "systemd-analyze verify: no error, no warning"; else not_ok "systemd-analyze verify (exit $rc)"; sed 's/^/#   /' verify.out; fi
	# The check itself catches a bad value (it only warns, so the output is the signal).
	sed 's/^ProtectSystem=strict/ProtectSystem=bogus/' units/agkit-cycle.service > units/bad-cycle.service
	(cd units && timeout -k 5 120 systemd-analyze verify --man=no ./bad-cycle.service) > bad.out 2>&1
	if [ -s bad.out ]; then ok "... and it does flag a bad value"; else not_ok "verify flags nothing"; fi
else
	diag "systemd-analyze not installed: checking the unit syntax only"
	if $PY - units/*.service units/*.timer <<'PYEOF'
import sys, re
for f in sys.argv[1:]:
    sec = None
    for n, l in enumerate(open(f), 1):
        l = l.rstrip("\n")
        if not l.strip() or l.lstrip().startswith("#") or l.startswith("\t"):
            continue
        if re.fullmatch(r"\[[A-Za-z]+\]", l): sec = l; continue
        assert sec and re.fullmatch(r"[A-Za-z]+=.*", l), (f, n, l)
PYEOF
	then ok "unit syntax"; else not_ok "unit syntax"; fi
fi
# The cycle unit's ExecStart, with its environment, runs (nothing to do on a fresh root).
keygen k; "$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
cmd=$(sed -n 's/^ExecStart=//p' units/agkit-cycle.service | sed "s#\${AGKIT_ROOT}#$R#")
if out=$(timeout -k 5 60 $cmd 2>&1) && printf '%s' "$out" | grep -q "cycle: nothing to do"; then
	ok "the cycle unit's command runs: $out"
else not_ok "cycle ExecStart: $cmd: $out"; fi

if command -v logrotate >/dev/null; then
	sed "s#/var/log/agkit-cycle.log#$WORK/cycle.log#" "$SRC/scripts/agkit.logrotate" > lr.conf
	echo x > cycle.log
	check "logrotate -d accepts scripts/agkit.logrotate" logrotate -d -s "$WORK/lr.state" lr.conf
else
	if $PY - "$SRC/scripts/agkit.logrotate" <<'PYEOF'
import sys
known = {"weekly", "daily", "monthly", "rotate", "compress", "delaycompress", "missingok", "notifempty", "copytruncate"}
depth = 0
for l in open(sys.argv[1]):
    l = l.split("#", 1)[0].strip()
    if not l: continue
    if l.endswith("{"): depth += 1; assert l.startswith("/"); continue
    if l == "}": depth -= 1; continue
    assert depth == 1 and l.split()[0] in known, l
assert depth == 0
PYEOF
	then ok "scripts/agkit.logrotate: known directives, one block (logrotate not installed)"; else not_ok "logrotate file"; fi
fi
done_testing
