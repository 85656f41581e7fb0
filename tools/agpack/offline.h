/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Offline readiness (docs/SBOM.md) of images: the hub and telemetry settings
 * of their config env, and "offline_env" to set them.  The model-directory
 * check, which agctl health runs too, is tools/common/offline_model.h.
 * Findings are one-line strings appended to a JSON array; the caller prints
 * them and records them in the SBOM.
 */
#include <stdbool.h>

#include <jansson.h>

#include "bundle/error.h"
#include "image.h"
#include "offline_model.h"

/* Reports the hub and telemetry settings of each image's config env as
 * findings (never fails). */
void offline_check_images(const char *name, const struct image_info *images, size_t n, json_t *findings);

/* "offline_env": sets HF_HUB_OFFLINE=1 and friends in the config of every
 * image manifest of the OCI layout dir, rewriting config, manifest and
 * index.json; the index records the original manifest digest as the
 * annotation "dev.agkit.offline-env.original-digest".  It rewrites files in
 * place (atomically, new names for new blobs): run it on the copy that
 * offline_env_copy() makes, never on the user's input or a cache. */
int offline_env_apply(const char *dir, json_t *findings, struct bn_error *err) BN_WUR;

/* A private copy of the OCI layout src in work/offline-env (blobs hard
 * linked where possible; offline_env_apply replaces files, never writes into
 * them). */
int offline_env_copy(const char *src, const char *work, char **ret_dir, struct bn_error *err) BN_WUR;

/* For `agpack lint`: the checks above on one local artifact path, an OCI
 * image layout directory (scanned with image_scan()) or a model directory;
 * anything else passes.  Returns what offline_check_model() returns. */
int offline_check_path(const char *name, const char *path, bool allow_remote_code, json_t *findings,
                       struct bn_error *err) BN_WUR;
