/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Safe, atomic extraction.  Everything is written below a fresh temporary
 * directory (mode 0700, created by us) through paths that bn_manifest_parse()
 * has already proven relative and normalised; files are created with
 * O_CREAT|O_EXCL|O_NOFOLLOW, and symlinks are created last, so no write can
 * follow a link.  The directory is renamed into place only when every byte has
 * matched the signed hashes.
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

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "reader_internal.h"

#define HOLE_BLOCK 65536
#define WRITEBACK_STEP (8u << 20)

struct xstate {
	struct bn_bundle *b;
	const char *tmp;
	int rootfd;            /* artifact root inside tmp */
	size_t art;
	size_t entry;          /* current file entry index */
	int fd;                /* open output file or -1 */
	uint64_t pos;          /* bytes written to the current file */
	uint64_t kicked;       /* bytes of it handed to writeback */
	struct bn_sha256 *fsha;
	uint8_t *ubuf;         /* resume: re-hashing a partial file */
};

static bool all_zero(const uint8_t *p, size_t n)
{
	/* Compare against the first byte shifted: a cheap, vectorisable test. */
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Writes data at pos, leaving holes where whole blocks are zero. */
static int write_sparse(int fd, const uint8_t *p, size_t n, uint64_t pos)
{
	while (n > 0) {
		size_t l = n < HOLE_BLOCK ? n : HOLE_BLOCK;
		if (!(l == HOLE_BLOCK && all_zero(p, l))) {
			int r = bn_pwrite_all(fd, p, l, pos);
			if (r < 0)
				return r;
		}
		p += l;
		pos += l;
		n -= l;
	}
	return 0;
}

static int close_file(struct xstate *x, struct bn_error *err)
{
	const struct bn_artifact *a = &x->b->m->artifacts[x->art];
	const struct bn_entry *e = &a->entries[x->entry];
	uint8_t h[BN_SHA256_LEN];
	bn_sha256_final(x->fsha, h);
	int r = 0;
	/* Modes are normalised whatever the manifest says (finding 3 of issue 13). */
	if (ftruncate(x->fd, (off_t)e->size) < 0 || fchmod(x->fd, bn_entry_mode(e->mode, false)) < 0 ||
	    fsync(x->fd) < 0)
		r = -errno;
	if (close(x->fd) < 0 && r == 0)
		r = -errno;
	x->fd = -1;
	if (r < 0)
		return bn_fail(err, r, "%s/%s/%s: %s", x->tmp, a->name, e->path, strerror(-r));
	if (memcmp(h, e->sha256, BN_SHA256_LEN) != 0)
		return bn_fail(err, -EBADMSG, "%s: artifact '%s', file '%s': sha256 does not match the signed manifest",
		               x->b->dir, a->name, e->path);
	return 0;
}

/* Opens the next file entry (creating any empty files on the way). */
static int open_next_file(struct xstate *x, struct bn_error *err)
{
	const struct bn_artifact *a = &x->b->m->artifacts[x->art];
	for (; x->entry < a->n_entries; x->entry++) {
		const struct bn_entry *e = &a->entries[x->entry];
		if (e->type != BN_ENTRY_FILE)
			continue;
		x->fd = openat(x->rootfd, e->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (x->fd < 0)
			return bn_fail(err, -errno, "%s/%s/%s: cannot create: %s", x->tmp, a->name, e->path, strerror(errno));
		x->pos = 0;
		x->kicked = 0;
		bn_sha256_reset(x->fsha);
		if (e->size > 0)
			return 0;
		int r = close_file(x, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Distributes one decoded chunk over the artifact's files, in order. */
static int consume(struct xstate *x, const uint8_t *p, size_t n, struct bn_error *err)
{
	const struct bn_artifact *a = &x->b->m->artifacts[x->art];
	while (n > 0) {
		if (x->fd < 0) {
			int r = open_next_file(x, err);
			if (r < 0)
				return r;
			if (x->fd < 0)
				return bn_fail(err, -EBADMSG, "%s: artifact '%s' has more data than files", x->b->dir, a->name);
		}
		const struct bn_entry *e = &a->entries[x->entry];
		uint64_t left = e->size - x->pos;
		size_t l = n < left ? n : (size_t)left;
		bn_sha256_update(x->fsha, p, l);
		int r = write_sparse(x->fd, p, l, x->pos);
		if (r < 0)
			return bn_fail(err, r, "%s/%s/%s: write failed: %s", x->tmp, a->name, e->path, strerror(-r));
		x->pos += l;
		/* Start writeback early (no waiting): the fsync at the file's end
		 * then finds little left, and disk time overlaps decoding. */
		if (x->pos - x->kicked >= WRITEBACK_STEP) {
			sync_file_range(x->fd, (off64_t)x->kicked, (off64_t)(x->pos - x->kicked), SYNC_FILE_RANGE_WRITE);
			x->kicked = x->pos;
		}
		p += l;
		n -= l;
		if (x->pos == e->size) {
			r = close_file(x, err);
			if (r < 0)
				return r;
			x->entry++;
		}
	}
	return 0;
}

static int make_dirs(struct xstate *x, bool resuming, struct bn_error *err)
{
	const struct bn_artifact *a = &x->b->m->artifacts[x->art];
	for (size_t i = 0; i < a->n_entries; i++) {
		const struct bn_entry *e = &a->entries[i];
		if (e->type == BN_ENTRY_DIR && mkdirat(x->rootfd, e->path, 0700) < 0 && !(resuming && errno == EEXIST))
			return bn_fail(err, -errno, "%s/%s/%s: cannot create directory: %s", x->tmp, a->name, e->path,
			               strerror(errno));
	}
	return 0;
}

static int finish_tree(struct xstate *x, struct bn_error *err)
{
	const struct bn_artifact *a = &x->b->m->artifacts[x->art];
	for (size_t i = 0; i < a->n_entries; i++) {
		const struct bn_entry *e = &a->entries[i];
		if (e->type == BN_ENTRY_SYMLINK && symlinkat(e->target, x->rootfd, e->path) < 0)
			return bn_fail(err, -errno, "%s/%s/%s: cannot create symlink: %s", x->tmp, a->name, e->path,
			               strerror(errno));
	}
	/* Directories last and deepest first, so read-only modes do not block. */
	for (size_t i = a->n_entries; i-- > 0;) {
		const struct bn_entry *e = &a->entries[i];
		if (e->type != BN_ENTRY_DIR)
			continue;
		int dfd = openat(x->rootfd, e->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 || fsync(dfd) < 0 || fchmod(dfd, bn_entry_mode(e->mode, true)) < 0) {
			int r = -errno;
			if (dfd >= 0)
				close(dfd);
			return bn_fail(err, r, "%s/%s/%s: %s", x->tmp, a->name, e->path, strerror(-r));
		}
		close(dfd);
	}
	if (fchmod(x->rootfd, 0755) < 0 || fsync(x->rootfd) < 0)
		return bn_fail(err, -errno, "%s/%s: %s", x->tmp, a->name, strerror(errno));
	return 0;
}

static int check_space(struct bn_bundle *b, const char *parent, struct bn_error *err)
{
	return bn_bundle_check_space(b, parent, NULL, NULL, err);
}

int bn_bundle_check_space(const struct bn_bundle *b, const char *parent, uint64_t *ret_need, uint64_t *ret_free,
                          struct bn_error *err)
{
	struct statvfs sv;
	if (statvfs(parent, &sv) < 0)
		return bn_fail(err, -errno, "%s: %s", parent, strerror(errno));
	uint64_t need = 0, inodes = 0;
	for (size_t i = 0; i < b->m->n_artifacts; i++) {
		const struct bn_artifact *a = &b->m->artifacts[i];
		/* Round each file up to a block: what the file system will charge. */
		for (size_t j = 0; j < a->n_entries; j++)
			need += (a->entries[j].size + 4095) / 4096 * 4096 + (a->entries[j].type == BN_ENTRY_FILE ? 0 : 4096);
		inodes += a->n_entries + 1;
	}
	uint64_t have = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (need > have)
		return bn_fail(err, -ENOSPC, "%s: not enough free space: need %" PRIu64 " MiB, %" PRIu64 " MiB free", parent,
		               (need + (1 << 20) - 1) >> 20, have >> 20);
	if (sv.f_files && inodes > sv.f_favail)
		return bn_fail(err, -ENOSPC, "%s: not enough free inodes: need %" PRIu64 ", %llu free", parent, inodes,
		               (unsigned long long)sv.f_favail);
	if (ret_need)
		*ret_need = need;
	if (ret_free)
		*ret_free = have;
	return 0;
}

void bn_fault_point(const char *name)
{
	const char *at = getenv("AGKIT_CRASH_AT");
	if (at && !strcmp(at, name))
		raise(SIGKILL);
}

#define PROGRESS_FILE ".agkit-progress"
#define CHECKPOINT_BYTES (64ull << 20)

/* Progress record: "<manifest sha256> <artifact> <next chunk>\n". */
static int write_progress(struct xstate *x, int tfd, size_t art, size_t next_chunk)
{
	/* Everything written so far must be durable before the record says so. */
	if (x->fd >= 0 && fdatasync(x->fd) < 0)
		return -errno;
	if (syncfs(tfd) < 0)
		return -errno;
	char hex[BN_SHA256_HEX], buf[128];
	bn_hex(x->b->manifest_sha256, BN_SHA256_LEN, hex);
	int n = snprintf(buf, sizeof buf, "%s %zu %zu\n", hex, art, next_chunk);
	int fd = openat(tfd, PROGRESS_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = bn_write_all(fd, buf, (size_t)n);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && renameat(tfd, PROGRESS_FILE ".tmp", tfd, PROGRESS_FILE) < 0)
		r = -errno;
	if (r == 0 && fsync(tfd) < 0)
		r = -errno;
	return r;
}

/* Reads a progress record for this bundle; false when absent or for another bundle. */
static bool read_progress(struct bn_bundle *b, int tfd, size_t *ret_art, size_t *ret_chunk)
{
	int fd = openat(tfd, PROGRESS_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[160] = {0};
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	char hex[BN_SHA256_HEX], want[BN_SHA256_HEX];
	size_t art = 0, chunk = 0;
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, want);
	if (n <= 0 || sscanf(buf, "%64s %zu %zu", hex, &art, &chunk) != 3 || strcmp(hex, want) != 0)
		return false;
	if (art >= b->m->n_artifacts)
		return false;
	const struct bn_artifact *a = &b->m->artifacts[art];
	if (chunk < a->chunk_first || chunk > a->chunk_first + a->n_chunks)
		return false;
	*ret_art = art;
	*ret_chunk = chunk;
	return true;
}

/* Positions x inside artifact x->art at stream offset soff: files ending at or
 * before soff are complete; a file straddling soff is reopened, cut back to
 * soff and its prefix re-hashed. */
static int resume_position(struct xstate *x, uint64_t soff, struct bn_error *err)
{
	const struct bn_artifact *a = &x->b->m->artifacts[x->art];
	x->entry = 0;
	while (x->entry < a->n_entries) {
		const struct bn_entry *e = &a->entries[x->entry];
		if (e->type == BN_ENTRY_FILE && (e->offset >= soff || e->offset + e->size > soff))
			break;
		x->entry++;
	}
	/* The killed run may have got past its last checkpoint: files after the
	 * resume point, and symlinks (made at the artifact's end), can exist
	 * already.  They are made again, so they go now. */
	for (size_t k = 0; k < a->n_entries; k++) {
		const struct bn_entry *f = &a->entries[k];
		bool later = f->type == BN_ENTRY_FILE && k >= x->entry && f->offset >= soff;
		if ((later || f->type == BN_ENTRY_SYMLINK) && unlinkat(x->rootfd, f->path, 0) < 0 && errno != ENOENT)
			return bn_fail(err, -errno, "%s/%s/%s: cannot resume: %s", x->tmp, a->name, f->path, strerror(errno));
	}
	if (x->entry == a->n_entries)
		return 0;
	const struct bn_entry *e = &a->entries[x->entry];
	if (e->offset >= soff)
		return 0; /* made again from here */
	uint64_t have = soff - e->offset;
	x->fd = openat(x->rootfd, e->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (x->fd < 0)
		return bn_fail(err, -errno, "%s/%s/%s: cannot resume: %s", x->tmp, a->name, e->path, strerror(errno));
	struct stat st;
	if (fstat(x->fd, &st) < 0 || (uint64_t)st.st_size < have || ftruncate(x->fd, (off_t)have) < 0)
		return bn_fail(err, -EIO, "%s/%s/%s: cannot resume (partial file shorter than recorded)", x->tmp, a->name,
		               e->path);
	bn_sha256_reset(x->fsha);
	uint64_t pos = 0;
	while (pos < have) {
		size_t l = have - pos < x->b->m->chunk_size ? (size_t)(have - pos) : x->b->m->chunk_size;
		int r = bn_pread_all(x->fd, x->ubuf, l, pos);
		if (r < 0)
			return bn_fail(err, r, "%s/%s/%s: cannot resume: %s", x->tmp, a->name, e->path, strerror(-r));
		bn_sha256_update(x->fsha, x->ubuf, l);
		pos += l;
	}
	x->pos = have;
	x->kicked = have;
	return 0;
}

struct sink_ctx {
	struct xstate *x;
	struct bn_extract_opts *o;
	int tfd;
	uint64_t done, total, since_checkpoint, checkpoint_bytes;
};

/* Receives each decoded, hash-verified chunk in order (main thread): writes
 * it to its files, reports progress, checkpoints. */
static int extract_sink(void *ud, size_t ci, const uint8_t *data, size_t n, struct bn_error *err)
{
	struct sink_ctx *sc = ud;
	struct xstate *x = sc->x;
	int r = consume(x, data, n, err);
	if (r < 0)
		return r;
	sc->done += n;
	sc->since_checkpoint += n;
	if (sc->o->progress)
		sc->o->progress(sc->o->userdata, sc->done, sc->total);
	if (sc->o->work_dir && sc->since_checkpoint >= sc->checkpoint_bytes) {
		r = write_progress(x, sc->tfd, x->art, ci + 1);
		if (r < 0)
			return bn_fail(err, r, "%s: cannot record progress: %s", x->tmp, strerror(-r));
		sc->since_checkpoint = 0;
		bn_fault_point("extract:checkpoint");
	}
	if (sc->o->cancel && *sc->o->cancel)
		return bn_fail(err, -EINTR, "interrupted");
	return 0;
}

int bn_bundle_extract(struct bn_bundle *b, const char *target, struct bn_extract_opts *o, struct bn_error *err)
{
	struct bn_extract_opts none = {0};
	if (!o)
		o = &none;
	o->resumed_chunks = 0;
	struct stat st;
	bool target_exists = lstat(target, &st) == 0;
	if (target_exists && !(o->replace && o->work_dir && S_ISDIR(st.st_mode)))
		return bn_fail(err, -EEXIST, "%s: already exists; extract needs a new path", target);
	char *parent = bn_dirname(target), *tmp = NULL;
	struct xstate x = {.b = b, .rootfd = -1, .fd = -1};
	struct bn_chunk_reader cr = {.fd = -1};
	struct bn_rpipe *pipe = NULL;
	bool cr_init = false, keep_tmp = false;
	int r = 0, tfd = -1;
	size_t start_art = 0, start_chunk = 0;
	bool resuming = false;
	if (!parent)
		return bn_fail(err, -ENOMEM, "out of memory");
	r = bn_check_files(b, err);
	if (r == 0)
		r = bn_layout_require_complete(b, err); /* not from a single medium */
	if (r < 0)
		goto out;
	x.fsha = bn_sha256_new();
	x.ubuf = malloc(b->m->chunk_size);
	if (!x.fsha || !x.ubuf) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (o->work_dir) {
		tmp = strdup(o->work_dir);
		if (!tmp) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (tfd >= 0 && read_progress(b, tfd, &start_art, &start_chunk)) {
			resuming = true;
		} else {
			if (tfd >= 0)
				close(tfd);
			tfd = -1;
			bn_rm_rf(tmp);
		}
	}
	if (!resuming) {
		/* AGKIT_SKIP_SPACE_CHECK=1 is a test knob: it lets the disk-full
		 * tests reach a real ENOSPC in the middle of writing. */
		const char *skip = getenv("AGKIT_SKIP_SPACE_CHECK");
		r = skip && !strcmp(skip, "1") ? 0 : check_space(b, parent, err);
		if (r < 0)
			goto out;
		if (o->work_dir) {
			if (mkdir(tmp, 0700) < 0) {
				r = bn_fail(err, -errno, "%s: %s", tmp, strerror(errno));
				goto out;
			}
		} else {
			r = bn_mktemp_sibling(target, &tmp, err);
			if (r < 0)
				goto out;
		}
		tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (tfd < 0) {
			r = bn_fail(err, -errno, "%s: %s", tmp, strerror(errno));
			goto out;
		}
	}
	x.tmp = tmp;
	r = bn_chunk_reader_init(&cr, b, err);
	cr_init = true;
	if (r < 0)
		goto out;
	r = bn_rpipe_new(b, true, &pipe, err);
	if (r < 0)
		goto out;
	struct sink_ctx sc = {.x = &x, .o = o, .tfd = tfd, .checkpoint_bytes = CHECKPOINT_BYTES};
	/* Tests shrink the checkpoint interval to exercise resume on small bundles. */
	const char *cpb = getenv("AGKIT_CHECKPOINT_BYTES");
	if (cpb && strtoull(cpb, NULL, 10) > 0)
		sc.checkpoint_bytes = strtoull(cpb, NULL, 10);
	for (size_t i = 0; i < b->m->n_chunks; i++)
		sc.total += b->m->chunks[i].usize;
	if (resuming) {
		o->resumed_chunks = start_chunk;
		for (size_t i = 0; i < start_chunk; i++)
			sc.done += b->m->chunks[i].usize;
	}
	for (x.art = start_art; x.art < b->m->n_artifacts; x.art++) {
		const struct bn_artifact *a = &b->m->artifacts[x.art];
		bool resume_here = resuming && x.art == start_art;
		if (mkdirat(tfd, a->name, 0700) < 0 && !(resume_here && errno == EEXIST)) {
			r = bn_fail(err, -errno, "%s/%s: %s", tmp, a->name, strerror(errno));
			break;
		}
		x.rootfd = openat(tfd, a->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (x.rootfd < 0) {
			r = bn_fail(err, -errno, "%s/%s: %s", tmp, a->name, strerror(errno));
			break;
		}
		x.entry = 0;
		r = make_dirs(&x, resume_here, err);
		size_t first = a->chunk_first;
		if (r == 0 && resume_here) {
			first = start_chunk;
			r = resume_position(&x, first < a->chunk_first + a->n_chunks ? b->m->chunks[first].soffset : a->size,
			                    err);
		}
		/* Resumed reads start mid-volume: the whole-volume hash is skipped
		 * there (every chunk hash is still checked). */
		if (r == 0 && resume_here && first < a->chunk_first + a->n_chunks)
			bn_chunk_reader_skip_volume_hash(&cr, b->m->chunks[first].volume);
		if (r == 0 && o->cancel && *o->cancel)
			r = bn_fail(err, -EINTR, "interrupted");
		if (r == 0)
			r = bn_rpipe_run(pipe, &cr, first, a->chunk_first + a->n_chunks, extract_sink, &sc, err);
		if (r == 0 && x.fd < 0)
			r = open_next_file(&x, err); /* trailing empty files */
		if (r == 0 && x.fd >= 0)
			r = bn_fail(err, -EBADMSG, "%s: artifact '%s' ended before file '%s' was complete", b->dir, a->name,
			            a->entries[x.entry].path);
		if (r == 0)
			r = finish_tree(&x, err);
		if (x.fd >= 0) {
			close(x.fd);
			x.fd = -1;
		}
		close(x.rootfd);
		x.rootfd = -1;
		if (r == 0 && o->work_dir && x.art + 1 < b->m->n_artifacts) {
			r = write_progress(&x, tfd, x.art + 1, b->m->artifacts[x.art + 1].chunk_first);
			if (r < 0)
				r = bn_fail(err, r, "%s: cannot record progress: %s", tmp, strerror(-r));
		}
		if (r < 0)
			break;
	}
	if (r == 0 && o->work_dir)
		unlinkat(tfd, PROGRESS_FILE, 0);
	if (r == 0 && (fchmod(tfd, 0755) < 0 || fsync(tfd) < 0))
		r = bn_fail(err, -errno, "%s: %s", tmp, strerror(errno));
	if (r == 0 && o->cancel && *o->cancel)
		r = bn_fail(err, -EINTR, "interrupted");
	if (r == 0) {
		bn_fault_point("extract:before-rename");
		/* NOREPLACE: a directory that appeared meanwhile is never replaced;
		 * EXCHANGE when asked to replace: the old tree lands at tmp. */
		unsigned flags = target_exists ? RENAME_EXCHANGE : RENAME_NOREPLACE;
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, target, flags) < 0)
			r = bn_fail(err, -errno, "%s: cannot move into place: %s", target, strerror(errno));
	}
	if (r == 0) {
		bn_fsync_dir(parent);
		bn_fault_point("extract:after-rename");
		if (target_exists)
			bn_rm_rf(tmp);
	}
out:
	/* A cancelled or failed run leaves nothing; only a killed one leaves work_dir to resume. */
	if (tfd >= 0)
		close(tfd);
	bn_rpipe_free(pipe);
	if (cr_init)
		bn_chunk_reader_release(&cr);
	if (x.fd >= 0)
		close(x.fd);
	if (r < 0 && tmp && !keep_tmp)
		bn_rm_rf(tmp);
	bn_sha256_free(x.fsha);
	free(x.ubuf);
	free(tmp);
	free(parent);
	return r;
}
