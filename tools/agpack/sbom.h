/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The bundle's CycloneDX 1.6 SBOM (docs/SBOM.md): agpack build collects one
 * component per artifact while packing (models with a model card, images with
 * their OS and Python packages, files with their hashes) and writes
 * sbom.cdx.json into the artifact "sbom" before the manifest is signed.
 * Reproducible: no wall-clock time (the timestamp only from
 * SOURCE_DATE_EPOCH), serial number derived from the content.
 */
#include <stdbool.h>

#include <jansson.h>

#include "bundle/error.h"
#include "bundle/manifest.h"
#include "image.h"
#include "spec.h"

#define SBOM_ARTIFACT "sbom"
#define SBOM_FILE     "sbom.cdx.json"

struct sbom;

struct sbom_extra {
	const char *health_suite;        /* local path of the model's health suite, or NULL */
	bool allow_remote_code;          /* the spec allowed remote code for this model */
	json_t *findings;                /* offline-readiness findings (array of strings), or NULL */
	const struct image_info *images; /* oci-archive: what image_scan() found */
	size_t n_images;
};

struct sbom *sbom_new(void);    /* NULL when out of memory */
void sbom_free(struct sbom *s); /* accepts NULL */

/* One packed artifact: ma is the writer's record of it (entries and hashes),
 * local the packed file or tree (read for model metadata). */
int sbom_add_artifact(struct sbom *s, const struct bn_artifact *ma, const char *local, const struct sbom_extra *x,
                      struct bn_error *err) BN_WUR;

/* The finished BOM as text (malloc'd). */
int sbom_format(struct sbom *s, const struct spec *spec, char **ret_text, struct bn_error *err) BN_WUR;

/* purl component encoding (exposed for the tests): everything but
 * [A-Za-z0-9.-_~] percent-encoded.  out needs 3*strlen(in)+1 bytes. */
void sbom_purl_escape(const char *in, char *out);
