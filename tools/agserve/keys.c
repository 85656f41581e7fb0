/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/sha256.h"
#include "keys.h"

struct key {
	char name[65];
	uint8_t hash[BN_SHA256_LEN];
};

struct keys {
	struct key *v;
	size_t n;
};

void keys_free(struct keys *k)
{
	if (!k)
		return;
	sodium_memzero(k->v, k->n * sizeof(*k->v));
	free(k->v);
	free(k);
}

size_t keys_count(const struct keys *k)
{
	return k ? k->n : 0;
}

int keys_load(const char *path, struct keys **ret, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
		close(fd);
		snprintf(err, errlen, "%s: readable or writable by group or others (mode %03o); chmod 600 it", path,
		         (unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	if (st.st_size > KEYS_FILE_MAX) {
		close(fd);
		snprintf(err, errlen, "%s: larger than %d bytes", path, KEYS_FILE_MAX);
		return -EFBIG;
	}
	FILE *f = fdopen(fd, "r");
	struct keys *k = calloc(1, sizeof(*k));
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int r = 0;
	if (!f || !k) {
		if (f)
			fclose(f);
		else
			close(fd);
		free(k);
		return -ENOMEM;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
		               line[len - 1] == '\t'))
			line[--len] = 0;
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			continue;
		char *name = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		size_t nl = (size_t)(p - name);
		while (*p == ' ' || *p == '\t')
			p++;
		char *secret = p;
		if (!nl || nl > 64 || !*secret || strpbrk(secret, " \t")) {
			snprintf(err, errlen, "%s: line %zu: expected NAME SECRET or NAME sha256:HEX", path, lineno);
			r = -EINVAL;
			break;
		}
		if (k->n == KEYS_MAX) {
			snprintf(err, errlen, "%s: more than %d keys", path, KEYS_MAX);
			r = -E2BIG;
			break;
		}
		struct key *nv = realloc(k->v, (k->n + 1) * sizeof(*nv));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		k->v = nv;
		struct key *key = &k->v[k->n];
		memcpy(key->name, name, nl);
		key->name[nl] = 0;
		if (!strncmp(secret, "sha256:", 7)) {
			if (strlen(secret + 7) != 64 || !bn_unhex(secret + 7, key->hash, BN_SHA256_LEN)) {
				snprintf(err, errlen, "%s: line %zu: sha256: needs 64 hex digits", path, lineno);
				r = -EINVAL;
				break;
			}
		} else {
			bn_sha256(secret, strlen(secret), key->hash);
		}
		k->n++;
	}
	if (line) {
		sodium_memzero(line, cap);
		free(line);
	}
	fclose(f);
	if (r == 0 && k->n == 0) {
		snprintf(err, errlen, "%s: no keys", path);
		r = -EINVAL;
	}
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		keys_free(k);
		return r;
	}
	*ret = k;
	return 0;
}

const char *keys_check(const struct keys *k, const char *secret, size_t len)
{
	uint8_t h[BN_SHA256_LEN];
	const char *found = NULL;
	bn_sha256(secret, len, h);
	/* every key, whatever matched, so the time says nothing about which */
	for (size_t i = 0; i < k->n; i++) {
		int eq = sodium_memcmp(h, k->v[i].hash, BN_SHA256_LEN) == 0;
		const char *cand = k->v[i].name;
		found = eq && !found ? cand : found;
	}
	sodium_memzero(h, sizeof(h));
	return found;
}
