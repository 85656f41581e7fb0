/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Bundle writer: turns local artifacts (a file or a directory tree) into
 * chunked, zstd-coded volumes and the manifest that describes them.  It
 * streams: memory stays at a few chunk buffers whatever the input size.
 * Signing, SHA256SUMS and the atomic placement of the bundle directory are
 * the caller's (see bundle/bundle.h: bn_bundle_build()).
 */
#include <stdint.h>

#include <jansson.h>

#include "bundle/error.h"
#include "bundle/manifest.h"

typedef void (*bn_warn_fn)(void *userdata, const char *msg);

struct bn_writer_opts {
	const char *dir;        /* existing directory that receives vol-NNNNN.agv */
	uint64_t volume_size;   /* 0: BN_DEFAULT_VOLUME_SIZE */
	uint32_t chunk_size;    /* 0: BN_DEFAULT_CHUNK_SIZE */
	int level;              /* zstd level; 0: 3 */
	unsigned threads;       /* worker threads hashing and coding chunks; 0: online CPUs */
	bn_warn_fn warn;        /* optional: non-fatal notes (skipped symlinks) */
	void *warn_userdata;
	/* Optional: called as file bytes are read, with the bytes done and the
	 * total of the artifact being added (bn_writer_add), ending at total. */
	void (*progress)(void *userdata, uint64_t done, uint64_t total);
	void *progress_userdata;
};

struct bn_writer;

/* The chunk size for volume_size when none is chosen: the default (4 MiB),
 * halved until two compressed chunks fit a volume (at least 4 KiB). */
uint32_t bn_writer_fit_chunk_size(uint64_t volume_size);
/* The checks bn_writer_new() makes of o's sizes and level (defaults applied),
 * without writing anything: -EINVAL naming the problem. */
int bn_writer_check_opts(const struct bn_writer_opts *o, struct bn_error *err) BN_WUR;

int bn_writer_new(const struct bn_writer_opts *o, struct bn_writer **ret, struct bn_error *err) BN_WUR;
void bn_writer_free(struct bn_writer *w); /* accepts NULL */

/*
 * Adds an artifact from src (a regular file: the artifact holds it under its
 * base name; or a directory: its tree).  Symlinks that leave the tree are
 * skipped with a warning; device nodes, fifos, sockets and setuid/setgid/
 * sticky bits are refused.  pin (optional) is the expected sha256 of a single
 * file.  source (optional, borrowed) is recorded as provenance.  A refused
 * add leaves the writer as before the call (no artifact, chunk or volume
 * bytes of it), so the caller may go on; only after an I/O error on the
 * volumes do every later add and bn_writer_finish() fail.
 */
int bn_writer_add(struct bn_writer *w, const char *name, const char *type, const char *layout, const char *src,
                  const uint8_t *pin, json_t *source, struct bn_error *err) BN_WUR;

/*
 * Delta bundles (docs/FORMAT.md section 12): base is the parsed manifest of
 * the bundle the site already holds (borrowed until bn_writer_free), sha256
 * the SHA-256 of its manifest.json.  Call before the first bn_writer_add().
 * A file whose content equals a file of base is then not stored again: its
 * chunks name the base file and carry only their sha256.
 */
int bn_writer_set_base(struct bn_writer *w, const struct bn_manifest *base, const uint8_t sha256[BN_SHA256_LEN],
                       struct bn_error *err) BN_WUR;

/* With base's content (b, opened and verified, b->m the manifest given to
 * bn_writer_set_base; borrowed): a changed file whose previous version is in
 * b's volumes is matched piece by piece (content-defined), and only the
 * pieces the base lacks are stored. */
struct bn_bundle;
int bn_writer_set_base_content(struct bn_writer *w, struct bn_bundle *b, struct bn_error *err) BN_WUR;

/* Records that artifact `name` is a model whose health suite is the file
 * `ref` ("ARTIFACT/PATH") of another artifact of the bundle. */
int bn_writer_set_health(struct bn_writer *w, const char *name, const char *ref, struct bn_error *err) BN_WUR;

/* The artifact added as `name` so far (entries with their hashes), or NULL;
 * valid until the next bn_writer_add() or bn_writer_free(). */
const struct bn_artifact *bn_writer_artifact(const struct bn_writer *w, const char *name);

/* Closes the last volume and returns the manifest (owned by the writer). */
int bn_writer_finish(struct bn_writer *w, const char *name, const char *channel, uint64_t version,
                     const char *created, const struct bn_manifest **ret, struct bn_error *err) BN_WUR;

/* After bn_writer_finish(): hands the manifest over to the caller (who frees
 * it with bn_manifest_free()) to add the records the writer does not make
 * (parity, media) before it is formatted and signed.  -EINVAL before
 * bn_writer_finish() or once taken. */
int bn_writer_take_manifest(struct bn_writer *w, struct bn_manifest **ret, struct bn_error *err) BN_WUR;
