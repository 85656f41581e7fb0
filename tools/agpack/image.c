/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "bundle/fsutil.h"
#include "image.h"
#include "pkgdb.h"

enum rec_kind { REC_DPKG, REC_APK, REC_PY, REC_OSREL, REC_RPM };

/* A package database file seen in a layer; a later layer's file at the same
 * path replaces it, a whiteout removes it. */
struct rec {
	char *path;
	unsigned layer;
	enum rec_kind kind;
	char *text;      /* os-release */
	size_t first, n; /* its packages: scan.pkgs[first .. first+n) */
	bool dead;
};

struct scan {
	struct rec *recs;
	size_t n_recs, cap_recs;
	struct image_pkg *pkgs;
	size_t n_pkgs, cap_pkgs;
	enum image_pkg_kind cur_kind;
	const char *cur_db;
};

static void pkg_release(struct image_pkg *p)
{
	free(p->name);
	free(p->version);
	free(p->arch);
	free(p->license);
	free(p->db);
}

static int add_pkg(void *ud, const struct pkgdb_pkg *p)
{
	struct scan *s = ud;
	if (s->n_pkgs >= IMAGE_MAX_PKGS)
		return -EFBIG;
	if (s->n_pkgs == s->cap_pkgs) {
		size_t nc = s->cap_pkgs ? s->cap_pkgs * 2 : 256;
		void *n = realloc(s->pkgs, nc * sizeof *s->pkgs);
		if (!n)
			return -ENOMEM;
		s->pkgs = n;
		s->cap_pkgs = nc;
	}
	struct image_pkg *q = &s->pkgs[s->n_pkgs];
	memset(q, 0, sizeof *q);
	q->kind = s->cur_kind;
	q->name = strdup(p->name);
	q->version = strdup(p->version);
	q->arch = p->arch[0] ? strdup(p->arch) : NULL;
	q->license = p->license[0] ? strdup(p->license) : NULL;
	q->db = strdup(s->cur_db);
	if (!q->name || !q->version || !q->db || (p->arch[0] && !q->arch) || (p->license[0] && !q->license)) {
		pkg_release(q);
		return -ENOMEM;
	}
	s->n_pkgs++;
	return 0;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

/* The kind of package database at path, or -1. */
static int classify(const char *p)
{
	if (!strcmp(p, "var/lib/dpkg/status"))
		return REC_DPKG;
	if (!strncmp(p, "var/lib/dpkg/status.d/", 22) && !strchr(p + 22, '/') && p[22] && !ends_with(p, ".md5sums"))
		return REC_DPKG;
	if (!strcmp(p, "lib/apk/db/installed"))
		return REC_APK;
	if (ends_with(p, ".dist-info/METADATA") || ends_with(p, ".egg-info/PKG-INFO"))
		return REC_PY;
	if (!strcmp(p, "etc/os-release") || !strcmp(p, "usr/lib/os-release"))
		return REC_OSREL;
	if (!strcmp(p, "var/lib/rpm/rpmdb.sqlite") || !strcmp(p, "var/lib/rpm/Packages") ||
	    !strcmp(p, "usr/lib/sysimage/rpm/rpmdb.sqlite"))
		return REC_RPM;
	return -1;
}

/* Normalises a tar member name in place: no leading "/" or "./", no trailing
 * "/"; NULL for names with ".." or empty components. */
static char *norm(char *p)
{
	while (*p == '/' || (p[0] == '.' && p[1] == '/'))
		p += p[0] == '/' ? 1 : 2;
	size_t n = strlen(p);
	while (n && p[n - 1] == '/')
		p[--n] = 0;
	if (!n || !strcmp(p, "."))
		return NULL;
	for (char *c = p; c;) {
		char *sl = strchr(c, '/');
		size_t cl = sl ? (size_t)(sl - c) : strlen(c);
		if (cl == 0 || (cl == 2 && c[0] == '.' && c[1] == '.') || (cl == 1 && c[0] == '.'))
			return NULL;
		c = sl ? sl + 1 : NULL;
	}
	return p;
}

/* Marks dead every record of an earlier layer at path or below it (whole
 * directory contents when below_only). */
static void whiteout(struct scan *s, const char *path, bool below_only, unsigned layer, bool same_layer)
{
	size_t pl = strlen(path);
	for (size_t i = 0; i < s->n_recs; i++) {
		struct rec *r = &s->recs[i];
		if (r->dead || r->layer > layer || (r->layer == layer && !same_layer))
			continue;
		bool under = pl == 0 || (!strncmp(r->path, path, pl) && r->path[pl] == '/');
		if (under || (!below_only && !strcmp(r->path, path)))
			r->dead = true;
	}
}

static int read_member(struct archive *a, size_t want, char **ret, size_t *ret_len)
{
	char *buf = malloc(want + 1);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	while (got < want) {
		la_ssize_t n = archive_read_data(a, buf + got, want - got);
		if (n < 0) {
			free(buf);
			return -EBADMSG;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	*ret = buf;
	*ret_len = got;
	return 0;
}

static int scan_layer(struct scan *s, const char *blob, const char *digest, unsigned layer, struct bn_error *err)
{
	struct archive *a = archive_read_new();
	if (!a)
		return bn_fail(err, -ENOMEM, "out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	int r = 0;
	if (archive_read_open_filename(a, blob, 1 << 16) != ARCHIVE_OK) {
		r = bn_fail(err, -EBADMSG, "layer %s: %s", digest, archive_error_string(a));
		goto out;
	}
	struct archive_entry *e;
	int ar;
	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
		const char *raw = archive_entry_pathname(e);
		if (!raw || strlen(raw) >= 4096)
			continue;
		char pbuf[4096];
		strcpy(pbuf, raw);
		char *p = norm(pbuf);
		if (!p)
			continue;
		char *base = strrchr(p, '/');
		char *bname = base ? base + 1 : p;
		if (!strncmp(bname, ".wh.", 4)) {
			if (base)
				*base = 0;
			const char *dir = base ? p : "";
			if (!strcmp(bname, ".wh..wh..opq")) {
				whiteout(s, dir, true, layer, false);
			} else {
				char t[4096];
				snprintf(t, sizeof t, "%s%s%s", dir, *dir ? "/" : "", bname + 4);
				whiteout(s, t, false, layer, false);
			}
			continue;
		}
		/* A non-directory replaces what an earlier layer (or an earlier
		 * member of this one) had at that path and below; directories
		 * merge.  Whiteouts above apply to lower layers only. */
		if (archive_entry_filetype(e) != AE_IFDIR)
			whiteout(s, p, false, layer, true);
		int kind = classify(p);
		if (kind < 0)
			continue;
		bool reg = archive_entry_filetype(e) == AE_IFREG;
		if (!reg && kind != REC_OSREL && kind != REC_RPM)
			continue;
		if (s->n_recs >= IMAGE_MAX_RECORDS) {
			r = bn_fail(err, -EFBIG, "layer %s: more than %u package database files", digest,
			            IMAGE_MAX_RECORDS);
			goto out;
		}
		if (s->n_recs == s->cap_recs) {
			size_t nc = s->cap_recs ? s->cap_recs * 2 : 64;
			void *n = realloc(s->recs, nc * sizeof *s->recs);
			if (!n) {
				r = bn_fail(err, -ENOMEM, "out of memory");
				goto out;
			}
			s->recs = n;
			s->cap_recs = nc;
		}
		struct rec *rc = &s->recs[s->n_recs];
		memset(rc, 0, sizeof *rc);
		rc->path = strdup(p);
		rc->layer = layer;
		rc->kind = (enum rec_kind)kind;
		rc->first = s->n_pkgs;
		if (!rc->path) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		s->n_recs++;
		if (!reg) {
			if (kind == REC_OSREL) { /* a symlink: the usual etc -> ../usr/lib/os-release */
				rc->dead = true;
			}
			continue;
		}
		int64_t size = archive_entry_size(e);
		size_t want;
		if (kind == REC_PY) {
			want = size < 0 || (uint64_t)size > PKGDB_META_MAX ? PKGDB_META_MAX : (size_t)size;
		} else if (kind == REC_RPM) {
			continue;
		} else {
			uint64_t lim = kind == REC_OSREL ? 64u << 10 : PKGDB_MAX_BYTES;
			if (size < 0 || (uint64_t)size > lim) {
				r = bn_fail(err, -EFBIG,
				            "layer %s: %s is %lld bytes, over the %llu byte limit for it; refused",
				            digest, p, (long long)size, (unsigned long long)lim);
				goto out;
			}
			want = (size_t)size;
		}
		char *buf = NULL;
		size_t len = 0;
		r = read_member(a, want, &buf, &len);
		if (r < 0) {
			r = bn_fail(err, r, "layer %s: %s: %s", digest, p,
			            r == -ENOMEM ? "out of memory" : archive_error_string(a));
			goto out;
		}
		s->cur_db = rc->path;
		switch (kind) {
		case REC_DPKG:
			s->cur_kind = IMAGE_PKG_DEB;
			r = pkgdb_parse_dpkg(buf, len, add_pkg, s);
			break;
		case REC_APK:
			s->cur_kind = IMAGE_PKG_APK;
			r = pkgdb_parse_apk(buf, len, add_pkg, s);
			break;
		case REC_PY:
			s->cur_kind = IMAGE_PKG_PYPI;
			r = pkgdb_parse_pymeta(buf, len, add_pkg, s);
			break;
		case REC_OSREL:
			rc->text = buf;
			buf = NULL;
			break;
		default: break;
		}
		free(buf);
		rc->n = s->n_pkgs - rc->first;
		if (r < 0) {
			r = bn_fail(err, r, "layer %s: %s: %s", digest, p,
			            r == -EFBIG ? "more packages than the SBOM takes" : strerror(-r));
			goto out;
		}
	}
	if (ar != ARCHIVE_EOF)
		r = bn_fail(err, -EBADMSG, "layer %s: %s", digest, archive_error_string(a));
out:
	archive_read_free(a);
	return r;
}

static int str_cmp(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int pkg_cmp(const void *x, const void *y)
{
	const struct image_pkg *a = x, *b = y;
	int c = (int)a->kind - (int)b->kind;
	if (!c)
		c = strcmp(a->name, b->name);
	if (!c)
		c = strcmp(a->version, b->version);
	if (!c)
		c = str_cmp(a->arch, b->arch);
	if (!c)
		c = strcmp(a->db, b->db);
	if (!c)
		c = str_cmp(a->license, b->license);
	return c;
}

static char *blob_path(const char *dir, const char *digest)
{
	if (!digest || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71 || strchr(digest + 7, '/'))
		return NULL;
	char *p = NULL;
	if (asprintf(&p, "%s/blobs/sha256/%s", dir, digest + 7) < 0)
		return NULL;
	return p;
}

static int load_json(const char *path, const char *what, json_t **ret, struct bn_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int r = bn_read_file(path, IMAGE_MAX_JSON, &buf, &len, err);
	if (r < 0)
		return r;
	json_error_t je;
	json_t *j = json_loadb(buf, len, 0, &je);
	free(buf);
	if (!json_is_object(j)) {
		json_decref(j);
		return bn_fail(err, -EBADMSG, "%s: %s is not a JSON object", path, what);
	}
	*ret = j;
	return 0;
}

/* KEY=value from os-release text, unquoted; NULL when absent. */
static char *osrel_get(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) != 0 || l[kl] != '=')
			continue;
		const char *v = l + kl + 1, *end = strchr(v, '\n');
		size_t n = end ? (size_t)(end - v) : strlen(v);
		if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0])
			v++, n -= 2;
		if (n == 0 || n > 128)
			return NULL;
		return strndup(v, n);
	}
	return NULL;
}

static int scan_manifest(const char *dir, const char *digest, const char *ref, struct image_info *ii,
                         struct bn_error *err)
{
	char *mp = blob_path(dir, digest);
	json_t *man = NULL, *cfg = NULL;
	struct scan s = {0};
	int r = mp ? load_json(mp, "image manifest", &man, err) : bn_fail(err, -EBADMSG, "bad digest in index.json");
	if (r < 0)
		goto out;
	ii->digest = strdup(digest);
	ii->ref = ref ? strdup(ref) : NULL;
	json_t *cd = json_object_get(json_object_get(man, "config"), "digest");
	char *cp = blob_path(dir, json_string_value(cd));
	r = cp ? load_json(cp, "image config", &cfg, err) : bn_fail(err, -EBADMSG, "%s: bad config digest", mp);
	free(cp);
	if (r < 0)
		goto out;
	const char *os = json_string_value(json_object_get(cfg, "os")),
	           *arch = json_string_value(json_object_get(cfg, "architecture"));
	ii->os = os ? strdup(os) : NULL;
	ii->arch = arch ? strdup(arch) : NULL;
	json_t *env = json_object_get(json_object_get(cfg, "config"), "Env");
	if (json_is_array(env))
		ii->env = json_incref(env);
	json_t *layers = json_object_get(man, "layers");
	if (!json_is_array(layers)) {
		r = bn_fail(err, -EBADMSG, "%s: image manifest has no layers", mp);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(layers) && r == 0; i++) {
		const char *ld = json_string_value(json_object_get(json_array_get(layers, i), "digest"));
		char *lp = blob_path(dir, ld);
		r = lp ? scan_layer(&s, lp, ld, (unsigned)i, err) : bn_fail(err, -EBADMSG, "%s: bad layer digest", mp);
		free(lp);
	}
	if (r < 0)
		goto out;
	/* The surviving records, in path order of discovery. */
	const char *osrel = NULL;
	for (size_t i = 0; i < s.n_recs; i++) {
		struct rec *rc = &s.recs[i];
		if (rc->dead)
			continue;
		if (rc->kind == REC_RPM)
			ii->has_rpmdb = true;
		if (rc->kind == REC_OSREL && rc->text && (!osrel || !strcmp(rc->path, "etc/os-release")))
			osrel = rc->text;
	}
	if (osrel) {
		ii->os_id = osrel_get(osrel, "ID");
		ii->os_version = osrel_get(osrel, "VERSION_ID");
	}
	ii->pkgs = calloc(s.n_pkgs ? s.n_pkgs : 1, sizeof *ii->pkgs);
	if (!ii->pkgs) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s.n_recs; i++) {
		struct rec *rc = &s.recs[i];
		for (size_t k = rc->first; k < rc->first + rc->n; k++) {
			if (rc->dead) {
				pkg_release(&s.pkgs[k]);
				continue;
			}
			ii->pkgs[ii->n_pkgs++] = s.pkgs[k];
		}
		rc->n = 0;
	}
	s.n_pkgs = 0;
	/* Sorted (stable output), duplicates (a database listing a package
	 * twice) dropped: the SBOM's component lists hold unique items. */
	qsort(ii->pkgs, ii->n_pkgs, sizeof *ii->pkgs, pkg_cmp);
	size_t u = 0;
	for (size_t k = 0; k < ii->n_pkgs; k++) {
		if (u && !pkg_cmp(&ii->pkgs[u - 1], &ii->pkgs[k]))
			pkg_release(&ii->pkgs[k]);
		else
			ii->pkgs[u++] = ii->pkgs[k];
	}
	ii->n_pkgs = u;
out:
	for (size_t i = 0; i < s.n_recs; i++) {
		for (size_t k = s.recs[i].first; k < s.recs[i].first + s.recs[i].n; k++)
			pkg_release(&s.pkgs[k]);
		free(s.recs[i].path);
		free(s.recs[i].text);
	}
	free(s.recs);
	free(s.pkgs);
	json_decref(man);
	json_decref(cfg);
	free(mp);
	return r;
}

void image_free(struct image_info *images, size_t n)
{
	for (size_t i = 0; images && i < n; i++) {
		struct image_info *ii = &images[i];
		for (size_t k = 0; k < ii->n_pkgs; k++)
			pkg_release(&ii->pkgs[k]);
		free(ii->pkgs);
		free(ii->digest);
		free(ii->ref);
		free(ii->os);
		free(ii->arch);
		free(ii->os_id);
		free(ii->os_version);
		json_decref(ii->env);
	}
	free(images);
}

static bool is_index(json_t *desc)
{
	const char *mt = json_string_value(json_object_get(desc, "mediaType"));
	return mt && (strstr(mt, "image.index") || strstr(mt, "manifest.list"));
}

int image_scan(const char *dir, struct image_info **ret_images, size_t *ret_n, struct bn_error *err)
{
	char *ip = bn_path_join(dir, "index.json");
	json_t *index = NULL;
	struct image_info *imgs = calloc(IMAGE_MAX_MANIFESTS, sizeof *imgs);
	size_t n = 0;
	int r = ip && imgs ? load_json(ip, "image index", &index, err) : bn_fail(err, -ENOMEM, "out of memory");
	json_t *mans = json_object_get(index, "manifests");
	for (size_t i = 0; r == 0 && i < json_array_size(mans); i++) {
		json_t *d = json_array_get(mans, i);
		const char *ref = json_string_value(
		    json_object_get(json_object_get(d, "annotations"), "org.opencontainers.image.ref.name"));
		const char *dg = json_string_value(json_object_get(d, "digest"));
		json_t *sub = NULL, *list = NULL;
		if (is_index(d)) {
			char *sp = blob_path(dir, dg);
			r = sp ? load_json(sp, "image index", &sub, err) : bn_fail(err, -EBADMSG, "%s: bad digest", ip);
			free(sp);
			list = json_object_get(sub, "manifests");
		}
		size_t cnt = list ? json_array_size(list) : 1;
		for (size_t k = 0; r == 0 && k < cnt; k++) {
			json_t *md = list ? json_array_get(list, k) : d;
			if (list && is_index(md))
				continue; /* one level only */
			if (n == IMAGE_MAX_MANIFESTS) {
				r = bn_fail(err, -EFBIG, "%s: more than %d image manifests", ip, IMAGE_MAX_MANIFESTS);
				break;
			}
			r = scan_manifest(dir, json_string_value(json_object_get(md, "digest")), ref, &imgs[n++], err);
		}
		json_decref(sub);
	}
	json_decref(index);
	free(ip);
	if (r < 0) {
		image_free(imgs, n);
		return r;
	}
	*ret_images = imgs;
	*ret_n = n;
	return 0;
}
