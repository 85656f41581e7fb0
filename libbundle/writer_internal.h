/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internal to libbundle: the pack pipeline's state, shared by writer.c (the
 * input walk, the chunker, delta reuse, workers coding chunks, the manifest)
 * and volume.c (the volume writer thread that appends coded chunks to
 * volumes in submission order).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <zstd.h>

#include "bundle/bundle.h"
#include "bundle/writer.h"
#include "pool.h"

/* One chunk in flight.  The main thread fills ubuf (read + file hash), a
 * worker hashes and codes it, the main thread writes it in order. */
struct wslot {
	struct bn_job job;     /* first: the pool hands back this pointer */
	uint8_t *ubuf, *cbuf;  /* one chunk uncompressed / stored */
	uint8_t *scratch;      /* byte-grouping streams, allocated on first use */
	size_t ulen;
	unsigned group;        /* 1: plain zstd; 2, 4: byte-grouped */
	uint32_t artifact;
	bool reuse; /* a chunk of the base (sha256, bref, boffset set): nothing to code */
	uint32_t bref;
	uint64_t boffset;
	ZSTD_CCtx *cctx;
	/* Results, written by the worker. */
	int err;
	size_t clen;
	uint8_t coding;
	uint8_t sha256[BN_SHA256_LEN], csha256[BN_SHA256_LEN];
};

struct bn_writer {
	struct bn_writer_opts o;
	struct bn_manifest m;
	size_t cap_artifacts, cap_chunks, cap_volumes;
	size_t cbound;
	struct bn_pool *pool;
	struct wslot *slots;
	unsigned n_slots;
	unsigned next, oldest; /* ring: next slot to fill, oldest not yet written */
	bool filling;          /* slots[next] holds data not yet submitted */
	/* The volume writer thread: writes coded chunks in submission order and
	 * feeds the volume hash, so the reading thread only reads and hashes
	 * files.  submitted/written count chunks; mu guards them, the error, and
	 * (by handing over under mu) the manifest's chunk and volume arrays. */
	pthread_t sink;
	bool sink_started, sink_stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t submitted, written;
	int sink_r;
	struct bn_error sink_err;
	int vfd;               /* open volume or -1 */
	uint64_t kicked;       /* bytes of the open volume handed to writeback */
	struct bn_sha256 *vsha, *fsha;
	uint64_t prog_done, prog_total; /* bytes of the artifact being added */
	bool finished;
	/* With the base's content (bn_writer_set_base_content): the gear table
	 * and, per base artifact and entry, the file's index in m.brefs. */
	struct bn_bundle *base_b;
	uint64_t gear[256];
	uint32_t **bref_of;
	/* Delta bundles: the base's files, sorted by (size, sha256). */
	const struct bn_manifest *base;
	struct bfile {
		uint64_t size;
		const uint8_t *sha256;
		uint32_t bref;
	} * bfiles;
	size_t n_bfiles;
	/* and its chunks that lie inside one file, sorted by sha256 */
	struct bchunk {
		const uint8_t *sha256;
		uint32_t usize, bref;
		uint64_t boffset;
	} * bchunks;
	size_t n_bchunks;
};

/* ---- writer.c -------------------------------------------------------- */

/* Grows *arr (of *cap elements of elem bytes, new ones zeroed) to hold need. */
int bn_writer_grow(void **arr, size_t *cap, size_t need, size_t elem);
/* The base's chunk with this sha256 and size that lies inside one file, or NULL. */
const struct bchunk *bn_writer_find_bchunk(const struct bn_writer *w, const uint8_t *sha256, uint32_t usize);

/* ---- volume.c -------------------------------------------------------- */

/* The volume writer thread (pthread_create argument: the writer). */
void *bn_volume_sink_main(void *arg);
/* Waits until at most `left` chunks are unwritten; returns the writer's first error. */
int bn_volume_wait_written(struct bn_writer *w, uint64_t left, struct bn_error *err);
int bn_volume_drain_all(struct bn_writer *w, struct bn_error *err);
/* Takes the volumes back to an earlier point of the pack: the volumes after
 * the first n_volumes are removed and, with reopen, the last of those is cut
 * back to size bytes, rehashed and left open for the next chunk.  Only while
 * no chunk is in flight (after bn_volume_drain_all). */
int bn_volume_rewind(struct bn_writer *w, size_t n_volumes, uint64_t size, bool reopen, struct bn_error *err);
/* Finishes the open volume (hash, fsync, close); 0 when none is open. */
int bn_volume_close(struct bn_writer *w, struct bn_error *err);
