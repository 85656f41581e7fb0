/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bundle/sha256.h"

struct bn_sha256 {
	EVP_MD_CTX *ctx;
};

struct bn_sha256 *bn_sha256_new(void)
{
	struct bn_sha256 *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx || EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) != 1) {
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
	EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL);
}

void bn_sha256_update(struct bn_sha256 *s, const void *data, size_t len)
{
	EVP_DigestUpdate(s->ctx, data, len);
}

void bn_sha256_final(struct bn_sha256 *s, uint8_t out[BN_SHA256_LEN])
{
	unsigned int n = 0;
	EVP_DigestFinal_ex(s->ctx, out, &n);
	bn_sha256_reset(s);
}

void bn_sha256(const void *data, size_t len, uint8_t out[BN_SHA256_LEN])
{
	unsigned int n = 0;
	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

int bn_sha256_file(const char *path, uint8_t out[BN_SHA256_LEN], uint64_t *ret_size,
                   struct bn_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bn_fail(err, -errno, "%s: cannot open: %s", path, strerror(errno));
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
