/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bundle/fsutil.h"
#include "bundle/minisign.h"
#include "bundle/sha256.h"

#define SK_KDF_OPSLIMIT 33554432ULL   /* crypto_pwhash_scryptsalsa208sha256_OPSLIMIT_SENSITIVE */
#define SK_KDF_MEMLIMIT 1073741824ULL /* crypto_pwhash_scryptsalsa208sha256_MEMLIMIT_SENSITIVE */
#define SK_KDF_MEMLIMIT_MAX (1ULL << 32) /* refuse key files that demand more */

enum { PK_BIN = 2 + 8 + 32, SIG_BIN = 2 + 8 + 64, KEYNUM_SK = 8 + 64 + 32,
       SK_BIN = 2 + 2 + 2 + 32 + 8 + 8 + KEYNUM_SK };

int bn_crypto_init(void)
{
	if (sodium_init() < 0)
		return -EIO;
	return bn_sha256_init();
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

void bn_keyid_hex(const uint8_t keyid[BN_KEYID_LEN], char out[BN_KEYID_HEX])
{
	snprintf(out, BN_KEYID_HEX, "%016" PRIX64, le64(keyid));
}

int bn_keygen(struct bn_pubkey *ret_pub, struct bn_seckey *ret_sec)
{
	int r = bn_crypto_init();
	if (r < 0)
		return r;
	uint8_t pk[32], sk[64], id[8];
	crypto_sign_keypair(pk, sk);
	randombytes_buf(id, sizeof id);
	memcpy(ret_pub->keyid, id, 8);
	memcpy(ret_pub->pk, pk, 32);
	memcpy(ret_sec->keyid, id, 8);
	memcpy(ret_sec->sk, sk, 64);
	sodium_memzero(sk, sizeof sk);
	return 0;
}

void bn_seckey_wipe(struct bn_seckey *sk)
{
	if (sk)
		sodium_memzero(sk, sizeof *sk);
}

static char *b64(const uint8_t *bin, size_t len)
{
	size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(n);
	if (out)
		sodium_bin2base64(out, n, bin, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Decodes one base64 line into exactly want bytes. Only the alphabet and '=' pass: libsodium 1.0.18 reads the
 * line as signed chars, so a byte with the high bit set can decode as the character it differs from in that bit
 * (0xAF as '/'), and a signature file altered that way would still verify. */
static bool unb64(const char *line, size_t linelen, uint8_t *out, size_t want)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
	for (size_t i = 0; i < linelen; i++)
		if (!line[i] || !strchr(alphabet, line[i]))
			return false;
	size_t got = 0;
	if (sodium_base642bin(out, want, line, linelen, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return got == want;
}

/* Splits text into at most max lines (no CR/LF kept); returns count or -1 when malformed. */
static int split_lines(const char *text, size_t len, const char **lines, size_t *lens, int max)
{
	int n = 0;
	size_t i = 0;
	while (i < len) {
		if (n == max)
			return -1;
		size_t s = i;
		while (i < len && text[i] != '\n')
			i++;
		size_t e = i;
		if (e > s && text[e - 1] == '\r')
			e--;
		lines[n] = text + s;
		lens[n] = e - s;
		n++;
		if (i < len)
			i++;
	}
	/* Ignore trailing blank lines. */
	while (n > 0 && lens[n - 1] == 0)
		n--;
	for (int k = 0; k < n; k++)
		if (memchr(lines[k], '\0', lens[k]))
			return -1;
	return n;
}

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);
	return len >= pl && memcmp(s, prefix, pl) == 0;
}

int bn_pubkey_format(const struct bn_pubkey *pk, char **ret_text)
{
	uint8_t bin[PK_BIN];
	memcpy(bin, "Ed", 2);
	memcpy(bin + 2, pk->keyid, 8);
	memcpy(bin + 10, pk->pk, 32);
	char *enc = b64(bin, sizeof bin);
	if (!enc)
		return -ENOMEM;
	char id[BN_KEYID_HEX];
	bn_keyid_hex(pk->keyid, id);
	char *text = NULL;
	int q = asprintf(&text, "untrusted comment: minisign public key %s\n%s\n", id, enc);
	free(enc);
	if (q < 0)
		return -ENOMEM;
	*ret_text = text;
	return 0;
}

int bn_pubkey_parse(const char *text, size_t len, struct bn_pubkey *ret, struct bn_error *err)
{
	const char *lines[4];
	size_t lens[4];
	int n = split_lines(text, len, lines, lens, 4);
	/* minisign also accepts the bare base64 line (minisign -P); so do we. */
	const char *l;
	size_t ll;
	if (n == 1) {
		l = lines[0];
		ll = lens[0];
	} else if (n == 2 && has_prefix(lines[0], lens[0], "untrusted comment: ")) {
		l = lines[1];
		ll = lens[1];
	} else {
		return bn_fail(err, -EBADMSG, "not a minisign public key");
	}
	uint8_t bin[PK_BIN];
	if (!unb64(l, ll, bin, sizeof bin))
		return bn_fail(err, -EBADMSG, "not a minisign public key (bad base64 or length)");
	if (memcmp(bin, "Ed", 2) != 0)
		return bn_fail(err, -EBADMSG, "unsupported public key algorithm");
	memcpy(ret->keyid, bin + 2, 8);
	memcpy(ret->pk, bin + 10, 32);
	return 0;
}

int bn_pubkey_load(const char *path, struct bn_pubkey *ret, struct bn_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int r = bn_read_file(path, BN_KEYFILE_MAX, &buf, &len, err);
	if (r < 0)
		return r;
	r = bn_pubkey_parse(buf, len, ret, err);
	free(buf);
	if (r < 0)
		bn_error_prefix(err, "%s", path);
	return r;
}

static void seckey_chk(const uint8_t keyid[8], const uint8_t sk[64], uint8_t out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)"Ed", 2);
	crypto_generichash_update(&st, keyid, 8);
	crypto_generichash_update(&st, sk, 64);
	crypto_generichash_final(&st, out, 32);
}

static int kdf_stream(const char *pass, const uint8_t salt[32], uint64_t ops, uint64_t mem, uint8_t out[KEYNUM_SK])
{
	if (mem > SK_KDF_MEMLIMIT_MAX || ops > (1ULL << 40))
		return -EFBIG;
	if (crypto_pwhash_scryptsalsa208sha256(out, KEYNUM_SK, pass, strlen(pass), salt, (unsigned long long)ops,
	                                       (size_t)mem) != 0)
		return -ENOMEM;
	return 0;
}

int bn_seckey_format(const struct bn_seckey *sk, const char *passphrase, char **ret_text)
{
	int r = bn_crypto_init();
	if (r < 0)
		return r;
	uint8_t bin[SK_BIN];
	uint8_t *p = bin;
	memcpy(p, "Ed", 2);
	memcpy(p + 2, passphrase ? "Sc" : "\0\0", 2);
	memcpy(p + 4, "B2", 2);
	uint8_t *salt = p + 6;
	randombytes_buf(salt, 32);
	put_le64(p + 38, SK_KDF_OPSLIMIT);
	put_le64(p + 46, SK_KDF_MEMLIMIT);
	uint8_t *ks = p + 54;
	memcpy(ks, sk->keyid, 8);
	memcpy(ks + 8, sk->sk, 64);
	seckey_chk(sk->keyid, sk->sk, ks + 72);
	if (passphrase) {
		uint8_t stream[KEYNUM_SK];
		r = kdf_stream(passphrase, salt, SK_KDF_OPSLIMIT, SK_KDF_MEMLIMIT, stream);
		if (r < 0) {
			sodium_memzero(bin, sizeof bin);
			return r;
		}
		for (size_t i = 0; i < KEYNUM_SK; i++)
			ks[i] ^= stream[i];
		sodium_memzero(stream, sizeof stream);
	}
	char *enc = b64(bin, sizeof bin);
	sodium_memzero(bin, sizeof bin);
	if (!enc)
		return -ENOMEM;
	char *text = NULL;
	int q = asprintf(&text, "untrusted comment: minisign %s secret key\n%s\n",
	                 passphrase ? "encrypted" : "unencrypted", enc);
	sodium_memzero(enc, strlen(enc));
	free(enc);
	if (q < 0)
		return -ENOMEM;
	*ret_text = text;
	return 0;
}

static int seckey_decode(const char *text, size_t len, uint8_t bin[SK_BIN])
{
	const char *lines[4];
	size_t lens[4];
	int n = split_lines(text, len, lines, lens, 4);
	if (n != 2 || !has_prefix(lines[0], lens[0], "untrusted comment: "))
		return -EBADMSG;
	if (!unb64(lines[1], lens[1], bin, SK_BIN))
		return -EBADMSG;
	if (memcmp(bin, "Ed", 2) != 0 || memcmp(bin + 4, "B2", 2) != 0)
		return -EBADMSG;
	if (memcmp(bin + 2, "Sc", 2) != 0 && memcmp(bin + 2, "\0\0", 2) != 0)
		return -EBADMSG;
	return 0;
}

int bn_seckey_needs_passphrase(const char *text, size_t len, bool *ret)
{
	uint8_t bin[SK_BIN];
	int r = seckey_decode(text, len, bin);
	if (r == 0)
		*ret = memcmp(bin + 2, "Sc", 2) == 0;
	sodium_memzero(bin, sizeof bin);
	return r;
}

int bn_seckey_parse(const char *text, size_t len, const char *passphrase, struct bn_seckey *ret,
                    struct bn_error *err)
{
	int r = bn_crypto_init();
	if (r < 0)
		return bn_fail(err, r, "libsodium failed to initialise");
	uint8_t bin[SK_BIN];
	r = seckey_decode(text, len, bin);
	if (r < 0)
		return bn_fail(err, r, "not a minisign secret key");
	uint8_t *ks = bin + 54;
	if (memcmp(bin + 2, "Sc", 2) == 0) {
		if (!passphrase) {
			sodium_memzero(bin, sizeof bin);
			return bn_fail(err, -ENOKEY, "secret key is encrypted and no passphrase was given");
		}
		uint8_t stream[KEYNUM_SK];
		r = kdf_stream(passphrase, bin + 6, le64(bin + 38), le64(bin + 46), stream);
		if (r < 0) {
			sodium_memzero(bin, sizeof bin);
			return bn_fail(err, r == -EFBIG ? -EBADMSG : r, "secret key: cannot derive key (%s)",
			               r == -EFBIG ? "absurd scrypt parameters" : "out of memory");
		}
		for (size_t i = 0; i < KEYNUM_SK; i++)
			ks[i] ^= stream[i];
		sodium_memzero(stream, sizeof stream);
	}
	uint8_t chk[32], zero[32] = {0}, pk[32], sk2[64];
	seckey_chk(ks, ks + 8, chk);
	/* `minisign -G -W` leaves the checksum of an unencrypted key zeroed. */
	bool unchecked = memcmp(bin + 2, "\0\0", 2) == 0 && sodium_memcmp(ks + 72, zero, 32) == 0;
	/* Either way the secret half must derive the public half it carries. */
	crypto_sign_seed_keypair(pk, sk2, ks + 8);
	bool consistent = sodium_memcmp(sk2, ks + 8, 64) == 0;
	sodium_memzero(sk2, sizeof sk2);
	if ((!unchecked && sodium_memcmp(chk, ks + 72, 32) != 0) || !consistent) {
		sodium_memzero(bin, sizeof bin);
		return bn_fail(err, -EKEYREJECTED, "wrong passphrase or corrupted secret key (checksum mismatch)");
	}
	memcpy(ret->keyid, ks, 8);
	memcpy(ret->sk, ks + 8, 64);
	sodium_memzero(bin, sizeof bin);
	return 0;
}

int bn_minisig_sign(const struct bn_seckey *sk, const void *data, size_t len, const char *untrusted_comment,
                    const char *trusted_comment, char **ret_text, struct bn_error *err)
{
	int r = bn_crypto_init();
	if (r < 0)
		return bn_fail(err, r, "libsodium failed to initialise");
	size_t tcl = strlen(trusted_comment);
	if (tcl >= BN_TRUSTED_COMMENT_MAX || strchr(trusted_comment, '\n') || strchr(untrusted_comment, '\n'))
		return bn_fail(err, -EINVAL, "comment too long or contains a newline");
	uint8_t hash[crypto_generichash_BYTES_MAX];
	crypto_generichash(hash, sizeof hash, data, len, NULL, 0);
	uint8_t bin[SIG_BIN];
	memcpy(bin, "ED", 2);
	memcpy(bin + 2, sk->keyid, 8);
	crypto_sign_detached(bin + 10, NULL, hash, sizeof hash, sk->sk);
	uint8_t *gmsg = malloc(64 + tcl);
	if (!gmsg)
		return bn_fail(err, -ENOMEM, "out of memory");
	memcpy(gmsg, bin + 10, 64);
	memcpy(gmsg + 64, trusted_comment, tcl);
	uint8_t gsig[64];
	crypto_sign_detached(gsig, NULL, gmsg, 64 + tcl, sk->sk);
	free(gmsg);
	char *e1 = b64(bin, sizeof bin), *e2 = b64(gsig, sizeof gsig);
	char *text = NULL;
	int q = -1;
	if (e1 && e2)
		q = asprintf(&text, "untrusted comment: %s\n%s\ntrusted comment: %s\n%s\n", untrusted_comment, e1,
		             trusted_comment, e2);
	free(e1);
	free(e2);
	if (q < 0)
		return bn_fail(err, -ENOMEM, "out of memory");
	*ret_text = text;
	return 0;
}

int bn_minisig_parse(const char *text, size_t len, struct bn_minisig *ret, struct bn_error *err)
{
	if (len > BN_SIGFILE_MAX)
		return bn_fail(err, -EFBIG, "signature file too large");
	const char *lines[5];
	size_t lens[5];
	int n = split_lines(text, len, lines, lens, 5);
	if (n != 4)
		return bn_fail(err, -EBADMSG, "not a minisign signature (expected 4 lines)");
	if (!has_prefix(lines[0], lens[0], "untrusted comment: "))
		return bn_fail(err, -EBADMSG, "not a minisign signature (line 1)");
	uint8_t bin[SIG_BIN];
	if (!unb64(lines[1], lens[1], bin, sizeof bin))
		return bn_fail(err, -EBADMSG, "not a minisign signature (line 2: bad base64 or length)");
	if (memcmp(bin, "ED", 2) != 0 && memcmp(bin, "Ed", 2) != 0)
		return bn_fail(err, -EBADMSG, "unsupported signature algorithm");
	static const char tprefix[] = "trusted comment: ";
	if (!has_prefix(lines[2], lens[2], tprefix))
		return bn_fail(err, -EBADMSG, "not a minisign signature (line 3: no trusted comment)");
	size_t tcl = lens[2] - (sizeof tprefix - 1);
	if (tcl >= BN_TRUSTED_COMMENT_MAX)
		return bn_fail(err, -EBADMSG, "trusted comment too long");
	uint8_t gsig[64];
	if (!unb64(lines[3], lens[3], gsig, sizeof gsig))
		return bn_fail(err, -EBADMSG, "not a minisign signature (line 4: bad base64 or length)");
	memcpy(ret->alg, bin, 2);
	ret->alg[2] = '\0';
	memcpy(ret->keyid, bin + 2, 8);
	memcpy(ret->sig, bin + 10, 64);
	memcpy(ret->trusted_comment, lines[2] + sizeof tprefix - 1, tcl);
	ret->trusted_comment[tcl] = '\0';
	memcpy(ret->global_sig, gsig, 64);
	return 0;
}

int bn_minisig_verify(const struct bn_minisig *s, const struct bn_pubkey *pk, const void *data, size_t len)
{
	if (bn_crypto_init() < 0)
		return -EIO;
	if (sodium_memcmp(s->keyid, pk->keyid, 8) != 0)
		return -ENOKEY;
	int ok;
	if (!strcmp(s->alg, "ED")) {
		uint8_t hash[crypto_generichash_BYTES_MAX];
		crypto_generichash(hash, sizeof hash, data, len, NULL, 0);
		ok = crypto_sign_verify_detached(s->sig, hash, sizeof hash, pk->pk);
	} else {
		ok = crypto_sign_verify_detached(s->sig, data, len, pk->pk);
	}
	if (ok != 0)
		return -EBADMSG;
	size_t tcl = strlen(s->trusted_comment);
	uint8_t *gmsg = malloc(64 + tcl);
	if (!gmsg)
		return -ENOMEM;
	memcpy(gmsg, s->sig, 64);
	memcpy(gmsg + 64, s->trusted_comment, tcl);
	ok = crypto_sign_verify_detached(s->global_sig, gmsg, 64 + tcl, pk->pk);
	free(gmsg);
	return ok == 0 ? 0 : -EBADMSG;
}
