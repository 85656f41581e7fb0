/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Media sets (docs/FORMAT.md section 10): the bundle laid out as
 * DIR/medium-NN/, each medium carrying the signed manifest and signatures,
 * its own volumes and parity volumes, a label and SHA256SUMS, so any one
 * medium verifies alone.  Data volume i goes to medium i / s + 1 (s volumes
 * per medium); with parity, data volume i joins parity group i mod s and the
 * j-th parity volume of every group goes to medium R + j (R data media), so a
 * lost medium costs each group at most one volume: any p lost media rebuild.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "bundle/parity.h"
#include "reader_internal.h"
#include "sign.h"

int bn_media_parse_size(const char *s, uint64_t *ret_capacity, uint64_t *ret_max_file)
{
	static const struct {
		const char *name;
		uint64_t cap, max_file;
	} named[] = {
		/* Marketing sizes are decimal; 4095 MiB keeps a file under FAT32's
		 * and ISO 9660 level 2's 4 GiB - 1 limit. */
		{"dvd", 4700000000ull, 4095ull << 20},
		{"dvd-dl", 8500000000ull, 4095ull << 20},
		{"bd25", 25000000000ull, 4095ull << 20},
		{"bd50", 50000000000ull, 4095ull << 20},
		{"bd100", 100000000000ull, 4095ull << 20},
		{"usb-fat32", 32000000000ull, 4095ull << 20}, /* a 32 GB stick: FAT32's usual ceiling */
	};
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		if (!strcmp(s, named[i].name)) {
			*ret_capacity = named[i].cap;
			*ret_max_file = named[i].max_file;
			return 0;
		}
	uint64_t v = 0;
	if (bn_parse_size(s, &v) < 0 || v == 0)
		return -EINVAL;
	*ret_capacity = v;
	*ret_max_file = BN_DEFAULT_VOLUME_SIZE;
	return 0;
}

int bn_media_plan(struct bn_manifest *m, uint64_t capacity, uint64_t reserve, size_t *ret_columns,
                  struct bn_error *err)
{
	uint64_t maxvol = 0;
	for (size_t i = 0; i < m->n_volumes; i++)
		if (m->volumes[i].size > maxvol)
			maxvol = m->volumes[i].size;
	if (capacity <= reserve || maxvol == 0 || (capacity - reserve) / maxvol == 0)
		return bn_fail(err, -EINVAL, "a medium of %" PRIu64 " bytes cannot hold a %" PRIu64 "-byte volume and the "
		               "signed files (%" PRIu64 " bytes); use a smaller --volume-size", capacity, maxvol, reserve);
	uint64_t s = (capacity - reserve) / maxvol;
	if (s > m->n_volumes)
		s = m->n_volumes;
	size_t count = (m->n_volumes + s - 1) / s;
	if (count > BN_MAX_MEDIA)
		return bn_fail(err, -EFBIG, "more than %u media", BN_MAX_MEDIA);
	struct bn_media *md = calloc(1, sizeof *md);
	if (!md || !(md->vol_medium = calloc(m->n_volumes, sizeof *md->vol_medium))) {
		free(md);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	md->capacity = capacity;
	md->count = (uint32_t)count;
	for (size_t i = 0; i < m->n_volumes; i++)
		md->vol_medium[i] = (uint32_t)(i / s + 1);
	bn_media_free(m->media);
	m->media = md;
	*ret_columns = (size_t)s;
	return 0;
}

int bn_media_assign_parity(struct bn_manifest *m, size_t columns, struct bn_error *err)
{
	const struct bn_parity *p = m->parity;
	struct bn_media *md = m->media;
	if (!p || !md)
		return 0;
	uint32_t pp = p->groups[0].p;
	if (p->n_groups > columns)
		return bn_fail(err, -EFBIG, "too many parity groups (%zu) for %zu volumes per medium; use larger media",
		               p->n_groups, columns);
	if ((uint64_t)md->count + pp > BN_MAX_MEDIA)
		return bn_fail(err, -EFBIG, "more than %u media", BN_MAX_MEDIA);
	free(md->par_medium);
	if (!(md->par_medium = calloc(p->n_volumes, sizeof *md->par_medium)))
		return bn_fail(err, -ENOMEM, "out of memory");
	for (size_t j = 0; j < p->n_volumes; j++)
		md->par_medium[j] = md->count + p->ppos[j] + 1;
	md->count += pp;
	return 0;
}

static int copy_file(const char *from, const char *to, struct bn_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int r = bn_read_file(from, BN_MANIFEST_MAX, &buf, &len, err);
	if (r == 0)
		r = bn_write_file_atomic(to, buf, len, 0644, err);
	free(buf);
	return r;
}

/* One medium: signed files copied, its volumes moved in, label, SHA256SUMS
 * (bn_sums_write: volume hashes from the manifest, the volumes are not read
 * again). */
static int make_medium(const char *dir, const struct bn_manifest *m, unsigned mi, struct bn_error *err)
{
	const struct bn_media *md = m->media;
	size_t np = m->parity ? m->parity->n_volumes : 0;
	char mname[32];
	snprintf(mname, sizeof mname, "medium-%02u", mi);
	char *mdir = bn_path_join(dir, mname), *sig = NULL, *msig = NULL, *label = NULL, *p = NULL, *q = NULL;
	FILE *f = NULL;
	char *text = NULL;
	size_t tlen = 0;
	int r = 0;
	DIR *d = NULL;
	if (!mdir || !(sig = bn_path_join(dir, "signatures")) || !(msig = bn_path_join(mdir, "signatures"))) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (mkdir(mdir, 0755) < 0 || mkdir(msig, 0755) < 0) {
		r = bn_fail(err, -errno, "%s: %s", mdir, strerror(errno));
		goto out;
	}
	free(p);
	p = bn_path_join(dir, "manifest.json");
	free(q);
	q = bn_path_join(mdir, "manifest.json");
	if (!p || !q || (r = copy_file(p, q, err)) < 0) {
		r = r < 0 ? r : bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	d = opendir(sig);
	struct dirent *de;
	size_t nsig = 0;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || nsig >= BN_MAX_SIGNATURES)
			continue;
		char *a = bn_path_join(sig, de->d_name), *b = bn_path_join(msig, de->d_name);
		if (!a || !b)
			r = bn_fail(err, -ENOMEM, "out of memory");
		else if ((r = copy_file(a, b, err)) == 0)
			nsig++;
		free(a);
		free(b);
		if (r < 0)
			goto out;
	}
	f = open_memstream(&text, &tlen);
	if (!f) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	fprintf(f, "agkit bundle %s channel %s version %" PRIu64 " (created %s)\nmedium %u of %u\n", m->name, m->channel,
	        m->version, m->created, mi, md->count);
	fprintf(f, "volumes:");
	for (size_t i = 0; i < m->n_volumes + np; i++) {
		bool par = i >= m->n_volumes;
		size_t j = par ? i - m->n_volumes : i;
		if ((par ? md->par_medium[j] : md->vol_medium[j]) != mi)
			continue;
		const struct bn_volume *v = par ? &m->parity->volumes[j] : &m->volumes[j];
		fprintf(f, " %s", v->name);
		free(p);
		free(q);
		p = bn_path_join(dir, v->name);
		q = bn_path_join(mdir, v->name);
		if (!p || !q) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (rename(p, q) < 0) {
			r = bn_fail(err, -errno, "%s: %s", p, strerror(errno));
			goto out;
		}
	}
	fprintf(f, "\nVerify this medium alone: agimport verify DIR --pubkey KEY.pub\n"
	           "Import the set: agimport stage SET_DIR (all media copied into SET_DIR/medium-NN)\n");
	if (fclose(f) != 0) {
		f = NULL;
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	f = NULL;
	label = bn_path_join(mdir, BN_MEDIUM_LABEL);
	if (!label || (r = bn_write_file_atomic(label, text, tlen, 0644, err)) < 0) {
		r = r < 0 ? r : bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = bn_sums_write(mdir, m, err);
	if (r == 0 && bn_fsync_dir(mdir) < 0)
		r = bn_fail(err, -EIO, "%s: fsync failed", mdir);
out:
	if (r < 0)
		bn_error_prefix(err, "%s", mname);
	if (d)
		closedir(d);
	if (f)
		fclose(f);
	free(text);
	free(mdir);
	free(sig);
	free(msig);
	free(label);
	free(p);
	free(q);
	return r;
}

int bn_media_layout(const char *dir, const struct bn_manifest *m, struct bn_error *err)
{
	if (!m->media)
		return 0;
	for (unsigned mi = 1; mi <= m->media->count; mi++) {
		int r = make_medium(dir, m, mi, err);
		if (r < 0)
			return r;
	}
	/* The set root holds only the media. */
	char *p = bn_path_join(dir, "manifest.json"), *q = bn_path_join(dir, "SHA256SUMS"),
	     *s = bn_path_join(dir, "signatures");
	int r = p && q && s ? 0 : bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0) {
		unlink(p);
		unlink(q);
		bn_rm_rf(s);
	}
	free(p);
	free(q);
	free(s);
	return r;
}

int bn_media_add_signature(const char *dir, const struct bn_seckey *sk, struct bn_error *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return bn_fail(err, -errno, "%s: %s", dir, strerror(errno));
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d))) {
		if (strncmp(de->d_name, "medium-", 7) != 0)
			continue;
		char *md = bn_path_join(dir, de->d_name);
		r = md ? bn_bundle_add_signature(md, sk, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(md);
	}
	closedir(d);
	return r;
}
