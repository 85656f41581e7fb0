/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Internal to libbundle: sequential, hash-checked chunk reading. */
#include <zstd.h>

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
/* Writes dir/SHA256SUMS for every other regular file in dir and its
 * subdirectories one level down (sorted); the hashes of m's volumes and
 * parity volumes (m may be NULL) are taken from m instead of being read. */
int bn_sums_write(const char *dir, const struct bn_manifest *m, struct bn_error *err) BN_WUR;
void bn_describe_chunk(const struct bn_bundle *b, size_t ci, char *out, size_t outlen);
int bn_chunk_reader_init(struct bn_chunk_reader *cr, struct bn_bundle *b, struct bn_error *err);
void bn_chunk_reader_release(struct bn_chunk_reader *cr);
/* Reads chunk ci (in order) into cr->buf and checks its sha256 (and, at the
 * volume's last chunk, the volume's sha256). */
int bn_chunk_read(struct bn_chunk_reader *cr, size_t ci, struct bn_error *err);

/* The split of bn_chunk_read() that lets chunks be checked in parallel:
 * fetch (in order, on one thread) reads the stored bytes into buf and feeds
 * the volume hash, setting *vol_bad when this chunk ends a volume whose hash
 * does not match; check (any thread) compares the stored bytes' sha256 and
 * the coding's headers, decoding nothing. */
int bn_chunk_fetch(struct bn_chunk_reader *cr, size_t ci, uint8_t *buf, bool *vol_bad, struct bn_error *err);
int bn_chunk_check(const struct bn_bundle *b, size_t ci, const uint8_t *buf, struct bn_error *err);
/* The one chunk decoder of every extraction path (verify-and-extract,
 * per-medium staging): decodes chunk ci's stored bytes cbuf (already checked
 * by bn_chunk_check) by its coding into ubuf (usize bytes) and compares the
 * decoded sha256 with the signed one.  *scratch: a chunk_size buffer for
 * byte-grouped chunks, allocated on first use, freed by the caller. */
int bn_chunk_decode(const struct bn_bundle *b, size_t ci, ZSTD_DCtx *dctx, const uint8_t *cbuf, uint8_t *ubuf,
                    uint8_t **scratch, struct bn_error *err);

/* A thread pool behind a bounded ring of chunks: chunks ci in [first, end)
 * are read in order, checked (and, with decode, decoded and their decoded
 * sha256 compared) on workers, and handed to sink in order.  The first
 * failure in chunk order stops the run and is returned. */
typedef int (*bn_chunk_sink)(void *ud, size_t ci, const uint8_t *data, size_t n, struct bn_error *err);
struct bn_rpipe;
int bn_rpipe_new(struct bn_bundle *b, bool decode, struct bn_rpipe **ret, struct bn_error *err);
int bn_rpipe_run(struct bn_rpipe *p, struct bn_chunk_reader *cr, size_t first, size_t end, bn_chunk_sink sink,
                 void *ud, struct bn_error *err);
void bn_rpipe_free(struct bn_rpipe *p); /* accepts NULL */
