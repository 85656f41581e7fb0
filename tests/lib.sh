# SPDX-License-Identifier: Apache-2.0
# Shared helpers for agkit's shell tests: TAP output, temp dirs, servers.
# Each test script sources this, calls its checks, and ends with `done_testing`.
set -u
: "${AGPACK:?AGPACK must point at the agpack binary}"
: "${AGIMPORT:?AGIMPORT must point at the agimport binary}"
AGPACK=$(realpath "$AGPACK"); AGIMPORT=$(realpath "$AGIMPORT")
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
_n=0
_failed=0
WORK=$(mktemp -d "${TMPDIR:-/tmp}/agkit-test.XXXXXX")
_cleanups=()
_cleanup() {
	local c
	for c in "${_cleanups[@]}"; do eval "$c" || true; done
	rm -rf "$WORK"
}
trap _cleanup EXIT
on_exit() { _cleanups+=("$1"); }

ok() { _n=$((_n + 1)); echo "ok $_n - $*"; }
not_ok() { _n=$((_n + 1)); _failed=$((_failed + 1)); echo "not ok $_n - $*"; }
# diag TEXT: TEXT as TAP diagnostics, "# " before each of its lines.
diag() { printf '%s\n' "$*" | sed 's/^/# /'; }
# A TAP plan of 0 with SKIP: meson (protocol tap) reports the test as skipped.
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
# check DESCRIPTION COMMAND...: passes when the command succeeds.
check() {
	local d=$1; shift
	if "$@" >"$WORK/.out" 2>&1; then ok "$d"; else not_ok "$d"; sed 's/^/#   /' "$WORK/.out" | tail -20; fi
}
# expect_exit CODE DESCRIPTION COMMAND...: passes when the command exits with CODE.
expect_exit() {
	local want=$1 d=$2; shift 2
	"$@" >"$WORK/.out" 2>&1
	local got=$?
	if [ "$got" = "$want" ]; then ok "$d"; else not_ok "$d (exit $got, want $want)"; sed 's/^/#   /' "$WORK/.out" | tail -20; fi
}
# Output of the last check/expect_exit, for message assertions.
last_output() { cat "$WORK/.out"; }
done_testing() { echo "1..$_n"; [ "$_failed" = 0 ]; }
need() { local b; for b in "$@"; do command -v "$b" >/dev/null 2>&1 || skip_all "$b not installed"; done; }
# A free TCP port on 127.0.0.1.
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# Compares a source tree with its extracted copy: contents, types, symlink
# targets, and the copy's permission bits (normalised from the source's).
same_tree() {
	$PY - "$1" "$2" <<'PYEOF'
import os, stat, sys, filecmp
a, b = sys.argv[1], sys.argv[2]
def walk(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out
wa, wb = walk(a), walk(b)
if set(wa) != set(wb):
    print("entries differ:", sorted(set(wa) ^ set(wb))[:10]); sys.exit(1)
for k, sa in wa.items():
    sb = wb[k]
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        print("type differs:", k); sys.exit(1)
    if stat.S_ISLNK(sa.st_mode):
        if os.readlink(os.path.join(a, k)) != os.readlink(os.path.join(b, k)):
            print("link differs:", k); sys.exit(1)
        continue
    # The second tree was extracted: modes are normalised (files 0644, or
    # 0755 with any exec bit; directories 0755), see docs/SECURITY.md.
    want = 0o755 if stat.S_ISDIR(sa.st_mode) or sa.st_mode & 0o111 else 0o644
    if stat.S_IMODE(sb.st_mode) != want:
        print("mode differs:", k, oct(sa.st_mode), oct(sb.st_mode), "want", oct(want)); sys.exit(1)
    if stat.S_ISREG(sa.st_mode) and not filecmp.cmp(os.path.join(a, k), os.path.join(b, k), shallow=False):
        print("content differs:", k); sys.exit(1)
PYEOF
}
# keygen PREFIX: an unencrypted key pair.
keygen() { "$AGPACK" keygen --out "$1" --no-passphrase >/dev/null; }
# spec FILE NAME VERSION TYPE:NAME:PATH...: writes a pack spec.
spec() {
	local f=$1 name=$2 ver=$3; shift 3
	$PY - "$f" "$name" "$ver" "$@" <<'PYEOF'
import json, sys
f, name, ver, arts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
out = {"name": name, "channel": "stable", "version": ver, "artifacts": []}
for a in arts:
    t, n, p = a.split(":", 2)
    out["artifacts"].append({"type": t, "name": n, "path": p})
json.dump(out, open(f, "w"), indent=1)
PYEOF
}
