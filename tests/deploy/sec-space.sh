#!/bin/bash
# Security review (issue 13), "also fix": free space is checked before the
# stream receiver writes into R/staging/stream and before per-medium staging,
# on a small tmpfs: refused up front with a clear message, nothing left behind.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-deploy.sh"
cd "$WORK"
[ "$(id -u)" = 0 ] || skip_all "needs root to mount a tmpfs"
mkdir mnt
mount -t tmpfs -o size=12M tmpfs mnt 2>/dev/null || skip_all "cannot mount a tmpfs here"
on_exit "umount '$WORK/mnt'"
R=$WORK/mnt/R
keygen k
mkbundle app 1 k.key b1
mkdir big && printf 'weights of app v2\n' > big/weights.bin && head -c 4M /dev/urandom > big/blob.bin
echo '{"name":"app","channel":"stable","version":2,"artifacts":[{"type":"files","name":"model","path":"big"}]}' > big.json
"$AGPACK" build big.json --key k.key --out b2 --chunk-size 256K --volume-size 1M >/dev/null 2>&1 &&
	"$AGPACK" stream b2 > s.bin 2>/dev/null &&
	"$AGPACK" build big.json --key k.key --out set2 --chunk-size 256K --volume-size 1M --media 2M >/dev/null 2>&1 ||
	{ echo "Bail out! cannot build the bundles"; exit 1; }
check "init on a 12 MiB tmpfs" "$AGCTL" --root "$R" init --pubkey k.pub
check "import and promote v1" sh -c "'$AGIMPORT' b1 --root '$R' && '$AGCTL' --root '$R' promote"
dd if=/dev/zero of=mnt/filler bs=1M count=9 status=none

expect_exit 4 "a stream larger than the free space is refused (exit 4)" sh -c "'$AGIMPORT' stage --stream --root '$R' < s.bin"
last_output | grep -q "staging/stream: not enough free space for the stream" && ok "... up front, saying so" ||
	{ not_ok "... up front, saying so"; last_output | sed 's/^/#   /'; }
check "... R/staging/stream removed" test ! -e "$R/staging/stream"
check "... active slot untouched" test "$(active_content)" = "weights of app v1"
first=$(ls -d set2/medium-* | head -1)
expect_exit 4 "a media set larger than the free space is refused at its first medium (exit 4)" "$AGIMPORT" stage "$first" --root "$R"
last_output | grep -q "staging/media: not enough free space to stage this media set" && ok "... up front, saying so" ||
	{ not_ok "... up front, saying so"; last_output | sed 's/^/#   /'; }
check "... no R/staging/media left" test ! -e "$R/staging/media"
check "... active slot untouched" test "$(active_content)" = "weights of app v1"
check "audit chain intact" "$AGCTL" --root "$R" audit verify
rm mnt/filler
check "with the space back, the stream imports" sh -c "'$AGIMPORT' stage --stream --root '$R' < s.bin"
check "... the staged bytes are the input" cmp big/blob.bin "$R/slots/green/model/blob.bin"
done_testing
