/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "bundle/manifest.h"
#include "bundle/parity.h"

/* ---- naming rules ---------------------------------------------------- */

bool bn_name_valid(const char *s)
{
	size_t n = strlen(s);
	/* The first character is alphanumeric: names never hide (".x") or look
	 * like options ("-x"), and never collide with agkit's own dot files. */
	if (n == 0 || n > BN_MAX_NAME || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	                                   (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool bn_path_valid(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || n > BN_MAX_PATH || p[0] == '/')
		return false;
	const char *s = p;
	for (;;) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 0 || l > 255 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!e)
			return true;
		s = e + 1;
	}
}

bool bn_symlink_inside(const char *path, const char *target)
{
	size_t tl = strlen(target);
	if (tl == 0 || tl > BN_MAX_PATH || target[0] == '/')
		return false;
	/* Depth of the directory holding the link. */
	long depth = 0;
	for (const char *q = path; *q; q++)
		if (*q == '/')
			depth++;
	const char *s = target;
	for (;;) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 2 && s[0] == '.' && s[1] == '.') {
			if (--depth < 0)
				return false;
		} else if (!(l == 0 || (l == 1 && s[0] == '.'))) {
			depth++;
		}
		if (!e)
			return true;
		s = e + 1;
	}
}

void bn_volume_name(size_t i, char out[32])
{
	snprintf(out, 32, "vol-%05zu.agv", i + 1);
}

ssize_t bn_artifact_file_at(const struct bn_artifact *a, uint64_t off)
{
	/* File entries are in stream order; binary search over them (dirs and
	 * symlinks are skipped by scanning to the nearest file). */
	size_t lo = 0, hi = a->n_entries;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2, k = mid;
		while (k < hi && a->entries[k].type != BN_ENTRY_FILE)
			k++;
		if (k == hi) {
			hi = mid;
			continue;
		}
		const struct bn_entry *e = &a->entries[k];
		if (e->offset <= off) {
			if (off < e->offset + e->size)
				return (ssize_t)k;
			lo = k + 1;
		} else {
			hi = mid;
		}
	}
	return -1;
}

/* ---- free ------------------------------------------------------------ */

void bn_artifact_release(struct bn_artifact *a)
{
	for (size_t j = 0; j < a->n_entries; j++) {
		free(a->entries[j].path);
		free(a->entries[j].target);
	}
	free(a->entries);
	free(a->name);
	free(a->type);
	free(a->layout);
	free(a->health);
	json_decref(a->source);
	memset(a, 0, sizeof *a);
}

void bn_manifest_free(struct bn_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_artifacts; i++)
		bn_artifact_release(&m->artifacts[i]);
	free(m->artifacts);
	free(m->chunks);
	free(m->volumes);
	bn_parity_free(m->parity);
	bn_media_free(m->media);
	if (m->base) {
		free(m->base->name);
		free(m->base->channel);
		free(m->base);
	}
	for (size_t i = 0; i < m->n_brefs; i++) {
		free(m->brefs[i].artifact);
		free(m->brefs[i].path);
	}
	free(m->brefs);
	free(m->name);
	free(m->channel);
	free(m->created);
	free(m);
}

/* ---- parse ----------------------------------------------------------- */

#define BAD(...) bn_fail(err, -EBADMSG, "manifest.json: " __VA_ARGS__)

static const char *get_str(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_string(v))
		return NULL;
	/* An embedded NUL would make C see a different string than JSON does. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

static bool get_u64(json_t *o, const char *k, uint64_t max, uint64_t *ret)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		return false;
	json_int_t x = json_integer_value(v);
	if (x < 0 || (uint64_t)x > max)
		return false;
	*ret = (uint64_t)x;
	return true;
}

static bool get_hash(json_t *o, const char *k, uint8_t out[BN_SHA256_LEN])
{
	const char *s = get_str(o, k);
	return s && strlen(s) == 64 && bn_unhex(s, out, BN_SHA256_LEN);
}

static int cmp_path(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, ((const struct bn_entry *)b)->path);
}

/*
 * bn_symlink_inside() is lexical: it takes every component of the target for
 * a directory.  When a component is itself a symlink of the artifact, a later
 * ".." climbs from wherever that link leads, so chains such as
 * "d/up" -> ".." plus "esc" -> "d/up/../.." escape although each link looks
 * inside on its own.  Refuses a ".." after a component that names a symlink
 * entry (or lies below one).  Without ".." after a link, resolution only
 * descends from points that are themselves inside, so the tree stays closed.
 */
static bool symlink_chain_inside(const struct bn_artifact *a, const char *path, const char *target)
{
	char cur[2 * BN_MAX_PATH + 2];
	const char *slash = strrchr(path, '/');
	size_t cl = slash ? (size_t)(slash - path) : 0;
	memcpy(cur, path, cl);
	cur[cl] = '\0';
	bool through_link = false;
	const char *s = target;
	for (;;) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 2 && s[0] == '.' && s[1] == '.') {
			if (through_link)
				return false;
			char *up = strrchr(cur, '/');
			cl = up ? (size_t)(up - cur) : 0;
			cur[cl] = '\0';
		} else if (!(l == 0 || (l == 1 && s[0] == '.'))) {
			if (!through_link) {
				if (cl + 1 + l >= sizeof cur)
					return false;
				if (cl)
					cur[cl++] = '/';
				memcpy(cur + cl, s, l);
				cl += l;
				cur[cl] = '\0';
				const char *key = cur;
				const struct bn_entry *x = bsearch(&key, a->entries, a->n_entries, sizeof *a->entries, cmp_path);
				through_link = x && x->type == BN_ENTRY_SYMLINK;
			}
		}
		if (!e)
			return true;
		s = e + 1;
	}
}

static int parse_entries(struct bn_artifact *a, json_t *arr, struct bn_error *err)
{
	size_t n = json_array_size(arr);
	if (n > BN_MAX_ENTRIES)
		return BAD("artifact '%s': too many entries (%zu)", a->name, n);
	a->entries = calloc(n ? n : 1, sizeof *a->entries);
	if (!a->entries)
		return bn_fail(err, -ENOMEM, "out of memory");
	uint64_t off = 0, files = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i);
		struct bn_entry *e = &a->entries[i];
		a->n_entries = i + 1;
		if (!json_is_object(o))
			return BAD("artifact '%s': entry %zu is not an object", a->name, i);
		const char *path = get_str(o, "path"), *type = get_str(o, "type");
		if (!path || !bn_path_valid(path))
			return BAD("artifact '%s': entry %zu has an unsafe or invalid path", a->name, i);
		e->path = strdup(path);
		if (!e->path)
			return bn_fail(err, -ENOMEM, "out of memory");
		if (i > 0 && strcmp(a->entries[i - 1].path, path) >= 0)
			return BAD("artifact '%s': entry '%s' is duplicated or out of order", a->name, path);
		const char *slash = strrchr(path, '/');
		if (slash) {
			/* The parent must be an earlier "dir" entry. */
			char *parent = strndup(path, (size_t)(slash - path));
			if (!parent)
				return bn_fail(err, -ENOMEM, "out of memory");
			const char *key = parent;
			struct bn_entry *p = bsearch(&key, a->entries, i, sizeof *a->entries, cmp_path);
			free(parent);
			if (!p || p->type != BN_ENTRY_DIR)
				return BAD("artifact '%s': entry '%s' has no parent directory entry", a->name, path);
		}
		uint64_t mode = 0;
		if (!type)
			return BAD("artifact '%s': entry '%s' has no type", a->name, path);
		if (!strcmp(type, "file")) {
			e->type = BN_ENTRY_FILE;
			if (!get_u64(o, "size", UINT64_MAX / 2, &e->size) || !get_u64(o, "offset", UINT64_MAX / 2, &e->offset))
				return BAD("artifact '%s': file '%s' has a bad size or offset", a->name, path);
			if (e->offset != off)
				return BAD("artifact '%s': file '%s' offset %" PRIu64 " does not follow the previous file (%" PRIu64 ")",
				           a->name, path, e->offset, off);
			if (e->size > UINT64_MAX / 4 - off)
				return BAD("artifact '%s': sizes overflow", a->name);
			off += e->size;
			files++;
			if (!get_hash(o, "sha256", e->sha256))
				return BAD("artifact '%s': file '%s' has no valid sha256", a->name, path);
		} else if (!strcmp(type, "dir")) {
			e->type = BN_ENTRY_DIR;
		} else if (!strcmp(type, "symlink")) {
			e->type = BN_ENTRY_SYMLINK;
			const char *t = get_str(o, "target");
			if (!t || !bn_symlink_inside(path, t))
				return BAD("artifact '%s': symlink '%s' points outside the artifact", a->name, path);
			e->target = strdup(t);
			if (!e->target)
				return bn_fail(err, -ENOMEM, "out of memory");
		} else {
			return BAD("artifact '%s': entry '%s' has unsupported type '%s'", a->name, path, type);
		}
		if (e->type != BN_ENTRY_SYMLINK) {
			if (!get_u64(o, "mode", UINT32_MAX, &mode))
				return BAD("artifact '%s': entry '%s' has no mode", a->name, path);
			if (mode & ~(uint64_t)0777)
				return BAD("artifact '%s': entry '%s' has mode %04" PRIo64 " (setuid, setgid and sticky bits are refused)",
				           a->name, path, mode);
			e->mode = (uint32_t)mode;
		}
	}
	if (off != a->size)
		return BAD("artifact '%s': files add up to %" PRIu64 " bytes, artifact says %" PRIu64, a->name, off, a->size);
	a->n_files = files;
	/* Now that every entry is known: no link may climb out through another. */
	for (size_t i = 0; i < n; i++)
		if (a->entries[i].type == BN_ENTRY_SYMLINK && !symlink_chain_inside(a, a->entries[i].path, a->entries[i].target))
			return BAD("artifact '%s': symlink '%s' leads out of the artifact through another symlink", a->name,
			           a->entries[i].path);
	return 0;
}

/* The artifact types a bundle may carry.  agpack's spec types
 * (tools/agpack/artifact_types.c) each pack as one of these; a new one that
 * extracts differently is added here too. */
static const char *const bundle_types[] = {"files", "oci-archive"};

static bool bundle_type_known(const char *type)
{
	for (size_t i = 0; type && i < sizeof bundle_types / sizeof bundle_types[0]; i++)
		if (!strcmp(bundle_types[i], type))
			return true;
	return false;
}

/* Format 2: "base" names the bundle a delta was built against (FORMAT.md
 * section 12); it is present exactly when the major version is 2. */
static int parse_base(struct bn_manifest *m, json_t *root, unsigned maj, struct bn_error *err)
{
	json_t *bo = json_object_get(root, "base");
	if (!bo && maj == BN_FORMAT_MAJOR)
		return 0;
	if (!bo)
		return BAD("format %u.x needs a \"base\" (a delta bundle)", maj);
	if (maj != BN_FORMAT_DELTA_MAJOR)
		return BAD("\"base\" needs format_version %u.0", BN_FORMAT_DELTA_MAJOR);
	const char *n = json_is_object(bo) ? get_str(bo, "name") : NULL, *c = n ? get_str(bo, "channel") : NULL;
	m->base = calloc(1, sizeof *m->base);
	if (!m->base)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (!n || !bn_name_valid(n) || !c || !bn_name_valid(c) ||
	    !get_u64(bo, "version", (uint64_t)INT64_MAX, &m->base->version) ||
	    !get_hash(bo, "manifest_sha256", m->base->sha256))
		return BAD("base: needs name, channel, version and manifest_sha256");
	m->base->name = strdup(n);
	m->base->channel = strdup(c);
	return m->base->name && m->base->channel ? 0 : bn_fail(err, -ENOMEM, "out of memory");
}

/* {"artifact", "coding": "base", "usize", "sha256", "base": {"artifact", "path", "offset"}} */
static int parse_reused_chunk(struct bn_manifest *m, json_t *o, json_t *bo, size_t i, size_t na, struct bn_chunk *c,
                              struct bn_error *err)
{
	uint64_t a = 0, us = 0, off = 0;
	const char *coding = get_str(o, "coding");
	const char *ba = json_is_object(bo) ? get_str(bo, "artifact") : NULL, *bp = ba ? get_str(bo, "path") : NULL;
	if (!m->base)
		return BAD("chunk %zu is reused from a base, but the manifest names none", i);
	if (!get_u64(o, "artifact", na, &a) || a >= na || !get_u64(o, "usize", m->chunk_size, &us) || us == 0 ||
	    !get_hash(o, "sha256", c->sha256) || !coding || strcmp(coding, "base") != 0 || !ba || !bn_name_valid(ba) ||
	    !bp || !bn_path_valid(bp) || !get_u64(bo, "offset", UINT64_MAX / 4, &off))
		return BAD("reused chunk %zu has a bad field", i);
	/* Consecutive chunks of one base file share its reference. */
	if (!m->n_brefs || strcmp(m->brefs[m->n_brefs - 1].artifact, ba) || strcmp(m->brefs[m->n_brefs - 1].path, bp)) {
		if (!(m->n_brefs & (m->n_brefs + 1)) || !m->brefs) {
			struct bn_bref *nb = realloc(m->brefs, (2 * m->n_brefs + 2) * sizeof *nb);
			if (!nb)
				return bn_fail(err, -ENOMEM, "out of memory");
			m->brefs = nb;
		}
		struct bn_bref *br = &m->brefs[m->n_brefs];
		br->artifact = strdup(ba);
		br->path = strdup(bp);
		m->n_brefs++;
		if (!br->artifact || !br->path)
			return bn_fail(err, -ENOMEM, "out of memory");
	}
	c->artifact = (uint32_t)a;
	c->volume = UINT32_MAX;
	c->coding = BN_CODING_BASE;
	c->usize = c->csize = (uint32_t)us;
	c->bref = (uint32_t)(m->n_brefs - 1);
	c->boffset = off;
	return 0;
}

void bn_manifest_delta_bytes(const struct bn_manifest *m, uint64_t *ret_carried, uint64_t *ret_reused)
{
	uint64_t c = 0, u = 0;
	for (size_t i = 0; i < m->n_chunks; i++)
		*(bn_chunk_reused(&m->chunks[i]) ? &u : &c) += m->chunks[i].usize;
	*ret_carried = c;
	*ret_reused = u;
}

/* ---- bn_manifest_parse, one step per section ------------------------- */

/* format, format_version, base, name, channel, created, version, sizes */
static int parse_header(struct bn_manifest *m, json_t *root, struct bn_error *err)
{
	const char *fmt = get_str(root, "format"), *fv = get_str(root, "format_version");
	if (!fmt || strcmp(fmt, BN_FORMAT_NAME) != 0) {
		return BAD("not an agkit bundle manifest");
	}
	unsigned maj = 0, min = 0;
	char tail;
	if (!fv || sscanf(fv, "%u.%u%c", &maj, &min, &tail) != 2) {
		return BAD("bad format_version");
	}
	if (maj != BN_FORMAT_MAJOR && maj != BN_FORMAT_DELTA_MAJOR) {
		return bn_fail(err, -EPROTO,
		               "manifest.json: unsupported bundle format version %u.%u (this agkit reads %u.x and %u.x); "
		               "upgrade agkit on this host",
		               maj, min, BN_FORMAT_MAJOR, BN_FORMAT_DELTA_MAJOR);
	}
	/* Format 2 is exactly the delta bundle: a base, and chunks that may come from it. */
	int r = parse_base(m, root, maj, err);
	if (r < 0)
		return r;
	m->format_major = maj;
	m->format_minor = min;
	const char *name = get_str(root, "name"), *channel = get_str(root, "channel"), *created = get_str(root, "created");
	if (!name || !bn_name_valid(name) || !channel || !bn_name_valid(channel)) {
		return BAD("bad bundle name or channel");
	}
	if (!created || strlen(created) > 64) {
		return BAD("bad created time");
	}
	uint64_t cs = 0;
	if (!get_u64(root, "version", (uint64_t)INT64_MAX, &m->version) ||
	    !get_u64(root, "chunk_size", BN_MAX_CHUNK_SIZE, &cs) || cs < BN_MIN_CHUNK_SIZE ||
	    !get_u64(root, "volume_size", UINT64_MAX / 2, &m->volume_size)) {
		return BAD("bad version, chunk_size or volume_size");
	}
	m->chunk_size = (uint32_t)cs;
	m->name = strdup(name);
	m->channel = strdup(channel);
	m->created = strdup(created);
	if (!m->name || !m->channel || !m->created) {
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int parse_volumes(struct bn_manifest *m, json_t *vols, struct bn_error *err)
{
	size_t nv = json_array_size(vols);
	for (size_t i = 0; i < nv; i++) {
		json_t *o = json_array_get(vols, i);
		struct bn_volume *v = &m->volumes[i];
		m->n_volumes = i + 1;
		bn_volume_name(i, v->name);
		const char *vn = json_is_object(o) ? get_str(o, "name") : NULL;
		if (!vn || strcmp(vn, v->name) != 0) {
			return BAD("volume %zu must be named %s", i + 1, v->name);
		}
		if (!get_u64(o, "size", m->volume_size, &v->size) || !get_hash(o, "sha256", v->sha256)) {
			return BAD("volume %s has a bad size or sha256", v->name);
		}
	}
	return 0;
}

/* Artifacts and their entries; nc: the number of chunks their ranges index. */
static int parse_artifacts(struct bn_manifest *m, json_t *arts, size_t nc, struct bn_error *err)
{
	size_t na = json_array_size(arts);
	for (size_t i = 0; i < na; i++) {
		json_t *o = json_array_get(arts, i);
		struct bn_artifact *a = &m->artifacts[i];
		m->n_artifacts = i + 1;
		if (!json_is_object(o)) {
			return BAD("artifact %zu is not an object", i);
		}
		const char *an = get_str(o, "name"), *at = get_str(o, "type"), *al = get_str(o, "layout");
		if (!an || !bn_name_valid(an)) {
			return BAD("artifact %zu has an invalid name", i);
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(m->artifacts[j].name, an)) {
				return BAD("artifact name '%s' is used twice", an);
			}
		a->name = strdup(an);
		if (!a->name) {
			return bn_fail(err, -ENOMEM, "out of memory");
		}
		if (!bundle_type_known(at)) {
			return BAD("artifact '%s' has unsupported type '%s'", an, at ? at : "(none)");
		}
		a->type = strdup(at);
		a->layout = strdup(al ? al : "tree");
		uint64_t cf = 0, cn = 0;
		if (!a->type || !a->layout) {
			return bn_fail(err, -ENOMEM, "out of memory");
		}
		if (!get_u64(o, "size", UINT64_MAX / 4, &a->size) || !get_u64(o, "chunk_first", nc, &cf) ||
		    !get_u64(o, "chunk_count", nc, &cn) || cf + cn > nc) {
			return BAD("artifact '%s' has a bad size or chunk range", an);
		}
		a->chunk_first = (size_t)cf;
		a->n_chunks = (size_t)cn;
		json_t *src = json_object_get(o, "source");
		if (src) {
			if (!json_is_object(src)) {
				return BAD("artifact '%s': source is not an object", an);
			}
			a->source = json_incref(src);
		}
		json_t *hv = json_object_get(o, "health");
		if (hv) {
			const char *h = json_is_string(hv) ? get_str(o, "health") : NULL;
			if (!h || !bn_path_valid(h) || !strchr(h, '/') || !(a->health = strdup(h))) {
				return BAD("artifact '%s': \"health\" must be ARTIFACT/PATH", an);
			}
		}
		json_t *ents = json_object_get(o, "entries");
		if (!json_is_array(ents)) {
			return BAD("artifact '%s' has no entries", an);
		}
		int r = parse_entries(a, ents, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_health_refs(const struct bn_manifest *m, struct bn_error *err)
{
	size_t na = m->n_artifacts;
	/* A health reference names a file entry of another artifact. */
	for (size_t i = 0; i < na; i++) {
		const char *h = m->artifacts[i].health;
		if (!h)
			continue;
		size_t nl = (size_t)(strchr(h, '/') - h);
		bool found = false;
		for (size_t j = 0; j < na && !found; j++) {
			const struct bn_artifact *t = &m->artifacts[j];
			if (j == i || strlen(t->name) != nl || strncmp(t->name, h, nl) != 0)
				continue;
			for (size_t k = 0; k < t->n_entries && !found; k++)
				found = t->entries[k].type == BN_ENTRY_FILE && !strcmp(t->entries[k].path, h + nl + 1);
		}
		if (!found) {
			return BAD("artifact '%s': health suite '%s' is not a file of another artifact",
			           m->artifacts[i].name, h);
		}
	}
	return 0;
}

static int parse_chunks(struct bn_manifest *m, json_t *chunks, struct bn_error *err)
{
	size_t nc = json_array_size(chunks), na = m->n_artifacts, nv = m->n_volumes;
	/* Chunks: tile artifacts (in artifact order) and volumes (in volume order). */
	size_t art = 0, vol = 0;
	uint64_t soff = 0, voff = 0;
	for (size_t i = 0; i < nc; i++) {
		json_t *o = json_array_get(chunks, i);
		struct bn_chunk *c = &m->chunks[i];
		m->n_chunks = i + 1;
		uint64_t a = 0, v = 0, vo = 0, cs2 = 0, us = 0;
		json_t *bo = json_is_object(o) ? json_object_get(o, "base") : NULL;
		if (bo) {
			/* A reused chunk: no volume bytes; it tiles its artifact's stream only. */
			int r = parse_reused_chunk(m, o, bo, i, na, c, err);
			if (r < 0)
				return r;
			while (art < na && i >= m->artifacts[art].chunk_first + m->artifacts[art].n_chunks &&
			       soff == m->artifacts[art].size) {
				art++;
				soff = 0;
			}
			if (art >= na || c->artifact != art || i < m->artifacts[art].chunk_first) {
				return BAD("chunk %zu is not in its artifact's chunk range", i);
			}
			c->soffset = soff;
			soff += c->usize;
			if (soff > m->artifacts[art].size) {
				return BAD("chunk %zu runs past its artifact", i);
			}
			continue;
		}
		if (!json_is_object(o) || !get_u64(o, "artifact", na, &a) || a >= na || !get_u64(o, "volume", nv, &v) ||
		    v >= nv || !get_u64(o, "offset", UINT64_MAX / 2, &vo) || !get_u64(o, "csize", BN_MAX_CHUNK_SIZE * 2ull, &cs2) ||
		    !get_u64(o, "usize", m->chunk_size, &us) || cs2 == 0 || us == 0 ||
		    cs2 > ZSTD_compressBound((size_t)us) || !get_hash(o, "sha256", c->sha256) ||
		    !get_hash(o, "csha256", c->csha256)) {
			return BAD("chunk %zu has a bad field", i);
		}
		const char *coding = get_str(o, "coding");
		if (coding && !strcmp(coding, "zstd")) {
			c->coding = BN_CODING_ZSTD;
		} else if (coding && !strcmp(coding, "bytegroup2")) {
			c->coding = BN_CODING_BG2;
		} else if (coding && !strcmp(coding, "bytegroup4")) {
			c->coding = BN_CODING_BG4;
		} else {
			return BAD("chunk %zu has unsupported coding '%s'", i, coding ? coding : "(none)");
		}
		/* Artifact order. */
		while (art < na && i >= m->artifacts[art].chunk_first + m->artifacts[art].n_chunks) {
			if (soff != m->artifacts[art].size)
				break;
			art++;
			soff = 0;
		}
		if (art >= na || a != art || i < m->artifacts[art].chunk_first ||
		    i >= m->artifacts[art].chunk_first + m->artifacts[art].n_chunks) {
			return BAD("chunk %zu is not in its artifact's chunk range", i);
		}
		/* Volume order. */
		if (v == vol + 1 && voff == m->volumes[vol].size) {
			vol++;
			voff = 0;
		}
		if (v != vol || vo != voff) {
			return BAD("chunk %zu is out of place (volume %" PRIu64 " offset %" PRIu64 ")", i, v + 1, vo);
		}
		c->artifact = (uint32_t)a;
		c->volume = (uint32_t)v;
		c->voffset = vo;
		c->csize = (uint32_t)cs2;
		c->usize = (uint32_t)us;
		c->soffset = soff;
		soff += us;
		voff += cs2;
		if (voff > m->volumes[vol].size || soff > m->artifacts[art].size) {
			return BAD("chunk %zu runs past its volume or artifact", i);
		}
	}
	return 0;
}

static int check_coverage(const struct bn_manifest *m, struct bn_error *err)
{
	size_t nc = m->n_chunks, na = m->n_artifacts, nv = m->n_volumes;
	int r = 0;
	/* Every artifact's stream and every volume must be covered exactly. */
	size_t ci = 0;
	for (size_t i = 0; i < na; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		uint64_t sum = 0;
		if (a->n_chunks && a->chunk_first != ci) {
			return BAD("artifact '%s' chunk range is out of order", a->name);
		}
		for (size_t k = a->chunk_first; k < a->chunk_first + a->n_chunks; k++)
			sum += m->chunks[k].usize;
		ci += a->n_chunks;
		if (sum != a->size) {
			return BAD("artifact '%s': chunks hold %" PRIu64 " bytes, artifact says %" PRIu64, a->name, sum, a->size);
		}
	}
	if (ci != nc) {
		return BAD("chunks not owned by any artifact");
	}
	{
		uint64_t *vsum = calloc(nv ? nv : 1, sizeof *vsum);
		if (!vsum) {
			return bn_fail(err, -ENOMEM, "out of memory");
		}
		for (size_t i = 0; i < nc; i++)
			if (!bn_chunk_reused(&m->chunks[i]))
				vsum[m->chunks[i].volume] += m->chunks[i].csize;
		for (size_t i = 0; i < nv && r == 0; i++)
			if (vsum[i] != m->volumes[i].size)
				r = BAD("volume %s: chunks hold %" PRIu64 " bytes, volume says %" PRIu64, m->volumes[i].name,
				        vsum[i], m->volumes[i].size);
		free(vsum);
		if (r < 0)
			return r;
	}
	return 0;
}

int bn_manifest_parse(const char *buf, size_t len, struct bn_manifest **ret, struct bn_error *err)
{
	if (len > BN_MANIFEST_MAX)
		return bn_fail(err, -EFBIG, "manifest.json: too large (%zu bytes)", len);
	json_error_t je;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return BAD("not valid JSON (line %d: %s)", je.line, je.text);
	struct bn_manifest *m = calloc(1, sizeof *m);
	int r = 0;
	if (!m) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!json_is_object(root)) {
		r = BAD("not a JSON object");
		goto out;
	}
	r = parse_header(m, root, err);
	if (r < 0)
		goto out;
	json_t *vols = json_object_get(root, "volumes"), *chunks = json_object_get(root, "chunks"),
	       *arts = json_object_get(root, "artifacts");
	if (!json_is_array(vols) || !json_is_array(chunks) || !json_is_array(arts)) {
		r = BAD("missing volumes, chunks or artifacts");
		goto out;
	}
	size_t nv = json_array_size(vols), nc = json_array_size(chunks), na = json_array_size(arts);
	if (nv > BN_MAX_VOLUMES || nc > BN_MAX_CHUNKS || na > BN_MAX_ARTIFACTS) {
		r = BAD("too many volumes, chunks or artifacts");
		goto out;
	}
	m->volumes = calloc(nv ? nv : 1, sizeof *m->volumes);
	m->chunks = calloc(nc ? nc : 1, sizeof *m->chunks);
	m->artifacts = calloc(na ? na : 1, sizeof *m->artifacts);
	if (!m->volumes || !m->chunks || !m->artifacts) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	r = parse_volumes(m, vols, err);
	if (r == 0)
		r = parse_artifacts(m, arts, nc, err);
	if (r == 0)
		r = check_health_refs(m, err);
	if (r == 0)
		r = parse_chunks(m, chunks, err);
	if (r == 0)
		r = check_coverage(m, err);
	if (r < 0)
		goto out;
	/* Format 1.1: optional parity volumes and media assignment. */
	r = bn_manifest_parse_ext(m, root, err);
	if (r < 0)
		goto out;
	*ret = m;
	m = NULL;
out:
	bn_manifest_free(m);
	json_decref(root);
	return r;
}

/* ---- format ---------------------------------------------------------- */

static json_t *hashval(const uint8_t h[BN_SHA256_LEN])
{
	char hex[BN_SHA256_HEX];
	bn_hex(h, BN_SHA256_LEN, hex);
	return json_string(hex);
}

#define SET(o, k, v)                                       \
	do {                                               \
		if (json_object_set_new((o), (k), (v)) < 0) \
			goto nomem;                        \
	} while (0)

int bn_manifest_format(const struct bn_manifest *m, char **ret_text, size_t *ret_len)
{
	json_t *root = json_object(), *arts = json_array(), *chunks = json_array(), *vols = json_array();
	char fv[32];
	if (!root || !arts || !chunks || !vols)
		goto nomem;
	/* 1.0 stays byte-identical for bundles that use no 1.1 feature (byte-grouped
	 * chunks, parity, media sets). */
	if (m->base)
		snprintf(fv, sizeof fv, "%u.0", BN_FORMAT_DELTA_MAJOR);
	else
		snprintf(fv, sizeof fv, "%u.%u", BN_FORMAT_MAJOR, m->parity || m->media ? 1u : m->format_minor);
	SET(root, "format", json_string(BN_FORMAT_NAME));
	SET(root, "format_version", json_string(fv));
	SET(root, "name", json_string(m->name));
	SET(root, "channel", json_string(m->channel));
	SET(root, "version", json_integer((json_int_t)m->version));
	SET(root, "created", json_string(m->created));
	SET(root, "chunk_size", json_integer(m->chunk_size));
	SET(root, "volume_size", json_integer((json_int_t)m->volume_size));
	if (m->base) {
		json_t *bo = json_object();
		if (!bo || json_object_set_new(root, "base", bo) < 0)
			goto nomem;
		SET(bo, "name", json_string(m->base->name));
		SET(bo, "channel", json_string(m->base->channel));
		SET(bo, "version", json_integer((json_int_t)m->base->version));
		SET(bo, "manifest_sha256", hashval(m->base->sha256));
	}
	for (size_t i = 0; i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		json_t *o = json_object(), *ents = json_array();
		if (!o || !ents || json_array_append_new(arts, o) < 0) {
			json_decref(ents);
			goto nomem;
		}
		SET(o, "name", json_string(a->name));
		SET(o, "type", json_string(a->type));
		SET(o, "layout", json_string(a->layout));
		SET(o, "size", json_integer((json_int_t)a->size));
		SET(o, "files", json_integer((json_int_t)a->n_files));
		SET(o, "chunk_first", json_integer((json_int_t)a->chunk_first));
		SET(o, "chunk_count", json_integer((json_int_t)a->n_chunks));
		if (a->source)
			SET(o, "source", json_incref(a->source));
		if (a->health)
			SET(o, "health", json_string(a->health));
		SET(o, "entries", ents);
		for (size_t j = 0; j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			json_t *eo = json_object();
			if (!eo || json_array_append_new(ents, eo) < 0)
				goto nomem;
			SET(eo, "path", json_string(e->path));
			switch (e->type) {
			case BN_ENTRY_FILE:
				SET(eo, "type", json_string("file"));
				SET(eo, "mode", json_integer(e->mode));
				SET(eo, "size", json_integer((json_int_t)e->size));
				SET(eo, "offset", json_integer((json_int_t)e->offset));
				SET(eo, "sha256", hashval(e->sha256));
				break;
			case BN_ENTRY_DIR:
				SET(eo, "type", json_string("dir"));
				SET(eo, "mode", json_integer(e->mode));
				break;
			default:
				SET(eo, "type", json_string("symlink"));
				SET(eo, "target", json_string(e->target));
				break;
			}
		}
	}
	for (size_t i = 0; i < m->n_chunks; i++) {
		const struct bn_chunk *c = &m->chunks[i];
		json_t *o = json_object();
		if (!o || json_array_append_new(chunks, o) < 0)
			goto nomem;
		SET(o, "artifact", json_integer(c->artifact));
		if (bn_chunk_reused(c)) {
			json_t *bo = json_object();
			if (!bo || json_object_set_new(o, "base", bo) < 0)
				goto nomem;
			SET(o, "usize", json_integer(c->usize));
			SET(o, "coding", json_string("base"));
			SET(o, "sha256", hashval(c->sha256));
			SET(bo, "artifact", json_string(m->brefs[c->bref].artifact));
			SET(bo, "path", json_string(m->brefs[c->bref].path));
			SET(bo, "offset", json_integer((json_int_t)c->boffset));
			continue;
		}
		SET(o, "volume", json_integer(c->volume));
		SET(o, "offset", json_integer((json_int_t)c->voffset));
		SET(o, "csize", json_integer(c->csize));
		SET(o, "usize", json_integer(c->usize));
		SET(o, "coding", json_string(c->coding == BN_CODING_BG2   ? "bytegroup2"
		                             : c->coding == BN_CODING_BG4 ? "bytegroup4"
		                                                          : "zstd"));
		SET(o, "sha256", hashval(c->sha256));
		SET(o, "csha256", hashval(c->csha256));
	}
	for (size_t i = 0; i < m->n_volumes; i++) {
		json_t *o = json_object();
		if (!o || json_array_append_new(vols, o) < 0)
			goto nomem;
		SET(o, "name", json_string(m->volumes[i].name));
		SET(o, "size", json_integer((json_int_t)m->volumes[i].size));
		SET(o, "sha256", hashval(m->volumes[i].sha256));
	}
	SET(root, "artifacts", arts);
	arts = NULL;
	SET(root, "chunks", chunks);
	chunks = NULL;
	SET(root, "volumes", vols);
	vols = NULL;
	if (bn_manifest_format_ext(m, root) < 0)
		goto nomem;
	char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	char *t2 = realloc(text, len + 2);
	if (!t2) {
		free(text);
		return -ENOMEM;
	}
	t2[len] = '\n';
	t2[len + 1] = '\0';
	*ret_text = t2;
	if (ret_len)
		*ret_len = len + 1;
	return 0;
nomem:
	json_decref(root);
	json_decref(arts);
	json_decref(chunks);
	json_decref(vols);
	return -ENOMEM;
}
