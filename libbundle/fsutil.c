/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/fsutil.h"

int bn_open_regular(const char *path, bool nofollow)
{
	/* O_NONBLOCK: opening a FIFO must not wait for a writer that never comes. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return errno == ELOOP && nofollow ? -EBADMSG : -errno;
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EBADMSG : 0;
	if (r == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

static int read_file(const char *path, size_t max, bool nofollow, char **ret_buf, size_t *ret_len,
                     struct bn_error *err)
{
	int fd = bn_open_regular(path, nofollow);
	if (fd == -EBADMSG)
		return bn_fail(err, -EBADMSG, "%s: not a regular file%s", path, nofollow ? " (symbolic links are refused)" : "");
	if (fd < 0)
		return bn_fail(err, fd, "%s: cannot open: %s", path, strerror(-fd));
	struct stat st;
	int r = 0;
	char *buf = NULL;
	if (fstat(fd, &st) < 0) {
		r = bn_fail(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = bn_fail(err, -EFBIG, "%s: too large (%lld bytes, limit %zu)", path, (long long)st.st_size, max);
		goto out;
	}
	size_t cap = (size_t)st.st_size, len = 0;
	buf = malloc(cap + 1);
	if (!buf) {
		r = bn_fail(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		/* Read one byte past the stat size to catch a file that grew. */
		if (len == cap + 1 || len > max) {
			r = bn_fail(err, -EFBIG, "%s: changed size while being read", path);
			goto out;
		}
		ssize_t n = read(fd, buf + len, cap + 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = bn_fail(err, -EIO, "%s: read error: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len != cap) {
		r = bn_fail(err, -EIO, "%s: changed size while being read", path);
		goto out;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	buf = NULL;
	if (ret_len)
		*ret_len = len;
out:
	free(buf);
	close(fd);
	return r;
}

int bn_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len, struct bn_error *err)
{
	return read_file(path, max, false, ret_buf, ret_len, err);
}

int bn_read_file_nofollow(const char *path, size_t max, char **ret_buf, size_t *ret_len, struct bn_error *err)
{
	return read_file(path, max, true, ret_buf, ret_len, err);
}

int bn_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bn_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int bn_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

char *bn_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

char *bn_path_join(const char *a, const char *b)
{
	size_t la = strlen(a);
	while (la > 1 && a[la - 1] == '/')
		la--;
	char *out = NULL;
	if (asprintf(&out, "%.*s/%s", (int)la, a, b) < 0)
		return NULL;
	return out;
}

int bn_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int bn_fsync_parent(const char *path)
{
	char *d = bn_dirname(path);
	if (!d)
		return -ENOMEM;
	int r = bn_fsync_dir(d);
	free(d);
	return r;
}

int bn_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct bn_error *err)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
		return bn_fail(err, -ENOMEM, "%s: out of memory", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int r = bn_fail(err, -errno, "%s: cannot create temporary file: %s", path, strerror(errno));
		free(tmp);
		return r;
	}
	int r = bn_write_all(fd, buf, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		free(tmp);
		return bn_fail(err, r, "%s: cannot write: %s", path, strerror(-r));
	}
	free(tmp);
	r = bn_fsync_parent(path);
	if (r < 0)
		return bn_fail(err, r, "%s: cannot sync directory: %s", path, strerror(-r));
	return 0;
}

int bn_mkdir_p(const char *path, mode_t mode)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	int r = 0;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				r = -errno;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	if (r == 0) {
		struct stat st;
		if (stat(path, &st) < 0)
			r = -errno;
		else if (!S_ISDIR(st.st_mode))
			r = -ENOTDIR;
	}
	free(p);
	return r;
}

static int rm_rf_at(int dfd, const char *name, int depth)
{
	if (depth > 4096)
		return -ELOOP;
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int q = rm_rf_at(dirfd(d), de->d_name, depth + 1);
		if (q < 0 && r == 0)
			r = q;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int bn_rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path, 0);
}

int bn_mktemp_sibling(const char *path, char **ret_tmp, struct bn_error *err)
{
	size_t l = strlen(path);
	while (l > 1 && path[l - 1] == '/')
		l--;
	char *tmp = NULL;
	if (asprintf(&tmp, "%.*s.agtmp-XXXXXX", (int)l, path) < 0)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (!mkdtemp(tmp)) {
		int r = bn_fail(err, -errno, "%s: cannot create temporary directory beside it: %s", path, strerror(errno));
		free(tmp);
		return r;
	}
	*ret_tmp = tmp;
	return 0;
}

int bn_parse_size(const char *s, uint64_t *ret)
{
	/* DIGITS[.DIGITS][UNIT]: no sign, no spaces, no exponent, no hex.
	 * K M G T and KiB MiB GiB TiB are binary (1024^n); KB MB GB TB are
	 * decimal (1000^n); B or nothing: bytes.  Case does not matter. */
	const char *p = s;
	uint64_t whole = 0, frac = 0, frac_div = 1;
	if (!s || !(*p >= '0' && *p <= '9'))
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++)
			if (frac_div < 1000000000ull) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				frac_div *= 10;
			}
	}
	unsigned exp = 0;
	switch (*p) {
	case 'k': case 'K': exp = 1; break;
	case 'm': case 'M': exp = 2; break;
	case 'g': case 'G': exp = 3; break;
	case 't': case 'T': exp = 4; break;
	case 'p': case 'P': exp = 5; break;
	default: break;
	}
	uint64_t base = 1024;
	if (exp) {
		p++;
		if (*p == 'i' || *p == 'I') {
			p++;
			if (*p != 'b' && *p != 'B')
				return -EINVAL;
			p++;
		} else if (*p == 'b' || *p == 'B') {
			base = 1000;
			p++;
		}
	} else if (*p == 'b' || *p == 'B') {
		p++;
	}
	if (*p != '\0')
		return -EINVAL;
	uint64_t mul = 1;
	for (unsigned i = 0; i < exp; i++)
		mul *= base;
	if (frac_div > 1 && exp == 0)
		return -EINVAL; /* a fraction of a byte */
	if (whole > UINT64_MAX / mul)
		return -ERANGE;
	uint64_t v = whole * mul;
	/* frac / frac_div of mul, without overflow: mul <= 2^50, frac < 10^9 */
	uint64_t extra = (uint64_t)((unsigned __int128)frac * mul / frac_div);
	if (v > UINT64_MAX - extra)
		return -ERANGE;
	*ret = v + extra;
	return 0;
}

mode_t bn_entry_mode(uint32_t manifest_mode, bool dir)
{
	if (dir)
		return 0755;
	return manifest_mode & 0111 ? 0755 : 0644;
}
