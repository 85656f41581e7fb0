/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Media sets (docs/FORMAT.md section 10): a bundle laid out as DIR/medium-NN/,
 * one directory per disc or stick, each verifiable alone -- planning and
 * laying it out (media.c), what a single medium is (layout.c), and staging
 * a set one medium at a time (stage.c).  The one-way stream is
 * bundle/stream.h.
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

/* Directory to read manifest.json and signatures from (a set's first
 * medium), new string or NULL for dir.  (The reader's other hooks into the
 * layout are libbundle's own: layout_internal.h.) */
int bn_layout_manifest_dir(const char *dir, char **ret, struct bn_error *err) BN_WUR;
