/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Pack spec (JSON): {"name", "channel", "version", "artifacts": [...]}. */
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "bundle/error.h"
#include "bundle/schema.h"

#define SPEC_MAX_BYTES (4u << 20)

struct spec_artifact {
	const char *type;   /* files | oci-archive | image | url | hf-model | python | debs */
	const char *name;
	char *path;         /* local types: resolved against the spec's directory */
	const char *dir;    /* the spec's directory (spec->dir), for other relative paths */
	const char *sha256; /* optional pin (files) or required digest (url) */
	json_t *json;       /* the artifact's object, borrowed from spec->root */
	/* Offline readiness (docs/SBOM.md). */
	bool allow_remote_code; /* "allow_remote_code": true: model code is packed (recorded) */
	bool offline_env;       /* "offline_env": true: images get HF_HUB_OFFLINE=1 and friends */
};

struct spec {
	json_t *root;
	char *path;         /* the spec file, as given */
	char *dir;          /* directory of the spec file */
	const char *name, *channel;
	uint64_t version;
	size_t n_artifacts;
	struct spec_artifact *artifacts;
	bool no_sbom;       /* "sbom": false */
};

/* The pack spec's keys (bundle/schema.h): [0] the top level, [1..5] the
 * artifact types files, oci-archive, image, url, hf-model, [6] a "health"
 * object; ends with a {NULL} entry. */
extern const struct bn_schema spec_schemas[];

/* Reads and checks a spec: unknown keys, wrong types, missing keys, names,
 * pins; -EINVAL with "FILE: ..." in err.  Nothing is fetched or opened but
 * the spec. */
int spec_load(const char *path, struct spec *ret, struct bn_error *err) BN_WUR;
void spec_release(struct spec *s);
/* What `agpack lint` adds to spec_load: local paths, health suites and
 * prompts files exist (-ENOENT and friends, naming the file). */
int spec_check_files(const struct spec *s, struct bn_error *err) BN_WUR;
