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

#include <zstd.h>

#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "reader_internal.h"

#define PROGRESS "progress"
#define PROGRESS_MAGIC "agkit-media-progress 1 "

struct stage {
	struct bn_bundle *b;
	const char *work;
	int wfd, treefd;
	uint8_t *bits;      /* one per chunk */
	size_t bits_len;
};

static bool bit(const struct stage *s, size_t i) { return s->bits[i / 8] >> (i % 8) & 1; }
static void set_bit(struct stage *s, size_t i) { s->bits[i / 8] |= (uint8_t)(1u << (i % 8)); }

/* Progress: magic, manifest sha256, newline, then the bitmap. */
static int read_progress(struct stage *s, bool *ret_found, struct bn_error *err)
{
	char hex[BN_SHA256_HEX], *buf = NULL, *p = bn_path_join(s->work, PROGRESS);
	size_t len = 0, hl = strlen(PROGRESS_MAGIC) + 64 + 1;
	if (!p)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = bn_read_file(p, hl + s->bits_len, &buf, &len, NULL);
	*ret_found = false;
	if (r == -ENOENT) {
		free(p);
		return 0;
	}
	bn_hex(s->b->manifest_sha256, BN_SHA256_LEN, hex);
	if (r < 0 || len != hl + s->bits_len || memcmp(buf, PROGRESS_MAGIC, strlen(PROGRESS_MAGIC)) != 0) {
		r = bn_fail(err, -EBADMSG, "%s: unreadable; remove %s to start this import over", p, s->work);
	} else if (memcmp(buf + strlen(PROGRESS_MAGIC), hex, 64) != 0) {
		r = bn_fail(err, -EBADMSG, "%s: an import of another bundle or version is in progress here; this medium "
		            "belongs to bundle %s version %" PRIu64 " (finish the other import, or remove %s to abandon it)",
		            s->work, s->b->m->name, s->b->m->version, s->work);
	} else {
		memcpy(s->bits, buf + hl, s->bits_len);
		*ret_found = true;
	}
	free(buf);
	free(p);
	return r;
}

static int write_progress(struct stage *s, struct bn_error *err)
{
	/* The chunks the bitmap claims must be durable before it says so. */
	if (syncfs(s->wfd) < 0)
		return bn_fail(err, -errno, "%s: sync failed: %s", s->work, strerror(errno));
	char hex[BN_SHA256_HEX], *p = bn_path_join(s->work, PROGRESS);
	size_t hl = strlen(PROGRESS_MAGIC) + 64 + 1;
	uint8_t *buf = malloc(hl + s->bits_len);
	if (!p || !buf) {
		free(p);
		free(buf);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	bn_hex(s->b->manifest_sha256, BN_SHA256_LEN, hex);
	memcpy(buf, PROGRESS_MAGIC, strlen(PROGRESS_MAGIC));
	memcpy(buf + strlen(PROGRESS_MAGIC), hex, 64);
	buf[hl - 1] = '\n';
	memcpy(buf + hl, s->bits, s->bits_len);
	int r = bn_write_file_atomic(p, buf, hl + s->bits_len, 0600, err);
	free(buf);
	free(p);
	return r;
}

/* The tree: every directory and every file at its final size (sparse). */
static int prepare_tree(struct stage *s, struct bn_error *err)
{
	const struct bn_manifest *m = s->b->m;
	for (size_t i = 0; i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		if (mkdirat(s->treefd, a->name, 0700) < 0)
			return bn_fail(err, -errno, "%s/tree/%s: %s", s->work, a->name, strerror(errno));
		int rfd = openat(s->treefd, a->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (rfd < 0)
			return bn_fail(err, -errno, "%s/tree/%s: %s", s->work, a->name, strerror(errno));
		for (size_t j = 0; j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			int r = 0;
			if (e->type == BN_ENTRY_DIR) {
				if (mkdirat(rfd, e->path, 0700) < 0)
					r = -errno;
			} else if (e->type == BN_ENTRY_FILE) {
				int fd = openat(rfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
				if (fd < 0 || ftruncate(fd, (off_t)e->size) < 0)
					r = -errno;
				if (fd >= 0)
					close(fd);
			}
			if (r < 0) {
				close(rfd);
				return bn_fail(err, r, "%s/tree/%s/%s: %s", s->work, a->name, e->path, strerror(-r));
			}
		}
		close(rfd);
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Writes decoded chunk ci at its files' offsets. */
static int place_chunk(struct stage *s, size_t ci, const uint8_t *p, struct bn_error *err)
{
	const struct bn_manifest *m = s->b->m;
	const struct bn_chunk *c = &m->chunks[ci];
	const struct bn_artifact *a = &m->artifacts[c->artifact];
	uint64_t soff = c->soffset, left = c->usize;
	ssize_t fi = bn_artifact_file_at(a, soff);
	int rfd = openat(s->treefd, a->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return bn_fail(err, -errno, "%s/tree/%s: %s", s->work, a->name, strerror(errno));
	int r = 0;
	while (left > 0 && r == 0) {
		if (fi < 0 || (size_t)fi >= a->n_entries) {
			r = bn_fail(err, -EBADMSG, "chunk %zu: artifact '%s' has more data than files", ci, a->name);
			break;
		}
		const struct bn_entry *e = &a->entries[fi];
		if (e->type != BN_ENTRY_FILE || soff >= e->offset + e->size) {
			fi++;
			continue;
		}
		uint64_t in = soff - e->offset, n = e->offset + e->size - soff;
		if (n > left)
			n = left;
		/* Preallocated files are zero: all-zero pieces stay holes. */
		if (!all_zero(p, (size_t)n)) {
			int fd = openat(rfd, e->path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
			r = fd < 0 ? -errno : bn_pwrite_all(fd, p, (size_t)n, in);
			if (fd >= 0)
				close(fd);
			if (r < 0)
				r = bn_fail(err, r, "%s/tree/%s/%s: write failed: %s", s->work, a->name, e->path, strerror(-r));
		}
		p += n;
		soff += n;
		left -= n;
		fi++;
	}
	close(rfd);
	return r;
}

static int take_medium(struct stage *s, struct bn_media_stage_result *res, struct bn_error *err)
{
	struct bn_bundle *b = s->b;
	const struct bn_manifest *m = b->m;
	struct bn_chunk_reader cr;
	uint8_t *ubuf = malloc(m->chunk_size), *scratch = NULL;
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	int r = bn_chunk_reader_init(&cr, b, err);
	if (r == 0 && (!ubuf || !dctx))
		r = bn_fail(err, -ENOMEM, "out of memory");
	if (dctx)
		ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, 27);
	size_t first = 0;
	for (size_t ci = 0; r == 0 && ci < m->n_chunks; ci++) {
		const struct bn_chunk *c = &m->chunks[ci];
		if (ci == 0 || m->chunks[ci - 1].volume != c->volume)
			first = ci;
		if (!bn_layout_in_view(b, c->volume))
			continue;
		/* A volume is read whole (its hash is checked at its end) unless every
		 * chunk of it is already in place. */
		size_t last = ci;
		while (last + 1 < m->n_chunks && m->chunks[last + 1].volume == c->volume)
			last++;
		bool need = false;
		for (size_t k = first; k <= last && !need; k++)
			need = !bit(s, k);
		if (!need) {
			ci = last;
			continue;
		}
		for (size_t k = ci; r == 0 && k <= last; k++) {
			if ((r = bn_check_cancel(err)) < 0)
				break; /* progress stays at the last volume checkpoint */
			r = bn_chunk_read(&cr, k, err);
			if (r < 0)
				break;
			if (bit(s, k))
				continue;
			r = bn_chunk_decode(b, k, dctx, cr.buf, ubuf, &scratch, err);
			if (r < 0)
				break;
			r = place_chunk(s, k, ubuf, err);
			if (r == 0) {
				set_bit(s, k);
				res->chunks_new++;
			}
		}
		/* Checkpoint per volume: a crash costs at most one volume. */
		if (r == 0)
			r = write_progress(s, err);
		if (r == 0)
			bn_fault_point("media:volume");
		ci = last;
	}
	bn_chunk_reader_release(&cr);
	free(ubuf);
	free(scratch);
	ZSTD_freeDCtx(dctx);
	return r;
}

/* Last checks and final modes once every chunk is in place. */
static int finish_tree(struct stage *s, struct bn_error *err)
{
	const struct bn_manifest *m = s->b->m;
	uint8_t *buf = malloc(1u << 20);
	struct bn_sha256 *sha = bn_sha256_new();
	int r = !buf || !sha ? bn_fail(err, -ENOMEM, "out of memory") : 0;
	for (size_t i = 0; r == 0 && i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		int rfd = openat(s->treefd, a->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (rfd < 0) {
			r = bn_fail(err, -errno, "%s/tree/%s: %s", s->work, a->name, strerror(errno));
			break;
		}
		for (size_t j = 0; r == 0 && j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			if (e->type == BN_ENTRY_SYMLINK) {
				if (symlinkat(e->target, rfd, e->path) < 0 && errno != EEXIST)
					r = bn_fail(err, -errno, "%s/tree/%s/%s: %s", s->work, a->name, e->path, strerror(errno));
				continue;
			}
			if (e->type != BN_ENTRY_FILE)
				continue;
			int fd = openat(rfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				r = bn_fail(err, -errno, "%s/tree/%s/%s: %s", s->work, a->name, e->path, strerror(errno));
				break;
			}
			bn_sha256_reset(sha);
			for (uint64_t off = 0; r == 0 && off < e->size;) {
				size_t l = e->size - off < (1u << 20) ? (size_t)(e->size - off) : (1u << 20);
				if (bn_cancelled()) {
					r = -EINTR;
					break;
				}
				r = bn_pread_all(fd, buf, l, off);
				bn_sha256_update(sha, buf, l);
				off += l;
			}
			uint8_t h[BN_SHA256_LEN];
			bn_sha256_final(sha, h);
			if (r == 0 && (fchmod(fd, bn_entry_mode(e->mode, false)) < 0 || fsync(fd) < 0))
				r = -errno;
			close(fd);
			if (r < 0)
				r = bn_fail(err, r, "%s/tree/%s/%s: %s", s->work, a->name, e->path, strerror(-r));
			else if (memcmp(h, e->sha256, BN_SHA256_LEN) != 0)
				r = bn_fail(err, -EBADMSG, "%s/tree/%s/%s: sha256 does not match the signed manifest", s->work,
				            a->name, e->path);
		}
		/* Directories deepest first, so read-only modes do not block. */
		for (size_t j = a->n_entries; r == 0 && j-- > 0;) {
			const struct bn_entry *e = &a->entries[j];
			if (e->type != BN_ENTRY_DIR)
				continue;
			int dfd = openat(rfd, e->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (dfd < 0 || fsync(dfd) < 0 || fchmod(dfd, bn_entry_mode(e->mode, true)) < 0)
				r = bn_fail(err, -errno, "%s/tree/%s/%s: %s", s->work, a->name, e->path, strerror(errno));
			if (dfd >= 0)
				close(dfd);
		}
		if (r == 0 && (fchmod(rfd, 0755) < 0 || fsync(rfd) < 0))
			r = bn_fail(err, -errno, "%s/tree/%s: %s", s->work, a->name, strerror(errno));
		close(rfd);
	}
	if (r == 0 && (fchmod(s->treefd, 0755) < 0 || fsync(s->treefd) < 0))
		r = bn_fail(err, -errno, "%s/tree: %s", s->work, strerror(errno));
	free(buf);
	bn_sha256_free(sha);
	return r;
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
	const char *skip = getenv("AGKIT_SKIP_SPACE_CHECK");
	struct statvfs sv;
	if (!(skip && !strcmp(skip, "1")) && statvfs(work, &sv) == 0) {
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
	if (!found && ((r = prepare_tree(&s, err)) < 0 || (r = write_progress(&s, err)) < 0))
		goto out;
	r = take_medium(&s, res, err);
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
		else
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
		r = finish_tree(&s, err);
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
	char *p = bn_path_join(work, PROGRESS), hex[BN_SHA256_HEX], head[sizeof PROGRESS_MAGIC + 64];
	if (!p)
		return -ENOMEM;
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	free(p);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	size_t hl = strlen(PROGRESS_MAGIC) + 64;
	struct stat st;
	int r = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EBADMSG : bn_pread_all(fd, head, hl, 0);
	close(fd);
	if (r < 0)
		return r;
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, hex);
	return !memcmp(head, PROGRESS_MAGIC, strlen(PROGRESS_MAGIC)) && !memcmp(head + strlen(PROGRESS_MAGIC), hex, 64);
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
