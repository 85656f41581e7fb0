/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Importing a media set one medium at a time (agimport stage MEDIUM): every
 * chunk of the medium is read, checked against the signed manifest, decoded,
 * checked again and written at its place in preallocated files of
 * R/staging/media/tree.  Chunks are self-describing (each decoded chunk's
 * SHA-256 is signed), so media can come in any order; completeness is one bit
 * per chunk in R/staging/media/progress, written only after the data it
 * describes is on disk.  No copy of the volumes is kept.  When every chunk is
 * there, each file's SHA-256 is checked once more, modes and symlinks are set,
 * and the tree is handed to bn_deploy_import() to become the staged slot.
 * Preparing, filling, recording and finishing the tree is the one resumable
 * extractor's (extract.c); this file keeps what is particular to media.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "bundle/tunables.h"
#include "extract_internal.h"
#include "reader_internal.h"

#define PROGRESS "progress"

struct stage {
	struct bn_bundle *b;
	const char *work;
	int wfd, treefd;
	uint8_t *bits;      /* one per chunk: the one progress record (extract_internal.h) */
	size_t bits_len;
};

static bool bit(const struct stage *s, size_t i) { return s->bits[i / 8] >> (i % 8) & 1; }

static int read_progress(struct stage *s, bool *ret_found, struct bn_error *err)
{
	int r = bn_xprogress_read(s->b, s->wfd, PROGRESS, s->bits);
	*ret_found = r == 1;
	if (r == -ESTALE)
		return bn_fail(err, -EBADMSG, "%s: an import of another bundle or version is in progress here; this medium "
		               "belongs to bundle %s version %" PRIu64 " (finish the other import, or remove %s to abandon it)",
		               s->work, s->b->m->name, s->b->m->version, s->work);
	if (r < 0)
		return bn_fail(err, -EBADMSG, "%s/%s: unreadable; remove %s to start this import over", s->work, PROGRESS,
		               s->work);
	return 0;
}

static int write_progress(struct stage *s, struct bn_error *err)
{
	int r = bn_xprogress_write(s->b, s->wfd, PROGRESS, s->bits);
	return r < 0 ? bn_fail(err, r, "%s/%s: cannot record progress: %s", s->work, PROGRESS, strerror(-r)) : 0;
}

int bn_media_stage(struct bn_bundle *b, const char *work, struct bn_media_stage_result *res, struct bn_error *err)
{
	const struct bn_manifest *m = b->m;
	struct stage s = {.b = b, .work = work, .wfd = -1, .treefd = -1};
	memset(res, 0, sizeof *res);
	unsigned mi = bn_bundle_medium(b);
	if (!mi)
		return bn_fail(err, -EINVAL, "%s: not a single medium of a media set", b->dir);
	res->medium = mi;
	res->count = m->media->count;
	int r = bn_check_files(b, err);
	if (r < 0)
		return r;
	s.bits_len = (m->n_chunks + 7) / 8;
	s.bits = calloc(s.bits_len ? s.bits_len : 1, 1);
	char *tree = bn_path_join(work, "tree");
	if (!s.bits || !tree) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	bool found = false;
	if (mkdir(work, 0700) < 0 && errno != EEXIST) {
		r = bn_fail(err, -errno, "%s: %s", work, strerror(errno));
		goto out;
	}
	s.wfd = open(work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s.wfd < 0) {
		r = bn_fail(err, -errno, "%s: %s", work, strerror(errno));
		goto out;
	}
	r = read_progress(&s, &found, err);
	if (r < 0)
		goto out;
	if (!found) {
		/* A fresh start: whatever an unrecorded earlier attempt left goes. */
		bn_rm_rf(tree);
		if (mkdir(tree, 0700) < 0) {
			r = bn_fail(err, -errno, "%s: %s", tree, strerror(errno));
			goto out;
		}
	}
	/* Free space for every chunk not yet in place, before this medium
	 * writes any (the tree's files are sparse until their chunks come). */
	struct statvfs sv;
	if (!bn_tunables()->skip_space_check && statvfs(work, &sv) == 0) {
		uint64_t need = 0, have = (uint64_t)sv.f_bavail * sv.f_frsize;
		for (size_t i = 0; i < m->n_chunks; i++)
			need += bit(&s, i) ? 0 : (m->chunks[i].usize + 4095) / 4096 * 4096;
		if (need > have) {
			r = bn_fail(err, -ENOSPC, "%s: not enough free space to stage this media set: need %" PRIu64
			            " MiB, %" PRIu64 " MiB free", work, (need + (1 << 20) - 1) >> 20, have >> 20);
			if (!found)
				bn_rm_rf(work); /* nothing recorded yet: nothing to keep */
			goto out;
		}
	}
	s.treefd = open(tree, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s.treefd < 0) {
		r = bn_fail(err, -errno, "%s: %s", tree, strerror(errno));
		goto out;
	}
	struct bn_xtree t = {.b = b, .fd = s.treefd, .label = tree};
	if (!found && ((r = bn_xtree_prepare(&t, false, err)) < 0 || (r = write_progress(&s, err)) < 0))
		goto out;
	/* Checkpoint per volume: a crash costs at most one volume. */
	struct bn_xfill f = {.bits = s.bits, .pfd = s.wfd, .pname = PROGRESS, .per_volume = true, .fault = "media:volume"};
	r = bn_xtree_fill(&t, &f, err);
	res->chunks_new = f.placed;
	if (r < 0)
		goto out;
	/* Which media still hold chunks not in place. */
	bool *need = calloc(m->media->count + 1, sizeof *need);
	if (!need) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->n_chunks; i++) {
		if (bit(&s, i))
			res->chunks_done++;
		else if (!bn_chunk_reused(&m->chunks[i]))
			need[m->media->vol_medium[m->chunks[i].volume]] = true;
	}
	res->chunks_total = m->n_chunks;
	for (unsigned i = 1; i <= m->media->count; i++) {
		size_t l = strlen(res->missing);
		if (need[i] && l + 8 < sizeof res->missing)
			snprintf(res->missing + l, sizeof res->missing - l, "%s%u", l ? ", " : "", i);
	}
	free(need);
	res->complete = res->chunks_done == m->n_chunks;
	if (res->complete)
		r = bn_xtree_finish(&t, true, err); /* each file's SHA-256 once more */
out:
	if (s.wfd >= 0)
		close(s.wfd);
	if (s.treefd >= 0)
		close(s.treefd);
	free(s.bits);
	free(tree);
	return r;
}

/* 1 when work/progress records b's verified manifest, 0 when it records
 * another (or none), negative errno when it cannot be read. */
static int progress_is_of(const struct bn_bundle *b, const char *work)
{
	int wfd = open(work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (wfd < 0)
		return errno == ENOENT ? 0 : -errno;
	uint8_t *bits = malloc(BN_XPROGRESS_BITS(b) + 1);
	int r = bits ? bn_xprogress_read(b, wfd, PROGRESS, bits) : -ENOMEM;
	free(bits);
	close(wfd);
	return r == -ESTALE ? 0 : r;
}

void bn_media_stage_discard(const struct bn_bundle *b, const char *work)
{
	if (progress_is_of(b, work) == 1)
		bn_rm_rf(work);
}

int bn_media_stage_install(struct bn_bundle *b, const char *work, const char *target, struct bn_error *err)
{
	/* The tree is installed only as the bundle it was staged from: the
	 * progress record names the manifest every chunk was checked against. */
	int q = progress_is_of(b, work);
	if (q < 0)
		return bn_fail(err, q, "%s/%s: %s", work, PROGRESS, strerror(-q));
	if (q == 0)
		return bn_fail(err, -EBADMSG, "%s: the staged tree is not of the verified manifest of bundle %s version %" PRIu64
		               "; refusing to install it", work, b->m->name, b->m->version);
	char *tree = bn_path_join(work, "tree"), *parent = bn_dirname(target);
	if (!tree || !parent) {
		free(tree);
		free(parent);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	struct stat st;
	bool exists = lstat(target, &st) == 0;
	int r = 0;
	/* EXCHANGE keeps the slot whole at every instant; the old tree lands in work/tree. */
	if (renameat2(AT_FDCWD, tree, AT_FDCWD, target, exists ? RENAME_EXCHANGE : RENAME_NOREPLACE) < 0)
		r = bn_fail(err, -errno, "%s: cannot move into place: %s", target, strerror(errno));
	if (r == 0) {
		bn_fsync_dir(parent);
		bn_rm_rf(work);
	}
	free(tree);
	free(parent);
	return r;
}
