#!/bin/sh
# The debs artifact (issue 17) through the real CLIs: local .deb files plus
# package names that apt resolves, with their dependency closure, from a flat
# repository on nginx (built here with dpkg-deb and dpkg-scanpackages), with
# and without a stated base (the target's dpkg status); agpack build ->
# agimport extract -> the artifact is an apt flat repository: apt (private
# state, --simulate) installs from it, dpkg installs its packages into a
# private root.  Refused with one line naming the file or package, nothing
# beside --out: a .deb whose control data is malformed, a name apt cannot
# resolve.
. "$(dirname "$0")/lib.sh"
need nginx dpkg-deb dpkg-scanpackages apt-get ar tar
[ -n "${AGPACK:-}" ] && [ -x "$AGPACK" ] || skip "AGPACK not set to the agpack binary"
[ -n "${AGIMPORT:-}" ] && [ -x "$AGIMPORT" ] || skip "AGIMPORT not set to the agimport binary"
[ "$(id -u)" = 0 ] || skip "apt's private state needs root here"
ARCH=$(dpkg --print-architecture)

mkdeb() { # mkdeb DIR PACKAGE VERSION [DEPENDS]
	d=$WORK/pkgsrc/$2
	mkdir -p "$d/DEBIAN" "$d/usr/share/agkit-test"
	echo "$2 $3" >"$d/usr/share/agkit-test/$2.txt"
	{
		echo "Package: $2"; echo "Version: $3"; echo "Architecture: $ARCH"
		echo "Maintainer: agkit tests <t@localhost>"
		[ -n "${4:-}" ] && echo "Depends: $4"
		echo "Description: agkit test package $2"; echo " built by tests/fetch/e2e-debs.sh"
	} >"$d/DEBIAN/control"
	mkdir -p "$1"
	dpkg-deb --build --root-owner-group "$d" "$1/$2.deb" >/dev/null
}
R=$WORK/www/repo
mkdeb "$R" agkit-test-lib 1.0
mkdeb "$R" agkit-test-app 2.0 "agkit-test-lib (>= 1.0)"
mkdeb "$R" agkit-test-unrelated 9.9
(cd "$R" && dpkg-scanpackages --multiversion . /dev/null >Packages 2>/dev/null) || fail "dpkg-scanpackages"
mkdeb "$WORK/local" agkit-test-extra 1:0.5
P=$(free_port)
start_nginx "$P" "$WORK/www"
echo "deb [trusted=yes] http://127.0.0.1:$P/repo ./" >"$WORK/sources.list"
"$AGPACK" keygen --out "$WORK/K" --no-passphrase >"$WORK/keygen.log" 2>&1 || fail "agpack keygen"

spec() { # spec NAME ARTIFACT_JSON_BODY
	printf '{"name":"os","channel":"stable","version":1,"artifacts":[{"type":"debs","name":"os",%s}]}\n' "$2" >"$WORK/$1.json"
}
build() { "$AGPACK" build "$WORK/$1.json" --key "$WORK/K.key" --out "$WORK/out-$1" >"$WORK/$1.log" 2>&1; }

# 1. local .deb + packages with their closure, no base: app pulls lib; unrelated stays out
spec full '"path":"local","packages":["agkit-test-app"],"apt":{"sources":"sources.list"}'
build full || { cat "$WORK/full.log"; fail "agpack build with a debs artifact"; }
"$AGIMPORT" extract "$WORK/out-full" --pubkey "$WORK/K.pub" --to "$WORK/T" >"$WORK/x.log" 2>&1 || { cat "$WORK/x.log"; fail "extract"; }
got=$(cd "$WORK/T/os" && ls | sort | tr '\n' ' ')
want="Packages agkit-test-app_2.0_${ARCH}.deb agkit-test-extra_1%3a0.5_${ARCH}.deb agkit-test-lib_1.0_${ARCH}.deb "
[ "$got" = "$want" ] || fail "slot's os/: got '$got', want '$want'"
pass "local .deb and apt's closure of agkit-test-app (agkit-test-lib pulled in, nothing else), canonical names"

python3 - "$WORK/out-full/manifest.json" "$WORK/T/os" <<'PY' || fail "provenance / Packages index"
import hashlib, json, os, sys
m = json.load(open(sys.argv[1]))
src = [a for a in m["artifacts"] if a["name"] == "os"][0]["source"]
assert src["type"] == "debs", src
pk = {p["package"]: p for p in src["packages"]}
assert set(pk) == {"agkit-test-app", "agkit-test-lib", "agkit-test-extra"}, pk
assert pk["agkit-test-extra"]["version"] == "1:0.5" and pk["agkit-test-app"]["architecture"]
stanzas = [s for s in open(os.path.join(sys.argv[2], "Packages")).read().split("\n\n") if s.strip()]
assert len(stanzas) == 3
for s in stanzas:
    f = dict(l.split(": ", 1) for l in s.splitlines() if not l.startswith(" "))
    data = open(os.path.join(sys.argv[2], f["Filename"]), "rb").read()
    assert hashlib.sha256(data).hexdigest() == f["SHA256"] == pk[f["Package"]]["sha256"], f
    assert int(f["Size"]) == len(data)
PY
pass "the signed manifest names every package, version, architecture and sha256; Packages matches the files"

# 2. the slot as an apt flat repository: apt resolves from it alone
A=$WORK/aptc
mkdir -p "$A/lists/partial" "$A/archives/partial" "$A/etc"
: >"$A/status"
echo "deb [trusted=yes] file:$WORK/T/os ./" >"$A/sources.list"
aptc() { apt-get -o Dir::State::lists="$A/lists" -o Dir::State::status="$A/status" -o Dir::Cache="$A" \
	-o Dir::Cache::archives="$A/archives" -o Dir::Etc::sourcelist="$A/sources.list" -o Dir::Etc::sourceparts=- \
	-o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"; }
aptc -q update >"$WORK/aptc.log" 2>&1 || { cat "$WORK/aptc.log"; fail "apt-get update from the slot"; }
aptc -s install agkit-test-app >"$WORK/sim.log" 2>&1 || { cat "$WORK/sim.log"; fail "apt-get --simulate install"; }
grep -q "^Inst agkit-test-lib (1.0" "$WORK/sim.log" && grep -q "^Inst agkit-test-app (2.0" "$WORK/sim.log" ||
	{ cat "$WORK/sim.log"; fail "simulated install plan"; }
pass "deb [trusted=yes] file:SLOT/os ./: apt --simulate installs agkit-test-app with its dependency from the slot"
D=$WORK/droot
mkdir -p "$D/var/lib/dpkg/info" "$D/var/lib/dpkg/updates"
: >"$D/var/lib/dpkg/status"
dpkg --root="$D" --force-not-root --log=/dev/null -i "$WORK/T/os/agkit-test-lib_1.0_$ARCH.deb" \
	"$WORK/T/os/agkit-test-app_2.0_$ARCH.deb" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg -i from the slot"; }
[ "$(cat "$D/usr/share/agkit-test/agkit-test-app.txt")" = "agkit-test-app 2.0" ] || fail "installed content"
pass "dpkg installs the slot's packages (dependencies satisfied) into a private root"

# 3. a stated base: the target already has agkit-test-lib, so only the app crosses
printf 'Package: agkit-test-lib\nStatus: install ok installed\nVersion: 1.0\nArchitecture: %s\nMaintainer: t\nDescription: x\n\n' \
	"$ARCH" >"$WORK/target-status"
spec base '"packages":["agkit-test-app"],"apt":{"sources":"sources.list","status":"target-status"}'
build base || { cat "$WORK/base.log"; fail "debs with a base status"; }
"$AGIMPORT" extract "$WORK/out-base" --pubkey "$WORK/K.pub" --to "$WORK/TB" >/dev/null 2>&1 || fail "extract base"
[ "$(cd "$WORK/TB/os" && ls | sort | tr '\n' ' ')" = "Packages agkit-test-app_2.0_${ARCH}.deb " ] ||
	fail "with a base: $(ls "$WORK/TB/os")"
pass "against the target's dpkg status only what it lacks crosses"

# 4. a .deb whose control has no Package field (built by hand: dpkg-deb would refuse)
B=$WORK/bad; mkdir -p "$B/c" "$WORK/badlocal"
printf 'Version: 1.0\nArchitecture: %s\nDescription: broken\n' "$ARCH" >"$B/c/control"
echo 2.0 >"$B/debian-binary"
(cd "$B/c" && tar -czf ../control.tar.gz ./control) && (cd "$B" && tar -czf data.tar.gz --files-from /dev/null) &&
	(cd "$B" && ar rc "$WORK/badlocal/broken.deb" debian-binary control.tar.gz data.tar.gz) || fail "crafting a bad .deb"
spec badctl '"path":"badlocal"'
refused badctl "badlocal/broken.deb: malformed control data: no Package field" "a .deb with malformed control data"
echo "not an ar archive" >"$WORK/badlocal/broken.deb"
refused badctl "broken.deb: not a Debian package" "a file that is not a .deb"
spec nosuch '"packages":["agkit-test-nosuch"],"apt":{"sources":"sources.list"}'
refused nosuch "apt cannot resolve the packages.*agkit-test-nosuch" "a package name apt cannot resolve"

# 5. the artifact takes the generic paths: parity volumes and a one-way stream
"$AGPACK" build "$WORK/full.json" --key "$WORK/K.key" --out "$WORK/out-par" --volume-size 64K --chunk-size 16K \
	--parity 2 >"$WORK/par.log" 2>&1 || { cat "$WORK/par.log"; fail "debs with parity volumes"; }
"$AGPACK" stream "$WORK/out-par" 2>"$WORK/stream.err" | "$AGIMPORT" receive "$WORK/recv" >"$WORK/recv.log" 2>&1 ||
	{ cat "$WORK/stream.err" "$WORK/recv.log"; fail "stream and receive"; }
"$AGIMPORT" extract "$WORK/recv" --pubkey "$WORK/K.pub" --to "$WORK/TS" >/dev/null 2>&1 || fail "extract the received bundle"
diff -r "$WORK/T/os" "$WORK/TS/os" >/dev/null || fail "streamed copy differs"
pass "parity volumes and a one-way stream carry the debs artifact unchanged"
