/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internal to libbundle: the hooks through which the reader (reader.c) and
 * the extractor (extract.c) ask the layout layer (layout.c) where a bundle's
 * volumes are -- one directory, a media set (DIR/medium-NN/) or a single
 * medium -- and have missing or damaged volumes rebuilt from parity
 * (verified against the signed hashes).  Plain 1.0 bundles never get here.
 * bn_layout_manifest_dir() is public (bundle/media.h): agimport inspect uses it.
 */
#include <stdbool.h>
#include <stddef.h>

#include "bundle/bundle.h"

/* Builds the view after the manifest is trusted. */
int bn_layout_attach(struct bn_bundle *b, struct bn_error *err) BN_WUR;
void bn_layout_free(struct bn_layout *l);
/* bn_check_files for bundles with a layout. */
int bn_layout_check_files(struct bn_bundle *b, struct bn_error *err) BN_WUR;
/* Opens data volume v for reading (rebuilding it first when known damaged); fd or negative errno. */
int bn_layout_open_volume(struct bn_bundle *b, size_t v, struct bn_error *err);
/* Called when volume v failed a check: marks it damaged and rebuilds it.
 * 1: rebuilt, re-read it; 0: no parity to do so (err untouched); <0: failed. */
int bn_layout_rebuild(struct bn_bundle *b, size_t v, struct bn_error *err);
/* False for volumes that a single medium does not hold. */
bool bn_layout_in_view(const struct bn_bundle *b, size_t v);
/* End of verify: checks the parity volumes not yet checked. */
int bn_layout_verify_rest(struct bn_bundle *b, struct bn_error *err) BN_WUR;
/* Extraction needs every volume: refuses a single medium. */
int bn_layout_require_complete(struct bn_bundle *b, struct bn_error *err) BN_WUR;
