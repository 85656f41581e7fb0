/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "bundle/fsutil.h"
#include "bundle/sha256.h"

struct bn_sha256 {
	EVP_MD_CTX *ctx;
	/* OpenSSL allocates when a digest starts; if that fails, the same digest
	 * comes from libsodium's allocation-free SHA-256, so hashing never fails. */
	bool sodium;
	crypto_hash_sha256_state st;
};

/* Fetched once: after this, digest contexts need no allocation inside
 * OpenSSL, so an out-of-memory condition surfaces here, checked. */
static EVP_MD *sha256_md;

int bn_sha256_init(void)
{
	if (__atomic_load_n(&sha256_md, __ATOMIC_ACQUIRE))
		return 0;
	if (OPENSSL_init_crypto(0, NULL) != 1)
		return -ENOMEM;
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!md)
		return -ENOMEM;
	EVP_MD *expected = NULL;
	if (!__atomic_compare_exchange_n(&sha256_md, &expected, md, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		EVP_MD_free(md);
	return 0;
}

struct bn_sha256 *bn_sha256_new(void)
{
	if (bn_sha256_init() < 0)
		return NULL;
	struct bn_sha256 *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx || EVP_DigestInit_ex(s->ctx, sha256_md, NULL) != 1) {
		EVP_MD_CTX_free(s->ctx);
		free(s);
		return NULL;
	}
	return s;
}

void bn_sha256_free(struct bn_sha256 *s)
{
	if (!s)
		return;
	EVP_MD_CTX_free(s->ctx);
	free(s);
}

void bn_sha256_reset(struct bn_sha256 *s)
{
	s->sodium = EVP_DigestInit_ex(s->ctx, sha256_md, NULL) != 1;
	if (s->sodium)
		crypto_hash_sha256_init(&s->st);
}

void bn_sha256_update(struct bn_sha256 *s, const void *data, size_t len)
{
	if (s->sodium)
		crypto_hash_sha256_update(&s->st, data, len);
	else
		EVP_DigestUpdate(s->ctx, data, len);
}

void bn_sha256_final(struct bn_sha256 *s, uint8_t out[BN_SHA256_LEN])
{
	unsigned int n = 0;
	if (s->sodium)
		crypto_hash_sha256_final(&s->st, out);
	else
		EVP_DigestFinal_ex(s->ctx, out, &n);
	bn_sha256_reset(s);
}

void bn_sha256(const void *data, size_t len, uint8_t out[BN_SHA256_LEN])
{
	unsigned int n = 0;
	/* OpenSSL uses the CPU's SHA instructions; should it fail (out of
	 * memory), libsodium's allocation-free implementation gives the same
	 * digest, so a hash is never silently wrong. */
	if (bn_sha256_init() < 0 || EVP_Digest(data, len, out, &n, sha256_md, NULL) != 1 || n != BN_SHA256_LEN)
		crypto_hash_sha256(out, data, len);
}

int bn_sha256_file(const char *path, uint8_t out[BN_SHA256_LEN], uint64_t *ret_size,
                   struct bn_error *err)
{
	/* A regular file only (a FIFO or device never ends), not through a symlink. */
	int fd = bn_open_regular(path, true);
	if (fd == -EBADMSG)
		return bn_fail(err, -EBADMSG, "%s: not a regular file (symbolic links are refused)", path);
	if (fd < 0)
		return bn_fail(err, fd, "%s: cannot open: %s", path, strerror(-fd));
	struct bn_sha256 *s = bn_sha256_new();
	enum { BUF = 1 << 20 };
	uint8_t *buf = malloc(BUF);
	int r = 0;
	uint64_t total = 0;
	if (!s || !buf) {
		r = bn_fail(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		if ((r = bn_check_cancel(err)) < 0)
			goto out;
		ssize_t n = read(fd, buf, BUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = bn_fail(err, -EIO, "%s: read error: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		bn_sha256_update(s, buf, (size_t)n);
		total += (uint64_t)n;
	}
	bn_sha256_final(s, out);
	if (ret_size)
		*ret_size = total;
out:
	free(buf);
	bn_sha256_free(s);
	close(fd);
	return r;
}

void bn_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool bn_unhex(const char *in, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(in[2 * i]);
		if (hi < 0)
			return false;
		int lo = hexval(in[2 * i + 1]);
		if (lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return in[2 * len] == '\0';
}
