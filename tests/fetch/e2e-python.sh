#!/bin/sh
# The python artifact (issue 17) end to end through the real CLIs:
#   a PEP 503 simple index (HTML pages and one PEP 691 JSON page) on nginx
#   -> agpack build with a hash-pinned requirements file -> signed bundle ->
#   agimport extract -> a venv in a network namespace with no network
#   (unshare -n) installs the wheels with pip --no-index --require-hashes.
# Refused, with a one-line error naming the package and nothing beside --out:
# a requirement without a hash, a wheel whose hash does not match its pin
# (listed and unlisted), an index page that redirects to another host, a
# wheel only for another platform, a project the index does not have.
. "$(dirname "$0")/lib.sh"
need nginx python3 cmp
[ -n "${AGPACK:-}" ] && [ -x "$AGPACK" ] || skip "AGPACK not set to the agpack binary"
[ -n "${AGIMPORT:-}" ] && [ -x "$AGIMPORT" ] || skip "AGIMPORT not set to the agimport binary"

W=$WORK/www
python3 "$TESTDIR/mkpyindex.py" "$W" >"$WORK/wheels.txt"
h() { awk -v n="$1" '$1==n {print $3}' "$WORK/wheels.txt"; }
P=$(free_port); E=http://127.0.0.1:$P
start_nginx "$P" "$W" "location /simple/json-pkg/ { types { } default_type application/vnd.pypi.simple.v1+json; index index.json; }
    location /simple/redirpkg/ { return 301 http://localhost:$P/simple/agkit-demo/; }"
"$AGPACK" keygen --out "$WORK/K" --no-passphrase >"$WORK/keygen.log" 2>&1 || fail "agpack keygen"

spec() { # spec NAME REQFILE [EXTRA_JSON]
	cat >"$WORK/$1.json" <<JSON
{"name":"py","channel":"stable","version":1,"artifacts":[
 {"type":"python","name":"wheels","requirements":"$2","index":"$E/simple/","python":"3.11",
  "platform":"manylinux_2_36_x86_64"${3:-}}]}
JSON
}
build() { "$AGPACK" build "$WORK/$1.json" --key "$WORK/K.key" --out "$WORK/out-$1" --cache "$WORK/C-$1" >"$WORK/$1.log" 2>&1; }

# 1. good: three projects (HTML, JSON page, a real Debian wheel), a comment and a continuation line
st=$(awk '$1=="setuptools" {print $2}' "$WORK/wheels.txt")
cat >"$WORK/req.txt" <<REQ
# pinned as pip-compile --generate-hashes writes them
agkit-demo==1.0 \\
    --hash=sha256:$(h agkit-demo)
Json_Pkg==0.5 --hash=sha256:$(h json-pkg) --hash=sha256:$(printf '%064d' 0)
REQ
[ -n "$st" ] && echo "setuptools==$st --hash=sha256:$(h setuptools)" >>"$WORK/req.txt"
spec good "$WORK/req.txt"
build good || { cat "$WORK/good.log"; fail "agpack build with a python artifact"; }
"$AGIMPORT" extract "$WORK/out-good" --pubkey "$WORK/K.pub" --to "$WORK/T" >"$WORK/extract.log" 2>&1 ||
	{ cat "$WORK/extract.log"; fail "agimport extract"; }
for f in agkit_demo-1.0-py3-none-any.whl json_pkg-0.5-py3-none-any.whl; do
	cmp "$W/files/$f" "$WORK/T/wheels/$f" || fail "$f differs after the round trip"
done
cmp "$WORK/req.txt" "$WORK/T/wheels/requirements.txt" || fail "requirements.txt not carried unchanged"
python3 - "$WORK/out-good/manifest.json" "$(h agkit-demo)" <<'PY' || fail "provenance of the wheels in the signed manifest"
import json, sys
m = json.load(open(sys.argv[1]))
a = [x for x in m["artifacts"] if x["name"] == "wheels"][0]
src = a["source"]
assert src["type"] == "python" and src["python"] == "3.11", src
w = {x["name"]: x for x in src["wheels"]}
assert w["agkit-demo"]["sha256"] == sys.argv[2] and w["agkit-demo"]["filename"].endswith(".whl"), w
assert w["json-pkg"]["version"] == "0.5"
PY
pass "python artifact packed, signed, extracted byte for byte; provenance names every wheel and its sha256"

# 2. install offline: no network at all in the namespace
if unshare -n true 2>/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
	unshare -n sh -c "python3 -m venv '$WORK/V' && '$WORK/V/bin/pip' install -q --no-index --find-links '$WORK/T/wheels' \
		--require-hashes -r '$WORK/T/wheels/requirements.txt' && '$WORK/V/bin/python' -c 'import agkit_demo, json_pkg; assert agkit_demo.VALUE == 42'" \
		>"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; fail "pip install --no-index --require-hashes in unshare -n"; }
	pass "pip installs the carried wheels in a network namespace with no network"
else
	echo "SKIP part: unshare -n or python3-venv not available"
fi

printf 'agkit-demo==1.0\n' >"$WORK/r-unpinned.txt"
spec unpinned "$WORK/r-unpinned.txt"
refused unpinned "r-unpinned.txt:1: agkit-demo==1.0 has no --hash=sha256: pin" "a requirement without a hash"
printf 'agkit-demo==1.0 --hash=sha256:%064d\n' 7 >"$WORK/r-badpin.txt"
spec badpin "$WORK/r-badpin.txt"
refused badpin "agkit-demo==1.0: the index lists 1 wheel(s) for python 3.11 on manylinux_2_36_x86_64, none with a pinned hash" "a pin matching no listed hash"
printf 'nohash==3.0 --hash=sha256:%064d\n' 7 >"$WORK/r-nohash.txt"
spec nohash "$WORK/r-nohash.txt"
refused nohash "nohash==3.0: nohash-3.0-py3-none-any.whl has sha256 $(h nohash), which requirements pins do not name" \
	"a downloaded wheel whose hash does not match its pin"
printf 'redirpkg==1.0 --hash=sha256:%s\n' "$(h agkit-demo)" >"$WORK/r-redir.txt"
spec redir "$WORK/r-redir.txt"
refused redir "the page of redirpkg redirects to another host" "an index page redirecting to another host"
printf 'nativepkg==2.0 --hash=sha256:%s\n' "$(h nativepkg)" >"$WORK/r-native.txt"
spec native "$WORK/r-native.txt"
refused native "nativepkg==2.0: no wheel for python 3.11 on manylinux_2_36_x86_64 (.*has nativepkg-2.0-cp311-cp311-win_amd64.whl)" \
	"a wheel only for another platform"
printf 'no-such-project==1.0 --hash=sha256:%064d\n' 1 >"$WORK/r-missing.txt"
spec missing "$WORK/r-missing.txt"
refused missing "no project no-such-project" "a project the index does not have"
printf 'agkit-demo==1.0 ; python_version >= "3"\n' >"$WORK/r-marker.txt"
spec marker "$WORK/r-marker.txt"
refused marker "r-marker.txt:1: environment markers are not supported" "an environment marker"

# 3. unpinned, explicitly: the slot's requirements pin what was fetched
spec unp "$WORK/r-unpinned.txt" ',"unpinned":true'
build unp || { cat "$WORK/unp.log"; fail "unpinned: true"; }
"$AGIMPORT" extract "$WORK/out-unp" --pubkey "$WORK/K.pub" --to "$WORK/TU" >/dev/null 2>&1 || fail "extract unpinned"
grep -qx "agkit-demo==1.0 --hash=sha256:$(h agkit-demo)" "$WORK/TU/wheels/requirements.txt" ||
	{ cat "$WORK/TU/wheels/requirements.txt"; fail "unpinned: requirements.txt not pinned to what was fetched"; }
pass "\"unpinned\": true fetches and writes the pins into the carried requirements.txt"
