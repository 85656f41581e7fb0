/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * agpack build's pipeline (build.c): load the spec, then per artifact fetch,
 * pack, check offline readiness, add to the writer with its health suite and
 * SBOM entry; then the SBOM artifact, finish, parity and media, sign, move
 * into place, report, and stream.  agpack.c parses and checks the options.
 */
#include <stdbool.h>
#include <stdint.h>

#include "sources.h"

struct build_opts {
	const char *key;         /* the secret key (NULL only for a dry run) */
	const char *out;         /* the new bundle directory (NULL only for a dry run) */
	const char *base_path;   /* --base BUNDLE|MANIFEST, or NULL */
	const char *base_pubkey; /* --base-pubkey, or NULL */
	const char *scratch_out; /* --stream without --out: out is this scratch directory, removed after */
	uint64_t volume_size, chunk_size, media_cap;
	int level;
	unsigned threads, parity;
	bool stream, no_sbom;
	struct net_opts net; /* net.dry_run: only list what a build would pack */
};

/* Builds (or dry-runs) the bundle of the pack spec spec_path; o->net's
 * cache_dir may be changed to the default cache.  Returns the exit status
 * (errors reported). */
int build_run(struct build_opts *o, const char *spec_path);
