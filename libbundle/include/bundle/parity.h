/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Reed-Solomon parity volumes (format 1.1, docs/FORMAT.md section 9) and
 * media sets (section 10), both recorded in the signed manifest.
 *
 * Parity: the data volumes are split into groups; each group of k data
 * volumes gets p parity volumes par-NNNNN.agp computed byte-wise over
 * GF(2^8) with ISA-L's Cauchy matrix, the data volumes zero-padded to the
 * longest of the group.  Any p lost or damaged volumes of a group can be
 * rebuilt; every rebuilt volume is checked against its signed sha256 before
 * a byte of it is used.  Encoding and rebuilding stream in blocks: memory is
 * a few MiB whatever the volume size.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bundle/error.h"
#include "bundle/manifest.h"

#define BN_PARITY_SCHEME "rs-cauchy-gf256"
#define BN_PARITY_MAX 32u            /* parity volumes per group */
#define BN_PARITY_MAX_SHARDS 255u    /* data + parity volumes per group (GF(2^8) Cauchy limit) */
#define BN_PARITY_BUF_BUDGET (8u << 20) /* bytes of stripe buffers while encoding or rebuilding */
#define BN_MAX_MEDIA 10000u
#define BN_MEDIUM_LABEL "LABEL.txt"

struct bn_parity_group {
	uint32_t k, p;
	uint32_t *data;   /* k indices into manifest volumes, increasing */
	uint32_t *par;    /* p indices into parity volumes, increasing */
	uint64_t len;     /* shard length: the longest data volume of the group */
};

struct bn_parity {
	size_t n_volumes;
	struct bn_volume *volumes;      /* par-NNNNN.agp: name, size, sha256 */
	size_t n_groups;
	struct bn_parity_group *groups;
	/* Derived at parse time: group and position of each data / parity volume. */
	uint32_t *vgroup, *vpos;        /* per data volume */
	uint32_t *pgroup, *ppos;        /* per parity volume (position j: matrix row k + j) */
};

struct bn_media {
	uint64_t capacity;              /* bytes per medium (informative) */
	uint32_t count;                 /* media in the set */
	uint32_t *vol_medium;           /* per data volume: 1-based medium */
	uint32_t *par_medium;           /* per parity volume: 1-based medium */
};

void bn_parity_free(struct bn_parity *p);
void bn_media_free(struct bn_media *md);
/* "par-%05u.agp" of i+1. */
void bn_parity_volume_name(size_t i, char out[32]);

/* Manifest hooks (manifest.c): parse and validate the optional "parity" and
 * "media" objects against m's volumes; add them when formatting. */
int bn_manifest_parse_ext(struct bn_manifest *m, json_t *root, struct bn_error *err) BN_WUR;
int bn_manifest_format_ext(const struct bn_manifest *m, json_t *root) BN_WUR;

/*
 * Writes parity volumes for m's data volumes (already in dir) and records
 * them in m->parity: p parity volumes for each of `groups` groups (data
 * volume i joins group i mod groups); groups 0 picks the fewest groups that
 * keep k + p <= 255.
 */
int bn_parity_build(const char *dir, struct bn_manifest *m, unsigned p, size_t groups, struct bn_error *err) BN_WUR;
