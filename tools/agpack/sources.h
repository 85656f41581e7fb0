/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Network artifact types (image, url, hf-model): fetched into a staging
 * directory, then packed like local ones.  Implemented by sources_net.c when
 * agpack is built with libcurl, by sources_none.c otherwise.
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

/* Fetches artifact a into stage (an empty directory).  On success *ret_path is
 * the local path to pack, *ret_type the bundle artifact type ("files" or
 * "oci-archive") and *ret_source the provenance (may be NULL). */
int agpack_fetch(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                 const char **ret_type, json_t **ret_source, struct bn_error *err) BN_WUR;
