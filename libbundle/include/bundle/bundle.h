/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * A bundle directory: manifest.json, signatures/KEYID.minisig, vol-NNNNN.agv,
 * SHA256SUMS (docs/FORMAT.md).
 *
 * Reading order is the security property: bn_bundle_open() reads nothing but
 * the raw bytes of manifest.json (size-capped) and bounded signature files
 * until a threshold of trusted keys has signed those exact bytes; only then is
 * the JSON parsed.  Volume bytes are hashed and compared with the signed
 * manifest before they reach the decompressor.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "bundle/error.h"
#include "bundle/manifest.h"
#include "bundle/minisign.h"

#define BN_MAX_SIGNATURES 64

struct bn_layout;

struct bn_trust {
	const struct bn_pubkey *keys;
	size_t n_keys;
	unsigned threshold; /* distinct trusted keys that must have signed; 0 means 1 */
};

struct bn_bundle {
	char *dir;
	char *manifest_buf;             /* the signed bytes */
	size_t manifest_len;
	uint8_t manifest_sha256[BN_SHA256_LEN];
	struct bn_manifest *m;
	size_t n_signers;               /* distinct trusted keys with a valid signature */
	uint8_t signers[BN_MAX_SIGNATURES][BN_KEYID_LEN];
	uint64_t signed_at;             /* timestamp from the first valid trusted comment (0 if none) */
	unsigned threads;               /* worker threads for verify/extract; 0: online CPUs */
	struct bn_layout *layout;       /* media set / parity view (bundle/media.h), NULL for plain bundles */
	char *base_dir;                 /* delta bundles: the base's extracted tree (bn_bundle_set_base), or NULL */
	int base_fd;                    /* its directory, when base_dir is set */
};

/* Progress callback: called after each chunk with bytes done / total. */
typedef void (*bn_progress_fn)(void *userdata, uint64_t done, uint64_t total);

int bn_bundle_open(const char *dir, const struct bn_trust *trust, struct bn_bundle **ret, struct bn_error *err) BN_WUR;
void bn_bundle_free(struct bn_bundle *b); /* accepts NULL */

/* Checks the directory holds exactly the expected files with the signed sizes,
 * then hashes every volume and chunk against the signed manifest.  The error
 * names the volume, chunk, artifact and file affected. */
int bn_bundle_verify(struct bn_bundle *b, bn_progress_fn progress, void *userdata, struct bn_error *err) BN_WUR;

struct bn_extract_opts {
	volatile sig_atomic_t *cancel; /* optional: non-zero aborts (cleanly) */
	bn_progress_fn progress;
	void *userdata;
	/* Optional fixed working directory (instead of a random sibling).  It is
	 * kept when the process dies, with a progress record, and a later call for
	 * the same bundle resumes after the last checkpointed chunk instead of
	 * starting over.  A clean failure removes it. */
	const char *work_dir;
	/* With work_dir: an existing target is replaced atomically
	 * (RENAME_EXCHANGE), its old content removed afterwards. */
	bool replace;
	/* Out: chunks skipped because a previous run had checkpointed them. */
	size_t resumed_chunks;
};

/* Verifies and unpacks every artifact to target/NAME/ atomically: into a
 * temporary sibling, fsync, rename.  On any failure target does not exist and
 * the temporary directory is removed.  target must not exist unless
 * o->replace is set. */
int bn_bundle_extract(struct bn_bundle *b, const char *target, struct bn_extract_opts *o,
                      struct bn_error *err) BN_WUR;

/* Delta bundles (docs/FORMAT.md section 12): tree is a directory holding the
 * base bundle's extracted artifacts (tree/ARTIFACT/PATH, a deployment slot).
 * Nothing in it is trusted: every reused chunk read from it is compared with
 * the delta's signed sha256 before it is used.  Without a base, verify
 * checks the carried chunks only, and extract refuses. */
int bn_bundle_set_base(struct bn_bundle *b, const char *tree, struct bn_error *err) BN_WUR;
/* "bundle NAME channel C version V (manifest sha256 HEX)": the base a delta needs. */
void bn_bundle_base_describe(const struct bn_manifest *m, char *out, size_t outlen);

/* Reads one file of an artifact of a verified bundle (up to max bytes) into
 * a new NUL-terminated buffer: only the chunks that cover it are read, each
 * checked, and the file against its signed sha256.  -ENOENT when there is no
 * such artifact or file, -EFBIG when it is larger than max. */
int bn_bundle_read_file(struct bn_bundle *b, const char *artifact, const char *path, size_t max, char **ret,
                        size_t *ret_len, struct bn_error *err) BN_WUR;

/* The free space and inodes extracting b under parent needs (each file
 * rounded up to a block): -ENOSPC when parent's file system has less.
 * *ret_need and *ret_free (optional): the bytes needed and free, on success. */
int bn_bundle_check_space(const struct bn_bundle *b, const char *parent, uint64_t *ret_need, uint64_t *ret_free,
                          struct bn_error *err) BN_WUR;

/* Writes manifest.json, signs it with sk, writes SHA256SUMS, all in dir. */
int bn_bundle_write_signed(const char *dir, const char *manifest, size_t len, const struct bn_manifest *m,
                           const struct bn_seckey *sk, struct bn_error *err) BN_WUR;

/* Adds (or replaces) signatures/KEYID.minisig for sk on an existing bundle
 * and rewrites SHA256SUMS.  The manifest must parse; its name, channel and
 * version go into the trusted comment. */
int bn_bundle_add_signature(const char *dir, const struct bn_seckey *sk, struct bn_error *err) BN_WUR;

/* Rewrites dir/SHA256SUMS for every other regular file in dir (sorted). */
int bn_sha256sums_write(const char *dir, struct bn_error *err) BN_WUR;
