/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Where a bundle's volumes are: one directory, a media set (DIR/medium-NN/),
 * or a single medium.  libbundle's reader asks this layer for each volume
 * and, with parity, has missing or damaged volumes rebuilt (verified against
 * the signed hashes) instead of failing.  Plain 1.0 bundles never get here.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle/bundle.h"
#include "bundle/minisign.h"
#include "bundle/parity.h"

/* Named sizes: dvd, bd25, bd50, bd100, usb-fat32, or a byte size (700M, 4G). */
int bn_media_parse_size(const char *s, uint64_t *ret_capacity, uint64_t *ret_max_file);

/*
 * After the bundle was written and signed in dir (volumes and parity
 * volumes at its top level): plans media of `capacity` bytes and records the
 * assignment in m->media (before signing!) -- bn_media_plan -- and then moves
 * everything into dir/medium-NN/ with a copy of the signed files, a label and
 * SHA256SUMS -- bn_media_layout.  p parity volumes per group, placed on p
 * media of their own so that any p lost media are rebuilt.
 */
int bn_media_plan(struct bn_manifest *m, uint64_t capacity, uint64_t reserve, size_t *ret_columns,
                  struct bn_error *err) BN_WUR;
int bn_media_assign_parity(struct bn_manifest *m, size_t columns, struct bn_error *err) BN_WUR;
int bn_media_layout(const char *dir, const struct bn_manifest *m, struct bn_error *err) BN_WUR;
/* agpack sign on a media set: signs every medium. */
int bn_media_add_signature(const char *dir, const struct bn_seckey *sk, struct bn_error *err) BN_WUR;
bool bn_media_is_set(const char *dir);

/* 1-based medium number of a single-medium view, 0 otherwise. */
unsigned bn_bundle_medium(const struct bn_bundle *b);
/* Notes for the operator (volumes rebuilt from parity, damaged parity
 * volumes); NULL past the end. */
const char *bn_bundle_note(const struct bn_bundle *b, size_t i);

/* One medium at a time (stage.c): decodes the single medium b's chunks
 * into work/tree at their file offsets and records them in work/progress. */
struct bn_media_stage_result {
	unsigned medium, count;
	size_t chunks_new, chunks_done, chunks_total;
	bool complete;        /* every chunk in place and every file hash checked */
	char missing[512];    /* media still needed, "2, 5" */
};
int bn_media_stage(struct bn_bundle *b, const char *work, struct bn_media_stage_result *res,
                   struct bn_error *err) BN_WUR;
/* Moves the completed work/tree to target (exchanging an existing one) and
 * removes work.  Refuses a tree whose progress record names another manifest
 * than b's verified one. */
int bn_media_stage_install(struct bn_bundle *b, const char *work, const char *target, struct bn_error *err) BN_WUR;
/* Removes work when it holds a staging of b (a medium refused by policy can never complete). */
void bn_media_stage_discard(const struct bn_bundle *b, const char *work);

/* One-way stream (stream.c, docs/FORMAT.md section 11).  Writes the bundle
 * directory dir (not a media set) as records to fd. */
int bn_stream_write(const char *dir, int fd, struct bn_error *err) BN_WUR;
struct bn_stream_result {
	uint64_t records_ok, records_bad, bytes_skipped;
	size_t files_incomplete;
	char incomplete[512];  /* volumes dropped as incomplete (to be rebuilt from parity) */
};
/* Reads a stream from fd into the new directory dir (removed on error). */
int bn_stream_read(int fd, const char *dir, struct bn_stream_result *res, struct bn_error *err) BN_WUR;
/* The same, calling progress with the bytes read so far (total 0: unknown). */
int bn_stream_read_progress(int fd, const char *dir, bn_progress_fn progress, void *userdata,
                            struct bn_stream_result *res, struct bn_error *err) BN_WUR;

/* ---- hooks called by reader.c and extract.c ---- */
/* Directory to read manifest.json and signatures from (a set's first medium), new string or NULL for dir. */
int bn_layout_manifest_dir(const char *dir, char **ret, struct bn_error *err) BN_WUR;
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
