/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Network artifact types (image, url, hf-model, python): fetched into a staging
 * directory, then packed like local ones.  Implemented by sources_net.c,
 * built when agpack has libcurl; artifact_types.c names them in its table
 * (and stands in for them when it has not).
 */
#include <stdbool.h>

#include <jansson.h>

#include "bundle/error.h"
#include "spec.h"

struct net_opts {
	const char *cache_dir;
	const char *auth_file;
	const char *ca_file;
	const char *const *insecure;
	size_t n_insecure;
	bool dry_run;
};

extern const bool agpack_have_network;

/* The fetch functions of artifact_types.c's rows (see struct artifact_type). */
int agpack_fetch_image(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                       json_t **ret_source, struct bn_error *err) BN_WUR;
int agpack_fetch_url(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                     json_t **ret_source, struct bn_error *err) BN_WUR;
int agpack_fetch_hf_model(const struct spec_artifact *a, const struct net_opts *o, const char *stage,
                          char **ret_path, json_t **ret_source, struct bn_error *err) BN_WUR;
int agpack_fetch_python(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                        json_t **ret_source, struct bn_error *err) BN_WUR;
