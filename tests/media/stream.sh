#!/bin/bash
# One-way stream: agpack build --stream | agimport receive/stage --stream,
# with bytes lost, garbled or cut in transit; parity rebuilds what a burst
# destroyed, and a damaged stream never yields unverified content.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
cd "$WORK"
export AGKIT_REPAIR_DIR="$WORK" TMPDIR="$WORK"
mkdir -p tree
head -c 560000 /dev/urandom > tree/random.bin
seq 1 3000 > tree/numbers.txt
keygen k
spec spec.json streamtest 2 files:payload:tree
"$AGPACK" build spec.json --key k.key --volume-size 64K --chunk-size 16K --parity 2 --stream >s.bin 2>build.out ||
	{ echo "Bail out! cannot build: $(cat build.out)"; exit 1; }
check "the stream starts with a record" sh -c 'head -c 4 s.bin | grep -q AGS1'
ls -d agpack-stream.* >/dev/null 2>&1 && not_ok "the scratch bundle is removed" || ok "the scratch bundle is removed"
check "receive an intact stream" sh -c '"$AGIMPORT" receive r < s.bin'
check "the received bundle verifies" "$AGIMPORT" verify r --pubkey k.pub
check "the received bundle extracts" "$AGIMPORT" extract r --pubkey k.pub --to out
check "... to the input" same_tree tree out/payload

# A burst of garbage in the middle of one volume, a cut of bytes in another.
size=$(stat -c %s s.bin)
$PY - s.bin damaged.bin <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
n = len(d)
d[n // 3 : n // 3 + 20000] = b"\0" * 20000      # a burst of zeros
del d[2 * n // 3 : 2 * n // 3 + 7000]           # lost bytes: the stream shifts
open(sys.argv[2], "wb").write(bytes(d))
PY
"$AGIMPORT" receive r2 < damaged.bin >recv.out 2>&1
check "receive a damaged stream" test -d r2
grep -Eq "received [0-9]+ record\(s\); [1-9][0-9]* damaged, [1-9][0-9]* byte\(s\) skipped" recv.out && ok "the receiver reports the damage" || { not_ok "the receiver reports the damage"; sed 's/^/#   /' recv.out; }
check "the damaged stream verifies (volumes rebuilt from parity)" "$AGIMPORT" verify r2 --pubkey k.pub
last_output | grep -q "rebuilt from parity" && ok "verify says what it rebuilt" || not_ok "verify says what it rebuilt"

# Too much loss: refused cleanly.
$PY - s.bin lossy.bin <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
n = len(d)
for f in (0.3, 0.5, 0.7):
    d[int(n * f) : int(n * f) + 30000] = b"\xff" * 30000
open(sys.argv[2], "wb").write(bytes(d))
PY
"$AGIMPORT" receive r3 < lossy.bin >/dev/null 2>&1
expect_exit 3 "three damaged volumes with --parity 2: refused" "$AGIMPORT" verify r3 --pubkey k.pub

# A stream without its signed files is refused.
$PY - <<'PY'
import struct
d = open("s.bin", "rb").read(); out = bytearray(); i = 0
while i < len(d):
    nl = d[i + 5]; ln = struct.unpack_from("<I", d, i + 24)[0]; end = i + 32 + nl + ln + 32
    if d[i + 32 : i + 32 + nl] != b"manifest.json":
        out += d[i:end]
    i = end
open("nohead.bin", "wb").write(out)
PY
expect_exit 3 "a stream that lost every copy of the manifest is refused" sh -c '"$AGIMPORT" receive r4 < nohead.bin'
last_output | grep -q "no manifest.json received" && ok "message says so" || { not_ok "message says so"; last_output | sed 's/^/#   /'; }
test ! -e r4 && ok "nothing left behind" || not_ok "nothing left behind"
expect_exit 3 "an empty stream is refused" sh -c '"$AGIMPORT" receive r5 < /dev/null'
# Volumes of several blocks: a burst inside one of them.
"$AGPACK" build spec.json --key k.key --out big --volume-size 256K --chunk-size 16K --parity 1 >/dev/null 2>&1
"$AGPACK" stream big > big.bin
$PY -c 'd=bytearray(open("big.bin","rb").read()); n=len(d); d[n//2:n//2+5000]=b"x"*5000; open("big2.bin","wb").write(bytes(d))'
"$AGIMPORT" receive rb < big2.bin >/dev/null 2>&1
check "multi-block volumes: a burst is rebuilt from parity" "$AGIMPORT" extract rb --pubkey k.pub --to outb
check "... to the input" same_tree tree outb/payload

# stage --stream into a deployment root
"$AGCTL" --root R init --pubkey k.pub >/dev/null
check "agimport stage --stream imports from stdin" sh -c '"$AGIMPORT" stage --stream --root R < damaged.bin'
check "the staged tree is the input" same_tree tree R/slots/blue/payload
test ! -e R/staging/stream && ok "the received copy is removed" || not_ok "the received copy is removed"
done_testing
