/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/fsutil.h"
#include "bundle/manifest.h"
#include "fetch/fetch.h"
#include "sources.h"

/* Reads an array of strings from the artifact's JSON (borrowed pointers). */
static int str_array(json_t *a, const char *key, const char ***ret, size_t *ret_n)
{
	json_t *arr = json_object_get(a, key);
	*ret = NULL;
	*ret_n = 0;
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return -EINVAL;
	size_t n = json_array_size(arr);
	const char **v = calloc(n ? n : 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = json_string_value(json_array_get(arr, i));
		if (!v[i]) {
			free(v);
			return -EINVAL;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

static struct ag_fetch_opts fetch_opts(const struct net_opts *o)
{
	return (struct ag_fetch_opts){
		.cache_dir = o->cache_dir,
		.auth_file = o->auth_file,
		.insecure = o->insecure,
		.n_insecure = o->n_insecure,
		.ca_file = o->ca_file,
		.dry_run = o->dry_run,
		.log = stderr,
	};
}

/* Hands out what a fetch brought (or releases it on failure). */
static int finish(int r, char *out, struct ag_fetch_result *res, char **ret_path, json_t **ret_source)
{
	if (r < 0) {
		free(out);
		json_decref(res->provenance);
		return r;
	}
	*ret_path = out;
	*ret_source = res->provenance;
	return 0;
}

int agpack_fetch_image(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                       json_t **ret_source, struct bn_error *err)
{
	struct ag_fetch_opts fo = fetch_opts(o);
	struct ag_fetch_result res = {0};
	const char *ref = json_string_value(json_object_get(a->json, "ref"));
	const char *platform = json_string_value(json_object_get(a->json, "platform"));
	if (!ref)
		return bn_fail(err, -EINVAL, "artifact '%s': image needs \"ref\"", a->name);
	char *out = bn_path_join(stage, "layout");
	if (!out)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = ag_fetch_image(&fo, ref, platform, out, &res, err);
	return finish(r, out, &res, ret_path, ret_source);
}

int agpack_fetch_url(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                     json_t **ret_source, struct bn_error *err)
{
	struct ag_fetch_opts fo = fetch_opts(o);
	struct ag_fetch_result res = {0};
	const char *url = json_string_value(json_object_get(a->json, "url"));
	if (!url)
		return bn_fail(err, -EINVAL, "artifact '%s': url needs \"url\"", a->name);
	if (!a->sha256)
		return bn_fail(err, -EINVAL, "artifact '%s': url needs \"sha256\" (or \"unpinned\", explicitly)", a->name);
	const char *base = strrchr(url, '/');
	base = base && base[1] ? base + 1 : "download";
	char clean[256];
	size_t k = 0;
	for (const char *p = base; *p && *p != '?' && *p != '#' && k < sizeof clean - 1; p++)
		clean[k++] = *p;
	clean[k] = '\0';
	if (!bn_path_valid(clean))
		snprintf(clean, sizeof clean, "download");
	char *out = bn_path_join(stage, clean);
	if (!out)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = ag_fetch_url(&fo, url, a->sha256, out, &res, err);
	return finish(r, out, &res, ret_path, ret_source);
}

int agpack_fetch_hf_model(const struct spec_artifact *a, const struct net_opts *o, const char *stage,
                          char **ret_path, json_t **ret_source, struct bn_error *err)
{
	struct ag_fetch_opts fo = fetch_opts(o);
	struct ag_fetch_result res = {0};
	const char *repo = json_string_value(json_object_get(a->json, "repo"));
	const char *rev = json_string_value(json_object_get(a->json, "revision"));
	const char *endpoint = json_string_value(json_object_get(a->json, "endpoint"));
	const char **inc = NULL, **exc = NULL;
	size_t ni = 0, ne = 0;
	if (!repo)
		return bn_fail(err, -EINVAL, "artifact '%s': hf-model needs \"repo\"", a->name);
	if (str_array(a->json, "include", &inc, &ni) < 0 || str_array(a->json, "exclude", &exc, &ne) < 0) {
		free(inc);
		return bn_fail(err, -EINVAL, "artifact '%s': include and exclude must be arrays of strings", a->name);
	}
	char *out = bn_path_join(stage, "model");
	if (!out) {
		free(inc);
		free(exc);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	int r = ag_fetch_hf_model(&fo, repo, rev, endpoint, inc, ni, exc, ne, out, &res, err);
	free(inc);
	free(exc);
	return finish(r, out, &res, ret_path, ret_source);
}

int agpack_fetch_python(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                        json_t **ret_source, struct bn_error *err)
{
	struct ag_fetch_opts fo = fetch_opts(o);
	struct ag_fetch_result res = {0};
	const char *req = json_string_value(json_object_get(a->json, "requirements"));
	const char *index = json_string_value(json_object_get(a->json, "index"));
	const char *python = json_string_value(json_object_get(a->json, "python"));
	const char *platform = json_string_value(json_object_get(a->json, "platform"));
	json_t *unp = json_object_get(a->json, "unpinned");
	if (!req || !index || !python || !platform)
		return bn_fail(err, -EINVAL,
		               "artifact '%s': python needs \"requirements\", \"index\", \"python\" and \"platform\"", a->name);
	if (unp && !json_is_boolean(unp))
		return bn_fail(err, -EINVAL, "artifact '%s': \"unpinned\" must be true or false", a->name);
	/* the requirements file, relative to the spec's directory */
	char *rp = req[0] == '/' ? strdup(req) : bn_path_join(a->dir, req);
	char *out = bn_path_join(stage, "wheels");
	if (!rp || !out) {
		free(rp);
		free(out);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	int r = ag_fetch_python(&fo, rp, index, python, platform, json_is_true(unp), out, &res, err);
	free(rp);
	return finish(r, out, &res, ret_path, ret_source);
}
