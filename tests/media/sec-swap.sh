#!/bin/bash
# Security review (issue 13), finding 1: a medium that answers differently on
# the second read (an LD_PRELOAD shim plays the crafted USB firmware) must
# not stage an old, validly signed bundle labelled as a new version.  Also:
# staging a medium applies the floor, and a refused medium leaves no
# R/staging/media behind.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
cd "$WORK"
CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || skip_all "no C compiler for the shim"
"$CC" -shared -fPIC -O1 -o swapshim.so "$TESTS_DIR/media/swapshim.c" -ldl 2>cc.out || skip_all "cannot build the shim: $(head -1 cc.out)"
keygen k
mkdir t1 t2
printf 'weights v1 (vulnerable)\n' > t1/weights.bin
head -c 100000 /dev/urandom > t1/blob.bin
printf 'weights v2 (fixed)\n' > t2/weights.bin
head -c 100000 /dev/urandom > t2/blob.bin
spec s1.json app 1 files:model:t1
spec s2.json app 2 files:model:t2
"$AGPACK" build s1.json --key k.key --out v1 --chunk-size 16K --media 10M >b.out 2>&1 || { echo "Bail out! $(tail -2 b.out)"; exit 1; }
"$AGPACK" build s2.json --key k.key --out v2 --chunk-size 16K --media 10M >b.out 2>&1 || { echo "Bail out! $(tail -2 b.out)"; exit 1; }
# A set of two media of v1, for the floor check at the first medium.
"$AGPACK" build s1.json --key k.key --out v1two --volume-size 32K --chunk-size 16K --media 64K >b.out 2>&1 || { echo "Bail out! $(tail -2 b.out)"; exit 1; }
[ "$(ls -d v1/medium-* | wc -l)" = 1 ] && [ "$(ls -d v2/medium-* | wc -l)" = 1 ] && ok "v1 and v2 are one-medium sets" || not_ok "v1 and v2 are one-medium sets"
R=$WORK/R
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
check "import v1 from its medium" "$AGIMPORT" stage v1/medium-01 --root "$R"
check "promote v1" "$AGCTL" --root "$R" promote

# The attack: the medium holds v1; its second answer for manifest.json and
# the signatures is v2's (validly signed, higher version).
export SHIM_DIR=$WORK/v1/medium-01 SHIM_ALT=$WORK/v2/medium-01 SHIM_LOG=$WORK/shim.log
# Under AddressSanitizer the shim comes before its runtime: allowed here.
ASAN_OPTIONS=verify_asan_link_order=0:${ASAN_OPTIONS:-} LD_PRELOAD=$WORK/swapshim.so timeout -k 3 60 "$AGIMPORT" stage "$SHIM_DIR" --root "$R" >atk.out 2>&1
rc=$?
unset SHIM_DIR SHIM_ALT
[ $rc != 0 ] && ok "the swapped medium is refused (exit $rc)" || { not_ok "the swapped medium is refused"; sed 's/^/#   /' atk.out; }
[ $rc = 5 ] && ok "... as a downgrade of v1 (exit 5, policy)" || { not_ok "... as a downgrade (exit $rc, want 5)"; sed 's/^/#   /' atk.out; }
n=$(wc -l < shim.log)
[ "$n" = 1 ] && ok "manifest.json is read once per command" || not_ok "manifest.json is read once per command (read $n times)"
labelled_v2_with_v1=0
for s in blue green; do
	if grep -q '"version": *2' "$R/slots/$s/.agkit-manifest.json" 2>/dev/null && cmp -s t1/weights.bin "$R/slots/$s/model/weights.bin"; then
		labelled_v2_with_v1=1
	fi
done
[ $labelled_v2_with_v1 = 0 ] && ok "no slot holds v1's weights labelled version 2" || not_ok "no slot holds v1's weights labelled version 2"
g=$("$AGCTL" --root "$R" status --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["slots"]["green"]["state"])')
[ "$g" = empty ] && ok "nothing staged by the attack" || not_ok "nothing staged by the attack (green is $g)"
test ! -e "$R/staging/media" && ok "the refused medium leaves no R/staging/media" || { not_ok "the refused medium leaves no R/staging/media"; ls -la "$R/staging" | sed 's/^/#   /'; }

# Staging applies the floor at the first medium of a set, before staging anything.
[ "$(ls -d v1two/medium-* | wc -l)" -ge 2 ] && ok "v1two has several media" || not_ok "v1two has several media"
expect_exit 5 "the first medium of an old set is refused by the floor" "$AGIMPORT" stage v1two/medium-01 --root "$R"
last_output | grep -q "not above the last accepted" && ok "... saying why" || { not_ok "... saying why"; last_output | sed 's/^/#   /'; }
test ! -e "$R/staging/media" && ok "... and leaves no R/staging/media" || not_ok "... and leaves no R/staging/media"

# Expiry too, at the first medium (an old creation time, a fresh version).
RX=$WORK/RX
"$AGCTL" --root "$RX" init --pubkey k.pub >/dev/null
$PY -c 'import json,sys; t=json.load(open(sys.argv[1])); t["max_bundle_age_days"]=30; json.dump(t,open(sys.argv[1],"w"))' "$RX/trust.json"
SOURCE_DATE_EPOCH=1500000000 "$AGPACK" build s2.json --key k.key --out oldtwo --volume-size 32K --chunk-size 16K --media 64K >b.out 2>&1 || { echo "Bail out! $(tail -2 b.out)"; exit 1; }
expect_exit 5 "the first medium of an expired set is refused" "$AGIMPORT" stage oldtwo/medium-01 --root "$RX"
last_output | grep -q "expired" && ok "... saying expired" || { not_ok "... saying expired"; last_output | sed 's/^/#   /'; }
test ! -e "$RX/staging/media" && ok "... and leaves no R/staging/media" || not_ok "... and leaves no R/staging/media"

# bn_media_stage_install itself: a tree staged from v1's manifest is not
# installed as v2 (the progress record names the manifest it was staged from).
if [ -n "${STAGESWAP:-}" ]; then
	"$STAGESWAP" v1/medium-01 v2/medium-01 k.pub swapwork swaptarget >sw.out 2>&1
	rc=$?
	[ $rc = 0 ] && ok "install refuses a staged tree of another manifest, installs its own" || { not_ok "install refuses a staged tree of another manifest (exit $rc)"; sed 's/^/#   /' sw.out; }
	grep -q "install as B: .*not of the verified manifest of bundle app version 2" sw.out && ok "... saying why" || { not_ok "... saying why"; sed 's/^/#   /' sw.out; }
	check "... and the installed tree is v1's" cmp t1/weights.bin swaptarget/model/weights.bin
else
	ok "# SKIP STAGESWAP helper not given"
fi

# The refused media left nothing in the way of the genuine one.
check "the genuine v2 medium imports after all that" "$AGIMPORT" stage v2/medium-01 --root "$R"
check "... with v2's weights" cmp t2/weights.bin "$R/slots/green/model/weights.bin"
grep -q '"version": *2' "$R/slots/green/.agkit-manifest.json" && ok "... labelled version 2" || not_ok "... labelled version 2"
done_testing
