/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The volume writer of the pack pipeline: one thread takes coded chunks in
 * submission order, records them in the manifest, appends them to the open
 * volume (a chunk never spans two), hashes each volume as it is written and
 * starts writeback early.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "writer_internal.h"

/* Bytes written between writeback kicks (sync_file_range). */
#define WRITEBACK_STEP (8u << 20)

int bn_volume_close(struct bn_writer *w, struct bn_error *err)
{
	if (w->vfd < 0)
		return 0;
	struct bn_volume *v = &w->m.volumes[w->m.n_volumes - 1];
	bn_sha256_final(w->vsha, v->sha256);
	int r = fsync(w->vfd) < 0 ? -errno : 0;
	if (close(w->vfd) < 0 && r == 0)
		r = -errno;
	w->vfd = -1;
	if (r < 0)
		return bn_fail(err, r, "%s: cannot write volume: %s", v->name, strerror(-r));
	return 0;
}

int bn_volume_rewind(struct bn_writer *w, size_t n_volumes, uint64_t size, bool reopen, struct bn_error *err)
{
	if (w->vfd >= 0)
		close(w->vfd); /* its bytes are truncated or unlinked below */
	w->vfd = -1;
	while (w->m.n_volumes > n_volumes) {
		struct bn_volume *v = &w->m.volumes[w->m.n_volumes - 1];
		char *path = bn_path_join(w->o.dir, v->name);
		if (!path)
			return bn_fail(err, -ENOMEM, "out of memory");
		int r = unlink(path) < 0 && errno != ENOENT ? -errno : 0;
		free(path);
		if (r < 0)
			return bn_fail(err, r, "%s/%s: cannot remove volume: %s", w->o.dir, v->name, strerror(-r));
		memset(v, 0, sizeof *v);
		w->m.n_volumes--;
	}
	if (!reopen || n_volumes == 0)
		return 0;
	struct bn_volume *v = &w->m.volumes[n_volumes - 1];
	char *path = bn_path_join(w->o.dir, v->name);
	if (!path)
		return bn_fail(err, -ENOMEM, "out of memory");
	int fd = open(path, O_RDWR | O_CLOEXEC);
	free(path);
	int r = fd < 0 ? -errno : 0;
	if (r == 0 && (ftruncate(fd, (off_t)size) < 0 || lseek(fd, (off_t)size, SEEK_SET) < 0))
		r = -errno;
	/* The volume hash again from its first size bytes, read back through a
	 * slot's buffer (no chunk is in flight, so the slots are free). */
	bn_sha256_reset(w->vsha);
	uint8_t *buf = w->slots[0].ubuf;
	for (uint64_t off = 0; r == 0 && off < size;) {
		size_t n = size - off < w->o.chunk_size ? (size_t)(size - off) : w->o.chunk_size;
		r = bn_pread_all(fd, buf, n, off);
		if (r == 0)
			bn_sha256_update(w->vsha, buf, n);
		off += n;
	}
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return bn_fail(err, r, "%s/%s: cannot rewind volume: %s", w->o.dir, v->name, strerror(-r));
	}
	v->size = size;
	w->vfd = fd;
	w->kicked = size;
	return 0;
}

static int open_volume(struct bn_writer *w, struct bn_error *err)
{
	int r = bn_writer_grow((void **)&w->m.volumes, &w->cap_volumes, w->m.n_volumes + 1, sizeof *w->m.volumes);
	if (r < 0)
		return bn_fail(err, r, "out of memory");
	if (w->m.n_volumes >= BN_MAX_VOLUMES)
		return bn_fail(err, -EFBIG, "more than %u volumes; use a larger --volume-size", BN_MAX_VOLUMES);
	struct bn_volume *v = &w->m.volumes[w->m.n_volumes];
	memset(v, 0, sizeof *v);
	bn_volume_name(w->m.n_volumes, v->name);
	char *path = bn_path_join(w->o.dir, v->name);
	if (!path)
		return bn_fail(err, -ENOMEM, "out of memory");
	w->vfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	r = w->vfd < 0 ? -errno : 0;
	free(path);
	if (r < 0)
		return bn_fail(err, r, "%s/%s: cannot create volume: %s", w->o.dir, v->name, strerror(-r));
	w->m.n_volumes++;
	w->kicked = 0;
	bn_sha256_reset(w->vsha);
	return 0;
}

/* Writes the oldest chunk in flight: waits for its worker, then appends it to
 * the manifest and the current volume.  Only this thread touches those, in
 * submission order, so the bytes do not depend on the thread count. */
static int drain_one(struct bn_writer *w, struct bn_error *err)
{
	struct wslot *sl = &w->slots[w->oldest];
	bn_pool_wait(w->pool, &sl->job);
	w->oldest = (w->oldest + 1) % w->n_slots;
	if (sl->err < 0)
		return bn_fail(err, sl->err, "zstd: cannot compress a chunk");
	if (w->m.n_chunks >= BN_MAX_CHUNKS)
		return bn_fail(err, -EFBIG, "more than %u chunks; use a larger chunk size", BN_MAX_CHUNKS);
	int r = bn_writer_grow((void **)&w->m.chunks, &w->cap_chunks, w->m.n_chunks + 1, sizeof *w->m.chunks);
	if (r < 0)
		return bn_fail(err, r, "out of memory");
	size_t cl = sl->clen;
	struct bn_chunk *c = &w->m.chunks[w->m.n_chunks];
	memset(c, 0, sizeof *c);
	c->artifact = sl->artifact;
	c->usize = (uint32_t)sl->ulen;
	c->csize = (uint32_t)cl;
	/* Chunk-level reuse: a chunk the base has, inside one of its files
	 * (same boundaries: per tensor run, or content-defined). */
	const struct bchunk *bc = w->n_bchunks ? bn_writer_find_bchunk(w, sl->sha256, c->usize) : NULL;
	if (bc && !sl->reuse) {
		sl->reuse = true;
		sl->bref = bc->bref;
		sl->boffset = bc->boffset;
	}
	if (sl->reuse) {
		/* In the base's tree, not in a volume. */
		c->coding = BN_CODING_BASE;
		c->csize = c->usize;
		c->volume = UINT32_MAX;
		c->bref = sl->bref;
		c->boffset = sl->boffset;
		memcpy(c->sha256, sl->sha256, BN_SHA256_LEN);
		w->m.n_chunks++;
		return 0;
	}
	c->coding = sl->coding;
	memcpy(c->sha256, sl->sha256, BN_SHA256_LEN);
	memcpy(c->csha256, sl->csha256, BN_SHA256_LEN);
	/* A chunk never spans two volumes. */
	if (w->vfd >= 0 && w->m.volumes[w->m.n_volumes - 1].size + cl > w->o.volume_size) {
		r = bn_volume_close(w, err);
		if (r < 0)
			return r;
	}
	if (w->vfd < 0) {
		r = open_volume(w, err);
		if (r < 0)
			return r;
	}
	struct bn_volume *v = &w->m.volumes[w->m.n_volumes - 1];
	r = bn_write_all(w->vfd, sl->cbuf, cl);
	if (r < 0)
		return bn_fail(err, r, "%s/%s: write failed: %s", w->o.dir, v->name, strerror(-r));
	bn_sha256_update(w->vsha, sl->cbuf, cl);
	c->volume = (uint32_t)(w->m.n_volumes - 1);
	c->voffset = v->size;
	v->size += cl;
	/* Start writeback of what is written so far (without waiting), so the
	 * fsync at the volume's end finds little left and disk time overlaps the
	 * coding instead of following it. */
	if (v->size - w->kicked >= WRITEBACK_STEP) {
		sync_file_range(w->vfd, (off64_t)w->kicked, (off64_t)(v->size - w->kicked), SYNC_FILE_RANGE_WRITE);
		w->kicked = v->size;
	}
	w->m.n_chunks++;
	return 0;
}

void *bn_volume_sink_main(void *arg)
{
	struct bn_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->written == w->submitted && !w->sink_stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->written == w->submitted)
			break;
		bool skip = w->sink_r < 0;
		pthread_mutex_unlock(&w->mu);
		struct bn_error e = {0};
		int r = 0;
		if (skip) { /* after a failure: only release the slots */
			bn_pool_wait(w->pool, &w->slots[w->oldest].job);
			w->oldest = (w->oldest + 1) % w->n_slots;
		} else {
			r = drain_one(w, &e);
		}
		pthread_mutex_lock(&w->mu);
		if (r < 0 && w->sink_r == 0) {
			w->sink_r = r;
			w->sink_err = e;
		}
		w->written++;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Waits until at most `left` chunks are unwritten; returns the writer's first error. */
int bn_volume_wait_written(struct bn_writer *w, uint64_t left, struct bn_error *err)
{
	pthread_mutex_lock(&w->mu);
	while (w->submitted - w->written > left && w->sink_r == 0)
		pthread_cond_wait(&w->cv, &w->mu);
	int r = w->sink_r;
	if (r < 0 && err)
		*err = w->sink_err;
	pthread_mutex_unlock(&w->mu);
	return r;
}

int bn_volume_drain_all(struct bn_writer *w, struct bn_error *err)
{
	return bn_volume_wait_written(w, 0, err);
}
