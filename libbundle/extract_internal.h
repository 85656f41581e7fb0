/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internal to libbundle: the one resumable extractor (extract.c) behind
 * bn_bundle_extract() (extract, import, stream receipt) and bn_media_stage()
 * (one medium at a time).  A tree is every artifact of a bundle below one
 * directory, NAME/ per artifact, prepared at full size (sparse) and filled by
 * chunks in any order; one progress record (one bit per chunk) says which
 * chunks are durably in place.
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle/bundle.h"
#include "fault.h"

struct bn_xtree {
	struct bn_bundle *b;
	int fd;            /* the tree's directory */
	const char *label; /* its path, for messages */
};

/* The progress record, file `name` in directory dfd: "agkit-progress 2 ",
 * the manifest's SHA-256 in hex, "\n", then one bit per chunk (bit i % 8 of
 * byte i / 8).  Also read: the records of earlier versions (extract's
 * "<sha256> <artifact> <next chunk>\n", media staging's
 * "agkit-media-progress 1 <sha256>\n<bits>"). */
#define BN_XPROGRESS_BITS(b) (((b)->m->n_chunks + 7) / 8)
/* 1: found, bits (BN_XPROGRESS_BITS bytes) filled; 0: no record; -ESTALE: a
 * record of another manifest; -EBADMSG: unreadable; other negative errno. */
int bn_xprogress_read(const struct bn_bundle *b, int dfd, const char *name, uint8_t *bits);
/* Makes everything written below dfd durable (syncfs), then replaces the
 * record atomically.  Negative errno. */
int bn_xprogress_write(const struct bn_bundle *b, int dfd, const char *name, const uint8_t *bits);

/* Creates every artifact directory, directory and file (O_EXCL, cut to its
 * size, mode 0600) below t->fd.  resuming: entries that exist are kept if
 * they are of their type (files are cut or extended to their size). */
int bn_xtree_prepare(const struct bn_xtree *t, bool resuming, struct bn_error *err);

struct bn_xfill {
	uint8_t *bits; /* in/out: chunks in place */
	int pfd;       /* directory of the progress record, or -1: none */
	const char *pname;
	uint64_t checkpoint_bytes; /* record after this many new bytes; 0: never */
	bool per_volume;           /* record also after each volume's last missing chunk */
	const char *fault;         /* bn_fault_point() after each record */
	volatile sig_atomic_t *cancel;
	bn_progress_fn progress;
	void *userdata;
	size_t placed; /* out: chunks placed by this call */
};
/* Places every chunk not yet in f->bits (and on this medium) into the tree:
 * read in order, checked, decoded, hashed and written on b->threads workers;
 * bits set in order, recorded at checkpoints and at the end. */
int bn_xtree_fill(const struct bn_xtree *t, struct bn_xfill *f, struct bn_error *err);

/* Once every chunk is in place: each file cut to its size (and, with rehash,
 * its SHA-256 compared with the manifest's), final modes, symlinks,
 * directories deepest first, everything durable. */
int bn_xtree_finish(const struct bn_xtree *t, bool rehash, struct bn_error *err);
