/* SPDX-License-Identifier: Apache-2.0 */
/* The offline-readiness check of a model directory (offline_model.h): shared
 * by agpack build and agctl health. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle/fsutil.h"
#include "offline_model.h"

void offline_finding(json_t *f, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (json_array_size(f) < 1000)
		json_array_append_new(f, json_string(buf));
}

static bool exists_in(const char *dir, const char *name)
{
	char *p = bn_path_join(dir, name);
	struct stat st;
	bool ok = p && lstat(p, &st) == 0 && S_ISREG(st.st_mode);
	free(p);
	return ok;
}

bool offline_is_model(const char *dir)
{
	return exists_in(dir, "config.json");
}

json_t *offline_load_json(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	struct bn_error e = {0};
	json_t *j = NULL;
	if (bn_read_file_nofollow(path, OFFLINE_MAX_JSON, &buf, &len, &e) == 0) {
		json_error_t je;
		j = json_loadb(buf, len, 0, &je);
	}
	free(buf);
	return j;
}

/* The tree walk (nftw has no user pointer: one walk at a time). */
static struct {
	const char *root;
	size_t n_py, n_json;
	char first_py[256];
	char **json; /* relative paths of *.json files to inspect, at most 256 */
} walk;

static bool ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

static int walk_fn(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	const char *rel = path + strlen(walk.root);
	while (*rel == '/')
		rel++;
	if (ends_with(rel, ".py")) {
		if (!walk.n_py++)
			snprintf(walk.first_py, sizeof walk.first_py, "%s", rel);
	} else if (ends_with(rel, ".json") && strcmp(rel, "tokenizer.json") != 0 && !ends_with(rel, ".index.json") &&
	           walk.n_json < 256 && st->st_size <= (off_t)OFFLINE_MAX_JSON) {
		walk.json[walk.n_json] = strdup(rel);
		if (walk.json[walk.n_json])
			walk.n_json++;
	}
	return 0;
}

static bool is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8) || strstr(s, "huggingface.co") ||
	       strstr(s, "hf.co/");
}

/* "org/name" with no leading '/', '.', or '~': what the hub resolves. */
static bool is_repo_id(const char *s)
{
	const char *sl = strchr(s, '/');
	if (!sl || sl == s || !sl[1] || strchr(sl + 1, '/') || s[0] == '.' || s[0] == '~')
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_' || *c == '.' || *c == '/'))
			return false;
	return true;
}

/* Walks a JSON config: trust_remote_code, auto_map, hub pointers. */
static void inspect(const char *label, const char *file, const char *key, json_t *v, int depth, bool *remote, json_t *f)
{
	if (depth > 32)
		return;
	if (key && !strcmp(key, "trust_remote_code") && json_is_true(v)) {
		*remote = true;
		offline_finding(f, "%s: \"trust_remote_code\": true", label);
	}
	if (key && !strcmp(key, "auto_map") && depth == 1 &&
	    (!strcmp(file, "config.json") || !strcmp(file, "tokenizer_config.json"))) {
		*remote = true;
		offline_finding(f, "%s: \"auto_map\" (loads code from the model directory or the hub)", label);
	}
	if (json_is_string(v) && key && strcmp(key, "_name_or_path") != 0) {
		const char *s = json_string_value(v);
		bool hubkey = !strcmp(key, "base_model") || !strcmp(key, "base_model_name_or_path") ||
		              !strcmp(key, "hub_model_id") || strstr(key, "hub") || strstr(key, "endpoint");
		if (is_url(s) || (hubkey && is_repo_id(s)))
			offline_finding(f, "%s: hub pointer \"%s\": \"%.200s\"", label, key, s);
	}
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		json_object_foreach(v, k, c) inspect(label, file, k, c, depth + 1, remote, f);
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c) inspect(label, file, key, c, depth + 1, remote, f);
	}
}

int offline_check_model(const char *name, const char *dir, bool allow_remote_code, json_t *findings,
                        struct bn_error *err)
{
	memset(&walk, 0, sizeof walk);
	walk.root = dir;
	walk.json = calloc(256, sizeof *walk.json);
	if (!walk.json)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = 0;
	if (nftw(dir, walk_fn, 16, FTW_PHYS) < 0)
		r = bn_fail(err, -errno, "%s: cannot walk: %s", dir, strerror(errno));
	bool remote = false;
	if (r == 0 && walk.n_py) {
		remote = true;
		offline_finding(findings, "%s: %zu Python file(s) in the model directory (%s%s)", name, walk.n_py,
		        walk.first_py, walk.n_py > 1 ? ", ..." : "");
	}
	json_t *tc = NULL;
	for (size_t i = 0; r == 0 && i < walk.n_json; i++) {
		char *p = bn_path_join(dir, walk.json[i]);
		json_t *j = p ? offline_load_json(p) : NULL;
		free(p);
		if (!j)
			continue;
		char label[600];
		snprintf(label, sizeof label, "%s: %.500s", name, walk.json[i]);
		inspect(label, walk.json[i], NULL, j, 0, &remote, findings);
		if (!strcmp(walk.json[i], "tokenizer_config.json"))
			tc = json_incref(j);
		json_decref(j);
	}
	/* Tokenizer files: what tokenizer_config.json names must be there, and
	 * with a tokenizer_config.json there must be a tokenizer to load. */
	if (r == 0 && tc) {
		static const char *const named[] = {"tokenizer_file", "vocab_file", "merges_file", "spm_file"};
		for (size_t i = 0; r == 0 && i < sizeof named / sizeof *named; i++) {
			const char *fn = json_string_value(json_object_get(tc, named[i]));
			if (fn && !strchr(fn, '/') && !exists_in(dir, fn))
				r = bn_fail(
				    err, -EBADMSG,
				    "%s: tokenizer_config.json names %s \"%s\", which the model directory lacks", name,
				    named[i], fn);
		}
		static const char *const any[] = {"tokenizer.json", "tokenizer.model", "vocab.json",
		                                  "vocab.txt",      "spiece.model",    "sentencepiece.bpe.model",
		                                  "tiktoken.model"};
		bool have = false;
		for (size_t i = 0; i < sizeof any / sizeof *any; i++)
			have = have || exists_in(dir, any[i]);
		if (r == 0 && !have)
			r = bn_fail(err, -EBADMSG,
			            "%s: has tokenizer_config.json but no tokenizer file (tokenizer.json, "
			            "tokenizer.model, vocab.json, ...)",
			            name);
	}
	json_decref(tc);
	if (r == 0 && remote) {
		if (allow_remote_code)
			offline_finding(findings, "%s: remote code allowed by the pack spec (\"allow_remote_code\": true)",
			        name);
		else
			r = bn_fail(err, -EPERM,
			            "%s: the model directory would run code at load time (%s); remove it or "
			            "set \"allow_remote_code\": true on the artifact",
			            name, walk.n_py ? "Python files" : "auto_map or trust_remote_code");
	}
	for (size_t i = 0; i < walk.n_json; i++)
		free(walk.json[i]);
	free(walk.json);
	memset(&walk, 0, sizeof walk);
	return r;
}
