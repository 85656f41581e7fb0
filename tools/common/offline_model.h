/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Offline readiness of a model directory (docs/SBOM.md): does it try the
 * network or run code from the model at start-up?  agpack build checks each
 * model artifact (tools/agpack/offline.h adds the image checks, which need
 * the layer scan); agctl health checks the slot's model directory again.
 * Findings are one-line strings appended to a JSON array; the caller prints
 * them and records them.
 */
#include <stdbool.h>

#include <jansson.h>

#include "bundle/error.h"

#define OFFLINE_MAX_JSON (16u << 20) /* config files read for the check */

/* True when dir looks like a model directory (config.json at its top). */
bool offline_is_model(const char *dir);

/* Checks a model directory: auto_map in config.json or tokenizer_config.json,
 * any *.py file, or "trust_remote_code": true in a JSON config is refused
 * (-EPERM) unless allow_remote_code; a tokenizer file that
 * tokenizer_config.json needs but the directory lacks is an error (-EBADMSG);
 * hub URLs and repo ids left in configs become findings. */
int offline_check_model(const char *name, const char *dir, bool allow_remote_code, json_t *findings,
                        struct bn_error *err) BN_WUR;

/* Appends one finding (at most 1000 are kept). */
void offline_finding(json_t *findings, const char *fmt, ...) BN_PRINTF(2, 3);
/* A JSON file of at most OFFLINE_MAX_JSON bytes (not through a symlink), or NULL. */
json_t *offline_load_json(const char *path);
