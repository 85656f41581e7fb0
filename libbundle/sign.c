/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signing a bundle directory: manifest.json's minisign signatures
 * (signatures/KEYID.minisig, trusted comment naming bundle, channel, version
 * and the manifest's sha256) and the one SHA256SUMS writer (bundle
 * directories and media).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/parity.h"
#include "bundle/tunables.h"
#include "sign.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_files(const char *dir, const char *prefix, char ***names, size_t *n, size_t *cap)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || (!prefix[0] && !strcmp(de->d_name, "SHA256SUMS")))
			continue;
		char *full = bn_path_join(dir, de->d_name), *rel = NULL;
		struct stat st;
		if (!full || lstat(full, &st) < 0) {
			free(full);
			r = -EIO;
			break;
		}
		if (asprintf(&rel, "%s%s", prefix, de->d_name) < 0) {
			free(full);
			r = -ENOMEM;
			break;
		}
		if (S_ISDIR(st.st_mode) && !prefix[0]) {
			char *sub = NULL;
			if (asprintf(&sub, "%s/", rel) >= 0) {
				r = list_files(full, sub, names, n, cap);
				free(sub);
			}
			free(rel);
			free(full);
			if (r < 0)
				break;
			continue;
		}
		free(full);
		if (!S_ISREG(st.st_mode)) {
			free(rel);
			continue;
		}
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 32;
			char **nn = realloc(*names, nc * sizeof *nn);
			if (!nn) {
				free(rel);
				r = -ENOMEM;
				break;
			}
			*names = nn;
			*cap = nc;
		}
		(*names)[(*n)++] = rel;
	}
	closedir(d);
	return r;
}

/* The one SHA256SUMS writer (bundle directories and media).  With m (the
 * writer's manifest, whose volume and parity-volume hashes were computed from
 * the bytes as they were written), those volumes are not read back a second
 * time. */
int bn_sums_write(const char *dir, const struct bn_manifest *m, struct bn_error *err)
{
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = list_files(dir, "", &names, &n, &cap);
	char *out = NULL;
	size_t olen = 0;
	FILE *f = NULL;
	if (r < 0) {
		r = bn_fail(err, r, "%s: cannot list: %s", dir, strerror(-r));
		goto out;
	}
	qsort(names, n, sizeof *names, cmp_str);
	f = open_memstream(&out, &olen);
	if (!f) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t h[BN_SHA256_LEN];
		char hex[BN_SHA256_HEX];
		const struct bn_volume *known = NULL;
		for (size_t v = 0; m && v < m->n_volumes && !known; v++)
			if (!strcmp(names[i], m->volumes[v].name))
				known = &m->volumes[v];
		for (size_t v = 0; m && m->parity && v < m->parity->n_volumes && !known; v++)
			if (!strcmp(names[i], m->parity->volumes[v].name))
				known = &m->parity->volumes[v];
		if (known) {
			memcpy(h, known->sha256, BN_SHA256_LEN);
		} else {
			char *p = bn_path_join(dir, names[i]);
			if (!p) {
				r = bn_fail(err, -ENOMEM, "out of memory");
				goto out;
			}
			r = bn_sha256_file(p, h, NULL, err);
			free(p);
			if (r < 0)
				goto out;
		}
		bn_hex(h, BN_SHA256_LEN, hex);
		fprintf(f, "%s  %s\n", hex, names[i]);
	}
	if (fclose(f) != 0) {
		f = NULL;
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	f = NULL;
	char *sp = bn_path_join(dir, "SHA256SUMS");
	if (!sp) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = bn_write_file_atomic(sp, out, olen, 0644, err);
	free(sp);
out:
	if (f)
		fclose(f);
	free(out);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int bn_sha256sums_write(const char *dir, struct bn_error *err)
{
	return bn_sums_write(dir, NULL, err);
}

static int write_signature(const char *dir, const char *manifest, size_t len, const char *name, const char *channel,
                           uint64_t version, const struct bn_seckey *sk, struct bn_error *err)
{
	uint8_t h[BN_SHA256_LEN];
	char hex[BN_SHA256_HEX], id[BN_KEYID_HEX], tc[1024], uc[128];
	bn_sha256(manifest, len, h);
	bn_hex(h, BN_SHA256_LEN, hex);
	bn_keyid_hex(sk->keyid, id);
	const struct bn_tunables *tu = bn_tunables();
	long long ts = tu->has_sign_time ? (long long)tu->sign_time : (long long)time(NULL);
	snprintf(tc, sizeof tc, "timestamp:%lld\tfile:manifest.json\tprehashed\tbundle:%s\tchannel:%s\tversion:%" PRIu64
	         "\tsha256:%s", ts, name, channel, version, hex);
	snprintf(uc, sizeof uc, "signature from agkit key %s", id);
	char *text = NULL;
	int r = bn_minisig_sign(sk, manifest, len, uc, tc, &text, err);
	if (r < 0)
		return r;
	char *sdir = bn_path_join(dir, "signatures"), *spath = NULL;
	if (!sdir || asprintf(&spath, "%s/%s.minisig", sdir, id) < 0) {
		free(sdir);
		free(text);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	if (mkdir(sdir, 0755) < 0 && errno != EEXIST)
		r = bn_fail(err, -errno, "%s: %s", sdir, strerror(errno));
	else
		r = bn_write_file_atomic(spath, text, strlen(text), 0644, err);
	free(text);
	free(sdir);
	free(spath);
	return r;
}

int bn_bundle_write_signed(const char *dir, const char *manifest, size_t len, const struct bn_manifest *m,
                           const struct bn_seckey *sk, struct bn_error *err)
{
	char *mp = bn_path_join(dir, "manifest.json");
	if (!mp)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = bn_write_file_atomic(mp, manifest, len, 0644, err);
	free(mp);
	if (r == 0)
		r = write_signature(dir, manifest, len, m->name, m->channel, m->version, sk, err);
	if (r == 0)
		r = bn_sums_write(dir, m, err);
	return r;
}

int bn_bundle_add_signature(const char *dir, const struct bn_seckey *sk, struct bn_error *err)
{
	char *mp = bn_path_join(dir, "manifest.json"), *buf = NULL;
	size_t len = 0;
	struct bn_manifest *m = NULL;
	if (!mp)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = bn_read_file(mp, BN_MANIFEST_MAX, &buf, &len, err);
	free(mp);
	if (r < 0)
		return r;
	r = bn_manifest_parse(buf, len, &m, err);
	if (r == 0)
		r = write_signature(dir, buf, len, m->name, m->channel, m->version, sk, err);
	if (r == 0)
		r = bn_sha256sums_write(dir, err);
	bn_manifest_free(m);
	free(buf);
	return r;
}
