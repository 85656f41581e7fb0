#!/bin/bash
# Disk full during staging, on a small tmpfs: a clear error, the active slot
# untouched, partial staging removed.  Also extract into a full file system.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-deploy.sh"
cd "$WORK"
[ "$(id -u)" = 0 ] || skip_all "needs root to mount a tmpfs"
mkdir mnt
mount -t tmpfs -o size=6M tmpfs mnt 2>/dev/null || skip_all "cannot mount a tmpfs here"
on_exit "umount '$WORK/mnt'"
R=$WORK/mnt/R
keygen k
mkbundle app 1 k.key b1
mkdir big && printf 'weights of app v2\n' > big/weights.bin && head -c 5M /dev/urandom > big/blob.bin
echo '{"name":"app","channel":"stable","version":2,"artifacts":[{"type":"files","name":"model","path":"big"}]}' > big.json
"$AGPACK" build big.json --key k.key --out b2 --chunk-size 256K >/dev/null 2>&1
check "init on a 6 MiB tmpfs" "$AGCTL" --root "$R" init --pubkey k.pub
check "import and promote v1" sh -c "'$AGIMPORT' b1 --root '$R' && '$AGCTL' --root '$R' promote"
dd if=/dev/zero of=mnt/filler bs=1M count=2 status=none
free_before=$(df -Pk mnt | awk 'NR==2 {print $4}')

expect_exit 4 "an import larger than the free space is refused up front" "$AGIMPORT" b2 --root "$R"
last_output | grep -q "not enough free space" && ok "message says not enough free space" || not_ok "message says not enough free space"
check "active slot untouched" test "$(active_content)" = "weights of app v1"
check "no partial staging left" sh -c "test -z \"\$(ls -A '$R/staging')\""
check "idle slot state unchanged (empty)" test "$(st 's["slots"]["green"]["state"]')" = empty

AGKIT_SKIP_SPACE_CHECK=1 "$AGIMPORT" b2 --root "$R" > out.txt 2>&1
rc=$?
[ $rc = 4 ] && ok "running out of space mid-write exits 4" || { not_ok "running out of space mid-write exits 4 (exit $rc)"; sed 's/^/#   /' out.txt; }
grep -q "No space left on device" out.txt && ok "message names ENOSPC and the file" || not_ok "message names ENOSPC and the file"
check "active slot untouched after ENOSPC" test "$(active_content)" = "weights of app v1"
check "partial staging removed after ENOSPC" sh -c "test -z \"\$(ls -A '$R/staging')\""
free_after=$(df -Pk mnt | awk 'NR==2 {print $4}')
[ "$free_after" -ge $((free_before - 64)) ] && ok "space given back ($free_after KiB free, was $free_before)" || not_ok "space given back ($free_after KiB free, was $free_before)"
check "audit records the failure" grep -q '"action":"import".*"result":"failed".*No space left' "$R/audit.log"
check "status and audit still fine" sh -c "'$AGCTL' --root '$R' status >/dev/null && '$AGCTL' --root '$R' audit verify >/dev/null"
rm mnt/filler
check "with space freed the import succeeds" "$AGIMPORT" b2 --root "$R"

# Plain extract into a full file system.
dd if=/dev/zero of=mnt/filler bs=1M count=5 status=none 2>/dev/null
expect_exit 4 "agimport extract refuses when space is short" "$AGIMPORT" extract b2 --pubkey k.pub --to mnt/x
check "no target and no temporary directory" sh -c "! ls -d mnt/x mnt/x.agtmp-* 2>/dev/null | grep -q ."
done_testing
