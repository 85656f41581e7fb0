/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/oci.h"
#include "bundle/sha256.h"
#include "offline.h"

static void finding(json_t *f, const char *fmt, ...) BN_PRINTF(2, 3);
static void finding(json_t *f, const char *fmt, ...)
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

static json_t *load(const char *path)
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
		finding(f, "%s: \"trust_remote_code\": true", label);
	}
	if (key && !strcmp(key, "auto_map") && depth == 1 &&
	    (!strcmp(file, "config.json") || !strcmp(file, "tokenizer_config.json"))) {
		*remote = true;
		finding(f, "%s: \"auto_map\" (loads code from the model directory or the hub)", label);
	}
	if (json_is_string(v) && key && strcmp(key, "_name_or_path") != 0) {
		const char *s = json_string_value(v);
		bool hubkey = !strcmp(key, "base_model") || !strcmp(key, "base_model_name_or_path") ||
		              !strcmp(key, "hub_model_id") || strstr(key, "hub") || strstr(key, "endpoint");
		if (is_url(s) || (hubkey && is_repo_id(s)))
			finding(f, "%s: hub pointer \"%s\": \"%.200s\"", label, key, s);
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
		finding(findings, "%s: %zu Python file(s) in the model directory (%s%s)", name, walk.n_py,
		        walk.first_py, walk.n_py > 1 ? ", ..." : "");
	}
	json_t *tc = NULL;
	for (size_t i = 0; r == 0 && i < walk.n_json; i++) {
		char *p = bn_path_join(dir, walk.json[i]);
		json_t *j = p ? load(p) : NULL;
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
			finding(findings, "%s: remote code allowed by the pack spec (\"allow_remote_code\": true)",
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

static const char *env_get(json_t *env, const char *key)
{
	size_t kl = strlen(key), i;
	json_t *v;
	const char *val = NULL;
	json_array_foreach(env, i, v)
	{
		const char *s = json_string_value(v);
		if (s && !strncmp(s, key, kl) && s[kl] == '=')
			val = s + kl + 1; /* the last one wins, as in docker */
	}
	return val;
}

static bool env_on(json_t *env, const char *key)
{
	const char *v = env_get(env, key);
	return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

void offline_check_images(const char *name, const struct image_info *images, size_t n, json_t *findings)
{
	for (size_t i = 0; i < n; i++) {
		const struct image_info *ii = &images[i];
		json_t *env = ii->env;
		bool vllm = false;
		for (size_t k = 0; k < ii->n_pkgs && !vllm; k++)
			vllm = ii->pkgs[k].kind == IMAGE_PKG_PYPI && !strcasecmp(ii->pkgs[k].name, "vllm");
		size_t j;
		json_t *v;
		json_array_foreach(env, j, v)
		{
			const char *s = json_string_value(v);
			vllm = vllm || (s && !strncmp(s, "VLLM_", 5));
		}
		const char *d = ii->digest;
		if (!env_on(env, "HF_HUB_OFFLINE"))
			finding(findings, "%s %s: HF_HUB_OFFLINE is not 1: Hugging Face libraries will try the hub",
			        name, d);
		if (!env_on(env, "TRANSFORMERS_OFFLINE"))
			finding(findings, "%s %s: TRANSFORMERS_OFFLINE is not 1", name, d);
		if (!env_on(env, "HF_HUB_DISABLE_TELEMETRY") && !env_on(env, "HF_HUB_OFFLINE"))
			finding(findings, "%s %s: HF_HUB_DISABLE_TELEMETRY is not 1: hub telemetry left on", name, d);
		if (vllm && !env_on(env, "VLLM_NO_USAGE_STATS") && !env_on(env, "DO_NOT_TRACK"))
			finding(findings,
			        "%s %s: vLLM usage stats left on (set VLLM_NO_USAGE_STATS=1 or DO_NOT_TRACK=1)", name,
			        d);
	}
}

static const char *const offline_vars[] = {"HF_HUB_OFFLINE=1",      "TRANSFORMERS_OFFLINE=1",
                                           "HF_DATASETS_OFFLINE=1", "HF_HUB_DISABLE_TELEMETRY=1",
                                           "VLLM_NO_USAGE_STATS=1", "DO_NOT_TRACK=1"};

static char *blob(const char *dir, const char *digest)
{
	char *p = NULL;
	if (!digest || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71 || strchr(digest, '/'))
		return NULL;
	return asprintf(&p, "%s/blobs/sha256/%s", dir, digest + 7) < 0 ? NULL : p;
}

/* Writes j as a new blob; *ret_digest "sha256:...", *ret_size. */
static int put_blob(const char *dir, json_t *j, char ret_digest[72], json_int_t *ret_size, struct bn_error *err)
{
	char *text = json_dumps(j, JSON_COMPACT);
	if (!text)
		return bn_fail(err, -ENOMEM, "out of memory");
	uint8_t h[BN_SHA256_LEN];
	char hex[BN_SHA256_HEX];
	size_t len = strlen(text);
	bn_sha256(text, len, h);
	bn_hex(h, BN_SHA256_LEN, hex);
	snprintf(ret_digest, 72, "sha256:%s", hex);
	char *p = blob(dir, ret_digest);
	int r = p ? bn_write_file_atomic(p, text, len, 0644, err) : bn_fail(err, -ENOMEM, "out of memory");
	free(p);
	free(text);
	*ret_size = (json_int_t)len;
	return r;
}

int offline_env_apply(const char *dir, json_t *findings, struct bn_error *err)
{
	char *ip = bn_path_join(dir, "index.json");
	json_t *index = ip ? load(ip) : NULL;
	int r = 0;
	json_t *mans = json_object_get(index, "manifests");
	if (!json_is_array(mans))
		r = bn_fail(err, -EBADMSG, "%s: not an OCI image index", ip ? ip : dir);
	for (size_t i = 0; r == 0 && i < json_array_size(mans); i++) {
		json_t *d = json_array_get(mans, i);
		const char *mt = json_string_value(json_object_get(d, "mediaType"));
		if (mt && (strstr(mt, "image.index") || strstr(mt, "manifest.list"))) {
			r = bn_fail(err, -EINVAL,
			            "\"offline_env\": multi-platform images are not supported; pick one "
			            "platform");
			break;
		}
		const char *old = json_string_value(json_object_get(d, "digest"));
		char *mp = blob(dir, old);
		json_t *man = mp ? load(mp) : NULL;
		free(mp);
		json_t *cd = json_object_get(man, "config");
		char *cp = blob(dir, json_string_value(json_object_get(cd, "digest")));
		json_t *cfg = cp ? load(cp) : NULL;
		free(cp);
		if (!json_is_object(man) || !json_is_object(cfg)) {
			json_decref(man);
			json_decref(cfg);
			r = bn_fail(err, -EBADMSG, "%s: image manifest or config unreadable", dir);
			break;
		}
		json_t *c = json_object_get(cfg, "config");
		if (!json_is_object(c)) {
			c = json_object();
			json_object_set_new(cfg, "config", c);
		}
		json_t *env = json_object_get(c, "Env"), *nenv = json_array();
		size_t k;
		json_t *v;
		json_array_foreach(env, k, v)
		{
			const char *s = json_string_value(v);
			bool replaced = false;
			for (size_t q = 0; s && q < sizeof offline_vars / sizeof *offline_vars; q++) {
				size_t kl = strchr(offline_vars[q], '=') - offline_vars[q] + 1;
				replaced = replaced || !strncmp(s, offline_vars[q], kl);
			}
			if (!replaced)
				json_array_append(nenv, v);
		}
		for (size_t q = 0; q < sizeof offline_vars / sizeof *offline_vars; q++)
			json_array_append_new(nenv, json_string(offline_vars[q]));
		json_object_set_new(c, "Env", nenv);
		char cdig[72], mdig[72], olddig[72];
		json_int_t csz = 0, msz = 0;
		snprintf(olddig, sizeof olddig, "%s", old);
		r = put_blob(dir, cfg, cdig, &csz, err);
		if (r == 0) {
			json_object_set_new(cd, "digest", json_string(cdig));
			json_object_set_new(cd, "size", json_integer(csz));
			r = put_blob(dir, man, mdig, &msz, err);
		}
		if (r == 0) {
			json_object_set_new(d, "digest", json_string(mdig));
			json_object_set_new(d, "size", json_integer(msz));
			json_t *ann = json_object_get(d, "annotations");
			if (!json_is_object(ann)) {
				ann = json_object();
				json_object_set_new(d, "annotations", ann);
			}
			json_object_set_new(ann, "dev.agkit.offline-env.original-digest", json_string(olddig));
			finding(
			    findings,
			    "offline_env: image %s is now %s (HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1, "
			    "HF_DATASETS_OFFLINE=1, HF_HUB_DISABLE_TELEMETRY=1, VLLM_NO_USAGE_STATS=1, DO_NOT_TRACK=1)",
			    olddig, mdig);
		}
		json_decref(man);
		json_decref(cfg);
	}
	if (r == 0) {
		char *text = json_dumps(index, JSON_COMPACT);
		r = text ? bn_write_file_atomic(ip, text, strlen(text), 0644, err)
		         : bn_fail(err, -ENOMEM, "out of memory");
		free(text);
	}
	json_decref(index);
	free(ip);
	return r;
}

/* Copies (hard links where the file system allows) src to dst. */
static int link_or_copy(const char *src, const char *dst, struct bn_error *err)
{
	if (link(src, dst) == 0)
		return 0;
	int in = bn_open_regular(src, true);
	if (in < 0)
		return bn_fail(err, in, "%s: cannot open: %s", src, strerror(-in));
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int r = 0;
	if (out < 0)
		r = bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
	char *buf = r == 0 ? malloc(1 << 20) : NULL;
	if (r == 0 && !buf)
		r = bn_fail(err, -ENOMEM, "out of memory");
	while (r == 0) {
		ssize_t n = read(in, buf, 1 << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = bn_fail(err, -errno, "%s: %s", src, strerror(errno));
		else if (n == 0)
			break;
		else if (bn_write_all(out, buf, (size_t)n) < 0)
			r = bn_fail(err, -EIO, "%s: write failed", dst);
	}
	free(buf);
	close(in);
	if (out >= 0 && close(out) < 0 && r == 0)
		r = bn_fail(err, -EIO, "%s: write failed", dst);
	return r;
}

int offline_env_copy(const char *src, const char *work, char **ret_dir, struct bn_error *err)
{
	char *dst = bn_path_join(work, "offline-env"), *sb = bn_path_join(src, "blobs/sha256"), *db = NULL;
	int r = dst && sb && (db = bn_path_join(dst, "blobs/sha256")) ? 0 : bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0 && bn_mkdir_p(db, 0755) < 0)
		r = bn_fail(err, -errno, "%s: %s", db, strerror(errno));
	static const char *const top[] = {"oci-layout", "index.json"};
	for (size_t i = 0; r == 0 && i < 2; i++) {
		char *a = bn_path_join(src, top[i]), *b = bn_path_join(dst, top[i]);
		r = a && b ? link_or_copy(a, b, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(a);
		free(b);
	}
	DIR *d = r == 0 ? opendir(sb) : NULL;
	if (r == 0 && !d)
		r = bn_fail(err, -errno, "%s: %s", sb, strerror(errno));
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *a = bn_path_join(sb, de->d_name), *b = bn_path_join(db, de->d_name);
		r = a && b ? link_or_copy(a, b, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(a);
		free(b);
	}
	if (d)
		closedir(d);
	free(sb);
	free(db);
	if (r < 0) {
		free(dst);
		return r;
	}
	*ret_dir = dst;
	return 0;
}

int offline_check_path(const char *name, const char *path, bool allow_remote_code, json_t *findings,
                       struct bn_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	if (bn_oci_is_layout(path)) {
		struct image_info *imgs = NULL;
		size_t n = 0;
		int r = image_scan(path, &imgs, &n, err);
		if (r == 0)
			offline_check_images(name, imgs, n, findings);
		image_free(imgs, n);
		return r;
	}
	return offline_is_model(path) ? offline_check_model(name, path, allow_remote_code, findings, err) : 0;
}
