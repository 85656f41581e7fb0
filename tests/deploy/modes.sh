#!/bin/bash
# Security review (issue 13), finding 3: file modes from the packing host must
# not reach the slot.  A tree packed with a 0777 directory and a 0666 file is
# imported as root through every path that applies modes (set directory, one
# medium at a time, one-way stream, agimport extract); the local user nobody
# then tries to write into the slot and must fail, and stat shows files 0644
# or 0755 (exec bit kept), directories 0755, nothing group/other-writable.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-deploy.sh"
need setpriv
[ "$(id -u)" = 0 ] || skip_all "needs root (imports as root, then writes as nobody)"
cd "$WORK"
chmod 0755 "$WORK" # nobody must reach the slots to try
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
$NOBODY true 2>/dev/null || skip_all "setpriv cannot switch to uid 65534 here"
mkdir -p tree/open tree/sub tree/ro
head -c 100000 /dev/urandom > tree/open/weights.bin
echo run > tree/run.sh
echo secret > tree/sub/private
echo x > tree/ro/readonly
echo g > tree/groupx
chmod 0666 tree/open/weights.bin
chmod 0777 tree/open
chmod 0775 tree/run.sh
chmod 0600 tree/sub/private
chmod 0750 tree/sub
chmod 0444 tree/ro/readonly
chmod 0555 tree/ro
chmod 0610 tree/groupx
keygen k
spec spec.json modes 1 files:payload:tree
"$AGPACK" build spec.json --key k.key --out b >build.out 2>&1 || { echo "Bail out! cannot build: $(cat build.out)"; exit 1; }
check "the manifest carries the hostile modes (0777 dir, 0666 file)" sh -c "grep -q '\"mode\": 511' b/manifest.json && grep -q '\"mode\": 438' b/manifest.json"
"$AGPACK" build spec.json --key k.key --out set --volume-size 64K --chunk-size 16K --media 100K >build.out 2>&1 ||
	{ echo "Bail out! cannot build the media set: $(cat build.out)"; exit 1; }
"$AGPACK" build spec.json --key k.key --volume-size 64K --chunk-size 16K --stream >s.bin 2>build.out ||
	{ echo "Bail out! cannot build the stream: $(cat build.out)"; exit 1; }

# modes_ok DIR: every entry has the normalised mode of its source in tree/.
modes_ok() {
	$PY - tree "$1" <<'PY'
import os, stat, sys
src, dst = sys.argv[1], sys.argv[2]
bad = []
for d, dirs, files in os.walk(dst):
    for n in dirs + files + ["."]:
        p = os.path.normpath(os.path.join(d, n))
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            continue
        m = stat.S_IMODE(st.st_mode)
        s = os.lstat(os.path.join(src, os.path.relpath(p, dst)))
        want = 0o755 if stat.S_ISDIR(st.st_mode) or stat.S_IMODE(s.st_mode) & 0o111 else 0o644
        if m != want or m & 0o7022:
            bad.append("%s %o (want %o)" % (os.path.relpath(p, dst), m, want))
if bad:
    print("\n".join(bad)); sys.exit(1)
PY
}
# nobody_cannot_write DIR: the user nobody can neither add to nor change DIR's tree.
nobody_cannot_write() {
	local d=$1 fail=0
	$NOBODY sh -c "echo pwned > '$d/open/planted'" 2>/dev/null && fail=1
	$NOBODY sh -c "echo pwned >> '$d/open/weights.bin'" 2>/dev/null && fail=1
	$NOBODY sh -c "echo pwned > '$d/planted'" 2>/dev/null && fail=1
	$NOBODY sh -c "mv '$d/open/weights.bin' '$d/open/w2'" 2>/dev/null && fail=1
	[ $fail = 0 ]
}

"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
check "import the set directory as root" "$AGIMPORT" b --root "$R"
check "nobody can read the staged weights" $NOBODY cat "$R/slots/blue/payload/open/weights.bin"
check "slot modes are normalised (set directory)" modes_ok "$R/slots/blue/payload"
check "the exec bit is kept" test "$(stat -c %a "$R/slots/blue/payload/run.sh")" = 755
check "the staged content is intact" cmp tree/open/weights.bin "$R/slots/blue/payload/open/weights.bin"
check "nobody cannot write into the staged slot (set directory)" nobody_cannot_write "$R/slots/blue/payload"

R2=$WORK/R2
"$AGCTL" --root "$R2" init --pubkey k.pub >/dev/null
for m in $(cd set && ls -d medium-*); do "$AGIMPORT" stage "set/$m" --root "$R2" >stage.out 2>&1; done
check "import the media set one medium at a time" test "$(R=$R2 st 's["slots"]["blue"]["state"]')" = staged
check "slot modes are normalised (per medium)" modes_ok "$R2/slots/blue/payload"
check "nobody cannot write into the staged slot (per medium)" nobody_cannot_write "$R2/slots/blue/payload"

R3=$WORK/R3
"$AGCTL" --root "$R3" init --pubkey k.pub >/dev/null
check "import the one-way stream" sh -c "'$AGIMPORT' stage --stream --root '$R3' < s.bin"
check "slot modes are normalised (stream)" modes_ok "$R3/slots/blue/payload"
check "nobody cannot write into the staged slot (stream)" nobody_cannot_write "$R3/slots/blue/payload"

check "agimport extract --to" "$AGIMPORT" extract b --pubkey k.pub --to out
check "extracted modes are normalised" modes_ok "$WORK/out/payload"
check "nobody cannot write into an extracted tree" nobody_cannot_write "$WORK/out/payload"
done_testing
