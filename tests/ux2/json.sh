#!/usr/bin/env bash
# --json on every command that reports: one object on stdout (parsed by
# python), human lines on stderr; cycle lines carry an ISO 8601 UTC time;
# status does not promise a rollback target it does not have.
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/deploy/lib-deploy.sh"
cd "$WORK" || exit 1
keygen k
mkdir -p src; printf 'data v1\n' > src/data.txt
printf '{"name":"data","channel":"stable","version":1,"artifacts":[{"type":"files","name":"docs","path":"src"}]}' > s1.json
printf '{"name":"data","channel":"stable","version":2,"artifacts":[{"type":"files","name":"docs","path":"src"}]}' > s2.json
# jcheck DESC FILE PYTHON-ASSERTIONS-ON-o: FILE must hold exactly one JSON object.
jcheck() {
	local d=$1 f=$2 expr=$3
	if $PY -c "
import json, sys
o = json.load(open('$f'))
assert isinstance(o, dict)
$expr" > "$WORK/.py" 2>&1; then ok "$d"; else not_ok "$d"; sed 's/^/#   /' "$WORK/.py" "$f" | tail -20; fi
}
# (without the SBOM artifact: the counts below are the spec's own; tests/sbom has the SBOM)
"$AGPACK" build s1.json --key k.key --out b1 --json --no-sbom > build.json 2> build.err
jcheck "agpack build --json" build.json 'assert o["out"] == "b1" and o["bundle"] == "data" and o["version"] == 1 and o["artifacts"] == 1 and o["bytes"] == 8 and o["volumes"] == 1 and o["media"] is None'
if grep -q "b1: bundle data channel stable version 1" build.err; then ok "... the human summary went to stderr"; else not_ok "build summary on stderr"; fi
"$AGPACK" build s2.json --key k.key --out b2 >/dev/null 2>&1
"$AGIMPORT" verify b1 --pubkey k.pub --json > verify.json 2> verify.err
jcheck "agimport verify --json" verify.json 'assert o["ok"] is True and o["bundle"] == "data" and len(o["signers"]) == 1 and o["volumes"] == 1 and o["notes"] == []'
if grep -q "OK: 1 volume(s)" verify.err; then ok "... human lines on stderr"; else not_ok "verify human lines on stderr"; fi
"$AGIMPORT" extract b1 --pubkey k.pub --to x --json > extract.json 2>/dev/null
jcheck "agimport extract --json" extract.json 'assert o["ok"] is True and o["to"] == "x"'
"$AGIMPORT" inspect b1 --json > inspect.json 2>/dev/null
jcheck "agimport inspect --json" inspect.json 'assert o["verified"] is False and o["artifacts"][0]["name"] == "docs"'

"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
# A data-only bundle has no health suite: the documented setting lets it pass.
$PY - "$R/config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); c["require_health_suite"] = False
json.dump(c, open(sys.argv[1], "w"))
PYEOF
"$AGIMPORT" stage b1 --root "$R" --json > stage.json 2>/dev/null
jcheck "agimport stage --json" stage.json 'assert o["staged"] is True and o["slot"] == "blue" and o["version"] == 1 and o["resumed"] is False'
"$AGCTL" --root "$R" health --json > health.json 2>/dev/null
jcheck "agctl health --json (data-only bundle, require_health_suite false)" health.json 'assert o["slot"] == "blue" and o["pass"] is True'
"$AGCTL" --root "$R" cycle --json > cycle.json 2> cycle.err
jcheck "agctl cycle --json: promoted, with an ISO 8601 UTC time" cycle.json '
import re
assert o["action"] == "promoted" and o["slot"] == "blue" and o["version"] == 1 and o["exit"] == 0, o
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", o["time"]), o["time"]'
if grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z cycle: staged blue \(data stable v1\)' cycle.err; then
	ok "... the timestamped summary line on stderr"
else not_ok "cycle line on stderr"; sed 's/^/#   /' cycle.err; fi
"$AGCTL" --root "$R" status > status.txt
if grep -q "validation window until .* (no previous slot: nothing to roll back to)" status.txt && ! grep -q "kept for rollback" status.txt; then
	ok "status after the first promote: no previous slot promised"
else not_ok "status text with previous null"; sed 's/^/#   /' status.txt; fi
"$AGCTL" --root "$R" status --json > status.json
jcheck "agctl status --json: previous null, pending null" status.json 'assert o["active"] == "blue" and o["previous"] is None and o["pending"] is None and o["in_validation_window"] is True'
"$AGCTL" --root "$R" cycle > cycle2.out 2>&1
if grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z cycle: blue v1 healthy inside its validation window' cycle2.out; then
	ok "cycle without --json: one timestamped line on stdout"
else not_ok "plain cycle line"; sed 's/^/#   /' cycle2.out; fi

"$AGIMPORT" b2 --root "$R" >/dev/null 2>&1
"$AGCTL" --root "$R" promote --json > promote.json 2> promote.err
jcheck "agctl promote --json" promote.json 'assert o["action"] == "promoted" and o["active"] == "green" and o["previous"] == "blue" and o["version"] == 2'
if grep -qx "promoted green" promote.err; then ok "... the human line on stderr"; else not_ok "promote line on stderr"; fi
"$AGCTL" --root "$R" status > status2.txt
if grep -q "(previous slot blue kept for rollback)" status2.txt; then ok "status names the previous slot kept for rollback"; else not_ok "status with previous"; sed 's/^/#   /' status2.txt; fi
"$AGCTL" --root "$R" rollback --reason test --json > rollback.json 2>/dev/null
jcheck "agctl rollback --json" rollback.json 'assert o["action"] == "rolled-back" and o["active"] == "blue" and o["version"] == 1'
"$AGCTL" --root "$R" cycle --json > cycle3.json 2>/dev/null
jcheck "agctl cycle --json with nothing staged" cycle3.json 'assert o["action"] in ("healthy", "marked-good", "none") and o["exit"] == 0 and o["summary"]'
done_testing
