/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one resumable extractor (extract_internal.h).  Everything is written
 * below a directory created by us (mode 0700) through paths that
 * bn_manifest_parse() has already proven relative and normalised; files are
 * created with O_CREAT|O_EXCL|O_NOFOLLOW, and symlinks are created last, so
 * no write can follow a link.  Chunks are placed at their files' offsets by
 * the worker that decoded and hashed them; one bit per chunk, recorded only
 * after the data it describes is durable, lets a killed run resume.
 * bn_bundle_extract() renames its directory into place only when every chunk
 * has matched the signed hashes; bn_media_stage() (stage.c) fills the same
 * kind of tree one medium at a time.
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

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "bundle/tunables.h"
#include "extract_internal.h"
#include "reader_internal.h"

#define HOLE_BLOCK 65536
#define KICK_MIN (1u << 20)

#define XP_MAGIC "agkit-progress 2 "
#define XP_MEDIA_MAGIC "agkit-media-progress 1 " /* stage.c before the one record */

static bool bit(const uint8_t *bits, size_t i) { return bits[i / 8] >> (i % 8) & 1; }
static void set_bit(uint8_t *bits, size_t i) { bits[i / 8] |= (uint8_t)(1u << (i % 8)); }

/* ---- the progress record --------------------------------------------- */

int bn_xprogress_read(const struct bn_bundle *b, int dfd, const char *name, uint8_t *bits)
{
	size_t nb = BN_XPROGRESS_BITS(b), ml = strlen(XP_MEDIA_MAGIC), max = ml + 64 + 1 + nb;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return -EBADMSG;
	}
	char *buf = malloc(max + 1), hex[BN_SHA256_HEX];
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t len = (size_t)st.st_size;
	int r = bn_pread_all(fd, buf, len, 0);
	close(fd);
	buf[len] = '\0';
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, hex);
	const char *magic = !strncmp(buf, XP_MAGIC, strlen(XP_MAGIC))         ? XP_MAGIC
	                    : !strncmp(buf, XP_MEDIA_MAGIC, strlen(XP_MEDIA_MAGIC)) ? XP_MEDIA_MAGIC
	                                                                          : NULL;
	if (r < 0) {
		/* unreadable */
	} else if (magic) {
		size_t hl = strlen(magic) + 64 + 1;
		if (len != hl + nb || buf[hl - 1] != '\n')
			r = -EBADMSG;
		else if (memcmp(buf + strlen(magic), hex, 64) != 0)
			r = -ESTALE;
		else {
			memcpy(bits, buf + hl, nb);
			r = 1;
		}
	} else {
		/* extract.c before the one record: "<sha256> <artifact> <next chunk>\n",
		 * every chunk before next in place. */
		char h2[BN_SHA256_HEX];
		size_t art = 0, next = 0;
		if (sscanf(buf, "%64s %zu %zu", h2, &art, &next) != 3 || art >= b->m->n_artifacts ||
		    next > b->m->n_chunks)
			r = -EBADMSG;
		else if (strcmp(h2, hex) != 0)
			r = -ESTALE;
		else {
			memset(bits, 0, nb);
			for (size_t i = 0; i < next; i++)
				set_bit(bits, i);
			r = 1;
		}
	}
	free(buf);
	return r;
}

int bn_xprogress_write(const struct bn_bundle *b, int dfd, const char *name, const uint8_t *bits)
{
	/* The chunks the record claims must be durable before it says so. */
	if (syncfs(dfd) < 0)
		return -errno;
	size_t nb = BN_XPROGRESS_BITS(b), ml = strlen(XP_MAGIC), hl = ml + 64 + 1;
	char *buf = malloc(hl + nb), tmp[256];
	if (!buf)
		return -ENOMEM;
	char hex[BN_SHA256_HEX];
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, hex);
	memcpy(buf, XP_MAGIC, ml);
	memcpy(buf + ml, hex, 64);
	buf[hl - 1] = '\n';
	memcpy(buf + hl, bits, nb);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	int r = 0, fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		r = -errno;
	if (r == 0)
		r = bn_write_all(fd, buf, hl + nb);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r == 0 && renameat(dfd, tmp, dfd, name) < 0)
		r = -errno;
	if (r == 0 && fsync(dfd) < 0)
		r = -errno;
	free(buf);
	return r;
}

/* ---- the tree -------------------------------------------------------- */

/* On resume: an existing entry must be of its type (and is kept). */
static int mkdir_resume(int dfd, const char *path, bool resuming)
{
	if (mkdirat(dfd, path, 0700) == 0)
		return 0;
	struct stat st;
	if (errno != EEXIST || !resuming)
		return -errno;
	return fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) ? 0 : -EEXIST;
}

int bn_xtree_prepare(const struct bn_xtree *t, bool resuming, struct bn_error *err)
{
	const struct bn_manifest *m = t->b->m;
	int fl = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (resuming ? 0 : O_EXCL);
	for (size_t i = 0; i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		int q = mkdir_resume(t->fd, a->name, resuming);
		if (q < 0)
			return bn_fail(err, q, "%s/%s: %s", t->label, a->name, strerror(-q));
		int rfd = openat(t->fd, a->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (rfd < 0)
			return bn_fail(err, -errno, "%s/%s: %s", t->label, a->name, strerror(errno));
		for (size_t j = 0; j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			int r = 0;
			const char *what = "cannot create";
			if (e->type == BN_ENTRY_DIR) {
				r = mkdir_resume(rfd, e->path, resuming);
			} else if (e->type == BN_ENTRY_FILE) {
				/* At full size from the start: unwritten ranges are holes.
				 * (A file kept on resume keeps its bytes; the resumed
				 * tree is hashed whole at the end.) */
				int fd = openat(rfd, e->path, fl, 0600);
				struct stat st;
				if (fd < 0 || fstat(fd, &st) < 0)
					r = -errno;
				else if (!S_ISREG(st.st_mode))
					r = -EEXIST;
				else if ((uint64_t)st.st_size != e->size && ftruncate(fd, (off_t)e->size) < 0)
					r = -errno;
				if (fd >= 0)
					close(fd);
			}
			if (r < 0) {
				close(rfd);
				return bn_fail(err, r, "%s/%s/%s: %s: %s", t->label, a->name, e->path, what, strerror(-r));
			}
		}
		close(rfd);
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	/* Compare against the first byte shifted: a cheap, vectorisable test. */
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

struct fill_ctx {
	const struct bn_xtree *t;
	struct bn_xfill *f;
	int *rootfd; /* per artifact */
	uint64_t done, total, since;
	bool dirty;  /* placed since the last record */
};

/* Worker: writes decoded chunk ci at its files' offsets.  Files are
 * prepared at full size and zero, so all-zero blocks stay holes. */
static int place_chunk(void *ud, size_t ci, const uint8_t *p, size_t n_all, struct bn_error *err)
{
	struct fill_ctx *fc = ud;
	const struct bn_xtree *t = fc->t;
	const struct bn_manifest *m = t->b->m;
	const struct bn_chunk *c = &m->chunks[ci];
	const struct bn_artifact *a = &m->artifacts[c->artifact];
	uint64_t soff = c->soffset, left = n_all;
	ssize_t fi = bn_artifact_file_at(a, soff);
	int rfd = fc->rootfd[c->artifact];
	while (left > 0) {
		if (fi < 0 || (size_t)fi >= a->n_entries)
			return bn_fail(err, -EBADMSG, "%s: chunk %zu: artifact '%s' has more data than files", t->b->dir, ci,
			               a->name);
		const struct bn_entry *e = &a->entries[fi];
		if (e->type != BN_ENTRY_FILE || soff >= e->offset + e->size) {
			fi++;
			continue;
		}
		uint64_t in = soff - e->offset, n = e->offset + e->size - soff;
		if (n > left)
			n = left;
		int fd = -1, r = 0;
		for (uint64_t k = 0; k < n && r == 0; k += HOLE_BLOCK) {
			size_t l = n - k < HOLE_BLOCK ? (size_t)(n - k) : HOLE_BLOCK;
			if (all_zero(p + k, l))
				continue;
			if (fd < 0 && (fd = openat(rfd, e->path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
				r = -errno;
			else
				r = bn_pwrite_all(fd, p + k, l, in + k);
		}
		/* Start writeback early (no waiting): the final sync then finds
		 * little left, and disk time overlaps decoding. */
		if (r == 0 && fd >= 0 && n >= KICK_MIN)
			sync_file_range(fd, (off64_t)in, (off64_t)n, SYNC_FILE_RANGE_WRITE);
		if (fd >= 0)
			close(fd);
		if (r < 0)
			return bn_fail(err, r, "%s/%s/%s: write failed: %s", t->label, a->name, e->path, strerror(-r));
		p += n;
		soff += n;
		left -= n;
		fi++;
	}
	return 0;
}

/* True when no chunk after ci in its volume is still missing. */
static bool volume_rest_done(const struct bn_manifest *m, const uint8_t *bits, size_t ci)
{
	for (size_t k = ci + 1; k < m->n_chunks && m->chunks[k].volume == m->chunks[ci].volume; k++)
		if (!bit(bits, k))
			return false;
	return true;
}

static int record(struct fill_ctx *fc, bool checkpoint, struct bn_error *err)
{
	struct bn_xfill *f = fc->f;
	int r = bn_xprogress_write(fc->t->b, f->pfd, f->pname, f->bits);
	if (r < 0)
		return bn_fail(err, r, "%s: cannot record progress: %s", fc->t->label, strerror(-r));
	fc->since = 0;
	fc->dirty = false;
	if (checkpoint && f->fault)
		bn_fault_point(f->fault);
	return 0;
}

/* Main thread, in chunk order, after the chunk is placed. */
static int fill_sink(void *ud, size_t ci, const uint8_t *data, size_t n, struct bn_error *err)
{
	(void)data;
	struct fill_ctx *fc = ud;
	struct bn_xfill *f = fc->f;
	set_bit(f->bits, ci);
	f->placed++;
	fc->dirty = true;
	fc->done += n;
	fc->since += n;
	if (f->progress)
		f->progress(f->userdata, fc->done, fc->total);
	if (f->pfd >= 0 && ((f->checkpoint_bytes && fc->since >= f->checkpoint_bytes) ||
	                    (f->per_volume && volume_rest_done(fc->t->b->m, f->bits, ci)))) {
		int r = record(fc, true, err);
		if (r < 0)
			return r;
	}
	if (f->cancel && *f->cancel)
		return bn_fail(err, -EINTR, "interrupted");
	return 0;
}

int bn_xtree_fill(const struct bn_xtree *t, struct bn_xfill *f, struct bn_error *err)
{
	struct bn_bundle *b = t->b;
	const struct bn_manifest *m = b->m;
	struct fill_ctx fc = {.t = t, .f = f};
	struct bn_chunk_reader cr;
	struct bn_rpipe *pipe = NULL;
	f->placed = 0;
	fc.rootfd = malloc((m->n_artifacts ? m->n_artifacts : 1) * sizeof *fc.rootfd);
	if (!fc.rootfd)
		return bn_fail(err, -ENOMEM, "out of memory");
	size_t opened = 0;
	int r = 0;
	for (; opened < m->n_artifacts; opened++) {
		const char *name = m->artifacts[opened].name;
		fc.rootfd[opened] = openat(t->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fc.rootfd[opened] < 0) {
			r = bn_fail(err, -errno, "%s/%s: %s", t->label, name, strerror(errno));
			break;
		}
	}
	for (size_t i = 0; i < m->n_chunks; i++) {
		fc.total += m->chunks[i].usize;
		if (bit(f->bits, i))
			fc.done += m->chunks[i].usize;
	}
	bool cr_init = false;
	if (r == 0) {
		r = bn_chunk_reader_init(&cr, b, err);
		cr_init = true;
	}
	if (r == 0)
		r = bn_rpipe_new(b, true, &pipe, err);
	if (r == 0) {
		bn_rpipe_set_place(pipe, place_chunk, &fc, f->bits);
		if (f->cancel && *f->cancel)
			r = bn_fail(err, -EINTR, "interrupted");
	}
	if (r == 0)
		r = bn_rpipe_run(pipe, &cr, 0, m->n_chunks, fill_sink, &fc, err);
	/* The workers are idle now (bn_rpipe_run waits for them). */
	if (r == 0 && f->pfd >= 0 && fc.dirty)
		r = record(&fc, false, err);
	bn_rpipe_free(pipe);
	if (cr_init)
		bn_chunk_reader_release(&cr);
	for (size_t i = 0; i < opened; i++)
		close(fc.rootfd[i]);
	free(fc.rootfd);
	return r;
}

static int rehash_file(const struct bn_xtree *t, int fd, const struct bn_artifact *a, const struct bn_entry *e,
                       uint8_t *buf, struct bn_sha256 *sha, struct bn_error *err)
{
	bn_sha256_reset(sha);
	for (uint64_t off = 0; off < e->size;) {
		size_t l = e->size - off < (1u << 20) ? (size_t)(e->size - off) : (1u << 20);
		if (bn_cancelled())
			return bn_fail(err, -EINTR, "interrupted");
		int r = bn_pread_all(fd, buf, l, off);
		if (r < 0)
			return bn_fail(err, r, "%s/%s/%s: %s", t->label, a->name, e->path, strerror(-r));
		bn_sha256_update(sha, buf, l);
		off += l;
	}
	uint8_t h[BN_SHA256_LEN];
	bn_sha256_final(sha, h);
	if (memcmp(h, e->sha256, BN_SHA256_LEN) != 0)
		return bn_fail(err, -EBADMSG, "%s/%s/%s: sha256 does not match the signed manifest", t->label, a->name,
		               e->path);
	return 0;
}

/* A symlink made by an earlier, killed finish is fine when it is the same. */
static int make_symlink(int rfd, const struct bn_entry *e)
{
	if (symlinkat(e->target, rfd, e->path) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	char have[4097];
	ssize_t n = readlinkat(rfd, e->path, have, sizeof have - 1);
	if (n < 0)
		return errno == EINVAL ? -EEXIST : -errno;
	have[n] = '\0';
	return strcmp(have, e->target) == 0 ? 0 : -EEXIST;
}

int bn_xtree_finish(const struct bn_xtree *t, bool rehash, struct bn_error *err)
{
	const struct bn_manifest *m = t->b->m;
	uint8_t *buf = rehash ? malloc(1u << 20) : NULL;
	struct bn_sha256 *sha = rehash ? bn_sha256_new() : NULL;
	int r = rehash && (!buf || !sha) ? bn_fail(err, -ENOMEM, "out of memory") : 0;
	for (size_t i = 0; r == 0 && i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		int rfd = openat(t->fd, a->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (rfd < 0) {
			r = bn_fail(err, -errno, "%s/%s: %s", t->label, a->name, strerror(errno));
			break;
		}
		/* Modes are normalised whatever the manifest says (finding 3 of issue 13). */
		for (size_t j = 0; r == 0 && j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			if (e->type != BN_ENTRY_FILE)
				continue;
			int fd = openat(rfd, e->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			struct stat st;
			if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
				int q = fd < 0 ? -errno : -EIO;
				r = bn_fail(err, q, "%s/%s/%s: %s", t->label, a->name, e->path,
				            q == -EIO ? "not the prepared file" : strerror(-q));
			}
			if (r == 0 && rehash)
				r = rehash_file(t, fd, a, e, buf, sha, err);
			if (r == 0 && fchmod(fd, bn_entry_mode(e->mode, false)) < 0)
				r = bn_fail(err, -errno, "%s/%s/%s: %s", t->label, a->name, e->path, strerror(errno));
			if (fd >= 0)
				close(fd);
			if (r == 0 && bn_cancelled())
				r = bn_fail(err, -EINTR, "interrupted");
		}
		for (size_t j = 0; r == 0 && j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			int q = e->type == BN_ENTRY_SYMLINK ? make_symlink(rfd, e) : 0;
			if (q < 0)
				r = bn_fail(err, q, "%s/%s/%s: cannot create symlink: %s", t->label, a->name, e->path,
				            strerror(-q));
		}
		/* Directories last and deepest first, so read-only modes do not block. */
		for (size_t j = a->n_entries; r == 0 && j-- > 0;) {
			const struct bn_entry *e = &a->entries[j];
			if (e->type != BN_ENTRY_DIR)
				continue;
			int dfd = openat(rfd, e->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (dfd < 0 || fchmod(dfd, bn_entry_mode(e->mode, true)) < 0)
				r = bn_fail(err, -errno, "%s/%s/%s: %s", t->label, a->name, e->path, strerror(errno));
			if (dfd >= 0)
				close(dfd);
		}
		if (r == 0 && fchmod(rfd, 0755) < 0)
			r = bn_fail(err, -errno, "%s/%s: %s", t->label, a->name, strerror(errno));
		close(rfd);
	}
	/* One sync for the whole tree: every file's data and every entry. */
	if (r == 0 && (fchmod(t->fd, 0755) < 0 || syncfs(t->fd) < 0 || fsync(t->fd) < 0))
		r = bn_fail(err, -errno, "%s: %s", t->label, strerror(errno));
	free(buf);
	bn_sha256_free(sha);
	return r;
}

/* ---- bn_bundle_extract ----------------------------------------------- */

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
	const char *at = bn_tunables()->crash_at;
	if (at && !strcmp(at, name))
		raise(SIGKILL);
}

#define PROGRESS_FILE ".agkit-progress"
#define CHECKPOINT_BYTES (64ull << 20)

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
	uint8_t *bits = NULL;
	int r = 0, tfd = -1;
	bool resuming = false;
	if (!parent)
		return bn_fail(err, -ENOMEM, "out of memory");
	r = bn_check_files(b, err);
	if (r == 0)
		r = bn_layout_require_complete(b, err); /* not from a single medium */
	if (r == 0 && b->m->base && !b->base_dir) {
		char base[BN_ERROR_MAX / 2];
		bn_bundle_base_describe(b->m, base, sizeof base);
		r = bn_fail(err, -EBADMSG, "%s: delta bundle: needs its base %s, which is not present", b->dir, base);
	}
	if (r < 0)
		goto out;
	bits = calloc(BN_XPROGRESS_BITS(b) + 1, 1);
	if (!bits) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (o->work_dir) {
		tmp = strdup(o->work_dir);
		if (!tmp) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		/* A record of another bundle, or an unreadable one: start over. */
		tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (tfd >= 0 && bn_xprogress_read(b, tfd, PROGRESS_FILE, bits) == 1) {
			resuming = true;
		} else {
			if (tfd >= 0)
				close(tfd);
			tfd = -1;
			memset(bits, 0, BN_XPROGRESS_BITS(b));
			bn_rm_rf(tmp);
		}
	}
	if (!resuming) {
		/* skip_space_check (AGKIT_SKIP_SPACE_CHECK=1 in the tools) is a test
		 * knob: it lets the disk-full tests reach a real ENOSPC in the
		 * middle of writing. */
		r = bn_tunables()->skip_space_check ? 0 : check_space(b, parent, err);
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
	struct bn_xtree t = {.b = b, .fd = tfd, .label = tmp};
	/* Resuming, the tree is completed where it lacks entries (a killed
	 * earlier release made files only as it reached them). */
	r = bn_xtree_prepare(&t, resuming, err);
	/* The first record: from here on the prepared tree is resumable. */
	if (r == 0 && o->work_dir && !resuming && (r = bn_xprogress_write(b, tfd, PROGRESS_FILE, bits)) < 0)
		r = bn_fail(err, r, "%s: cannot record progress: %s", tmp, strerror(-r));
	if (r < 0)
		goto out;
	for (size_t i = 0; i < b->m->n_chunks; i++)
		o->resumed_chunks += bit(bits, i);
	struct bn_xfill f = {.bits = bits,
	                     .pfd = o->work_dir ? tfd : -1,
	                     .pname = PROGRESS_FILE,
	                     .checkpoint_bytes = CHECKPOINT_BYTES,
	                     .fault = "extract:checkpoint",
	                     .cancel = o->cancel,
	                     .progress = o->progress,
	                     .userdata = o->userdata};
	/* Tests shrink the checkpoint interval to exercise resume on small bundles. */
	if (bn_tunables()->checkpoint_bytes > 0)
		f.checkpoint_bytes = bn_tunables()->checkpoint_bytes;
	r = bn_xtree_fill(&t, &f, err);
	/* Every chunk matched its signed hash, and chunks tile each file
	 * (docs/FORMAT.md section 5), so a fresh tree's files are the signed
	 * ones; a resumed tree's files are hashed again whole (bytes written
	 * before the kill were not seen by this run). */
	if (r == 0)
		r = bn_xtree_finish(&t, resuming, err);
	if (r == 0 && o->work_dir && unlinkat(tfd, PROGRESS_FILE, 0) < 0)
		r = bn_fail(err, -errno, "%s/%s: %s", tmp, PROGRESS_FILE, strerror(errno));
	if (r == 0 && fsync(tfd) < 0)
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
	if (r < 0 && tmp)
		bn_rm_rf(tmp);
	free(bits);
	free(tmp);
	free(parent);
	return r;
}
