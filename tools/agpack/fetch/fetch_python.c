/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The python source (issue 17): the wheels a hash-pinned requirements file
 * names, from a PEP 503/691 simple index, for one target interpreter and
 * platform.  The output directory holds the wheels and the requirements file,
 * so that in the clean zone
 *   pip install --no-index --find-links DIR --require-hashes -r DIR/requirements.txt
 * works with no network.  Each wheel's SHA-256 must be one of its pins
 * (pip's --require-hashes rule); the index itself is not trusted for anything
 * but finding files, and may not redirect its pages to another origin.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fetch_internal.h"
#include "pyindex.h"

/* url resolved against base (libcurl's RFC 3986 resolver); NULL on error */
static char *resolve_url(const char *base, const char *ref)
{
	CURLU *h = curl_url();
	char *out = NULL, *res = NULL;
	if (!h)
		return NULL;
	if (curl_url_set(h, CURLUPART_URL, base, 0) == CURLUE_OK &&
	    curl_url_set(h, CURLUPART_URL, ref, 0) == CURLUE_OK && curl_url_get(h, CURLUPART_URL, &out, 0) == CURLUE_OK)
		res = strdup(out);
	curl_free(out);
	curl_url_cleanup(h);
	return res;
}

/* scheme://host:port of url into o (lower-cased by libcurl); -1 on error */
static int url_origin(const char *url, char *o, size_t on)
{
	CURLU *h = curl_url();
	char *sc = NULL, *ho = NULL, *po = NULL;
	int r = -1;
	if (h && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_SCHEME, &sc, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &ho, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_PORT, &po, CURLU_DEFAULT_PORT) == CURLUE_OK)
		r = snprintf(o, on, "%s://%s:%s", sc, ho, po) < (int)on ? 0 : -1;
	curl_free(sc);
	curl_free(ho);
	curl_free(po);
	curl_url_cleanup(h);
	return r;
}

static bool http_url(const char *u)
{
	return !strncmp(u, "https://", 8) || !strncmp(u, "http://", 7);
}

/* GET a project page; redirects are followed only within the index's origin. */
static int get_page(struct fh_ctx *c, const char *index, const char *name, char **ret_url, struct fh_resp *r,
                    struct bn_error *err)
{
	char origin[512], o2[512];
	char *url = fs_printf("%s%s%s/", index, index[strlen(index) - 1] == '/' ? "" : "/", name);
	if (!url)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (url_origin(index, origin, sizeof origin) < 0) {
		free(url);
		return bn_fail(err, -EINVAL, "python index %s: not a valid URL", index);
	}
	for (int hop = 0;; hop++) {
		struct fh_req q = {.url = url,
		                   .accept = "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
		                   .allow_http = !strncmp(index, "http://", 7)};
		int rc = fh_get_mem(c, &q, PY_MAX_PAGE_BYTES, r, err);
		if (rc < 0) {
			free(url);
			return rc;
		}
		if (r->status >= 300 && r->status < 400 && r->location) {
			char *next = resolve_url(url, r->location);
			if (!next || url_origin(next, o2, sizeof o2) < 0 || strcmp(o2, origin)) {
				rc = bn_fail(
				    err, -EPERM,
				    "python index %s: the page of %s redirects to another host (%.200s); refused",
				    index, name, next ? next : r->location);
				free(next);
				free(url);
				return rc;
			}
			if (hop == FH_MAX_REDIRS) {
				free(next);
				free(url);
				return bn_fail(err, -ELOOP, "python index %s: more than %d redirects for %s", index,
				               FH_MAX_REDIRS, name);
			}
			free(url);
			url = next;
			fh_resp_free(r);
			continue;
		}
		if (r->status == 404) {
			free(url);
			return bn_fail(err, -ENOENT, "python index %s: no project %s (HTTP 404)", index, name);
		}
		if (r->status != 200) {
			rc = fh_status_error(r, "python index page", url, err);
			free(url);
			return rc;
		}
		*ret_url = url;
		return 0;
	}
}

static bool pinned(const struct py_req *q, const char *sha)
{
	for (size_t i = 0; i < q->n_hashes; i++)
		if (!strcmp(q->hashes[i], sha))
			return true;
	return false;
}

/* The wheel of q for t on the page: the best-ranked compatible one, among
 * equals one whose listed hash is pinned.  -ENOENT names what the page has. */
static int pick_wheel(const struct py_links *l, const struct py_req *q, const struct py_target *t, const char *page,
                      const struct py_link **ret, struct bn_error *err)
{
	const struct py_link *best = NULL;
	int br = -1;
	bool bpin = false;
	size_t compatible = 0;
	for (size_t i = 0; i < l->n; i++) {
		int rk = py_wheel_match(l->v[i].filename, q->name, q->version, t);
		bool pin = l->v[i].sha256[0] && pinned(q, l->v[i].sha256);
		if (rk < 0)
			continue;
		compatible++;
		/* a file whose listed hash is not pinned cannot pass: skip it */
		if (q->n_hashes && l->v[i].sha256[0] && !pin)
			continue;
		if (rk > br || (rk == br && pin && !bpin)) {
			best = &l->v[i];
			br = rk;
			bpin = pin;
		}
	}
	if (best) {
		*ret = best;
		return 0;
	}
	/* say what there is: wheels of this version for other targets, or none */
	char seen[400] = "";
	size_t k = 0, shown = 0;
	char prefix[PY_MAX_NAME + 2];
	for (size_t i = 0; i < l->n && shown < 4; i++) {
		const char *fn = l->v[i].filename;
		char norm[PY_MAX_NAME + 1];
		const char *dash = strchr(fn, '-');
		if (!dash || py_normalize(fn, (size_t)(dash - fn), norm) < 0 || strcmp(norm, q->name))
			continue;
		snprintf(prefix, sizeof prefix, "%s-", q->version);
		if (strncmp(dash + 1, prefix, strlen(prefix)))
			continue;
		int w = snprintf(seen + k, sizeof seen - k, "%s%s", shown ? ", " : "", fn);
		if (w < 0 || (size_t)w >= sizeof seen - k)
			break;
		k += (size_t)w;
		shown++;
	}
	if (compatible)
		return bn_fail(
		    err, -EBADMSG,
		    "%s==%s: the index lists %zu wheel(s) for python %d.%d on %s, none with a pinned hash (%s has %s)",
		    q->name, q->version, compatible, t->major, t->minor, t->platform, page, seen);
	return bn_fail(err, -ENOENT, "%s==%s: no wheel for python %d.%d on %s (%s has %s)", q->name, q->version,
	               t->major, t->minor, t->platform, page, shown ? seen : "no file of that version");
}

/* One requirement's wheel, as found on its project page. */
struct py_pick {
	char *page;            /* the project page's URL */
	char *furl;            /* the wheel's URL, resolved against the page */
	struct py_links links; /* the page's links; w points into them */
	const struct py_link *w;
};

static void py_pick_release(struct py_pick *p)
{
	free(p->furl);
	free(p->page);
	py_links_free(&p->links);
}

/* Finds q's wheel for t on its project page of index: p->w and its http(s) URL p->furl. */
static int py_find_wheel(struct fh_ctx *c, const char *index, const struct py_req *q, const struct py_target *t,
                         struct py_pick *p, struct bn_error *err)
{
	struct fh_resp r = {0};
	int rc = get_page(c, index, q->name, &p->page, &r, err);
	if (rc < 0) {
		fh_resp_free(&r);
		return rc;
	}
	bool json = r.content_type && strstr(r.content_type, "application/vnd.pypi.simple.v1+json");
	rc = py_links_parse(r.body ? r.body : "", r.len, json, p->page, &p->links, err);
	fh_resp_free(&r);
	if (rc == 0)
		rc = pick_wheel(&p->links, q, t, p->page, &p->w, err);
	if (rc < 0 || !p->w)
		return rc < 0 ? rc : bn_fail(err, -ENOENT, "%s: no wheel", q->name);
	if (!(p->furl = resolve_url(p->page, p->w->url)))
		return bn_fail(err, -EINVAL, "%s: link %.200s is not a valid URL", p->page, p->w->url);
	if (!http_url(p->furl))
		return bn_fail(err, -EINVAL, "%s: link %.200s is not http(s)", p->page, p->furl);
	return 0;
}

/* Downloads the wheel p found for q into tmp; its sha256 (one of q's pins,
 * when q has pins) into sha, its size, sha256 and URL into wj. */
static int py_fetch_wheel(struct fh_ctx *c, const struct py_req *q, const struct py_pick *p, const char *tmp,
                          json_t *wj, char sha[BN_SHA256_HEX], uint64_t *total, struct bn_error *err)
{
	const struct py_link *w = p->w;
	uint64_t size = 0;
	char *fshown = fh_redact_url(p->furl, &(bool){false});
	struct fh_req fq = {.url = p->furl, .shown = fshown, .allow_http = true, .follow = true};
	struct fh_expect ex = {.sha256 = w->sha256[0] ? w->sha256 : NULL, .size = -1};
	int rc = fc_fetch(c, &fq, &ex, w->filename, sha, &size, err);
	if (rc == 0 && q->n_hashes && !pinned(q, sha))
		rc = bn_fail(err, -EBADMSG, "%s==%s: %s has sha256 %s, which requirements pins do not name", q->name,
		             q->version, w->filename, sha);
	if (rc == 0) {
		char *dst = fs_printf("%s/%s", tmp, w->filename);
		rc = dst ? fc_materialise(c, "sha256", sha, dst, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(dst);
	}
	if (rc == 0) {
		json_object_set_new(wj, "sha256", json_string(sha));
		json_object_set_new(wj, "size", json_integer((json_int_t)size));
		json_object_set_new(wj, "url", json_string(fshown ? fshown : p->furl));
		*total += size;
		fh_log(c, "%s==%s: %s (%llu bytes)", q->name, q->version, w->filename, (unsigned long long)size);
	}
	free(fshown);
	return rc;
}

/* q's line in the slot's requirements.txt: its own pins, or, unpinned, the
 * sha256 of the wheel taken, so that pip --require-hashes works. */
static char *pin_line(const struct py_req *q, const char *sha)
{
	if (!q->n_hashes)
		return fs_printf("%s==%s --hash=sha256:%s\n", q->name, q->version, sha);
	char *line = fs_printf("%s==%s", q->name, q->version);
	for (size_t h = 0; line && h < q->n_hashes; h++) {
		char *l2 = fs_printf("%s --hash=sha256:%s", line, q->hashes[h]);
		free(line);
		line = l2;
	}
	char *l3 = line ? fs_printf("%s\n", line) : NULL;
	free(line);
	return l3;
}

/* Appends line (taken; NULL: out of memory) to the text *buf of *len bytes. */
static int append_line(char **buf, size_t *len, char *line, struct bn_error *err)
{
	size_t n = line ? strlen(line) : 0;
	char *nb = line ? realloc(*buf, *len + n + 1) : NULL;
	if (!nb) {
		free(line);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	memcpy(nb + *len, line, n + 1);
	*buf = nb;
	*len += n;
	free(line);
	return 0;
}

int ag_fetch_python(const struct ag_fetch_opts *o, const char *requirements, const char *index, const char *python,
                    const char *platform, bool unpinned, const char *out_dir, struct ag_fetch_result *ret,
                    struct bn_error *err)
{
	struct py_target t;
	struct py_reqs reqs = {0};
	struct fh_ctx c;
	char *buf = NULL, *tmp = NULL, *newreq = NULL, *shown = NULL;
	size_t len = 0, nlen = 0;
	json_t *wheels = NULL, *prov = NULL;
	uint64_t total = 0;
	int rc;

	if (!requirements || !index || !ret || (!out_dir && !(o && o->dry_run)))
		return bn_fail(err, -EINVAL, "fetch python: missing argument");
	if (!http_url(index))
		return bn_fail(err, -EINVAL, "python index %s: only http:// and https:// are supported", index);
	if ((rc = py_target_parse(python, platform, &t, err)) < 0)
		return rc;
	if ((rc = bn_read_file(requirements, PY_MAX_REQ_BYTES, &buf, &len, err)) < 0)
		return rc;
	if ((rc = py_reqs_parse(buf, len, requirements, unpinned, &reqs, err)) < 0) {
		free(buf);
		return rc;
	}
	if ((rc = fh_init(&c, o, err)) < 0) {
		free(buf);
		py_reqs_free(&reqs);
		return rc;
	}
	shown = fh_redact_url(index, &(bool){false});
	wheels = json_array();
	if (!shown || !wheels) {
		rc = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = fc_prepare(&c, err)) < 0)
		goto out;
	if (!o->dry_run && (rc = fo_stage_dir(out_dir, &tmp, err)) < 0)
		goto out;
	for (size_t i = 0; i < reqs.n; i++) {
		const struct py_req *q = &reqs.v[i];
		struct py_pick p = {0};
		char sha[BN_SHA256_HEX] = "";
		json_t *wj = NULL;
		rc = py_find_wheel(&c, index, q, &t, &p, err);
		if (rc == 0) {
			wj = json_pack("{s:s, s:s, s:s}", "name", q->name, "version", q->version, "filename",
			               p.w->filename);
			if (!wj || json_array_append_new(wheels, wj) < 0)
				rc = bn_fail(err, -ENOMEM, "out of memory");
		}
		if (rc == 0 && !o->dry_run)
			rc = py_fetch_wheel(&c, q, &p, tmp, wj, sha, &total, err);
		if (rc == 0 && unpinned)
			rc = append_line(&newreq, &nlen, pin_line(q, sha[0] ? sha : p.w->sha256), err);
		py_pick_release(&p);
		if (rc < 0)
			goto out;
	}
	if (!o->dry_run) {
		char *rq = fs_printf("%s/requirements.txt", tmp);
		rc = rq ? fo_write_file(rq, newreq ? newreq : buf, newreq ? nlen : len, err)
		        : bn_fail(err, -ENOMEM, "out of memory");
		free(rq);
		if (rc < 0)
			goto out;
		if ((rc = fo_publish(tmp, out_dir, err)) < 0)
			goto out;
		free(tmp);
		tmp = NULL;
	}
	{
		uint8_t d[BN_SHA256_LEN];
		char rsha[BN_SHA256_HEX];
		bn_sha256(buf, len, d);
		bn_hex(d, sizeof d, rsha);
		prov = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "type", "python", "index", shown, "python",
		                 python, "platform", platform, "requirements_sha256", rsha, "unpinned", unpinned,
		                 "wheels", wheels);
	}
	wheels = NULL;
	if (!prov) {
		rc = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret->provenance = prov;
	ret->total_bytes = total;
	ret->downloaded_bytes = c.downloaded;
	rc = 0;
out:
	if (tmp) {
		bn_rm_rf(tmp);
		free(tmp);
	}
	json_decref(wheels);
	free(newreq);
	free(shown);
	free(buf);
	py_reqs_free(&reqs);
	fh_fini(&c);
	return rc;
}
