/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The artifact types of a pack spec, in one table (artifact_types.c).  Every
 * place that treats types differently (spec validation, fetching, packing,
 * the dry run) looks its row up here; an unknown type is refused by name.
 * Adding a type is adding a row (and writing its fetch or pack function).
 */
#include <stdbool.h>

#include <jansson.h>

#include "bundle/error.h"
#include "spec.h"
#include "sources.h"

struct artifact_type {
	const char *name;        /* the spec's "type" */
	const char *bundle_type; /* the type the manifest records: "files" or "oci-archive" (libbundle's manifest.c) */
	const char *layout;      /* the manifest's layout: "tree" or "oci-image-layout" */
	bool local;              /* the spec names a "path" to pack; else fetch brings it */
	bool pin;                /* a "sha256" pin is allowed (checked against a single packed file) */
	/* Fetches artifact a into stage (an empty directory, or a dry-run path
	 * that must not be written when o->dry_run): *ret_path the local path
	 * to pack, *ret_source the provenance (may be NULL).  NULL for local
	 * types.  Without libcurl every fetch fails with -ENOTSUP. */
	int (*fetch)(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
	             json_t **ret_source, struct bn_error *err);
	/* Turns path (local or fetched) into what the writer adds, in work (an
	 * empty directory): *ret_path a new string.  NULL: path as it is. */
	int (*pack)(const char *path, const char *work, char **ret_path, struct bn_error *err);
};

/* The row of type name, or NULL. */
const struct artifact_type *artifact_type_find(const char *name);
/* "files, oci-archive, ..." for messages. */
const char *artifact_type_names(void);
