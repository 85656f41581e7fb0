/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Network sources for agpack (dirty zone only; the only code in agkit that
 * links libcurl).  Each function materialises one pack-spec artifact into a
 * local path that the bundle writer then packs like a local artifact:
 *
 *   image    -> an OCI image layout directory (oci-layout, index.json with the
 *               org.opencontainers.image.ref.name annotation = tag, blobs/sha256/<hex>)
 *               holding the registry's own manifest bytes and digests;
 *   url      -> one regular file;
 *   hf-model -> a model directory (the hub repository's files at one commit);
 *   python   -> a directory of wheels plus requirements.txt (fetch_python.c).
 *
 * Downloads go through a content-addressed cache (opts->cache_dir) so a re-run
 * fetches nothing it already holds; out paths are filled by hard link (or copy
 * across file systems).  Interrupted transfers resume with Range requests.
 * out paths must not exist; on failure nothing is left at them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "bundle/error.h"

struct ag_fetch_opts {
	const char *cache_dir;          /* required; created if missing */
	const char *auth_file;          /* Docker-style config.json; NULL: $DOCKER_CONFIG/config.json, ~/.docker/config.json, or none */
	const char *const *insecure;    /* "HOST:PORT" registries allowed over plain HTTP */
	size_t n_insecure;
	const char *ca_file;            /* extra CA bundle for TLS verification (NULL: system store only) */
	const char *hf_token;           /* NULL: $HF_TOKEN, else file $HF_TOKEN_PATH, else none */
	bool dry_run;                   /* resolve references and sizes; download no blob */
	FILE *log;                      /* progress and warnings (a progress line when it is a terminal) */
};

struct ag_fetch_result {
	json_t *provenance;             /* owned by caller (json_decref); recorded as the artifact's "source" */
	uint64_t total_bytes;           /* bytes the artifact holds (dry run: would hold) */
	uint64_t downloaded_bytes;      /* bytes actually received from the network this run */
};

int ag_fetch_image(const struct ag_fetch_opts *o, const char *ref, const char *platform /* "linux/amd64"; NULL = default */,
                   const char *out_dir, struct ag_fetch_result *ret, struct bn_error *err) BN_WUR;

int ag_fetch_url(const struct ag_fetch_opts *o, const char *url, const char *sha256 /* 64 hex, or "unpinned" */,
                 const char *out_file, struct ag_fetch_result *ret, struct bn_error *err) BN_WUR;

int ag_fetch_hf_model(const struct ag_fetch_opts *o, const char *repo, const char *revision /* NULL: "main" */,
                      const char *endpoint /* NULL: https://huggingface.co */,
                      const char *const *include, size_t n_include, const char *const *exclude, size_t n_exclude,
                      const char *out_dir, struct ag_fetch_result *ret, struct bn_error *err) BN_WUR;

/* The wheels requirements (a local file, hash-pinned: pyindex.h) names, from
 * the simple index (PEP 503 HTML or PEP 691 JSON) for python ("3.11") on
 * platform ("manylinux_2_36_x86_64"), each checked against its pins, into
 * out_dir with requirements.txt (rewritten with the fetched hashes when
 * unpinned lines were allowed). */
int ag_fetch_python(const struct ag_fetch_opts *o, const char *requirements, const char *index, const char *python,
                    const char *platform, bool unpinned, const char *out_dir, struct ag_fetch_result *ret,
                    struct bn_error *err) BN_WUR;
