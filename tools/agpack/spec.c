/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/fsutil.h"
#include "bundle/manifest.h"
#include "artifact_types.h"
#include "bundle/schema.h"
#include "spec.h"

/* ---- the pack spec's keys: the one list (README "Pack spec" is checked against it) */

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define U63 9.2233720368547748e18

static const struct bn_schema_key top_keys[] = {
	{"name", BN_JT_STRING, 0, 0, "bundle name: letters, digits, '.', '_', '-'"},
	{"channel", BN_JT_STRING, 0, 0, "release channel (default stable)"},
	{"version", BN_JT_INT, 0, U63, "bundle version, above the last one promoted on the channel"},
	{"artifacts", BN_JT_ARRAY, 0, 0, "the artifacts, at least one"},
	{"sbom", BN_JT_BOOL, 0, 0, "false: no SBOM artifact (as --no-sbom)"},
};
#define COMMON \
	{"type", BN_JT_STRING, 0, 0, "artifact type"}, {"name", BN_JT_STRING, 0, 0, "artifact name, unique in the bundle"}
#define HEALTH {"health", BN_JT_STRING | BN_JT_OBJECT, 0, 0, "health suite file, or {\"record\": true, \"prompts\": FILE}"}
static const struct bn_schema_key files_keys[] = {
	COMMON,
	{"path", BN_JT_STRING, 0, 0, "file or directory tree, relative to the spec"},
	{"sha256", BN_JT_STRING, 0, 0, "pin of a single file: 64 hex digits"},
	{"allow_remote_code", BN_JT_BOOL, 0, 0, "true: pack model code (auto_map, *.py, trust_remote_code), recorded"},
	HEALTH,
};
static const struct bn_schema_key oci_keys[] = {
	COMMON,
	{"path", BN_JT_STRING, 0, 0, "docker save tarball or OCI image layout (directory or tar)"},
	{"offline_env", BN_JT_BOOL, 0, 0, "true: set HF_HUB_OFFLINE=1 and the other offline variables in the image config"},
};
static const struct bn_schema_key image_keys[] = {
	COMMON,
	{"ref", BN_JT_STRING, 0, 0, "[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]"},
	{"platform", BN_JT_STRING, 0, 0, "OS/ARCH[/VARIANT] chosen from an index (default linux/amd64)"},
	{"offline_env", BN_JT_BOOL, 0, 0, "true: set HF_HUB_OFFLINE=1 and the other offline variables in the image config"},
};
static const struct bn_schema_key url_keys[] = {
	COMMON,
	{"url", BN_JT_STRING, 0, 0, "http:// or https:// address of one file"},
	{"sha256", BN_JT_STRING, 0, 0, "expected digest (64 hex digits) or \"unpinned\""},
	HEALTH,
};
static const struct bn_schema_key hf_keys[] = {
	COMMON,
	{"repo", BN_JT_STRING, 0, 0, "hub repository, ORG/NAME"},
	{"revision", BN_JT_STRING, 0, 0, "branch, tag or commit (default main)"},
	{"endpoint", BN_JT_STRING, 0, 0, "hub address (default https://huggingface.co or $HF_ENDPOINT)"},
	{"include", BN_JT_ARRAY, 0, 0, "glob patterns of files to take (default all)"},
	{"exclude", BN_JT_ARRAY, 0, 0, "glob patterns of files to leave out"},
	{"allow_remote_code", BN_JT_BOOL, 0, 0, "true: pack model code (auto_map, *.py, trust_remote_code), recorded"},
	HEALTH,
};
static const struct bn_schema_key python_keys[] = {
	COMMON,
	{"requirements", BN_JT_STRING, 0, 0, "hash-pinned requirements file, relative to the spec"},
	{"index", BN_JT_STRING, 0, 0, "PEP 503/691 simple index, http:// or https://"},
	{"python", BN_JT_STRING, 0, 0, "target interpreter, e.g. 3.11"},
	{"platform", BN_JT_STRING, 0, 0, "target wheel platform tag, e.g. manylinux_2_36_x86_64"},
	{"unpinned", BN_JT_BOOL, 0, 0, "true: accept lines without --hash (the carried file is pinned)"},
};
static const struct bn_schema_key debs_keys[] = {
	COMMON,
	{"path", BN_JT_STRING, 0, 0, "a .deb file or a directory of them, relative to the spec"},
	{"packages", BN_JT_ARRAY, 0, 0, "package names apt resolves with their dependency closure"},
	{"apt", BN_JT_OBJECT, 0, 0, "{\"sources\": FILE, \"status\": FILE, \"architecture\": ARCH} for packages"},
};
static const struct bn_schema_key apt_keys[] = {
	{"sources", BN_JT_STRING, 0, 0, "deb lines of the target release (signed-by= or trusted=yes)"},
	{"status", BN_JT_STRING, 0, 0, "the target's dpkg status file: what it already has"},
	{"architecture", BN_JT_STRING, 0, 0, "Debian architecture (default: the build host's)"},
};
static const struct bn_schema_key health_keys[] = {
	{"record", BN_JT_BOOL, 0, 0, "true: record the suite from the artifact with agrun"},
	{"prompts", BN_JT_STRING, 0, 0, "prompts file for the recording (default: built-in prompts)"},
};
const struct bn_schema spec_schemas[] = {
	{"pack spec", top_keys, N(top_keys)},
	{"files artifact", files_keys, N(files_keys)},
	{"oci-archive artifact", oci_keys, N(oci_keys)},
	{"image artifact", image_keys, N(image_keys)},
	{"url artifact", url_keys, N(url_keys)},
	{"hf-model artifact", hf_keys, N(hf_keys)},
	{"health", health_keys, N(health_keys)},
	{"python artifact", python_keys, N(python_keys)},
	{"debs artifact", debs_keys, N(debs_keys)},
	{"apt", apt_keys, N(apt_keys)},
	{NULL, NULL, 0},
};

static const struct bn_schema *artifact_schema(const char *type)
{
	static const char *const types[] = {"files", "oci-archive", "image", "url", "hf-model"};
	for (size_t i = 0; i < N(types); i++)
		if (!strcmp(type, types[i]))
			return &spec_schemas[1 + i];
	if (!strcmp(type, "python"))
		return &spec_schemas[7];
	if (!strcmp(type, "debs"))
		return &spec_schemas[8];
	return NULL;
}

static bool strings_only(json_t *arr)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
		if (!json_is_string(v))
			return false;
	return true;
}

void spec_release(struct spec *s)
{
	for (size_t i = 0; i < s->n_artifacts; i++) {
		free(s->artifacts[i].path);
	}
	free(s->artifacts);
	free(s->dir);
	free(s->path);
	json_decref(s->root);
	memset(s, 0, sizeof *s);
}

/* The top-level keys: name, channel ("stable" when absent), version, sbom. */
static int spec_top(struct spec *s, const char *path, struct bn_error *err)
{
	s->name = json_string_value(json_object_get(s->root, "name"));
	s->channel = json_string_value(json_object_get(s->root, "channel"));
	if (!s->channel)
		s->channel = "stable";
	json_t *v = json_object_get(s->root, "version");
	if (!s->name || !bn_name_valid(s->name))
		return bn_fail(err, -EINVAL, "%s: \"name\" must be letters, digits, '.', '_' or '-'", path);
	if (!bn_name_valid(s->channel))
		return bn_fail(err, -EINVAL, "%s: \"channel\" must be letters, digits, '.', '_' or '-'", path);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return bn_fail(err, -EINVAL, "%s: \"version\" must be a non-negative integer", path);
	s->version = (uint64_t)json_integer_value(v);
	json_t *sb = json_object_get(s->root, "sbom"); /* docs/SBOM.md */
	if (sb && !json_is_boolean(sb))
		return bn_fail(err, -EINVAL, "%s: \"sbom\" must be true or false", path);
	s->no_sbom = json_is_false(sb);
	return 0;
}

/* Artifact a (named in messages as where) against its type's schema as, and
 * its health and apt objects against theirs. */
static int artifact_schemas(const struct bn_schema *as, json_t *a, const char *path, const char *where,
                            struct bn_error *err)
{
	int r = bn_schema_check(as, a, path, where, err);
	json_t *h = json_object_get(a, "health");
	if (r == 0 && json_is_object(h)) {
		char hw[BN_MAX_NAME + 80];
		snprintf(hw, sizeof hw, "%s: health", where);
		r = bn_schema_check(&spec_schemas[6], h, path, hw, err);
	}
	json_t *apt = json_object_get(a, "apt");
	if (r == 0 && json_is_object(apt)) {
		char aw[BN_MAX_NAME + 80];
		snprintf(aw, sizeof aw, "%s: apt", where);
		r = bn_schema_check(&spec_schemas[9], apt, path, aw, err);
	}
	return r;
}

/* The keys each type needs, so that lint finds them without the network. */
static int artifact_required(const struct spec_artifact *sa, json_t *a, const char *path, struct bn_error *err)
{
	if (!strcmp(sa->type, "image") && !json_object_get(a, "ref"))
		return bn_fail(err, -EINVAL, "%s: artifact '%s': image needs \"ref\"", path, sa->name);
	if (!strcmp(sa->type, "url")) {
		if (!json_object_get(a, "url"))
			return bn_fail(err, -EINVAL, "%s: artifact '%s': url needs \"url\"", path, sa->name);
		if (!sa->sha256)
			return bn_fail(err, -EINVAL,
			               "%s: artifact '%s': url needs \"sha256\" (or \"unpinned\", explicitly)", path,
			               sa->name);
	}
	if (!strcmp(sa->type, "hf-model")) {
		if (!json_object_get(a, "repo"))
			return bn_fail(err, -EINVAL, "%s: artifact '%s': hf-model needs \"repo\"", path, sa->name);
		json_t *inc = json_object_get(a, "include"), *exc = json_object_get(a, "exclude");
		if ((inc && !strings_only(inc)) || (exc && !strings_only(exc)))
			return bn_fail(err, -EINVAL, "%s: artifact '%s': include and exclude must be arrays of strings",
			               path, sa->name);
	}
	if (!strcmp(sa->type, "python"))
		for (const char *const *k = (const char *const[]){"requirements", "index", "python", "platform", NULL};
		     *k; k++)
			if (!json_object_get(a, *k))
				return bn_fail(err, -EINVAL, "%s: artifact '%s': python needs \"%s\"", path, sa->name,
				               *k);
	if (!strcmp(sa->type, "debs") && !json_object_get(a, "path") && !json_object_get(a, "packages"))
		return bn_fail(err, -EINVAL, "%s: artifact '%s': debs needs \"path\" (.deb files) and/or \"packages\"",
		               path, sa->name);
	return 0;
}

/* The sha256 pin (64 hex digits or "unpinned", on types that take pins) and
 * the offline readiness keys (docs/SBOM.md). */
static int artifact_pin_offline(struct spec_artifact *sa, const struct artifact_type *t, json_t *a, const char *path,
                                struct bn_error *err)
{
	if (sa->sha256 && !t->pin)
		return bn_fail(err, -EINVAL, "%s: artifact '%s': \"sha256\" pins apply to files artifacts", path,
		               sa->name);
	if (sa->sha256 && strcmp(sa->sha256, "unpinned") != 0) {
		uint8_t tmp[32];
		if (strlen(sa->sha256) != 64 || !bn_unhex(sa->sha256, tmp, 32))
			return bn_fail(err, -EINVAL, "%s: artifact '%s': \"sha256\" must be 64 hex digits", path,
			               sa->name);
	}
	json_t *arc = json_object_get(a, "allow_remote_code"), *oe = json_object_get(a, "offline_env");
	if (arc && !json_is_boolean(arc))
		return bn_fail(err, -EINVAL, "%s: artifact '%s': \"allow_remote_code\" must be true or false", path,
		               sa->name);
	if (oe && !json_is_boolean(oe))
		return bn_fail(err, -EINVAL, "%s: artifact '%s': \"offline_env\" must be true or false", path,
		               sa->name);
	if (json_is_true(oe) && strcmp(sa->type, "image") && strcmp(sa->type, "oci-archive"))
		return bn_fail(err, -EINVAL,
		               "%s: artifact '%s': \"offline_env\" applies to image and oci-archive artifacts", path,
		               sa->name);
	sa->allow_remote_code = json_is_true(arc);
	sa->offline_env = json_is_true(oe);
	return 0;
}

/* Artifact i of the spec, a: s->artifacts[i] filled and checked (those
 * before it are done: names are unique). */
static int spec_artifact(struct spec *s, size_t i, json_t *a, const char *path, struct bn_error *err)
{
	struct spec_artifact *sa = &s->artifacts[i];
	sa->json = a;
	if (!json_is_object(a))
		return bn_fail(err, -EINVAL, "%s: artifact %zu is not a JSON object", path, i);
	sa->type = json_string_value(json_object_get(a, "type"));
	sa->dir = s->dir;
	sa->name = json_string_value(json_object_get(a, "name"));
	sa->sha256 = json_string_value(json_object_get(a, "sha256"));
	if (!sa->type)
		return bn_fail(err, -EINVAL, "%s: artifact %zu has no \"type\"", path, i);
	const struct bn_schema *as = artifact_schema(sa->type);
	char where[BN_MAX_NAME + 64];
	if (sa->name)
		snprintf(where, sizeof where, "artifact '%.*s'", BN_MAX_NAME, sa->name);
	else
		snprintf(where, sizeof where, "artifact %zu", i);
	if (sa->sha256 && !strcmp(sa->type, "oci-archive"))
		return bn_fail(err, -EINVAL, "%s: artifact '%s': \"sha256\" pins apply to files artifacts", path,
		               sa->name ? sa->name : "?");
	int r = as ? artifact_schemas(as, a, path, where, err) : 0;
	if (r < 0)
		return r;
	if (!sa->name || !bn_name_valid(sa->name))
		return bn_fail(err, -EINVAL, "%s: artifact %zu: \"name\" must be letters, digits, '.', '_' or '-'",
		               path, i);
	for (size_t j = 0; j < i; j++)
		if (!strcmp(s->artifacts[j].name, sa->name))
			return bn_fail(err, -EINVAL, "%s: artifact name '%s' is used twice", path, sa->name);
	const struct artifact_type *t = artifact_type_find(sa->type);
	if (!t)
		return bn_fail(err, -EINVAL, "%s: artifact '%s' has unknown type '%s' (%s)", path, sa->name, sa->type,
		               artifact_type_names());
	if (t->local) {
		const char *p = json_string_value(json_object_get(a, "path"));
		if (!p || !*p)
			return bn_fail(err, -EINVAL, "%s: artifact '%s' needs a \"path\"", path, sa->name);
		sa->path = p[0] == '/' ? strdup(p) : bn_path_join(s->dir, p);
		if (!sa->path)
			return bn_fail(err, -ENOMEM, "out of memory");
	}
	r = artifact_required(sa, a, path, err);
	if (r == 0)
		r = artifact_pin_offline(sa, t, a, path, err);
	return r;
}

int spec_load(const char *path, struct spec *ret, struct bn_error *err)
{
	struct spec s = {0};
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	/* a directory given as SPEC is a usage error (2), not unsafe input (3) */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return bn_fail(err, -EINVAL, "%s: not a regular file (a pack spec is a JSON file)", path);
	int r = bn_read_file(path, SPEC_MAX_BYTES, &buf, &len, err);
	if (r < 0)
		return r;
	json_error_t je;
	s.root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!s.root)
		return bn_fail(err, -EINVAL, "%s: line %d: %s", path, je.line, je.text);
	json_t *arts = NULL;
	if (!json_is_object(s.root))
		r = bn_fail(err, -EINVAL, "%s: not a JSON object", path);
	else
		r = bn_schema_check(&spec_schemas[0], s.root, path, NULL, err);
	if (r == 0)
		r = spec_top(&s, path, err);
	if (r == 0) {
		arts = json_object_get(s.root, "artifacts");
		if (!json_is_array(arts) || json_array_size(arts) == 0)
			r = bn_fail(err, -EINVAL, "%s: \"artifacts\" must be a non-empty array", path);
	}
	if (r < 0)
		goto fail;
	s.dir = bn_dirname(path);
	s.path = strdup(path);
	s.artifacts = calloc(json_array_size(arts), sizeof *s.artifacts);
	if (s.artifacts)
		s.n_artifacts = json_array_size(arts); /* only once there is an array to release */
	if (!s.dir || !s.path || !s.artifacts) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; r == 0 && i < s.n_artifacts; i++)
		r = spec_artifact(&s, i, json_array_get(arts, i), path, err);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	spec_release(&s);
	return r;
}

/* A file the spec names (relative to the spec's directory) exists. */
static int must_exist(const struct spec *s, const char *art, const char *what, const char *p, struct bn_error *err)
{
	char *full = p[0] == '/' ? strdup(p) : bn_path_join(s->dir, p);
	struct stat st;
	int r = 0;
	if (!full)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (stat(full, &st) < 0)
		r = bn_fail(err, -errno, "%s: artifact '%s': %s %s: %s", s->path, art, what, full, strerror(errno));
	free(full);
	return r;
}

int spec_check_files(const struct spec *s, struct bn_error *err)
{
	for (size_t i = 0; i < s->n_artifacts; i++) {
		const struct spec_artifact *a = &s->artifacts[i];
		int r = a->path ? must_exist(s, a->name, "path", a->path, err) : 0;
		json_t *h = json_object_get(a->json, "health");
		const char *prompts = json_string_value(json_object_get(h, "prompts"));
		if (r == 0 && json_is_string(h))
			r = must_exist(s, a->name, "health suite", json_string_value(h), err);
		if (r == 0 && prompts)
			r = must_exist(s, a->name, "health prompts", prompts, err);
		if (r < 0)
			return r;
	}
	return 0;
}
