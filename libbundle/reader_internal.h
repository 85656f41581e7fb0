/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Internal to libbundle: chunk fetching (reader.c), chunk checks and the
 * chunk pipeline (verify.c). */
#include <zstd.h>

#include "bundle/bundle.h"
#include "layout_internal.h"

struct bn_chunk_reader {
	struct bn_bundle *b;
	int fd;                 /* open volume */
	size_t vol;             /* its index, or (size_t)-1 */
	int bfd;                /* delta bundles: open base file, or -1 */
	size_t bref;            /* its index in m->brefs */
};

/* Closes the open volume: the next read opens it again (after a rebuild). */
void bn_chunk_reader_reopen(struct bn_chunk_reader *cr);

int bn_check_files(struct bn_bundle *b, struct bn_error *err);
void bn_describe_chunk(const struct bn_bundle *b, size_t ci, char *out, size_t outlen);
int bn_chunk_reader_init(struct bn_chunk_reader *cr, struct bn_bundle *b, struct bn_error *err);
void bn_chunk_reader_release(struct bn_chunk_reader *cr);

/* Fetch (on one thread) reads chunk ci's stored bytes into buf; check (any
 * thread) compares their sha256 and the coding's headers, decoding nothing.
 * That is the one hash pass over stored bytes: chunks tile their volume
 * (docs/FORMAT.md section 5), so no whole-volume hash follows. */
int bn_chunk_fetch(struct bn_chunk_reader *cr, size_t ci, uint8_t *buf, struct bn_error *err);
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
/* Optional, before bn_rpipe_run (decode pipes only): place(ud, ci, decoded,
 * usize, err) runs on the worker right after chunk ci decoded and matched its
 * hash (so it must be thread-safe; chunks of one run never overlap in the
 * output); its failure is the chunk's.  done: one bit per chunk; chunks whose
 * bit is set are neither read nor handed to the sink. */
void bn_rpipe_set_place(struct bn_rpipe *p, bn_chunk_sink place, void *ud, const uint8_t *done);
