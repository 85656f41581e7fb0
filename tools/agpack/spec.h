/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Pack spec (JSON): {"name", "channel", "version", "artifacts": [...]}. */
#include <stdint.h>

#include <jansson.h>

#include "bundle/error.h"

#define SPEC_MAX_BYTES (4u << 20)

struct spec_artifact {
	const char *type;   /* files | oci-archive | image | url | hf-model | python | debs */
	const char *name;
	char *path;         /* local types: resolved against the spec's directory */
	const char *dir;    /* the spec's directory (spec->dir), for other relative paths */
	const char *sha256; /* optional pin (files) or required digest (url) */
	json_t *json;       /* the artifact's object, borrowed from spec->root */
};

struct spec {
	json_t *root;
	char *dir;          /* directory of the spec file */
	const char *name, *channel;
	uint64_t version;
	size_t n_artifacts;
	struct spec_artifact *artifacts;
};

int spec_load(const char *path, struct spec *ret, struct bn_error *err) BN_WUR;
void spec_release(struct spec *s);
