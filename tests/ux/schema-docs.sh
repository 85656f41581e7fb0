#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The documentation lists exactly the keys (and types) of each strict schema:
# README.md (pack spec, every artifact type) and docs/OPERATIONS.md
# (config.json, trust policy), each table after "<!-- schema: NAME".
. "$(dirname "$0")/../lib.sh"
: "${SCHEMA_KEYS:?}" "${AGKIT_SOURCE_ROOT:?}"
"$SCHEMA_KEYS" > "$WORK/keys.tsv" || { not_ok "schema-keys runs"; done_testing; exit 1; }
$PY - "$WORK/keys.tsv" "$AGKIT_SOURCE_ROOT" <<'PY' > "$WORK/r.tap"
import re, sys, pathlib, collections
want = collections.OrderedDict()
for l in open(sys.argv[1]):
    w, k, ty = l.rstrip("\n").split("\t")[:3]
    want.setdefault(w, {})[k] = ty
root = pathlib.Path(sys.argv[2])
docs = {}
for f in ("README.md", "docs/OPERATIONS.md"):
    text = (root / f).read_text()
    for m in re.finditer(r"<!-- schema: (.*?) \(", text):
        rows = {}
        for line in text[m.end():].split("\n")[1:]:
            if not line.startswith("|"):
                if rows: break
                continue
            c = [x.strip() for x in line.strip("|").split("|")]
            km = re.fullmatch(r"`([^`]+)`", c[0])
            if km:
                rows[km.group(1)] = re.sub(r"\s*\(.*", "", c[1])
        docs[m.group(1)] = (f, rows)
n = 0
def ok(c, d):
    global n
    n += 1
    print(("ok" if c else "not ok") + f" {n} - {d}")
for w, keys in want.items():
    f, rows = docs.get(w, ("(nowhere)", {}))
    ok(w in docs, f"{w}: documented in {f}")
    ok(set(rows) == set(keys), f"{w}: {f} lists exactly the keys {sorted(keys)} (docs: {sorted(rows)})")
    ok(all(rows.get(k) == t for k, t in keys.items()), f"{w}: {f} gives each key's type")
ok(set(docs) == set(want), f"no documented schema is unknown ({sorted(set(docs) - set(want))})")
print(f"1..{n}")
PY
while IFS= read -r l; do
	case $l in
	"ok "*) ok "${l#ok * - }" ;;
	"not ok "*) not_ok "${l#not ok * - }" ;;
	esac
done <"$WORK/r.tap"
[ "$_n" -gt 20 ] || not_ok "the comparison ran ($_n checks)"
done_testing
