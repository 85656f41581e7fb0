/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parity volumes: manifest records and encoding (docs/FORMAT.md section 9).
 * The Galois-field arithmetic is ISA-L's; nothing here multiplies in GF(2^8)
 * by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <isa-l/erasure_code.h>

#include "bundle/fsutil.h"
#include "bundle/parity.h"
#include "bundle/sha256.h"
#include "parity_internal.h"

void bn_parity_volume_name(size_t i, char out[32])
{
	snprintf(out, 32, "par-%05zu.agp", i + 1);
}

void bn_parity_free(struct bn_parity *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_groups; i++) {
		free(p->groups[i].data);
		free(p->groups[i].par);
	}
	free(p->groups);
	free(p->volumes);
	free(p->vgroup);
	free(p->vpos);
	free(p->pgroup);
	free(p->ppos);
	free(p);
}

void bn_media_free(struct bn_media *md)
{
	if (!md)
		return;
	free(md->vol_medium);
	free(md->par_medium);
	free(md);
}

size_t bn_parity_block(uint32_t shards)
{
	/* A few MiB of stripe buffers in all, whatever k + p is; 4 KiB multiples
	 * keep reads page-aligned. */
	size_t b = BN_PARITY_BUF_BUDGET / (shards ? shards : 1);
	if (b > (1u << 20))
		b = 1u << 20;
	b &= ~(size_t)4095;
	return b < 4096 ? 4096 : b;
}

uint8_t *bn_parity_matrix(uint32_t k, uint32_t p)
{
	/* Rows 0..k-1 identity, rows k..k+p-1 Cauchy: 1 / (row XOR column). */
	uint8_t *a = malloc((size_t)(k + p) * k);
	if (a)
		gf_gen_cauchy1_matrix(a, (int)(k + p), (int)k);
	return a;
}

/* ---- manifest records ------------------------------------------------ */

#define BAD(...) bn_fail(err, -EBADMSG, "manifest.json: " __VA_ARGS__)

static bool jget_u64(json_t *o, const char *k, uint64_t max, uint64_t *ret)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return false;
	*ret = (uint64_t)json_integer_value(v);
	return true;
}

/* An array of at most max indices below lim, strictly increasing. */
static int index_array(json_t *a, size_t max, uint64_t lim, uint32_t **ret, uint32_t *ret_n)
{
	if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > max)
		return -1;
	size_t n = json_array_size(a);
	uint32_t *out = calloc(n, sizeof *out);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_array_get(a, i);
		if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) >= lim ||
		    (i > 0 && (uint32_t)json_integer_value(v) <= out[i - 1])) {
			free(out);
			return -1;
		}
		out[i] = (uint32_t)json_integer_value(v);
	}
	*ret = out;
	*ret_n = (uint32_t)n;
	return 0;
}

static int parse_parity(struct bn_manifest *m, json_t *o, struct bn_error *err)
{
	json_t *vols = json_object_get(o, "volumes"), *groups = json_object_get(o, "groups");
	json_t *scheme = json_object_get(o, "scheme");
	if (!json_is_string(scheme) || strcmp(json_string_value(scheme), BN_PARITY_SCHEME) != 0)
		return BAD("parity: unsupported scheme (this agkit knows \"%s\")", BN_PARITY_SCHEME);
	if (!json_is_array(vols) || json_array_size(vols) == 0 || json_array_size(vols) > BN_MAX_VOLUMES ||
	    !json_is_array(groups) || json_array_size(groups) == 0 || json_array_size(groups) > m->n_volumes)
		return BAD("parity: bad volumes or groups");
	struct bn_parity *p = calloc(1, sizeof *p);
	if (!p)
		return bn_fail(err, -ENOMEM, "out of memory");
	m->parity = p;
	p->n_volumes = json_array_size(vols);
	p->n_groups = json_array_size(groups);
	p->volumes = calloc(p->n_volumes, sizeof *p->volumes);
	p->groups = calloc(p->n_groups, sizeof *p->groups);
	p->vgroup = calloc(m->n_volumes ? m->n_volumes : 1, sizeof *p->vgroup);
	p->vpos = calloc(m->n_volumes ? m->n_volumes : 1, sizeof *p->vpos);
	p->pgroup = calloc(p->n_volumes, sizeof *p->pgroup);
	p->ppos = calloc(p->n_volumes, sizeof *p->ppos);
	if (!p->volumes || !p->groups || !p->vgroup || !p->vpos || !p->pgroup || !p->ppos)
		return bn_fail(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < p->n_volumes; i++) {
		json_t *v = json_array_get(vols, i);
		struct bn_volume *pv = &p->volumes[i];
		json_t *nm = json_object_get(v, "name"), *h = json_object_get(v, "sha256");
		bn_parity_volume_name(i, pv->name);
		if (!json_is_string(nm) || strcmp(json_string_value(nm), pv->name) != 0)
			return BAD("parity volume %zu must be named %s", i + 1, pv->name);
		if (!jget_u64(v, "size", m->volume_size, &pv->size) || !json_is_string(h) ||
		    strlen(json_string_value(h)) != 64 || !bn_unhex(json_string_value(h), pv->sha256, BN_SHA256_LEN))
			return BAD("parity volume %s has a bad size or sha256", pv->name);
	}
	/* Every data and parity volume in exactly one group. */
	for (size_t i = 0; i < m->n_volumes; i++)
		p->vgroup[i] = UINT32_MAX;
	for (size_t i = 0; i < p->n_volumes; i++)
		p->pgroup[i] = UINT32_MAX;
	for (size_t g = 0; g < p->n_groups; g++) {
		struct bn_parity_group *gr = &p->groups[g];
		json_t *go = json_array_get(groups, g);
		int q = index_array(json_object_get(go, "data"), BN_PARITY_MAX_SHARDS, m->n_volumes, &gr->data, &gr->k);
		if (q == 0)
			q = index_array(json_object_get(go, "parity"), BN_PARITY_MAX, p->n_volumes, &gr->par, &gr->p);
		if (q == -ENOMEM)
			return bn_fail(err, -ENOMEM, "out of memory");
		if (q < 0 || gr->k + gr->p > BN_PARITY_MAX_SHARDS)
			return BAD("parity group %zu: bad data or parity list (at most %u volumes, %u parity)", g + 1,
			           BN_PARITY_MAX_SHARDS, BN_PARITY_MAX);
		for (uint32_t i = 0; i < gr->k; i++) {
			uint32_t v = gr->data[i];
			if (p->vgroup[v] != UINT32_MAX)
				return BAD("parity: volume %s is in two groups", m->volumes[v].name);
			p->vgroup[v] = (uint32_t)g;
			p->vpos[v] = i;
			if (m->volumes[v].size > gr->len)
				gr->len = m->volumes[v].size;
		}
		for (uint32_t j = 0; j < gr->p; j++) {
			uint32_t v = gr->par[j];
			if (p->pgroup[v] != UINT32_MAX)
				return BAD("parity: parity volume %s is in two groups", p->volumes[v].name);
			p->pgroup[v] = (uint32_t)g;
			p->ppos[v] = j;
		}
	}
	for (size_t i = 0; i < m->n_volumes; i++)
		if (p->vgroup[i] == UINT32_MAX)
			return BAD("parity: volume %s is in no group", m->volumes[i].name);
	for (size_t i = 0; i < p->n_volumes; i++) {
		if (p->pgroup[i] == UINT32_MAX)
			return BAD("parity: parity volume %s is in no group", p->volumes[i].name);
		/* A parity volume is exactly as long as its group's longest data volume. */
		if (p->volumes[i].size != p->groups[p->pgroup[i]].len)
			return BAD("parity volume %s: size %" PRIu64 " is not its group's shard length %" PRIu64,
			           p->volumes[i].name, p->volumes[i].size, p->groups[p->pgroup[i]].len);
	}
	return 0;
}

static int parse_media(struct bn_manifest *m, json_t *o, struct bn_error *err)
{
	struct bn_media *md = calloc(1, sizeof *md);
	if (!md)
		return bn_fail(err, -ENOMEM, "out of memory");
	m->media = md;
	uint64_t count = 0;
	json_t *va = json_object_get(o, "volumes"), *pa = json_object_get(o, "parity_volumes");
	size_t np = m->parity ? m->parity->n_volumes : 0;
	if (!jget_u64(o, "capacity", UINT64_MAX / 2, &md->capacity) || !jget_u64(o, "count", BN_MAX_MEDIA, &count) ||
	    count == 0 || !json_is_array(va) || json_array_size(va) != m->n_volumes ||
	    (np ? !json_is_array(pa) || json_array_size(pa) != np : pa != NULL))
		return BAD("media: bad capacity, count or assignment (one medium per volume and parity volume)");
	md->count = (uint32_t)count;
	md->vol_medium = calloc(m->n_volumes ? m->n_volumes : 1, sizeof *md->vol_medium);
	md->par_medium = calloc(np ? np : 1, sizeof *md->par_medium);
	bool *used = calloc(count + 1, sizeof *used);
	if (!md->vol_medium || !md->par_medium || !used) {
		free(used);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < m->n_volumes + np; i++) {
		json_t *v = json_array_get(i < m->n_volumes ? va : pa, i < m->n_volumes ? i : i - m->n_volumes);
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t)count) {
			free(used);
			return BAD("media: volume %zu has no valid medium", i + 1);
		}
		uint32_t mi = (uint32_t)json_integer_value(v);
		if (i < m->n_volumes)
			md->vol_medium[i] = mi;
		else
			md->par_medium[i - m->n_volumes] = mi;
		used[mi] = true;
	}
	/* No empty medium: each one holds something to verify. */
	for (uint64_t i = 1; i <= count; i++)
		if (!used[i]) {
			free(used);
			return BAD("media: medium %" PRIu64 " holds no volume", i);
		}
	free(used);
	return 0;
}

int bn_manifest_parse_ext(struct bn_manifest *m, json_t *root, struct bn_error *err)
{
	json_t *po = json_object_get(root, "parity"), *mo = json_object_get(root, "media");
	int r = 0;
	if (po && !json_is_object(po))
		return BAD("parity: not an object");
	if (mo && !json_is_object(mo))
		return BAD("media: not an object");
	if (po)
		r = parse_parity(m, po, err);
	if (r == 0 && mo)
		r = parse_media(m, mo, err);
	return r;
}

static json_t *hexval(const uint8_t h[BN_SHA256_LEN])
{
	char hex[BN_SHA256_HEX];
	bn_hex(h, BN_SHA256_LEN, hex);
	return json_string(hex);
}

static json_t *u32_array(const uint32_t *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_integer(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

int bn_manifest_format_ext(const struct bn_manifest *m, json_t *root)
{
	if (m->parity) {
		const struct bn_parity *p = m->parity;
		json_t *o = json_object(), *vols = json_array(), *groups = json_array();
		if (!o || !vols || !groups || json_object_set_new(root, "parity", o) < 0) {
			json_decref(vols);
			json_decref(groups);
			return -ENOMEM;
		}
		if (json_object_set_new(o, "scheme", json_string(BN_PARITY_SCHEME)) < 0 ||
		    json_object_set_new(o, "volumes", vols) < 0) {
			json_decref(groups);
			return -ENOMEM;
		}
		if (json_object_set_new(o, "groups", groups) < 0)
			return -ENOMEM;
		for (size_t i = 0; i < p->n_volumes; i++) {
			json_t *v = json_object();
			if (!v || json_array_append_new(vols, v) < 0 ||
			    json_object_set_new(v, "name", json_string(p->volumes[i].name)) < 0 ||
			    json_object_set_new(v, "size", json_integer((json_int_t)p->volumes[i].size)) < 0 ||
			    json_object_set_new(v, "sha256", hexval(p->volumes[i].sha256)) < 0)
				return -ENOMEM;
		}
		for (size_t g = 0; g < p->n_groups; g++) {
			json_t *go = json_object(), *d = u32_array(p->groups[g].data, p->groups[g].k),
			       *pa = u32_array(p->groups[g].par, p->groups[g].p);
			if (!go || !d || !pa || json_array_append_new(groups, go) < 0) {
				json_decref(d);
				json_decref(pa);
				return -ENOMEM;
			}
			if (json_object_set_new(go, "data", d) < 0) {
				json_decref(pa);
				return -ENOMEM;
			}
			if (json_object_set_new(go, "parity", pa) < 0)
				return -ENOMEM;
		}
	}
	if (m->media) {
		const struct bn_media *md = m->media;
		json_t *o = json_object();
		if (!o || json_object_set_new(root, "media", o) < 0 ||
		    json_object_set_new(o, "capacity", json_integer((json_int_t)md->capacity)) < 0 ||
		    json_object_set_new(o, "count", json_integer(md->count)) < 0 ||
		    json_object_set_new(o, "volumes", u32_array(md->vol_medium, m->n_volumes)) < 0)
			return -ENOMEM;
		if (m->parity &&
		    json_object_set_new(o, "parity_volumes", u32_array(md->par_medium, m->parity->n_volumes)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* ---- encoding -------------------------------------------------------- */

static int encode_group(const char *dir, const struct bn_manifest *m, struct bn_parity_group *g,
                        struct bn_volume *pvols, struct bn_error *err)
{
	uint32_t k = g->k, p = g->p;
	size_t B = bn_parity_block(k + p);
	uint8_t *a = bn_parity_matrix(k, p), *tbl = malloc((size_t)32 * k * p);
	uint8_t **bufs = calloc(k + p, sizeof *bufs);
	int *fds = calloc(k + p, sizeof *fds);
	struct bn_sha256 **sha = calloc(p, sizeof *sha);
	int r = 0;
	if (!a || !tbl || !bufs || !fds || !sha) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < k + p; i++)
		fds[i] = -1;
	for (uint32_t i = 0; i < k + p; i++) {
		if (posix_memalign((void **)&bufs[i], 64, B) != 0) {
			bufs[i] = NULL;
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	for (uint32_t j = 0; j < p; j++)
		if (!(sha[j] = bn_sha256_new())) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
	ec_init_tables((int)k, (int)p, a + (size_t)k * k, tbl);
	for (uint32_t i = 0; i < k + p; i++) {
		const char *name = i < k ? m->volumes[g->data[i]].name : pvols[g->par[i - k]].name;
		char *path = bn_path_join(dir, name);
		if (!path) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		fds[i] = i < k ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
		               : open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fds[i] < 0) {
			r = bn_fail(err, -errno, "%s: %s", path, strerror(errno));
			free(path);
			goto out;
		}
		if (i < k)
			posix_fadvise(fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
		free(path);
	}
	for (uint64_t off = 0; off < g->len; off += B) {
		size_t l = g->len - off < B ? (size_t)(g->len - off) : B;
		for (uint32_t i = 0; i < k; i++) {
			uint64_t vs = m->volumes[g->data[i]].size;
			size_t have = off >= vs ? 0 : (vs - off < l ? (size_t)(vs - off) : l);
			/* Shorter volumes count as zero-padded to the shard length. */
			if (have && (r = bn_pread_all(fds[i], bufs[i], have, off)) < 0) {
				r = bn_fail(err, r, "%s/%s: read error: %s", dir, m->volumes[g->data[i]].name, strerror(-r));
				goto out;
			}
			memset(bufs[i] + have, 0, l - have);
		}
		ec_encode_data((int)l, (int)k, (int)p, tbl, bufs, bufs + k);
		for (uint32_t j = 0; j < p; j++) {
			bn_sha256_update(sha[j], bufs[k + j], l);
			if ((r = bn_write_all(fds[k + j], bufs[k + j], l)) < 0) {
				r = bn_fail(err, r, "%s/%s: write failed: %s", dir, pvols[g->par[j]].name, strerror(-r));
				goto out;
			}
		}
	}
	for (uint32_t j = 0; j < p; j++) {
		struct bn_volume *pv = &pvols[g->par[j]];
		pv->size = g->len;
		bn_sha256_final(sha[j], pv->sha256);
		if (fsync(fds[k + j]) < 0) {
			r = bn_fail(err, -errno, "%s/%s: %s", dir, pv->name, strerror(errno));
			goto out;
		}
	}
out:
	for (uint32_t i = 0; fds && i < k + p; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (uint32_t i = 0; bufs && i < k + p; i++)
		free(bufs[i]);
	for (uint32_t j = 0; sha && j < p; j++)
		bn_sha256_free(sha[j]);
	free(sha);
	free(fds);
	free(bufs);
	free(tbl);
	free(a);
	return r;
}

int bn_parity_build(const char *dir, struct bn_manifest *m, unsigned p, size_t groups, struct bn_error *err)
{
	size_t n = m->n_volumes;
	if (p == 0 || p > BN_PARITY_MAX)
		return bn_fail(err, -EINVAL, "--parity must be between 1 and %u", BN_PARITY_MAX);
	if (n == 0)
		return bn_fail(err, -EINVAL, "no data volumes to protect");
	size_t maxk = BN_PARITY_MAX_SHARDS - p;
	size_t need = (n + maxk - 1) / maxk;
	if (groups < need)
		groups = need;
	if (groups > n)
		groups = n;
	if (groups * p > BN_MAX_VOLUMES)
		return bn_fail(err, -EFBIG, "more than %u parity volumes; use a larger --volume-size", BN_MAX_VOLUMES);
	struct bn_parity *pa = calloc(1, sizeof *pa);
	if (!pa)
		return bn_fail(err, -ENOMEM, "out of memory");
	pa->n_groups = groups;
	pa->n_volumes = groups * p;
	pa->groups = calloc(groups, sizeof *pa->groups);
	pa->volumes = calloc(pa->n_volumes, sizeof *pa->volumes);
	int r = 0;
	if (!pa->groups || !pa->volumes) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t g = 0; g < groups; g++) {
		struct bn_parity_group *gr = &pa->groups[g];
		gr->k = (uint32_t)((n - g + groups - 1) / groups);
		gr->p = p;
		gr->data = calloc(gr->k, sizeof *gr->data);
		gr->par = calloc(p, sizeof *gr->par);
		if (!gr->data || !gr->par) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
		/* Data volume i joins group i mod groups: with media laid out in
		 * columns, a lost medium costs each group one volume. */
		for (uint32_t i = 0; i < gr->k; i++) {
			gr->data[i] = (uint32_t)(g + (size_t)i * groups);
			if (m->volumes[gr->data[i]].size > gr->len)
				gr->len = m->volumes[gr->data[i]].size;
		}
		for (uint32_t j = 0; j < p; j++) {
			gr->par[j] = (uint32_t)(g * p + j);
			bn_parity_volume_name(g * p + j, pa->volumes[g * p + j].name);
		}
	}
	for (size_t g = 0; g < groups && r == 0; g++)
		r = encode_group(dir, m, &pa->groups[g], pa->volumes, err);
	if (r < 0)
		goto fail;
	/* Re-parse the record to fill the derived indices exactly as a reader would. */
	{
		json_t *root = json_object();
		struct bn_manifest tmp = *m;
		tmp.parity = pa;
		tmp.media = NULL;
		bn_parity_free(m->parity);
		m->parity = NULL;
		if (!root || bn_manifest_format_ext(&tmp, root) < 0) {
			json_decref(root);
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
		r = parse_parity(m, json_object_get(root, "parity"), err);
		json_decref(root);
		bn_parity_free(pa);
		return r;
	}
fail:
	bn_parity_free(pa);
	return r;
}
