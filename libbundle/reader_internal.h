/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Internal to libbundle: sequential, hash-checked chunk reading. */
#include "bundle/bundle.h"

struct bn_chunk_reader {
	struct bn_bundle *b;
	int fd;                 /* open volume */
	size_t vol;             /* its index, or (size_t)-1 */
	struct bn_sha256 *vsha; /* running hash of the open volume */
	uint8_t *buf;           /* holds one stored chunk after bn_chunk_read() */
	size_t nohash_vol;      /* volume whose whole-file hash is not checked (resumed mid-way), or -1 */
};

/* A read that starts in the middle of volume v cannot check its whole-file hash. */
void bn_chunk_reader_skip_volume_hash(struct bn_chunk_reader *cr, size_t v);

int bn_check_files(struct bn_bundle *b, struct bn_error *err);
void bn_describe_chunk(const struct bn_bundle *b, size_t ci, char *out, size_t outlen);
int bn_chunk_reader_init(struct bn_chunk_reader *cr, struct bn_bundle *b, struct bn_error *err);
void bn_chunk_reader_release(struct bn_chunk_reader *cr);
/* Reads chunk ci (in order) into cr->buf and checks its sha256 (and, at the
 * volume's last chunk, the volume's sha256). */
int bn_chunk_read(struct bn_chunk_reader *cr, size_t ci, struct bn_error *err);
