/* SPDX-License-Identifier: Apache-2.0 */
/* The hf-model source: a Hugging Face hub repository (or mirror) at one commit. */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fetch_internal.h"

#define MAX_TOKEN_FILE 4096

static bool valid_repo_id(const char *s)
{
	/* "name" or "org/name"; hub ids are [A-Za-z0-9._-], no ".." */
	size_t n = strlen(s), slashes = 0;
	if (!n || n > 200 || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..") || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '/') {
			if (++slashes > 1 || s[i + 1] == '.')
				return false;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* A file name from the remote listing: relative, no "." or ".." components, no control bytes. */
static bool safe_rel_path(const char *p)
{
	size_t n = strlen(p);
	if (!n || n > 1024 || p[0] == '/')
		return false;
	const char *s = p;
	for (;;) {
		size_t k = strcspn(s, "/");
		if (k == 0 || (k == 1 && s[0] == '.') || (k == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		if (!s[k])
			break;
		s += k + 1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f || p[i] == '\\')
			return false;
	return true;
}

static bool token_chars_ok(const char *t)
{
	size_t n = strlen(t);
	if (!n || n > 1024)
		return false;
	for (size_t i = 0; i < n; i++)
		if (t[i] <= 0x20 || t[i] >= 0x7f)
			return false;
	return true;
}

static int load_token(const struct ag_fetch_opts *o, char **ret, struct bn_error *err)
{
	*ret = NULL;
	const char *t = o->hf_token ? o->hf_token : getenv("HF_TOKEN");
	char buf[MAX_TOKEN_FILE + 1];
	if ((!t || !*t) && getenv("HF_TOKEN_PATH")) {
		const char *p = getenv("HF_TOKEN_PATH");
		FILE *f = fopen(p, "r");
		if (!f)
			return bn_fail(err, -errno, "HF_TOKEN_PATH %s: %s", p, strerror(errno));
		size_t n = fread(buf, 1, MAX_TOKEN_FILE, f);
		fclose(f);
		buf[n] = 0;
		buf[strcspn(buf, "\r\n")] = 0;
		t = buf;
	}
	if (!t || !*t)
		return 0;
	if (!token_chars_ok(t))
		return bn_fail(err, -EINVAL, "hub token has characters a header cannot carry");
	*ret = strdup(t);
	return *ret ? 0 : bn_fail(err, -ENOMEM, "out of memory");
}

static bool matches(const char *path, const char *const *globs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (globs[i] && fnmatch(globs[i], path, 0) == 0)
			return true;
	return false;
}

/* URL-escapes each path segment, keeping the slashes. */
static char *escape_path(CURL *h, const char *p)
{
	size_t cap = strlen(p) * 3 + 1, len = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	const char *s = p;
	for (;;) {
		size_t k = strcspn(s, "/");
		char *e = curl_easy_escape(h, s, (int)k);
		if (!e) {
			free(out);
			return NULL;
		}
		size_t el = strlen(e);
		if (len + el + 2 > cap) {
			curl_free(e);
			free(out);
			return NULL;
		}
		memcpy(out + len, e, el);
		len += el;
		curl_free(e);
		if (!s[k])
			break;
		out[len++] = '/';
		s += k + 1;
	}
	out[len] = 0;
	return out;
}

static int mk_parent_dirs(const char *root, const char *rel, struct bn_error *err)
{
	const char *slash = strrchr(rel, '/');
	if (!slash)
		return 0;
	char *d = fs_printf("%s/%.*s", root, (int)(slash - rel), rel);
	if (!d)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = fo_mkdirs(d, err);
	free(d);
	return r;
}

struct hf_file {
	const char *path;
	const char *sha256;   /* LFS */
	const char *git_sha1; /* non-LFS */
	int64_t size;
};

/* One hf-model fetch: the HTTP context and what every request names. */
struct hf_fetch {
	struct fh_ctx c;
	const char *repo;
	const char *commit; /* in the API answer */
	char *ep;           /* endpoint without trailing slashes */
	char *token;        /* bearer token, or NULL */
	bool ep_http;
};

/* The hub API's answer for revision (the commit and its file list) as JSON;
 * ret_url: the API URL, for messages. */
static int hf_describe(struct hf_fetch *h, const char *revision, char **ret_url, json_t **ret_api, struct bn_error *err)
{
	char *rev_esc = curl_easy_escape(h->c.curl, revision, 0);
	char *url = rev_esc ? fs_printf("%s/api/models/%s/revision/%s?blobs=true", h->ep, h->repo, rev_esc) : NULL;
	curl_free(rev_esc);
	if (!url)
		return bn_fail(err, -ENOMEM, "out of memory");
	struct fh_req q = {
	    .url = url, .bearer = h->token, .allow_http = h->ep_http, .follow = true, .accept = "application/json"};
	struct fh_resp r = {0};
	int rc = fh_get_mem(&h->c, &q, FH_MAX_JSON, &r, err);
	if (rc == 0 && r.status != 200)
		rc = fh_status_error(&r, "hub API", url, err);
	json_t *api = NULL;
	if (rc == 0) {
		json_error_t je;
		api = json_loadb(r.body ? r.body : "", r.len, 0, &je);
	}
	fh_resp_free(&r);
	if (rc < 0) {
		free(url);
		return rc;
	}
	*ret_url = url;
	*ret_api = api;
	return 0;
}

/* One entry e of the listing as f: its size and, for LFS files, sha256;
 * else the git blob id (when the size is known). */
static int hf_file_of(json_t *e, const char *path, const char *url, struct hf_file *f, struct bn_error *err)
{
	f->path = path;
	f->size = -1;
	json_t *sz = json_object_get(e, "size");
	if (json_is_integer(sz) && json_integer_value(sz) >= 0)
		f->size = json_integer_value(sz);
	json_t *lfs = json_object_get(e, "lfs");
	if (json_is_object(lfs)) {
		const char *s = json_string_value(json_object_get(lfs, "sha256"));
		json_t *ls = json_object_get(lfs, "size");
		if (!fs_is_hex(s, 64) || !json_is_integer(ls) || json_integer_value(ls) < 0)
			return bn_fail(err, -EPROTO, "hub API %s: LFS entry of %s lacks sha256/size", url, path);
		f->sha256 = s;
		f->size = json_integer_value(ls);
	} else {
		const char *b = json_string_value(json_object_get(e, "blobId"));
		if (fs_is_hex(b, 40) && f->size >= 0)
			f->git_sha1 = b;
	}
	return 0;
}

/* The files of the listing sib that the include and exclude patterns select
 * (pointing into sib), their number and total size. */
static int hf_select(json_t *sib, const char *url, const char *const *include, size_t n_include,
                     const char *const *exclude, size_t n_exclude, struct hf_file **ret, size_t *ret_n,
                     uint64_t *ret_total, struct bn_error *err)
{
	struct hf_file *files = calloc(json_array_size(sib) + 1, sizeof *files);
	if (!files)
		return bn_fail(err, -ENOMEM, "out of memory");
	size_t nf = 0, i;
	uint64_t total = 0;
	json_t *e;
	json_array_foreach(sib, i, e) {
		const char *path = json_string_value(json_object_get(e, "rfilename"));
		if (!path || !safe_rel_path(path)) {
			free(files);
			return bn_fail(err, -EPROTO, "hub API %s: unsafe or missing file name in the listing", url);
		}
		if ((n_include && !matches(path, include, n_include)) || matches(path, exclude, n_exclude))
			continue;
		int rc = hf_file_of(e, path, url, &files[nf], err);
		if (rc < 0) {
			free(files);
			return rc;
		}
		total += files[nf].size > 0 ? (uint64_t)files[nf].size : 0;
		nf++;
	}
	*ret = files;
	*ret_n = nf;
	*ret_total = total;
	return 0;
}

/* Downloads f at the commit into tmp, checked against its LFS sha256 or git
 * blob id, and records its size and sha256 in fj. */
static int hf_fetch_file(struct hf_fetch *h, const struct hf_file *f, const char *tmp, json_t *fj, struct bn_error *err)
{
	if (!f->sha256 && !f->git_sha1)
		fh_log(&h->c,
		       "warning: %s has neither an LFS sha256 nor a git blob id in the listing; taken unverified",
		       f->path);
	char *pe = escape_path(h->c.curl, f->path);
	char *furl = pe ? fs_printf("%s/%s/resolve/%s/%s", h->ep, h->repo, h->commit, pe) : NULL;
	free(pe);
	if (!furl)
		return bn_fail(err, -ENOMEM, "out of memory");
	struct fh_req fq = {.url = furl, .bearer = h->token, .allow_http = h->ep_http, .follow = true};
	struct fh_expect ex = {.sha256 = f->sha256, .git_sha1 = f->git_sha1, .size = f->size};
	char sha[BN_SHA256_HEX];
	uint64_t size = 0;
	int rc = fc_fetch(&h->c, &fq, &ex, f->path, sha, &size, err);
	free(furl);
	if (rc < 0)
		return rc;
	char *dst = fs_printf("%s/%s", tmp, f->path);
	if (!dst)
		return bn_fail(err, -ENOMEM, "out of memory");
	rc = mk_parent_dirs(tmp, f->path, err);
	if (rc == 0)
		rc = f->git_sha1 && !f->sha256 ? fc_materialise(&h->c, "gitsha1", f->git_sha1, dst, err)
		                               : fc_materialise(&h->c, "sha256", sha, dst, err);
	free(dst);
	if (rc < 0)
		return rc;
	json_object_set_new(fj, "size", json_integer((json_int_t)size));
	json_object_set_new(fj, "sha256", json_string(sha));
	return 0;
}

/* The provenance object; takes files_j (also on failure, as json_pack's "o"). */
static json_t *hf_provenance(const struct hf_fetch *h, const char *revision, uint64_t total, json_t *files_j,
                             const char *const *include, size_t n_include, const char *const *exclude, size_t n_exclude)
{
	json_t *prov =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "type", "hf-model", "endpoint", h->ep, "repo", h->repo,
	              "revision", revision, "commit", h->commit, "size", (json_int_t)total, "files", files_j);
	if (!prov)
		return NULL;
	json_t *inc = json_array(), *exc = json_array();
	for (size_t k = 0; k < n_include; k++)
		json_array_append_new(inc, json_string(include[k]));
	for (size_t k = 0; k < n_exclude; k++)
		json_array_append_new(exc, json_string(exclude[k]));
	json_object_set_new(prov, "include", inc);
	json_object_set_new(prov, "exclude", exc);
	return prov;
}

int ag_fetch_hf_model(const struct ag_fetch_opts *o, const char *repo, const char *revision, const char *endpoint,
                      const char *const *include, size_t n_include, const char *const *exclude, size_t n_exclude,
                      const char *out_dir, struct ag_fetch_result *ret, struct bn_error *err)
{
	if (!repo || !ret || (!out_dir && !(o && o->dry_run)))
		return bn_fail(err, -EINVAL, "fetch hf-model: missing argument");
	if (!valid_repo_id(repo))
		return bn_fail(err, -EINVAL, "fetch hf-model: bad repository id %s", repo);
	if (!revision)
		revision = "main";
	if (!*revision || strlen(revision) > 256)
		return bn_fail(err, -EINVAL, "fetch hf-model %s: bad revision", repo);
	if (!endpoint)
		endpoint = "https://huggingface.co";
	bool ep_http = !strncmp(endpoint, "http://", 7);
	if (!ep_http && strncmp(endpoint, "https://", 8))
		return bn_fail(err, -EINVAL, "fetch hf-model %s: endpoint must be http(s)://", repo);
	struct hf_fetch h = {.repo = repo, .ep_http = ep_http};
	int rc = fh_init(&h.c, o, err);
	if (rc < 0)
		return rc;
	char *url = NULL, *tmp = NULL;
	json_t *api = NULL, *prov = NULL, *files_j = NULL;
	struct hf_file *files = NULL;
	size_t nf = 0;
	uint64_t total = 0;
	h.ep = strdup(endpoint);
	if (!h.ep) {
		rc = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	while (strlen(h.ep) > 8 && h.ep[strlen(h.ep) - 1] == '/')
		h.ep[strlen(h.ep) - 1] = 0;
	if ((rc = load_token(o, &h.token, err)) < 0 || (rc = fc_prepare(&h.c, err)) < 0 ||
	    (rc = hf_describe(&h, revision, &url, &api, err)) < 0)
		goto out;
	h.commit = json_string_value(json_object_get(api, "sha"));
	json_t *sib = json_object_get(api, "siblings");
	if (!fs_is_hex(h.commit, 40) || !json_is_array(sib) || json_array_size(sib) > FH_MAX_FILES) {
		rc = bn_fail(err, -EPROTO, "hub API %s: no commit hash or file list in the answer", url);
		goto out;
	}
	if ((rc = hf_select(sib, url, include, n_include, exclude, n_exclude, &files, &nf, &total, err)) < 0)
		goto out;
	if (!nf) {
		rc = bn_fail(err, -ENOENT, "%s at %s: no file matches the include/exclude patterns", repo, h.commit);
		goto out;
	}
	fh_log(&h.c, "%s@%s: commit %s, %zu files, %llu bytes%s", repo, revision, h.commit, nf,
	       (unsigned long long)total, o->dry_run ? " (dry run)" : "");
	files_j = json_array();
	if (!files_j) {
		rc = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (!o->dry_run && (rc = fo_stage_dir(out_dir, &tmp, err)) < 0)
		goto out;
	for (size_t k = 0; k < nf; k++) {
		struct hf_file *f = &files[k];
		json_t *fj = json_pack("{s:s}", "path", f->path);
		if (!fj || json_array_append_new(files_j, fj) < 0) {
			rc = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (o->dry_run) {
			if (f->size >= 0)
				json_object_set_new(fj, "size", json_integer(f->size));
			if (f->sha256)
				json_object_set_new(fj, "sha256", json_string(f->sha256));
		} else if ((rc = hf_fetch_file(&h, f, tmp, fj, err)) < 0) {
			goto out;
		}
	}
	if (!o->dry_run) {
		if ((rc = fo_publish(tmp, out_dir, err)) < 0)
			goto out;
		free(tmp);
		tmp = NULL;
	}
	prov = hf_provenance(&h, revision, total, files_j, include, n_include, exclude, n_exclude);
	files_j = NULL;
	if (!prov) {
		rc = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret->provenance = prov;
	ret->total_bytes = total;
	ret->downloaded_bytes = h.c.downloaded;
	prov = NULL;
	rc = 0;
out:
	if (tmp) {
		bn_rm_rf(tmp);
		free(tmp);
	}
	json_decref(files_j);
	json_decref(prov);
	json_decref(api);
	free(files);
	free(url);
	free(h.ep);
	if (h.token)
		explicit_bzero(h.token, strlen(h.token));
	free(h.token);
	fh_fini(&h.c);
	if (rc < 0)
		bn_error_prefix(err, "fetch hf-model %s", repo);
	return rc;
}
