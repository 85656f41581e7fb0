/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Content-addressed download cache and output staging.
 *
 *   CACHE/blobs/sha256/<hex>    verified content, named by its SHA-256
 *   CACHE/blobs/gitsha1/<hex>   hard link to the same content, named by git blob id
 *   CACHE/tmp/<key>.part        partial downloads, resumed with Range
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fetch_internal.h"

int fc_prepare(const struct fh_ctx *c, struct bn_error *err)
{
	const char *sub[] = {"blobs/sha256", "blobs/gitsha1", "tmp"};
	for (size_t i = 0; i < 3; i++) {
		char *p = fs_printf("%s/%s", c->o->cache_dir, sub[i]);
		if (!p)
			return bn_fail(err, -ENOMEM, "out of memory");
		int r = fo_mkdirs(p, err);
		free(p);
		if (r < 0)
			return r;
	}
	return 0;
}

int fc_path(const struct fh_ctx *c, const char *algo, const char *hex, char **ret, struct bn_error *err)
{
	char *p = fs_printf("%s/blobs/%s/%s", c->o->cache_dir, algo, hex);
	if (!p)
		return bn_fail(err, -ENOMEM, "out of memory");
	*ret = p;
	return 0;
}

int fc_part_path(const struct fh_ctx *c, const char *key, char **ret, struct bn_error *err)
{
	char *p = fs_printf("%s/tmp/%s.part", c->o->cache_dir, key);
	if (!p)
		return bn_fail(err, -ENOMEM, "out of memory");
	*ret = p;
	return 0;
}

/* Hashes a file with SHA-256 and, when asked, as a git blob. */
static int hash_file(const char *path, char sha[BN_SHA256_HEX], char git[41], uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	struct bn_sha256 *s = bn_sha256_new();
	EVP_MD_CTX *s1 = git ? EVP_MD_CTX_new() : NULL;
	if (!s || (git && !s1)) {
		bn_sha256_free(s);
		EVP_MD_CTX_free(s1);
		close(fd);
		return -ENOMEM;
	}
	if (s1) {
		char pre[40];
		int n = snprintf(pre, sizeof pre, "blob %lld", (long long)st.st_size);
		EVP_DigestInit_ex(s1, EVP_sha1(), NULL);
		EVP_DigestUpdate(s1, pre, (size_t)n + 1);
	}
	enum { BUFSZ = 1 << 17 };
	char *buf = malloc(BUFSZ); /* not static: callers may run in several threads */
	int r = buf ? 0 : -ENOMEM;
	for (; buf;) {
		ssize_t k = read(fd, buf, BUFSZ);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (!k)
			break;
		bn_sha256_update(s, buf, (size_t)k);
		if (s1)
			EVP_DigestUpdate(s1, buf, (size_t)k);
	}
	if (!r) {
		uint8_t d[BN_SHA256_LEN];
		bn_sha256_final(s, d);
		bn_hex(d, sizeof d, sha);
		if (s1) {
			unsigned char d1[EVP_MAX_MD_SIZE];
			unsigned int l = 0;
			EVP_DigestFinal_ex(s1, d1, &l);
			bn_hex(d1, 20, git);
		}
		*size = (uint64_t)st.st_size;
	}
	free(buf);
	bn_sha256_free(s);
	EVP_MD_CTX_free(s1);
	close(fd);
	return r;
}

int fc_lookup(const struct fh_ctx *c, const char *algo, const char *hex, const struct fh_expect *ex, struct bn_error *err)
{
	char *p;
	int r = fc_path(c, algo, hex, &p, err);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(p, &st) < 0) {
		free(p);
		return 0;
	}
	/* The cache is re-verified on every use: a damaged entry must never reach a bundle. */
	char sha[BN_SHA256_HEX], git[41];
	uint64_t size = 0;
	bool need_git = !strcmp(algo, "gitsha1");
	r = S_ISREG(st.st_mode) ? hash_file(p, sha, need_git ? git : NULL, &size) : -EINVAL;
	bool ok = r == 0 && (ex->size < 0 || size == (uint64_t)ex->size) && (!ex->sha256 || !strcmp(sha, ex->sha256)) &&
	          (!ex->git_sha1 || (need_git && !strcmp(git, ex->git_sha1))) &&
	          (strcmp(algo, "sha256") || !strcmp(sha, hex));
	if (!ok) {
		fh_log(c, "cache entry %s is damaged; removing it", p);
		unlink(p);
		free(p);
		return 0;
	}
	free(p);
	return 1;
}

static int link_into(const char *src, const char *dst, struct bn_error *err)
{
	if (link(src, dst) == 0 || errno == EEXIST)
		return 0;
	return bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
}

int fc_commit(const struct fh_ctx *c, const char *part, const char *sha256, const char *git_sha1, struct bn_error *err)
{
	char *dst, *gdst = NULL;
	int r = fc_path(c, "sha256", sha256, &dst, err);
	if (r < 0)
		return r;
	if (chmod(part, 0444) < 0) {
		r = bn_fail(err, -errno, "%s: %s", part, strerror(errno));
		goto out;
	}
	/* An existing verified entry with the same digest is identical content. */
	if (rename(part, dst) < 0) {
		r = bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
		goto out;
	}
	if (git_sha1) {
		r = fc_path(c, "gitsha1", git_sha1, &gdst, err);
		if (r == 0)
			r = link_into(dst, gdst, err);
	}
out:
	free(dst);
	free(gdst);
	return r;
}

int fo_write_file(const char *path, const void *buf, size_t len, struct bn_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return bn_fail(err, -errno, "%s: %s", path, strerror(errno));
	const char *p = buf;
	while (len) {
		ssize_t k = write(fd, p, len);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			unlink(path);
			return bn_fail(err, -e, "%s: %s", path, strerror(e));
		}
		p += k;
		len -= (size_t)k;
	}
	if (close(fd) < 0)
		return bn_fail(err, -errno, "%s: %s", path, strerror(errno));
	return 0;
}

int fc_put_mem(const struct fh_ctx *c, const void *buf, size_t len, const char *sha256, struct bn_error *err)
{
	char *dst, *tmp;
	int r = fc_path(c, "sha256", sha256, &dst, err);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(dst, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == len) {
		free(dst);
		return 0;
	}
	tmp = fs_printf("%s/tmp/mem-%s.%ld", c->o->cache_dir, sha256, (long)getpid());
	if (!tmp) {
		free(dst);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	unlink(tmp);
	r = fo_write_file(tmp, buf, len, err);
	if (r == 0 && (chmod(tmp, 0444) < 0 || rename(tmp, dst) < 0))
		r = bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
	if (r < 0)
		unlink(tmp);
	free(tmp);
	free(dst);
	return r;
}

int fc_read_mem(const struct fh_ctx *c, const char *sha256, size_t cap, char **ret, size_t *ret_len, struct bn_error *err)
{
	struct fh_expect ex = {.size = -1, .sha256 = sha256};
	int r = fc_lookup(c, "sha256", sha256, &ex, err);
	if (r <= 0)
		return r;
	char *p;
	if ((r = fc_path(c, "sha256", sha256, &p, err)) < 0)
		return r;
	FILE *f = fopen(p, "rb");
	free(p);
	if (!f)
		return 0;
	char *buf = malloc(cap + 1);
	size_t n = buf ? fread(buf, 1, cap + 1, f) : 0;
	fclose(f);
	if (!buf)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (n > cap) {
		free(buf);
		return 0;
	}
	buf[n] = 0;
	*ret = buf;
	*ret_len = n;
	return 1;
}

int fc_fetch(struct fh_ctx *c, const struct fh_req *q, const struct fh_expect *ex, const char *label,
             char ret_sha256[BN_SHA256_HEX], uint64_t *ret_size, struct bn_error *err)
{
	const char *algo = ex->sha256 ? "sha256" : ex->git_sha1 ? "gitsha1" : NULL;
	const char *key = ex->sha256 ? ex->sha256 : ex->git_sha1;
	int r;
	if (algo) {
		r = fc_lookup(c, algo, key, ex, err);
		if (r < 0)
			return r;
		if (r == 1) {
			char *p;
			if ((r = fc_path(c, algo, key, &p, err)) < 0)
				return r;
			char sha[BN_SHA256_HEX];
			uint64_t size = 0;
			r = hash_file(p, sha, NULL, &size);
			free(p);
			if (r < 0)
				return bn_fail(err, r, "cache entry %s: %s", key, strerror(-r));
			fh_log(c, "%s: in cache", label);
			memcpy(ret_sha256, sha, BN_SHA256_HEX);
			if (ret_size)
				*ret_size = size;
			return 0;
		}
	}
	/* Partial files are keyed by the expected digest, else by the URL. */
	char keybuf[96];
	if (algo) {
		snprintf(keybuf, sizeof keybuf, "%s-%s", algo, key);
	} else {
		uint8_t d[BN_SHA256_LEN];
		char h[BN_SHA256_HEX];
		bn_sha256(q->url, strlen(q->url), d);
		bn_hex(d, sizeof d, h);
		snprintf(keybuf, sizeof keybuf, "url-%s", h);
	}
	char *part;
	if ((r = fc_part_path(c, keybuf, &part, err)) < 0)
		return r;
	/* Without an expected digest a partial file from an earlier run may belong
	 * to different content; only retries within this run resume. */
	if (!algo)
		unlink(part);
	char sha[BN_SHA256_HEX];
	uint64_t size = 0;
	r = fh_get_file(c, q, part, ex, label, sha, &size, err);
	if (r == 0)
		r = fc_commit(c, part, sha, ex->git_sha1, err);
	else if (r == -EBADMSG)
		unlink(part); /* wrong content must not be resumed */
	free(part);
	if (r < 0)
		return r;
	memcpy(ret_sha256, sha, BN_SHA256_HEX);
	if (ret_size)
		*ret_size = size;
	return 0;
}

static int copy_file(const char *src, const char *dst, struct bn_error *err)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return bn_fail(err, -errno, "%s: %s", src, strerror(errno));
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (out < 0) {
		int e = errno;
		close(in);
		return bn_fail(err, -e, "%s: %s", dst, strerror(e));
	}
	enum { BUFSZ = 1 << 17 };
	char *buf = malloc(BUFSZ);
	int r = buf ? 0 : bn_fail(err, -ENOMEM, "out of memory");
	for (; buf;) {
		ssize_t k = read(in, buf, BUFSZ);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0)
				r = bn_fail(err, -errno, "%s: %s", src, strerror(errno));
			break;
		}
		for (ssize_t o = 0; o < k;) {
			ssize_t w = write(out, buf + o, (size_t)(k - o));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				r = bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
				break;
			}
			o += w;
		}
		if (r < 0)
			break;
	}
	free(buf);
	close(in);
	if (close(out) < 0 && !r)
		r = bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
	if (r < 0)
		unlink(dst);
	return r;
}

int fc_materialise(const struct fh_ctx *c, const char *algo, const char *hex, const char *dst, struct bn_error *err)
{
	char *src;
	int r = fc_path(c, algo, hex, &src, err);
	if (r < 0)
		return r;
	if (link(src, dst) == 0)
		r = 0;
	else if (errno == EXDEV || errno == EMLINK || errno == EPERM)
		r = copy_file(src, dst, err);
	else
		r = bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
	free(src);
	return r;
}

int fo_stage_dir(const char *out, char **ret_tmp, struct bn_error *err)
{
	struct stat st;
	if (lstat(out, &st) == 0)
		return bn_fail(err, -EEXIST, "%s: already exists", out);
	return bn_mktemp_sibling(out, ret_tmp, err);
}

int fo_publish(const char *tmp, const char *out, struct bn_error *err)
{
	/* RENAME_NOREPLACE: an out path that appeared meanwhile is never replaced. */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) < 0)
		return bn_fail(err, -errno, "%s: %s", out, strerror(errno));
	return 0;
}
