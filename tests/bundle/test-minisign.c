/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: minisign key and signature formats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/minisign.h"
#include "../tap.h"

int main(void)
{
	struct bn_pubkey pk, pk2;
	struct bn_seckey sk, sk2;
	struct bn_error err = {0};
	TAP_OK(bn_keygen(&pk, &sk) == 0, "keygen");
	TAP_OK(memcmp(pk.keyid, sk.keyid, 8) == 0, "public and secret key share the key id");

	char *ptext = NULL, *stext = NULL, *sig = NULL;
	TAP_OK(bn_pubkey_format(&pk, &ptext) == 0, "format public key");
	TAP_OK(bn_pubkey_parse(ptext, strlen(ptext), &pk2, &err) == 0 && memcmp(&pk, &pk2, sizeof pk) == 0,
	       "public key round trip");
	char id[BN_KEYID_HEX];
	bn_keyid_hex(pk.keyid, id);
	TAP_OK(strstr(ptext, id) != NULL, "public key file names the key id %s", id);

	TAP_OK(bn_seckey_format(&sk, NULL, &stext) == 0, "format unencrypted secret key");
	bool enc = true;
	TAP_OK(bn_seckey_needs_passphrase(stext, strlen(stext), &enc) == 0 && !enc, "unencrypted key needs no passphrase");
	TAP_OK(bn_seckey_parse(stext, strlen(stext), NULL, &sk2, &err) == 0 && memcmp(&sk, &sk2, sizeof sk) == 0,
	       "secret key round trip");
	/* A flipped secret byte must be caught by the checksum. */
	char *bad = strdup(stext);
	char *line2 = strchr(bad, '\n') + 1;
	line2[80] = line2[80] == 'A' ? 'B' : 'A';
	TAP_OK(bn_seckey_parse(bad, strlen(bad), NULL, &sk2, &err) < 0, "corrupted secret key refused");
	free(bad);

	static const char msg[] = "manifest bytes";
	TAP_OK(bn_minisig_sign(&sk, msg, sizeof msg - 1, "uc", "tc: one", &sig, &err) == 0, "sign");
	struct bn_minisig s;
	TAP_OK(bn_minisig_parse(sig, strlen(sig), &s, &err) == 0, "parse signature");
	TAP_OK(!strcmp(s.alg, "ED"), "prehashed ED signature");
	TAP_OK(!strcmp(s.trusted_comment, "tc: one"), "trusted comment parsed");
	TAP_OK(bn_minisig_verify(&s, &pk, msg, sizeof msg - 1) == 0, "verifies");
	TAP_OK(bn_minisig_verify(&s, &pk, "manifest bytez", sizeof msg - 1) == -EBADMSG, "other message refused");
	struct bn_minisig s2 = s;
	s2.trusted_comment[0] = 'X';
	TAP_OK(bn_minisig_verify(&s2, &pk, msg, sizeof msg - 1) == -EBADMSG, "edited trusted comment refused");
	s2 = s;
	s2.global_sig[5] ^= 1;
	TAP_OK(bn_minisig_verify(&s2, &pk, msg, sizeof msg - 1) == -EBADMSG, "flipped global signature refused");
	struct bn_pubkey opk;
	struct bn_seckey osk;
	TAP_OK(bn_keygen(&opk, &osk) == 0, "second keygen");
	TAP_OK(bn_minisig_verify(&s, &opk, msg, sizeof msg - 1) == -ENOKEY, "other key: key id mismatch");
	memcpy(opk.keyid, pk.keyid, 8);
	TAP_OK(bn_minisig_verify(&s, &opk, msg, sizeof msg - 1) == -EBADMSG, "other key with forged key id refused");

	/* Hostile signature files. */
	TAP_OK(bn_minisig_parse("", 0, &s, &err) < 0, "empty signature refused");
	TAP_OK(bn_minisig_parse("a\nb\nc\nd\ne\n", 10, &s, &err) < 0, "five lines refused");
	char *big = malloc(BN_SIGFILE_MAX + 10);
	memset(big, 'A', BN_SIGFILE_MAX + 10);
	TAP_OK(bn_minisig_parse(big, BN_SIGFILE_MAX + 10, &s, &err) == -EFBIG, "oversized signature refused");
	free(big);
	char *nul = strdup(sig);
	strstr(nul, "tc: one")[2] = '\0';
	TAP_OK(bn_minisig_parse(nul, strlen(sig), &s, &err) < 0 ||
	               bn_minisig_verify(&s, &pk, msg, sizeof msg - 1) < 0,
	       "NUL inside the trusted comment refused");
	free(nul);
	TAP_OK(bn_pubkey_parse("untrusted comment: x\nAAAA\n", 25, &pk2, &err) < 0, "short public key refused");
	/* libsodium 1.0.18 reads base64 as signed chars: '/' with its high bit set (0xAF) decoded as '/', so a
	 * signature file with that flip verified. Every base64 byte of lines 2 and 4 with the high bit set is refused.
	 */
	int lax = 0, nb64 = 0;
	for (char *p = strchr(sig, '\n') + 1; *p; p++) {
		if (!strncmp(p, "trusted comment: ", 17)) {
			p = strchr(p, '\n');
			continue;
		}
		if (*p == '\n')
			continue;
		char *hi = strdup(sig);
		hi[p - sig] = (char)(*p | 0x80);
		nb64++;
		lax += bn_minisig_parse(hi, strlen(hi), &s, &err) == 0;
		free(hi);
	}
	TAP_OK(nb64 == 100 + 88 && lax == 0, "a base64 byte with the high bit set is refused (%d of %d accepted)", lax,
	       nb64);
	char *hpk = strdup(ptext);
	char *slash = strchr(strchr(hpk, '\n') + 1, '/');
	if (!slash)
		slash = strchr(hpk, '\n') + 1;
	*slash = (char)(*slash | 0x80);
	TAP_OK(bn_pubkey_parse(hpk, strlen(hpk), &pk2, &err) < 0, "public key with a high-bit base64 byte refused");
	free(hpk);

	/* Encrypted key (scrypt with minisign's parameters: slow, 1 GiB). */
	TAP_OK(bn_seckey_format(&sk, "pw", &bad) == 0, "format encrypted secret key");
	TAP_OK(bn_seckey_needs_passphrase(bad, strlen(bad), &enc) == 0 && enc, "encrypted key needs a passphrase");
	TAP_OK(bn_seckey_parse(bad, strlen(bad), NULL, &sk2, &err) == -ENOKEY, "no passphrase: refused");
	TAP_OK(bn_seckey_parse(bad, strlen(bad), "wrong", &sk2, &err) == -EKEYREJECTED, "wrong passphrase: refused");
	TAP_OK(bn_seckey_parse(bad, strlen(bad), "pw", &sk2, &err) == 0 && memcmp(&sk, &sk2, sizeof sk) == 0,
	       "right passphrase: same key");
	free(bad);
	free(ptext);
	free(stext);
	free(sig);
	return tap_done();
}
