#!/bin/bash
# Security review (issue 13), findings 5 and 9: the stream receiver against
# hostile record headers, and with many volumes under a low open-file limit.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
cd "$WORK"
MKREC=$TESTS_DIR/media/mkrecord.py
B=65536

# Finding 5: a record at offset == size with length 0.  With 8 blocks the
# bitmap is one byte: block 8 is one past it.  Blocks 0..6 arrive, block 7
# never does; the bogus record must not count as block 7.
$PY "$MKREC" hole.bin manifest.json:2:0:2 \
	vol-00001.agv:$((8 * B)):0:$B vol-00001.agv:$((8 * B)):$B:$B vol-00001.agv:$((8 * B)):$((2 * B)):$B \
	vol-00001.agv:$((8 * B)):$((3 * B)):$B vol-00001.agv:$((8 * B)):$((4 * B)):$B \
	vol-00001.agv:$((8 * B)):$((5 * B)):$B vol-00001.agv:$((8 * B)):$((6 * B)):$B \
	vol-00001.agv:$((8 * B)):$((8 * B)):0
"$AGIMPORT" receive r1 <hole.bin >recv.out 2>&1
rc=$?
[ $rc = 0 ] && ok "the receiver takes the stream" || { not_ok "the receiver takes the stream (exit $rc)"; sed 's/^/#   /' recv.out; }
test ! -e r1/vol-00001.agv && ok "a volume with a hole is not kept as complete" ||
	{ not_ok "a volume with a hole is not kept as complete"; sed 's/^/#   /' recv.out; }
grep -q "1 volume(s) incomplete" recv.out && ok "the receiver reports it incomplete" || { not_ok "the receiver reports it incomplete"; sed 's/^/#   /' recv.out; }
grep -Eq "[1-9][0-9]* damaged" recv.out && ok "the bogus record counts as damaged" || { not_ok "the bogus record counts as damaged"; sed 's/^/#   /' recv.out; }
# Other bogus headers: a length that runs past the file, an empty record in a non-empty file.
$PY "$MKREC" bad2.bin manifest.json:2:0:2 vol-00001.agv:100:0:0 vol-00001.agv:100:$B:0 vol-00002.agv:0:$B:0
"$AGIMPORT" receive r2 <bad2.bin >recv2.out 2>&1
grep -q "received 1 record(s); 3 damaged" recv2.out && ok "empty or out-of-range records are refused" || { not_ok "empty or out-of-range records are refused"; sed 's/^/#   /' recv2.out; }
if ldd "$AGIMPORT" 2>/dev/null | grep -q libasan; then
	ok "# SKIP valgrind: this build runs under AddressSanitizer, which checks the same bounds"
elif command -v valgrind >/dev/null 2>&1; then
	rm -rf r1
	valgrind -q --error-exitcode=99 "$AGIMPORT" receive r1 <hole.bin >vg.out 2>&1
	rc=$?
	[ $rc = 0 ] && ok "valgrind: no invalid access in the receiver" || { not_ok "valgrind: no invalid access in the receiver (exit $rc)"; grep -v '^#' vg.out | head -20 | sed 's/^/#   /'; }
else
	ok "# SKIP valgrind not installed"
fi

# Finding 9: 400 volumes under ulimit -n 256.
keygen k
mkdir tree
head -c $((410 * 4096)) /dev/urandom > tree/random.bin
spec spec.json manyvol 1 files:payload:tree
"$AGPACK" build spec.json --key k.key --out many --volume-size 5K --chunk-size 4K --level 1 >build.out 2>&1 ||
	{ echo "Bail out! cannot build: $(tail -3 build.out)"; exit 1; }
nv=$(ls many | grep -c '^vol-')
[ "$nv" -ge 400 ] && ok "the bundle has $nv volumes" || not_ok "the bundle has $nv volumes (want >= 400)"
"$AGPACK" stream many > many.bin 2>build.out || { echo "Bail out! cannot stream: $(tail -3 build.out)"; exit 1; }
(ulimit -n 256 && "$AGIMPORT" receive rm < many.bin) >recvm.out 2>&1
rc=$?
[ $rc = 0 ] && ok "receive $nv volumes with ulimit -n 256" || { not_ok "receive $nv volumes with ulimit -n 256 (exit $rc)"; tail -3 recvm.out | sed 's/^/#   /'; }
check "the received bundle verifies" "$AGIMPORT" verify rm --pubkey k.pub
"$AGCTL" --root R init --pubkey k.pub >/dev/null
(ulimit -n 256 && "$AGIMPORT" stage --stream --root R < many.bin) >stagem.out 2>&1
rc=$?
[ $rc = 0 ] && ok "stage --stream of $nv volumes with ulimit -n 256" || { not_ok "stage --stream with ulimit -n 256 (exit $rc)"; tail -3 stagem.out | sed 's/^/#   /'; }
check "... the staged tree is the input" cmp tree/random.bin R/slots/blue/payload/random.bin
done_testing
