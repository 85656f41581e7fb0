/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verifying a bundle's data: the files the signed manifest names and nothing
 * else, each chunk's stored bytes against their signed sha256 (before
 * anything decodes them), then the decoded bytes against theirs; the
 * parallel read pipeline (bn_rpipe_*) that verify and every extraction path
 * run chunks through; bn_bundle_verify.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zstd.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "pool.h"
#include "reader_internal.h"
#include "coding.h"

/* Ring budget for chunks in flight (peak RSS bound). */
#define RING_BUDGET (160u << 20)

int bn_check_files(struct bn_bundle *b, struct bn_error *err)
{
	const struct bn_manifest *m = b->m;
	if (b->layout)
		return bn_layout_check_files(b, err); /* parity or media (layout.c) */
	DIR *d = opendir(b->dir);
	if (!d)
		return bn_fail(err, -errno, "%s: %s", b->dir, strerror(errno));
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "manifest.json") || !strcmp(n, "SHA256SUMS") ||
		    !strcmp(n, "signatures"))
			continue;
		unsigned idx = 0;
		char tail;
		if (sscanf(n, "vol-%5u.agv%c", &idx, &tail) == 1 && idx >= 1 && idx <= m->n_volumes &&
		    !strcmp(n, m->volumes[idx - 1].name))
			continue;
		r = bn_fail(err, -EBADMSG, "%s/%s: unexpected file in bundle (not named by the signed manifest)", b->dir, n);
		break;
	}
	closedir(d);
	if (r < 0)
		return r;
	for (size_t i = 0; i < m->n_volumes; i++) {
		char *p = bn_path_join(b->dir, m->volumes[i].name);
		if (!p)
			return bn_fail(err, -ENOMEM, "out of memory");
		struct stat st;
		if (lstat(p, &st) < 0) {
			r = errno == ENOENT
			            ? bn_fail(err, -EBADMSG, "%s: missing (volume %zu of %zu named in the signed manifest)", p,
			                      i + 1, m->n_volumes)
			            : bn_fail(err, -errno, "%s: %s", p, strerror(errno));
		} else if (!S_ISREG(st.st_mode)) {
			r = bn_fail(err, -EBADMSG, "%s: not a regular file", p);
		} else if ((uint64_t)st.st_size != m->volumes[i].size) {
			r = bn_fail(err, -EBADMSG, "%s: size is %lld bytes, the signed manifest says %" PRIu64 " (%s)", p,
			            (long long)st.st_size, m->volumes[i].size,
			            (uint64_t)st.st_size < m->volumes[i].size ? "truncated" : "extended");
		}
		free(p);
		if (r < 0)
			return r;
	}
	return 0;
}


int bn_chunk_check(const struct bn_bundle *b, size_t ci, const uint8_t *buf, struct bn_error *err)
{
	const struct bn_chunk *c = &b->m->chunks[ci];
	uint8_t h[BN_SHA256_LEN];
	bn_sha256(buf, c->csize, h);
	if (bn_chunk_reused(c)) {
		/* The base slot is not trusted: its bytes against the delta's signed hash. */
		if (memcmp(h, c->sha256, BN_SHA256_LEN) == 0)
			return 0;
		char what[BN_ERROR_MAX / 2], base[BN_ERROR_MAX / 2];
		bn_describe_chunk(b, ci, what, sizeof what);
		bn_bundle_base_describe(b->m, base, sizeof base);
		return bn_fail(
		    err, -EBADMSG,
		    "%s: %s: base content does not match the delta's signed sha256; the base %s in %s was modified",
		    b->dir, what, base, b->base_dir ? b->base_dir : "(none)");
	}
	if (memcmp(h, c->csha256, BN_SHA256_LEN) != 0) {
		char what[BN_ERROR_MAX];
		bn_describe_chunk(b, ci, what, sizeof what);
		return bn_fail(err, -EBADMSG, "%s/%s: sha256 does not match the signed manifest", b->dir, what);
	}
	/* A zstd chunk is exactly one frame that declares its content size; a
	 * byte-grouped chunk's stream table must add up.  Checking the headers
	 * here lets verify catch a manifest whose sizes lie without decoding. */
	if (!bn_coding_check(c->coding, buf, c->csize, c->usize)) {
		char what[BN_ERROR_MAX];
		bn_describe_chunk(b, ci, what, sizeof what);
		return bn_fail(err, -EBADMSG, "%s/%s: %s does not match the declared sizes (%u bytes)", b->dir, what,
		               c->coding == BN_CODING_ZSTD ? "zstd frame" : "byte-group stream table", c->usize);
	}
	return 0;
}

/* ---- the chunk pipeline shared by verify and extract ------------------ */

struct rslot {
	struct bn_job job;    /* first: the pool hands back this pointer */
	size_t ci;
	uint8_t *cbuf;        /* stored bytes */
	uint8_t *ubuf;        /* decoded bytes (decode only) */
	uint8_t *scratch;     /* byte-group streams, allocated on first use */
	ZSTD_DCtx *dctx;
	bool skip;            /* not on this medium (verify of a single medium) */
	int fetch_r;          /* read error (main thread) */
	int r;                /* check/decode error (worker) */
	struct bn_error e;
};

struct bn_rpipe {
	struct bn_bundle *b;
	bool decode;
	bn_chunk_sink place;     /* optional: runs on the worker after decoding */
	void *place_ud;
	const uint8_t *done;     /* optional: one bit per chunk, set: skipped */
	struct bn_pool *pool;
	struct rslot *slots;
	unsigned n_slots;
};

int bn_chunk_decode(const struct bn_bundle *b, size_t ci, ZSTD_DCtx *dctx, const uint8_t *cbuf, uint8_t *ubuf,
                    uint8_t **scratch, struct bn_error *err)
{
	const struct bn_chunk *c = &b->m->chunks[ci];
	char what[BN_ERROR_MAX];
	if (bn_chunk_reused(c)) {
		/* Checked whole by bn_chunk_check against the decoded sha256. */
		memcpy(ubuf, cbuf, c->usize);
		return 0;
	}
	if (c->coding != BN_CODING_ZSTD && !*scratch) {
		*scratch = malloc(b->m->chunk_size);
		if (!*scratch)
			return bn_fail(err, -ENOMEM, "out of memory");
	}
	if (bn_coding_decode(dctx, c->coding, cbuf, c->csize, ubuf, c->usize, *scratch) < 0) {
		bn_describe_chunk(b, ci, what, sizeof what);
		return bn_fail(err, -EBADMSG, "%s/%s: does not decode to its declared %u bytes", b->dir, what, c->usize);
	}
	uint8_t h[BN_SHA256_LEN];
	bn_sha256(ubuf, c->usize, h);
	if (memcmp(h, c->sha256, BN_SHA256_LEN) != 0) {
		bn_describe_chunk(b, ci, what, sizeof what);
		return bn_fail(err, -EBADMSG, "%s/%s: decoded sha256 does not match the signed manifest", b->dir, what);
	}
	return 0;
}

/* Worker: the stored bytes' hash is compared BEFORE anything decodes them;
 * then the decoded bytes' hash. */
static void check_chunk(struct bn_job *job, void *ctx)
{
	struct rslot *sl = (struct rslot *)job;
	struct bn_rpipe *p = ctx;
	sl->r = bn_chunk_check(p->b, sl->ci, sl->cbuf, &sl->e);
	if (sl->r < 0 || !p->decode)
		return;
	sl->r = bn_chunk_decode(p->b, sl->ci, sl->dctx, sl->cbuf, sl->ubuf, &sl->scratch, &sl->e);
	if (sl->r == 0 && p->place)
		sl->r = p->place(p->place_ud, sl->ci, sl->ubuf, p->b->m->chunks[sl->ci].usize, &sl->e);
}

void bn_rpipe_set_place(struct bn_rpipe *p, bn_chunk_sink place, void *ud, const uint8_t *done)
{
	p->place = place;
	p->place_ud = ud;
	p->done = done;
}

void bn_rpipe_free(struct bn_rpipe *p)
{
	if (!p)
		return;
	bn_pool_free(p->pool);
	for (unsigned i = 0; p->slots && i < p->n_slots; i++) {
		free(p->slots[i].cbuf);
		free(p->slots[i].ubuf);
		free(p->slots[i].scratch);
		ZSTD_freeDCtx(p->slots[i].dctx);
	}
	free(p->slots);
	free(p);
}

int bn_rpipe_new(struct bn_bundle *b, bool decode, struct bn_rpipe **ret, struct bn_error *err)
{
	struct bn_rpipe *p = calloc(1, sizeof *p);
	if (!p)
		return bn_fail(err, -ENOMEM, "out of memory");
	p->b = b;
	p->decode = decode;
	unsigned threads = bn_threads_resolve(b->threads);
	size_t cb = ZSTD_compressBound(b->m->chunk_size);
	size_t slot_bytes = cb + (decode ? (size_t)b->m->chunk_size * 2 + (256u << 10) : 0);
	p->n_slots = bn_ring_slots(threads, slot_bytes, RING_BUDGET);
	p->slots = calloc(p->n_slots, sizeof *p->slots);
	int r = 0;
	if (!p->slots) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < p->n_slots; i++) {
		struct rslot *sl = &p->slots[i];
		sl->cbuf = malloc(cb);
		if (decode) {
			sl->ubuf = malloc(b->m->chunk_size);
			sl->dctx = ZSTD_createDCtx();
		}
		if (!sl->cbuf || (decode && (!sl->ubuf || !sl->dctx))) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
		/* Bound the decoder's window: a chunk never needs more than its own size. */
		if (decode)
			ZSTD_DCtx_setParameter(sl->dctx, ZSTD_d_windowLogMax, 27);
	}
	r = bn_pool_new(threads, check_chunk, p, &p->pool);
	if (r < 0) {
		r = bn_fail(err, r, "cannot start worker threads: %s", strerror(-r));
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	bn_rpipe_free(p);
	return r;
}

int bn_rpipe_run(struct bn_rpipe *p, struct bn_chunk_reader *cr, size_t first, size_t end, bn_chunk_sink sink,
                 void *ud, struct bn_error *err)
{
	struct bn_bundle *b = p->b;
	size_t next_read = first, next_out = first, rebuilt = (size_t)-1;
	bool stop_reading = false;
	int r = 0;
	/* Hot loop (verify, extract). */
	while (next_out < end) {
		if ((r = bn_check_cancel(err)) < 0)
			break; /* SIGINT/SIGTERM: the workers are drained below */
		/* Keep the ring full: reads and the volume hash stay on this thread,
		 * in order; chunk hashes and decoding run on the workers. */
		while (!stop_reading && next_read < end && next_read - next_out < p->n_slots) {
			struct rslot *sl = &p->slots[(next_read - first) % p->n_slots];
			sl->ci = next_read;
			sl->r = 0;
			/* A single medium of a set: other media's volumes are not here;
			 * chunks a resumed run already has are not read again. */
			const struct bn_chunk *nc = &b->m->chunks[next_read];
			sl->skip = (bn_chunk_reused(nc) ? !b->base_dir : !bn_layout_in_view(b, nc->volume)) ||
			           (p->done && (p->done[next_read / 8] >> (next_read % 8) & 1));
			sl->fetch_r = sl->skip ? 0 : bn_chunk_fetch(cr, next_read, sl->cbuf, &sl->e);
			if (sl->fetch_r < 0)
				stop_reading = true; /* reported when its turn comes */
			else if (!sl->skip)
				bn_pool_submit(p->pool, &sl->job);
			next_read++;
		}
		struct rslot *sl = &p->slots[(next_out - first) % p->n_slots];
		if (sl->skip) {
			next_out++;
			continue;
		}
		if (sl->fetch_r == 0)
			bn_pool_wait(p->pool, &sl->job);
		/* Errors in chunk order, and for one chunk in the order a sequential
		 * reader meets them: read, stored hash, decode, placement. */
		if (sl->fetch_r < 0 || sl->r < 0) {
			r = sl->fetch_r < 0 ? sl->fetch_r : sl->r;
			if (err)
				*err = sl->e;
		} else {
			const struct bn_chunk *c = &b->m->chunks[sl->ci];
			r = sink(ud, sl->ci, p->decode ? sl->ubuf : sl->cbuf, p->decode ? c->usize : c->csize, err);
		}
		if (r < 0 && r != -EINTR && sl->ci < end) {
			/* With parity, a volume that fails a check or a read is rebuilt
			 * (and verified whole), and reading resumes at this chunk from
			 * the rebuilt copy; chunks before it passed their own hashes. */
			size_t v = b->m->chunks[sl->ci].volume;
			struct bn_error e2 = {0};
			int q =
			    v != rebuilt && !bn_chunk_reused(&b->m->chunks[sl->ci]) ? bn_layout_rebuild(b, v, &e2) : 0;
			if (q < 0 && err)
				*err = e2;
			if (q < 0)
				r = q;
			if (q > 0) {
				for (size_t k = next_out + 1; k < next_read; k++) {
					struct rslot *o = &p->slots[(k - first) % p->n_slots];
					if (!o->skip && o->fetch_r == 0)
						bn_pool_wait(p->pool, &o->job);
				}
				rebuilt = v;
				bn_chunk_reader_reopen(cr);
				next_read = next_out;
				stop_reading = false;
				r = 0;
				/* The ring restarts at next_out: keep slot positions aligned. */
				first = next_out - ((next_out - first) % p->n_slots);
				continue;
			}
		}
		next_out++;
		if (r < 0)
			break;
	}
	/* Workers may still hold later slots: let them finish before the caller
	 * frees or reuses anything. */
	for (; next_out < next_read; next_out++) {
		struct rslot *o = &p->slots[(next_out - first) % p->n_slots];
		if (!o->skip && o->fetch_r == 0)
			bn_pool_wait(p->pool, &o->job);
	}
	return r;
}

struct verify_ctx {
	bn_progress_fn progress;
	void *userdata;
	uint64_t done, total;
};

static int verify_sink(void *ud, size_t ci, const uint8_t *data, size_t n, struct bn_error *err)
{
	(void)ci, (void)data, (void)err;
	struct verify_ctx *v = ud;
	v->done += n;
	if (v->progress)
		v->progress(v->userdata, v->done, v->total);
	return 0;
}

int bn_bundle_verify(struct bn_bundle *b, bn_progress_fn progress, void *userdata, struct bn_error *err)
{
	int r = bn_check_files(b, err);
	if (r < 0)
		return r;
	struct bn_chunk_reader cr;
	struct bn_rpipe *p = NULL;
	struct verify_ctx v = {.progress = progress, .userdata = userdata};
	for (size_t i = 0; i < b->m->n_volumes; i++)
		v.total += b->m->volumes[i].size;
	r = bn_chunk_reader_init(&cr, b, err);
	if (r == 0)
		r = bn_rpipe_new(b, false, &p, err);
	if (r == 0)
		r = bn_rpipe_run(p, &cr, 0, b->m->n_chunks, verify_sink, &v, err);
	bn_rpipe_free(p);
	bn_chunk_reader_release(&cr);
	if (r == 0)
		r = bn_layout_verify_rest(b, err); /* parity volumes not yet checked */
	return r;
}
