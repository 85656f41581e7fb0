/* SPDX-License-Identifier: Apache-2.0 */
/* The url source: one file, pinned by SHA-256 (or explicitly "unpinned"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch_internal.h"

static bool url_scheme_ok(const char *u)
{
	return !strncmp(u, "https://", 8) || !strncmp(u, "http://", 7);
}

static int fetch_url(const struct ag_fetch_opts *o, const char *real_url, const char *url, bool redacted,
                     const char *sha256, const char *out_file, struct ag_fetch_result *ret, struct bn_error *err);

int ag_fetch_url(const struct ag_fetch_opts *o, const char *url, const char *sha256, const char *out_file,
                 struct ag_fetch_result *ret, struct bn_error *err)
{
	if (!url || !out_file || !ret)
		return bn_fail(err, -EINVAL, "fetch url: missing argument");
	/* Credentials in the url are used for the download only: provenance,
	 * logs and messages show it without them. */
	bool redacted = false;
	char *shown = fh_redact_url(url, &redacted);
	if (!shown)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = fetch_url(o, url, shown, redacted, sha256, out_file, ret, err);
	free(shown);
	return r;
}

static int fetch_url(const struct ag_fetch_opts *o, const char *real_url, const char *url, bool redacted,
                     const char *sha256, const char *out_file, struct ag_fetch_result *ret, struct bn_error *err)
{
	if (!url_scheme_ok(url))
		return bn_fail(err, -EINVAL, "fetch url %s: only http:// and https:// are supported", url);
	bool unpinned = sha256 && !strcmp(sha256, "unpinned");
	if (!sha256)
		return bn_fail(err, -EINVAL, "fetch url %s: sha256 is required (or \"unpinned\")", url);
	char want[BN_SHA256_HEX] = "";
	if (!unpinned) {
		size_t n = strlen(sha256);
		if (n != 64)
			return bn_fail(err, -EINVAL, "fetch url %s: sha256 must be 64 hex digits", url);
		for (size_t i = 0; i < 64; i++) {
			char ch = sha256[i];
			if (ch >= 'A' && ch <= 'F')
				ch = (char)(ch - 'A' + 'a');
			if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
				return bn_fail(err, -EINVAL, "fetch url %s: sha256 must be 64 hex digits", url);
			want[i] = ch;
		}
		want[64] = 0;
	}
	struct fh_ctx c;
	int r = fh_init(&c, o, err);
	if (r < 0)
		return r;
	char *tmp = NULL, *tmpfile = NULL;
	json_t *prov = NULL;
	uint64_t size = 0;
	char seen[BN_SHA256_HEX] = "";
	if ((r = fc_prepare(&c, err)) < 0)
		goto out;
	if (o->dry_run) {
		/* Size only: a HEAD (redirects followed).  A pinned file in the cache is known. */
		struct fh_expect ex = {.sha256 = unpinned ? NULL : want, .size = -1};
		if (!unpinned && fc_lookup(&c, "sha256", want, &ex, err) == 1) {
			char *p;
			if ((r = fc_path(&c, "sha256", want, &p, err)) < 0)
				goto out;
			FILE *f = fopen(p, "rb");
			free(p);
			if (f) {
				fseeko(f, 0, SEEK_END);
				size = (uint64_t)ftello(f);
				fclose(f);
			}
		} else {
			struct fh_req q = {
			    .url = real_url, .shown = url, .head = true, .allow_http = true, .follow = true};
			struct fh_resp rs;
			if ((r = fh_get_mem(&c, &q, 0, &rs, err)) < 0)
				goto out;
			if (rs.status != 200) {
				r = fh_status_error(&rs, "HEAD", url, err);
				fh_resp_free(&rs);
				goto out;
			}
			size = rs.content_length > 0 ? (uint64_t)rs.content_length : 0;
			fh_resp_free(&rs);
		}
		if (!unpinned)
			memcpy(seen, want, sizeof seen);
		fh_log(&c, "%s: %llu bytes (dry run)", url, (unsigned long long)size);
	} else {
		struct fh_req q = {.url = real_url, .shown = url, .allow_http = true, .follow = true};
		struct fh_expect ex = {.sha256 = unpinned ? NULL : want, .size = -1};
		if ((r = fo_stage_dir(out_file, &tmp, err)) < 0)
			goto out;
		if ((r = fc_fetch(&c, &q, &ex, url, seen, &size, err)) < 0)
			goto out;
		if (unpinned)
			fh_log(&c, "warning: %s is unpinned; it had sha256 %s (pin it in the spec)", url, seen);
		if (!(tmpfile = fs_printf("%s/file", tmp))) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		if ((r = fc_materialise(&c, "sha256", seen, tmpfile, err)) < 0)
			goto out;
		if ((r = fo_publish(tmpfile, out_file, err)) < 0)
			goto out;
	}
	prov = json_pack("{s:s, s:s, s:b, s:I}", "type", "url", "url", url, "pinned", !unpinned, "size", (json_int_t)size);
	if (prov && seen[0])
		json_object_set_new(prov, "sha256", json_string(seen));
	if (prov && redacted)
		json_object_set_new(prov, "url_redacted", json_true());
	if (!prov) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret->provenance = prov;
	ret->total_bytes = size;
	ret->downloaded_bytes = c.downloaded;
	prov = NULL;
	r = 0;
out:
	if (tmp)
		bn_rm_rf(tmp);
	free(tmp);
	free(tmpfile);
	json_decref(prov);
	fh_fini(&c);
	if (r < 0)
		bn_error_prefix(err, "fetch url");
	return r;
}
