#!/usr/bin/python3
# Counts individual checks in a meson test log: TAP subtests, and one each for
# plain tests.  Prints "N passed, N failed, N skipped".
import json, re, sys

passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        res = t.get("result", "")
        out = t.get("stdout") or ""
        if res == "SKIP":
            skipped += 1
            continue
        oks = nots = skips = 0
        for l in out.splitlines():
            if re.match(r"^ok \d+", l):
                if re.search(r"#\s*SKIP", l, re.I):
                    skips += 1
                else:
                    oks += 1
            elif re.match(r"^not ok \d+", l):
                if re.search(r"#\s*TODO", l, re.I):
                    oks += 1
                else:
                    nots += 1
        if oks + nots + skips == 0:
            if res in ("OK", "EXPECTEDFAIL"):
                oks = 1
            else:
                nots = 1
        elif res not in ("OK", "EXPECTEDFAIL") and nots == 0:
            nots = 1  # crashed or timed out after its last TAP line
        passed += oks
        failed += nots
        skipped += skips
print(f"{passed} passed, {failed} failed, {skipped} skipped")
