/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manifest's extension records (docs/FORMAT.md sections 9 and 10): the
 * `parity` record (groups, parity volumes) and the `media` record (a media
 * set's capacity and the medium of each volume), parsed and checked, and
 * formatted back.  manifest.c calls these for the keys it does not own.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/parity.h"
#include "bundle/sha256.h"
#include "parity_internal.h"

void bn_parity_free(struct bn_parity *p)
{
	if (!p)
		return;
	for (size_t i = 0; p->groups && i < p->n_groups; i++) { /* groups: NULL when its allocation failed */
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
