#!/bin/bash
# Interop with stock minisign (both directions) and coreutils sha256sum.
. "$(dirname "$0")/../lib.sh"
need minisign sha256sum
cd "$WORK"
mkdir src && head -c 200000 /dev/urandom > src/data && echo hi > src/readme
spec spec.json interop 1 files:payload:src
echo "some message" > msg.txt

# agkit keys, stock minisign signs and verifies.
keygen plain
check "minisign signs with an unencrypted agpack key" sh -c 'minisign -S -s plain.key -m msg.txt -x m1.sig </dev/null'
check "minisign verifies it with the agpack public key" minisign -V -p plain.pub -m msg.txt -x m1.sig
printf 'correct horse\n' > pass.txt
check "agpack keygen with a passphrase from AGKIT_PASSPHRASE_FILE" env AGKIT_PASSPHRASE_FILE=pass.txt "$AGPACK" keygen --out enc
check "encrypted secret key is mode 0600" sh -c 'test "$(stat -c %a enc.key)" = 600'
check "minisign signs with the encrypted agpack key and its passphrase" sh -c 'minisign -S -s enc.key -m msg.txt -x m2.sig < pass.txt'
check "minisign verifies that signature" minisign -V -p enc.pub -m msg.txt -x m2.sig
printf 'wrong\n' > wrong.txt
expect_exit 3 "agpack refuses the encrypted key with a wrong passphrase" env AGKIT_PASSPHRASE_FILE=wrong.txt "$AGPACK" build spec.json --key enc.key --out bad
check "agpack builds with the encrypted key and the right passphrase" env AGKIT_PASSPHRASE_FILE=pass.txt "$AGPACK" build spec.json --key enc.key --out b-enc
check "agimport verifies it" "$AGIMPORT" verify b-enc --pubkey enc.pub

# Bundle signatures verify with stock minisign.
check "agpack build" "$AGPACK" build spec.json --key plain.key --out b1
id=$(sed -n 's/.*public key \([0-9A-F]*\)$/\1/p' plain.pub)
check "signature file is named by the key id minisign prints" test -f "b1/signatures/$id.minisig"
check "minisign -V verifies the bundle manifest" minisign -V -m b1/manifest.json -x "b1/signatures/$id.minisig" -p plain.pub
check "trusted comment names bundle, channel, version and manifest sha256" sh -c \
	"minisign -V -m b1/manifest.json -x b1/signatures/$id.minisig -p plain.pub | grep -q \"bundle:interop	channel:stable	version:1	sha256:\$(sha256sum b1/manifest.json | cut -c1-64)\""
check "sha256sum -c accepts SHA256SUMS" sh -c 'cd b1 && sha256sum --strict -c SHA256SUMS'

# minisign keys work with agkit.
check "minisign -G makes a key pair" minisign -G -W -p mk.pub -s mk.key
check "agpack builds with a minisign secret key" "$AGPACK" build spec.json --key mk.key --out b2
check "agimport verifies with the minisign public key" "$AGIMPORT" verify b2 --pubkey mk.pub
check "a bare base64 public key line is accepted too" sh -c "tail -n1 mk.pub > bare.pub && '$AGIMPORT' verify b2 --pubkey bare.pub"

# A manifest signed by stock minisign with agkit's trusted comment verifies.
cp -r b2 b3 && rm b3/signatures/*
sha=$(sha256sum b3/manifest.json | cut -c1-64)
check "minisign signs a bundle manifest" sh -c "minisign -S -s plain.key -m b3/manifest.json -x b3/signatures/x.minisig -t 'timestamp:1	bundle:interop	channel:stable	version:1	sha256:$sha' </dev/null"
check "agimport accepts the minisign-made bundle signature" "$AGIMPORT" verify b3 --pubkey plain.pub

# agpack sign adds a second signature; both keys then satisfy threshold 2.
check "agpack sign adds a signature" "$AGPACK" sign b1 --key mk.key
check "threshold 2 with both keys" "$AGIMPORT" verify b1 --pubkey plain.pub --pubkey mk.pub --threshold 2
expect_exit 3 "threshold 2 fails when only one trusted key signed" "$AGIMPORT" verify b2 --pubkey plain.pub --pubkey mk.pub --threshold 2
check "SHA256SUMS still checks after sign" sh -c 'cd b1 && sha256sum --strict -c SHA256SUMS'
done_testing
