/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/fsutil.h"
#include "bundle/manifest.h"
#include "spec.h"

void spec_release(struct spec *s)
{
	for (size_t i = 0; i < s->n_artifacts; i++)
		free(s->artifacts[i].path);
	free(s->artifacts);
	free(s->dir);
	json_decref(s->root);
	memset(s, 0, sizeof *s);
}

int spec_load(const char *path, struct spec *ret, struct bn_error *err)
{
	struct spec s = {0};
	char *buf = NULL;
	size_t len = 0;
	int r = bn_read_file(path, SPEC_MAX_BYTES, &buf, &len, err);
	if (r < 0)
		return r;
	json_error_t je;
	s.root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!s.root)
		return bn_fail(err, -EINVAL, "%s: line %d: %s", path, je.line, je.text);
#define SPECERR(...) do { r = bn_fail(err, -EINVAL, __VA_ARGS__); goto fail; } while (0)
	if (!json_is_object(s.root))
		SPECERR("%s: not a JSON object", path);
	s.name = json_string_value(json_object_get(s.root, "name"));
	s.channel = json_string_value(json_object_get(s.root, "channel"));
	if (!s.channel)
		s.channel = "stable";
	json_t *v = json_object_get(s.root, "version");
	if (!s.name || !bn_name_valid(s.name))
		SPECERR("%s: \"name\" must be letters, digits, '.', '_' or '-'", path);
	if (!bn_name_valid(s.channel))
		SPECERR("%s: \"channel\" must be letters, digits, '.', '_' or '-'", path);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		SPECERR("%s: \"version\" must be a non-negative integer", path);
	s.version = (uint64_t)json_integer_value(v);
	json_t *sb = json_object_get(s.root, "sbom"); /* docs/SBOM.md */
	if (sb && !json_is_boolean(sb))
		SPECERR("%s: \"sbom\" must be true or false", path);
	s.no_sbom = json_is_false(sb);
	json_t *arts = json_object_get(s.root, "artifacts");
	if (!json_is_array(arts) || json_array_size(arts) == 0)
		SPECERR("%s: \"artifacts\" must be a non-empty array", path);
	s.dir = bn_dirname(path);
	s.artifacts = calloc(json_array_size(arts), sizeof *s.artifacts);
	if (s.artifacts)
		s.n_artifacts = json_array_size(arts); /* only once there is an array to release */
	if (!s.dir || !s.artifacts)
		do { r = bn_fail(err, -ENOMEM, "out of memory"); goto fail; } while (0);
	for (size_t i = 0; i < s.n_artifacts; i++) {
		json_t *a = json_array_get(arts, i);
		struct spec_artifact *sa = &s.artifacts[i];
		sa->json = a;
		sa->type = json_string_value(json_object_get(a, "type"));
		sa->name = json_string_value(json_object_get(a, "name"));
		sa->sha256 = json_string_value(json_object_get(a, "sha256"));
		if (!sa->type)
			SPECERR("%s: artifact %zu has no \"type\"", path, i);
		if (!sa->name || !bn_name_valid(sa->name))
			SPECERR("%s: artifact %zu: \"name\" must be letters, digits, '.', '_' or '-'", path, i);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s.artifacts[j].name, sa->name))
				SPECERR("%s: artifact name '%s' is used twice", path, sa->name);
		if (!strcmp(sa->type, "files") || !strcmp(sa->type, "oci-archive")) {
			const char *p = json_string_value(json_object_get(a, "path"));
			if (!p || !*p)
				SPECERR("%s: artifact '%s' needs a \"path\"", path, sa->name);
			sa->path = p[0] == '/' ? strdup(p) : bn_path_join(s.dir, p);
			if (!sa->path)
				do { r = bn_fail(err, -ENOMEM, "out of memory"); goto fail; } while (0);
			if (sa->sha256 && !strcmp(sa->type, "oci-archive"))
				SPECERR("%s: artifact '%s': \"sha256\" pins apply to files artifacts", path, sa->name);
		} else if (strcmp(sa->type, "image") && strcmp(sa->type, "url") && strcmp(sa->type, "hf-model")) {
			SPECERR("%s: artifact '%s' has unknown type '%s' (files, oci-archive, image, url, hf-model)", path,
			        sa->name, sa->type);
		}
		if (sa->sha256 && strcmp(sa->sha256, "unpinned") != 0) {
			uint8_t tmp[32];
			if (strlen(sa->sha256) != 64 || !bn_unhex(sa->sha256, tmp, 32))
				SPECERR("%s: artifact '%s': \"sha256\" must be 64 hex digits", path, sa->name);
		}
		/* Offline readiness keys (docs/SBOM.md). */
		json_t *arc = json_object_get(a, "allow_remote_code"), *oe = json_object_get(a, "offline_env");
		if (arc && !json_is_boolean(arc))
			SPECERR("%s: artifact '%s': \"allow_remote_code\" must be true or false", path, sa->name);
		if (oe && !json_is_boolean(oe))
			SPECERR("%s: artifact '%s': \"offline_env\" must be true or false", path, sa->name);
		if (json_is_true(oe) && strcmp(sa->type, "image") && strcmp(sa->type, "oci-archive"))
			SPECERR("%s: artifact '%s': \"offline_env\" applies to image and oci-archive artifacts", path, sa->name);
		sa->allow_remote_code = json_is_true(arc);
		sa->offline_env = json_is_true(oe);
	}
	*ret = s;
	return 0;
fail:
	spec_release(&s);
	return r;
#undef SPECERR
}
