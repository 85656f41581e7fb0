/* SPDX-License-Identifier: Apache-2.0 */
/* Offline readiness of images (offline.h); the model check is tools/common/offline_model.c. */
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
			offline_finding(findings, "%s %s: HF_HUB_OFFLINE is not 1: Hugging Face libraries will try the hub",
			        name, d);
		if (!env_on(env, "TRANSFORMERS_OFFLINE"))
			offline_finding(findings, "%s %s: TRANSFORMERS_OFFLINE is not 1", name, d);
		if (!env_on(env, "HF_HUB_DISABLE_TELEMETRY") && !env_on(env, "HF_HUB_OFFLINE"))
			offline_finding(findings, "%s %s: HF_HUB_DISABLE_TELEMETRY is not 1: hub telemetry left on", name, d);
		if (vllm && !env_on(env, "VLLM_NO_USAGE_STATS") && !env_on(env, "DO_NOT_TRACK"))
			offline_finding(findings,
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
	json_t *index = ip ? offline_load_json(ip) : NULL;
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
		json_t *man = mp ? offline_load_json(mp) : NULL;
		free(mp);
		json_t *cd = json_object_get(man, "config");
		char *cp = blob(dir, json_string_value(json_object_get(cd, "digest")));
		json_t *cfg = cp ? offline_load_json(cp) : NULL;
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
			offline_finding(
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
