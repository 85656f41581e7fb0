/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/writer.h"
#include "pool.h"
#include "coding.h"
#include "writer_internal.h"

/* Ring budget: slots in flight never hold more than this (peak RSS bound). */
#define RING_BUDGET (160u << 20)
/* Content-defined matching against the base's files (docs/FORMAT.md section
 * 12.3): pieces of CDC_MIN..CDC_MAX bytes cut where the gear hash's top
 * CDC_BITS bits are zero; files of CDC_FROM..CDC_FILE_MAX bytes. */
#define CDC_MIN      (4u << 10)
#define CDC_MAX      (64u << 10)
#define CDC_BITS     13
#define CDC_FROM     (64u << 10)
#define CDC_FILE_MAX (256u << 20)

struct scan_item {
	char *path;   /* relative */
	char *src;    /* absolute or as given */
	uint8_t type;
	uint32_t mode;
	uint64_t size;
	char *target;
};

struct scan {
	struct scan_item *items;
	size_t n, cap;
};

static void warnf(struct bn_writer *w, const char *fmt, ...) BN_PRINTF(2, 3);
static void warnf(struct bn_writer *w, const char *fmt, ...)
{
	if (!w->o.warn)
		return;
	char buf[BN_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	w->o.warn(w->o.warn_userdata, buf);
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int n;
		if (*p < 0x80)
			n = 0;
		else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2)
			n = 1;
		else if ((*p & 0xf0) == 0xe0)
			n = 2;
		else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4)
			n = 3;
		else
			return false;
		uint32_t cp = n == 0 ? *p : (uint32_t)(*p & (0x3f >> n));
		p++;
		for (int i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* Worker: hash and code one chunk.  Touches only its slot. */
static void code_chunk(struct bn_job *job, void *ctx)
{
	struct wslot *sl = (struct wslot *)job;
	struct bn_writer *w = ctx;
	sl->err = 0;
	if (sl->reuse)
		return;
	bn_sha256(sl->ubuf, sl->ulen, sl->sha256);
	if (sl->group > 1 && !sl->scratch)
		sl->scratch = malloc(w->o.chunk_size);
	int64_t n = bn_coding_encode(sl->cctx, w->o.level, sl->group, sl->ubuf, sl->ulen, sl->scratch, sl->cbuf,
	                             w->cbound, &sl->coding);
	if (n < 0) {
		sl->err = (int)n;
		return;
	}
	sl->clen = (size_t)n;
	bn_sha256(sl->cbuf, sl->clen, sl->csha256);
}

uint32_t bn_writer_fit_chunk_size(uint64_t volume_size)
{
	uint32_t c = BN_DEFAULT_CHUNK_SIZE;
	if (!volume_size)
		volume_size = BN_DEFAULT_VOLUME_SIZE;
	/* at least two compressed chunks per volume, so volumes fill */
	while (c > BN_MIN_CHUNK_SIZE && 2 * (uint64_t)ZSTD_compressBound(c) > volume_size)
		c /= 2;
	return c;
}

int bn_writer_check_opts(const struct bn_writer_opts *o, struct bn_error *err)
{
	uint64_t vs = o->volume_size ? o->volume_size : BN_DEFAULT_VOLUME_SIZE;
	uint32_t cs = o->chunk_size ? o->chunk_size : BN_DEFAULT_CHUNK_SIZE;
	int level = o->level ? o->level : 3;
	if (cs < BN_MIN_CHUNK_SIZE || cs > BN_MAX_CHUNK_SIZE)
		return bn_fail(err, -EINVAL, "chunk size must be between %u and %u bytes", BN_MIN_CHUNK_SIZE, BN_MAX_CHUNK_SIZE);
	size_t bound = ZSTD_compressBound(cs);
	if (vs < bound)
		return bn_fail(err, -EINVAL,
		               "volume size %" PRIu64 " is smaller than one compressed chunk of %u bytes (%zu bytes): "
		               "choose a smaller chunk size or a larger volume size",
		               vs, cs, bound);
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		return bn_fail(err, -EINVAL, "zstd level %d is out of range", level);
	return 0;
}

int bn_writer_new(const struct bn_writer_opts *o, struct bn_writer **ret, struct bn_error *err)
{
	struct bn_writer *w = calloc(1, sizeof *w);
	if (!w)
		return bn_fail(err, -ENOMEM, "out of memory");
	w->o = *o;
	w->vfd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (!w->o.chunk_size)
		w->o.chunk_size = BN_DEFAULT_CHUNK_SIZE;
	if (!w->o.volume_size)
		w->o.volume_size = BN_DEFAULT_VOLUME_SIZE;
	if (!w->o.level)
		w->o.level = 3;
	int r = bn_writer_check_opts(&w->o, err);
	if (r < 0)
		goto fail;
	w->cbound = ZSTD_compressBound(w->o.chunk_size);
	unsigned threads = bn_threads_resolve(w->o.threads);
	/* ubuf + scratch + cbuf + a coder context (a few MiB at the default levels). */
	size_t slot_bytes = (size_t)w->o.chunk_size * 2 + w->cbound + ((size_t)4 << 20);
	w->n_slots = bn_ring_slots(threads, slot_bytes, RING_BUDGET);
	w->slots = calloc(w->n_slots, sizeof *w->slots);
	w->vsha = bn_sha256_new();
	w->fsha = bn_sha256_new();
	if (!w->slots || !w->vsha || !w->fsha) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < w->n_slots; i++) {
		struct wslot *sl = &w->slots[i];
		sl->ubuf = malloc(w->o.chunk_size);
		sl->cbuf = malloc(w->cbound);
		sl->cctx = ZSTD_createCCtx();
		if (!sl->ubuf || !sl->cbuf || !sl->cctx) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	r = bn_pool_new(threads, code_chunk, w, &w->pool);
	if (r < 0) {
		r = bn_fail(err, r, "cannot start worker threads: %s", strerror(-r));
		goto fail;
	}
	r = -pthread_create(&w->sink, NULL, bn_volume_sink_main, w);
	if (r == -EAGAIN)
		r = -ENOMEM; /* no memory or thread slots, not a busy lock */
	if (r < 0) {
		r = bn_fail(err, r, "cannot start the volume writer thread: %s", strerror(-r));
		goto fail;
	}
	w->sink_started = true;
	w->m.chunk_size = w->o.chunk_size;
	w->m.volume_size = w->o.volume_size;
	/* Gear table: splitmix64 from seed 0 (FORMAT.md section 12.3). */
	uint64_t x = 0;
	for (unsigned i = 0; i < 256; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		w->gear[i] = z ^ (z >> 31);
	}
	*ret = w;
	return 0;
fail:
	bn_writer_free(w);
	return r;
}

void bn_writer_free(struct bn_writer *w)
{
	if (!w)
		return;
	/* The writer first (it drains what was submitted, which needs the
	 * workers), then the workers: they may still be coding into the slots. */
	if (w->sink_started) {
		pthread_mutex_lock(&w->mu);
		w->sink_stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->sink, NULL);
	}
	bn_pool_free(w->pool);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	if (w->vfd >= 0)
		close(w->vfd);
	for (unsigned i = 0; w->slots && i < w->n_slots; i++) {
		ZSTD_freeCCtx(w->slots[i].cctx);
		free(w->slots[i].ubuf);
		free(w->slots[i].cbuf);
		free(w->slots[i].scratch);
	}
	free(w->slots);
	bn_sha256_free(w->vsha);
	bn_sha256_free(w->fsha);
	free(w->bfiles);
	free(w->bchunks);
	for (size_t i = 0; w->bref_of && w->base && i < w->base->n_artifacts; i++)
		free(w->bref_of[i]);
	free(w->bref_of);
	/* The manifest's arrays are owned here; reuse its destructor for contents. */
	struct bn_manifest *m = malloc(sizeof *m);
	if (m) {
		*m = w->m;
		bn_manifest_free(m);
	}
	free(w);
}

/* ---- scanning -------------------------------------------------------- */

static void scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->items[i].path);
		free(s->items[i].src);
		free(s->items[i].target);
	}
	free(s->items);
}

static struct scan_item *scan_push(struct scan *s)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct scan_item *n = realloc(s->items, nc * sizeof *n);
		if (!n)
			return NULL;
		s->items = n;
		s->cap = nc;
	}
	struct scan_item *it = &s->items[s->n++];
	memset(it, 0, sizeof *it);
	return it;
}

/*
 * bn_symlink_inside() is lexical; a ".." that follows a component which is
 * itself a symlink climbs from wherever that link leads ("d/up" -> ".." and
 * "esc" -> "d/up/../.." leave the tree).  bn_manifest_parse() refuses such
 * links, so they are skipped here like any other link that leaves the tree.
 * link is the link's path on disk.
 */
static bool link_chain_inside(const char *link, const char *target)
{
	char *cur = bn_dirname(link);
	bool through_link = false, ok = true;
	const char *s = target;
	while (cur && ok) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 2 && s[0] == '.' && s[1] == '.') {
			char *up = bn_dirname(cur);
			free(cur);
			cur = up;
			ok = !through_link;
		} else if (!(l == 0 || (l == 1 && s[0] == '.')) && !through_link) {
			char *next = NULL;
			struct stat st;
			if (asprintf(&next, "%s/%.*s", cur, (int)l, s) < 0)
				next = NULL;
			free(cur);
			cur = next;
			through_link = cur && lstat(cur, &st) == 0 && S_ISLNK(st.st_mode);
		}
		if (!e)
			break;
		s = e + 1;
	}
	if (!cur)
		ok = false;
	free(cur);
	return ok;
}

static int scan_dir(struct bn_writer *w, struct scan *s, const char *abs, const char *rel, int depth,
                    struct bn_error *err);

/* One directory entry: abs (its path on disk) and rel (in the artifact) move
 * into the scan, or are freed here whatever happens. */
static int scan_entry(struct bn_writer *w, struct scan *s, char *a, char *p, const char *name, int depth,
                      struct bn_error *err)
{
	struct stat st;
	int r = 0;
	if (!a || !p) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto drop;
	}
	if (lstat(a, &st) < 0) {
		r = bn_fail(err, -errno, "%s: cannot stat: %s", a, strerror(errno));
		goto drop;
	}
	if (!utf8_valid(p) || strlen(p) > BN_MAX_PATH || strlen(name) > 255) {
		r = bn_fail(err, -EINVAL, "%s: file name is not valid UTF-8 or too long", a);
		goto drop;
	}
	if (s->n >= BN_MAX_ENTRIES) {
		r = bn_fail(err, -EFBIG, "%s: more than %u entries", a, BN_MAX_ENTRIES);
		goto drop;
	}
	char tgt[BN_MAX_PATH + 1];
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(a, tgt, sizeof tgt - 1);
		if (n < 0) {
			r = bn_fail(err, -errno, "%s: cannot read link: %s", a, strerror(errno));
			goto drop;
		}
		tgt[n] = '\0';
		if (!bn_symlink_inside(p, tgt) || !link_chain_inside(a, tgt) || !utf8_valid(tgt) ||
		    memchr(tgt, '\0', (size_t)n)) {
			warnf(w, "%s: symlink to '%s' leaves the tree; skipped", a, tgt);
			goto drop;
		}
	} else if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		r = bn_fail(err, -EPERM, "%s: device nodes, fifos and sockets cannot be packed", a);
		goto drop;
	} else if (st.st_mode & 07000) {
		r = bn_fail(err, -EPERM, "%s: has setuid, setgid or sticky bits (mode %04o); clear them to pack it", a,
		            (unsigned)(st.st_mode & 07777));
		goto drop;
	}
	struct scan_item *it = scan_push(s);
	if (!it || (S_ISLNK(st.st_mode) && !(it->target = strdup(tgt)))) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto drop;
	}
	it->path = p;
	it->src = a;
	if (S_ISLNK(st.st_mode)) {
		it->type = BN_ENTRY_SYMLINK;
		return 0;
	}
	it->mode = st.st_mode & 0777;
	if (S_ISREG(st.st_mode)) {
		it->type = BN_ENTRY_FILE;
		it->size = (uint64_t)st.st_size;
		return 0;
	}
	it->type = BN_ENTRY_DIR;
	return scan_dir(w, s, a, p, depth + 1, err); /* it may move: not used past here */
drop:
	free(a);
	free(p);
	return r;
}

static int scan_dir(struct bn_writer *w, struct scan *s, const char *abs, const char *rel, int depth,
                    struct bn_error *err)
{
	if (depth > 256)
		return bn_fail(err, -ELOOP, "%s: directory tree too deep", abs);
	DIR *d = opendir(abs);
	if (!d)
		return bn_fail(err, -errno, "%s: cannot open directory: %s", abs, strerror(errno));
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				r = bn_fail(err, -EIO, "%s: cannot read directory: %s", abs, strerror(errno));
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *p = NULL;
		if (rel[0] ? asprintf(&p, "%s/%s", rel, de->d_name) < 0 : !(p = strdup(de->d_name)))
			p = NULL;
		r = scan_entry(w, s, bn_path_join(abs, de->d_name), p, de->d_name, depth, err);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct scan_item *)a)->path, ((const struct scan_item *)b)->path);
}

/* ---- chunks and volumes ---------------------------------------------- */

int bn_writer_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 16;
	while (nc < need)
		nc *= 2;
	void *n = realloc(*arr, nc * elem);
	if (!n)
		return -ENOMEM;
	memset((char *)n + *cap * elem, 0, (nc - *cap) * elem);
	*arr = n;
	*cap = nc;
	return 0;
}

/* Hands the chunk being filled to the workers (and, in order, to the writer). */
static void flush_chunk(struct bn_writer *w)
{
	if (!w->filling)
		return;
	w->filling = false;
	struct wslot *sl = &w->slots[w->next];
	if (sl->ulen == 0)
		return;
	bn_pool_submit(w->pool, &sl->job);
	w->next = (w->next + 1) % w->n_slots;
	pthread_mutex_lock(&w->mu);
	w->submitted++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* The slot to read into for artifact/group: the one being filled if it
 * matches, else a fresh one (waiting for the writer when the ring is full). */
static int fill_slot(struct bn_writer *w, uint32_t artifact, unsigned group, struct wslot **ret, struct bn_error *err)
{
	if (w->filling && (w->slots[w->next].group != group || w->slots[w->next].artifact != artifact))
		flush_chunk(w);
	if (!w->filling) {
		int r = bn_volume_wait_written(w, w->n_slots - 1, err);
		if (r < 0)
			return r;
		struct wslot *sl = &w->slots[w->next];
		sl->ulen = 0;
		sl->reuse = false;
		sl->group = group;
		sl->artifact = artifact;
		w->filling = true;
	}
	*ret = &w->slots[w->next];
	return 0;
}

static bool is_safetensors(const char *path)
{
	size_t n = strlen(path);
	return n >= 12 && !strcasecmp(path + n - 12, ".safetensors");
}

/* ---- delta bundles --------------------------------------------------- */

static int cmp_bfile(const void *a, const void *b)
{
	const struct bfile *x = a, *y = b;
	if (x->size != y->size)
		return x->size < y->size ? -1 : 1;
	return memcmp(x->sha256, y->sha256, BN_SHA256_LEN);
}

static int cmp_bchunk(const void *a, const void *b)
{
	const struct bchunk *x = a, *y = b;
	int c = memcmp(x->sha256, y->sha256, BN_SHA256_LEN);
	return c ? c : (x->usize > y->usize) - (x->usize < y->usize);
}

const struct bchunk *bn_writer_find_bchunk(const struct bn_writer *w, const uint8_t *sha256, uint32_t usize)
{
	struct bchunk key = {.sha256 = sha256, .usize = usize};
	return bsearch(&key, w->bchunks, w->n_bchunks, sizeof *w->bchunks, cmp_bchunk);
}

/* One reference (m.brefs) per non-empty file of the base, made here, so that
 * the reading thread and the volume writer only ever read the table. */
int bn_writer_set_base(struct bn_writer *w, const struct bn_manifest *base, const uint8_t sha256[BN_SHA256_LEN],
                       struct bn_error *err)
{
	if (w->m.n_artifacts || w->base)
		return bn_fail(err, -EINVAL, "the base must be set once, before any artifact");
	size_t n = 0;
	for (size_t i = 0; i < base->n_artifacts; i++)
		for (size_t j = 0; j < base->artifacts[i].n_entries; j++)
			n += base->artifacts[i].entries[j].type == BN_ENTRY_FILE &&
			     base->artifacts[i].entries[j].size > 0;
	if (n > UINT32_MAX / 2)
		return bn_fail(err, -EFBIG, "the base has too many files");
	w->bfiles = calloc(n ? n : 1, sizeof *w->bfiles);
	w->bref_of = calloc(base->n_artifacts ? base->n_artifacts : 1, sizeof *w->bref_of);
	w->base = base;
	w->bchunks = calloc(base->n_chunks ? base->n_chunks : 1, sizeof *w->bchunks);
	w->m.brefs = calloc(n ? n : 1, sizeof *w->m.brefs);
	w->m.base = calloc(1, sizeof *w->m.base);
	if (!w->bfiles || !w->bref_of || !w->bchunks || !w->m.brefs || !w->m.base ||
	    !(w->m.base->name = strdup(base->name)) || !(w->m.base->channel = strdup(base->channel)))
		return bn_fail(err, -ENOMEM, "out of memory");
	w->m.base->version = base->version;
	memcpy(w->m.base->sha256, sha256, BN_SHA256_LEN);
	for (size_t i = 0; i < base->n_artifacts; i++) {
		const struct bn_artifact *a = &base->artifacts[i];
		size_t first = w->m.n_brefs; /* the artifact's files, in stream order */
		if (!(w->bref_of[i] = malloc((a->n_entries ? a->n_entries : 1) * sizeof **w->bref_of)))
			return bn_fail(err, -ENOMEM, "out of memory");
		for (size_t j = 0; j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			w->bref_of[i][j] = (uint32_t)w->m.n_brefs;
			if (e->type != BN_ENTRY_FILE || e->size == 0)
				continue;
			struct bn_bref *br = &w->m.brefs[w->m.n_brefs];
			if (!(br->artifact = strdup(a->name)) || !(br->path = strdup(e->path)))
				return bn_fail(err, -ENOMEM, "out of memory");
			w->bfiles[w->n_bfiles++] = (struct bfile){e->size, e->sha256, (uint32_t)w->m.n_brefs++};
		}
		/* The base's chunks of this artifact that lie inside one file. */
		size_t f = first;
		for (size_t k = a->chunk_first; k < a->chunk_first + a->n_chunks; k++) {
			const struct bn_chunk *c = &base->chunks[k];
			ssize_t fi = bn_artifact_file_at(a, c->soffset);
			const struct bn_entry *e = fi >= 0 ? &a->entries[fi] : NULL;
			if (!e || c->soffset + c->usize > e->offset + e->size)
				continue;
			/* Chunks and files are both in stream order: f only moves on. */
			while (f < w->m.n_brefs && strcmp(w->m.brefs[f].path, e->path) != 0)
				f++;
			if (f < w->m.n_brefs)
				w->bchunks[w->n_bchunks++] =
				    (struct bchunk){c->sha256, c->usize, (uint32_t)f, c->soffset - e->offset};
		}
	}
	qsort(w->bfiles, w->n_bfiles, sizeof *w->bfiles, cmp_bfile);
	qsort(w->bchunks, w->n_bchunks, sizeof *w->bchunks, cmp_bchunk);
	return 0;
}

int bn_writer_set_base_content(struct bn_writer *w, struct bn_bundle *b, struct bn_error *err)
{
	if (!w->base || b->m != w->base)
		return bn_fail(err, -EINVAL, "the base content must be the bundle of the base manifest");
	w->base_b = b;
	return 0;
}

/* ---- content-defined matching ---------------------------------------- */

static int queue_reused(struct bn_writer *w, uint32_t artifact, uint32_t bref, uint64_t boff, size_t len,
                        const uint8_t sha256[BN_SHA256_LEN], struct bn_error *err);

struct piece {
	uint8_t sha256[BN_SHA256_LEN];
	uint64_t off;
	uint32_t len;
};

static int cmp_piece(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;
	int c = memcmp(x->sha256, y->sha256, BN_SHA256_LEN);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The length of the piece at p (n bytes left): the first position from min
 * on where the gear hash's top CDC_BITS bits are zero, else max. */
static size_t cdc_cut(const uint64_t *gear, const uint8_t *p, size_t n, size_t min, size_t max)
{
	uint64_t h = 0;
	if (max > n)
		max = n;
	for (size_t i = 0; i < max; i++) {
		h = (h << 1) + gear[p[i]];
		if (i + 1 >= min && (h >> (64 - CDC_BITS)) == 0)
			return i + 1;
	}
	return max;
}

static const struct bn_entry *find_entry(const struct bn_artifact *a, const char *path)
{
	size_t lo = 0, hi = a->n_entries;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(a->entries[mid].path, path);
		if (!c)
			return &a->entries[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* A run of pieces: reused (bytes of base file bref from boff) or carried. */
struct run {
	bool reused;
	uint64_t pos, boff;
	size_t len;
};

static int emit_run(struct bn_writer *w, uint32_t artifact, uint32_t bref, const uint8_t *data, const struct run *rn,
                    struct bn_error *err)
{
	if (!rn->len)
		return 0;
	if (rn->reused) {
		uint8_t h[BN_SHA256_LEN];
		bn_sha256(data + rn->pos, rn->len, h);
		return queue_reused(w, artifact, bref, rn->boff, rn->len, h, err);
	}
	flush_chunk(w);
	struct wslot *sl;
	int r = fill_slot(w, artifact, 1, &sl, err);
	if (r < 0)
		return r;
	memcpy(sl->ubuf, data + rn->pos, rn->len);
	sl->ulen = rn->len;
	flush_chunk(w);
	return 0;
}

/*
 * Chunk-level reuse for a changed file (not a safetensors file) whose
 * previous version (same artifact name and path) is in the base bundle's
 * volumes: both are cut into content-defined pieces; runs of pieces found in
 * the base file, contiguous there, become reused chunks, the rest carried
 * chunks (runs of up to chunk_size bytes).  An insertion moves only the cuts
 * near it, so the rest of the file is still found.
 */
static int try_reuse_pieces(struct bn_writer *w, uint32_t artifact, const struct scan_item *it, struct bn_entry *e,
                            bool *ret_done, struct bn_error *err)
{
	*ret_done = false;
	if (!w->base_b || it->size < CDC_FROM || it->size > CDC_FILE_MAX)
		return 0;
	const char *aname = w->m.artifacts[artifact].name;
	const struct bn_entry *be = NULL;
	size_t bai = 0;
	for (; bai < w->base->n_artifacts && !be; bai++)
		if (!strcmp(w->base->artifacts[bai].name, aname))
			be = find_entry(&w->base->artifacts[bai], e->path);
	if (!be || be->type != BN_ENTRY_FILE || be->size == 0 || be->size > CDC_FILE_MAX)
		return 0;
	bai--;
	uint32_t bref = w->bref_of[bai][be - w->base->artifacts[bai].entries];
	/* The base file, checked against the base's signed manifest. */
	char *old = NULL;
	size_t olen = 0;
	if (bn_bundle_read_file(w->base_b, aname, be->path, CDC_FILE_MAX, &old, &olen, NULL) < 0)
		return 0; /* not in the base's volumes (itself reused): whole-file and chunk reuse only */
	size_t max = w->o.chunk_size < CDC_MAX ? w->o.chunk_size : CDC_MAX, min = max / 2 < CDC_MIN ? max / 2 : CDC_MIN;
	size_t nb = 0, cap = olen / min + 2;
	struct piece *bp = malloc(cap * sizeof *bp);
	uint8_t *data = malloc(it->size ? it->size : 1);
	int r = 0, fd = -1;
	if (!bp || !data)
		r = bn_fail(err, -ENOMEM, "out of memory");
	for (size_t pos = 0; r == 0 && pos < olen; nb++) {
		size_t l = cdc_cut(w->gear, (const uint8_t *)old + pos, olen - pos, min, max);
		bn_sha256(old + pos, l, bp[nb].sha256);
		bp[nb].off = pos;
		bp[nb].len = (uint32_t)l;
		pos += l;
	}
	free(old);
	if (r == 0) {
		qsort(bp, nb, sizeof *bp, cmp_piece);
		fd = open(it->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			r = bn_fail(err, -errno, "%s: cannot open: %s", it->src, strerror(errno));
		else if ((r = bn_pread_all(fd, data, it->size, 0)) < 0)
			r = bn_fail(err, -EIO, "%s: read error: %s", it->src, strerror(-r));
	}
	struct run rn = {0};
	for (uint64_t pos = 0; r == 0 && pos < it->size;) {
		size_t l = cdc_cut(w->gear, data + pos, (size_t)(it->size - pos), min, max);
		struct piece key = {.len = (uint32_t)l};
		bn_sha256(data + pos, l, key.sha256);
		const struct piece *m = bsearch(&key, bp, nb, sizeof *bp, cmp_piece);
		bool extend = rn.len && rn.len + l <= w->o.chunk_size && rn.reused == (m != NULL) &&
		              (!m || rn.boff + rn.len == m->off);
		if (!extend) {
			r = emit_run(w, artifact, bref, data, &rn, err);
			rn = (struct run){.reused = m != NULL, .pos = pos, .boff = m ? m->off : 0, .len = 0};
		}
		rn.len += l;
		pos += l;
	}
	if (r == 0)
		r = emit_run(w, artifact, bref, data, &rn, err);
	if (r == 0) {
		/* Growth while packing is a change too. */
		uint8_t extra;
		if (pread(fd, &extra, 1, (off_t)it->size) > 0)
			r = bn_fail(err, -EIO, "%s: file changed size while being packed", it->src);
	}
	if (r == 0) {
		bn_sha256(data, (size_t)it->size, e->sha256);
		w->prog_done += it->size;
		if (w->o.progress && w->prog_done <= w->prog_total)
			w->o.progress(w->o.progress_userdata, w->prog_done, w->prog_total);
		*ret_done = true;
	}
	if (fd >= 0)
		close(fd);
	free(bp);
	free(data);
	return r;
}

/* The first base file of this size, or NULL. */
static const struct bfile *bfile_of_size(const struct bn_writer *w, uint64_t size)
{
	size_t lo = 0, hi = w->n_bfiles;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->bfiles[mid].size < size)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < w->n_bfiles && w->bfiles[lo].size == size ? &w->bfiles[lo] : NULL;
}

/* Queues one chunk of base file bref (no bytes: the worker has nothing to code). */
static int queue_reused(struct bn_writer *w, uint32_t artifact, uint32_t bref, uint64_t boff, size_t len,
                        const uint8_t sha256[BN_SHA256_LEN], struct bn_error *err)
{
	flush_chunk(w);
	int r = bn_volume_wait_written(w, w->n_slots - 1, err);
	if (r < 0)
		return r;
	struct wslot *sl = &w->slots[w->next];
	sl->ulen = len;
	sl->group = 1;
	sl->artifact = artifact;
	sl->reuse = true;
	sl->bref = bref;
	sl->boffset = boff;
	memcpy(sl->sha256, sha256, BN_SHA256_LEN);
	w->filling = true;
	flush_chunk(w);
	return 0;
}

/*
 * File-level reuse: when the base has a file of this size, the file is read
 * once in chunk-size pieces (their hashes and the file's); if its content is
 * that of a base file, its chunks are queued as reused ones and *ret_done is
 * set.  Otherwise the caller packs it as usual (a second read).
 */
static int try_reuse_file(struct bn_writer *w, uint32_t artifact, const struct scan_item *it, struct bn_entry *e,
                          bool *ret_done, struct bn_error *err)
{
	*ret_done = false;
	const struct bfile *bf = w->base && it->size > 0 ? bfile_of_size(w, it->size) : NULL;
	if (!bf)
		return 0;
	size_t cs = w->o.chunk_size, np = (size_t)((it->size + cs - 1) / cs);
	uint8_t(*ph)[BN_SHA256_LEN] = malloc(np * sizeof *ph), *buf = malloc(cs);
	int fd = open(it->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY), r = 0;
	if (!ph || !buf)
		r = bn_fail(err, -ENOMEM, "out of memory");
	else if (fd < 0)
		r = bn_fail(err, -errno, "%s: cannot open: %s", it->src, strerror(errno));
	bn_sha256_reset(w->fsha);
	for (size_t i = 0; r == 0 && i < np; i++) {
		size_t l = i + 1 < np ? cs : (size_t)(it->size - (uint64_t)i * cs);
		r = bn_pread_all(fd, buf, l, (uint64_t)i * cs);
		if (r < 0) {
			r = bn_fail(err, -EIO, "%s: read error: %s", it->src, strerror(-r));
			break;
		}
		bn_sha256(buf, l, ph[i]);
		bn_sha256_update(w->fsha, buf, l);
	}
	uint8_t h[BN_SHA256_LEN];
	bn_sha256_final(w->fsha, h);
	for (; r == 0 && bf < w->bfiles + w->n_bfiles && bf->size == it->size; bf++) {
		if (memcmp(bf->sha256, h, BN_SHA256_LEN) != 0)
			continue;
		uint32_t bi = bf->bref;
		for (size_t i = 0; r == 0 && i < np; i++) {
			size_t l = i + 1 < np ? cs : (size_t)(it->size - (uint64_t)i * cs);
			r = queue_reused(w, artifact, bi, (uint64_t)i * cs, l, ph[i], err);
		}
		if (r == 0) {
			memcpy(e->sha256, h, BN_SHA256_LEN);
			w->prog_done += it->size;
			if (w->o.progress && w->prog_done <= w->prog_total)
				w->o.progress(w->o.progress_userdata, w->prog_done, w->prog_total);
			*ret_done = true;
		}
		break;
	}
	if (fd >= 0)
		close(fd);
	free(ph);
	free(buf);
	return r;
}

static int pack_file(struct bn_writer *w, uint32_t artifact, const struct scan_item *it, struct bn_entry *e,
                     struct bn_error *err)
{
	bool reused = false;
	int r0 = try_reuse_file(w, artifact, it, e, &reused, err);
	if (r0 == 0 && !reused && !is_safetensors(e->path))
		r0 = try_reuse_pieces(w, artifact, it, e, &reused, err);
	if (r0 < 0 || reused)
		return r0;
	int fd = open(it->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return bn_fail(err, -errno, "%s: cannot open: %s", it->src, strerror(errno));
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	/* Tensor files get chunks cut at tensor-data boundaries; anything the
	 * header parser doubts is packed as one plain segment. */
	struct bn_segment one = {0, it->size, 1}, *segs = &one, *parsed = NULL;
	size_t n_segs = 1;
	bool tensors = is_safetensors(e->path) && bn_safetensors_segments(fd, it->size, &parsed, &n_segs) == 0;
	if (tensors)
		segs = parsed;
	else
		n_segs = 1;
	bn_sha256_reset(w->fsha);
	uint64_t done = 0;
	int r = 0;
	if (tensors)
		flush_chunk(w);
	for (size_t si = 0; r == 0 && si < n_segs; si++) {
		unsigned group = segs[si].group;
		/* Byte-grouped chunks hold whole elements where the data allows. */
		size_t cap = w->o.chunk_size - w->o.chunk_size % group;
		uint64_t left = segs[si].len;
		/* Hot loop (pack, reading thread): read into the slot and feed the
		 * file hash; hashing and coding of full slots happen on workers. */
		while (left > 0) {
			struct wslot *sl;
			r = fill_slot(w, artifact, group, &sl, err);
			if (r < 0)
				break;
			size_t want = cap - sl->ulen;
			if (want > left)
				want = (size_t)left;
			ssize_t n = read(fd, sl->ubuf + sl->ulen, want);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				r = bn_fail(err, -EIO, "%s: read error: %s", it->src, strerror(errno));
				break;
			}
			if (n == 0)
				break; /* shrank: reported below */
			bn_sha256_update(w->fsha, sl->ubuf + sl->ulen, (size_t)n);
			sl->ulen += (size_t)n;
			left -= (uint64_t)n;
			done += (uint64_t)n;
			w->prog_done += (uint64_t)n;
			if (w->o.progress && w->prog_done <= w->prog_total)
				w->o.progress(w->o.progress_userdata, w->prog_done, w->prog_total);
			if (sl->ulen == cap)
				flush_chunk(w);
		}
		if (left > 0)
			break;
		if (tensors)
			flush_chunk(w);
	}
	if (r == 0 && done == it->size) {
		/* Growth is a change too. */
		uint8_t extra;
		ssize_t n;
		while ((n = read(fd, &extra, 1)) < 0 && errno == EINTR)
			;
		if (n > 0)
			done++;
	}
	close(fd);
	free(parsed);
	if (r < 0)
		return r;
	if (done != it->size)
		return bn_fail(err, -EIO, "%s: file changed size while being packed (%" PRIu64 " -> %" PRIu64 " bytes)",
		               it->src, it->size, done);
	bn_sha256_final(w->fsha, e->sha256);
	return 0;
}

/* The pack's state before an artifact is added. */
struct add_mark {
	size_t n_chunks, n_volumes;
	uint64_t vsize; /* of the last volume */
	bool vopen;     /* the last volume is open for more chunks */
};

/*
 * Undoes a refused bn_writer_add() after its artifact was appended: the slot
 * being read into is dropped, the chunks in flight are written, and then the
 * artifact, its chunks and its bytes in the volumes are taken out, so the
 * writer is as before the call.  When the volumes cannot be put back (an I/O
 * error), the writer keeps that error: every later add and finish fail.
 */
static void unwind_add(struct bn_writer *w, const struct add_mark *mark)
{
	w->filling = false;
	struct bn_error e = {0};
	int r = bn_volume_drain_all(w, &e);
	bn_artifact_release(&w->m.artifacts[--w->m.n_artifacts]);
	w->m.n_chunks = mark->n_chunks;
	w->prog_done = w->prog_total = 0;
	if (r < 0)
		return; /* the volume writer failed: it holds its error already */
	r = bn_volume_rewind(w, mark->n_volumes, mark->vsize, mark->vopen, &e);
	if (r < 0) {
		pthread_mutex_lock(&w->mu);
		w->sink_r = r;
		w->sink_err = e;
		pthread_mutex_unlock(&w->mu);
	}
}

int bn_writer_add(struct bn_writer *w, const char *name, const char *type, const char *layout, const char *src,
                  const uint8_t *pin, json_t *source, struct bn_error *err)
{
	if (!bn_name_valid(name))
		return bn_fail(err, -EINVAL, "artifact name '%s' is invalid (use letters, digits, '.', '_', '-')", name);
	for (size_t i = 0; i < w->m.n_artifacts; i++)
		if (!strcmp(w->m.artifacts[i].name, name))
			return bn_fail(err, -EINVAL, "artifact name '%s' is used twice", name);
	if (w->m.n_artifacts >= BN_MAX_ARTIFACTS)
		return bn_fail(err, -EFBIG, "more than %u artifacts", BN_MAX_ARTIFACTS);
	struct stat st;
	if (stat(src, &st) < 0)
		return bn_fail(err, -errno, "%s: %s", src, strerror(errno));
	struct scan s = {0};
	int r = 0;
	bool added = false;
	if (S_ISDIR(st.st_mode)) {
		r = scan_dir(w, &s, src, "", 0, err);
		if (r < 0)
			goto out;
		qsort(s.items, s.n, sizeof *s.items, cmp_item);
	} else if (S_ISREG(st.st_mode)) {
		const char *base = strrchr(src, '/');
		base = base ? base + 1 : src;
		struct scan_item *it = scan_push(&s);
		if (!it || !(it->path = strdup(base)) || !(it->src = strdup(src))) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (!utf8_valid(base) || !bn_path_valid(base)) {
			r = bn_fail(err, -EINVAL, "%s: file name is not valid UTF-8 or too long", src);
			goto out;
		}
		if (st.st_mode & 07000) {
			r = bn_fail(err, -EPERM, "%s: has setuid, setgid or sticky bits; clear them to pack it", src);
			goto out;
		}
		it->type = BN_ENTRY_FILE;
		it->mode = st.st_mode & 0777;
		it->size = (uint64_t)st.st_size;
	} else {
		r = bn_fail(err, -EINVAL, "%s: not a regular file or directory", src);
		goto out;
	}
	if (pin && (s.n != 1 || s.items[0].type != BN_ENTRY_FILE)) {
		r = bn_fail(err, -EINVAL, "%s: a sha256 pin needs a single file", src);
		goto out;
	}
	r = bn_writer_grow((void **)&w->m.artifacts, &w->cap_artifacts, w->m.n_artifacts + 1, sizeof *w->m.artifacts);
	if (r < 0) {
		r = bn_fail(err, r, "out of memory");
		goto out;
	}
	/* Where the pack stands: a refused add goes back here (unwind_add). */
	struct add_mark mark = {w->m.n_chunks, w->m.n_volumes,
	                        w->m.n_volumes ? w->m.volumes[w->m.n_volumes - 1].size : 0, w->vfd >= 0};
	uint32_t ai = (uint32_t)w->m.n_artifacts;
	struct bn_artifact *a = &w->m.artifacts[ai];
	memset(a, 0, sizeof *a);
	w->m.n_artifacts++;
	added = true;
	a->name = strdup(name);
	a->type = strdup(type);
	a->layout = strdup(layout);
	a->entries = calloc(s.n ? s.n : 1, sizeof *a->entries);
	a->source = source ? json_incref(source) : NULL;
	if (!a->name || !a->type || !a->layout || !a->entries) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	a->chunk_first = w->m.n_chunks;
	w->prog_done = w->prog_total = 0;
	for (size_t i = 0; i < s.n; i++)
		if (s.items[i].type == BN_ENTRY_FILE)
			w->prog_total += s.items[i].size;
	for (size_t i = 0; i < s.n; i++) {
		struct scan_item *it = &s.items[i];
		struct bn_entry *e = &a->entries[i];
		e->path = it->path;
		it->path = NULL;
		e->type = it->type;
		e->mode = it->mode;
		a->n_entries = i + 1;
		if (it->type == BN_ENTRY_SYMLINK) {
			e->target = it->target;
			it->target = NULL;
		} else if (it->type == BN_ENTRY_FILE) {
			e->offset = a->size;
			e->size = it->size;
			r = pack_file(w, ai, it, e, err);
			if (r < 0)
				goto out;
			a->size += e->size;
			a->n_files++;
		}
	}
	flush_chunk(w);
	r = bn_volume_drain_all(w, err);
	if (r < 0)
		goto out;
	a->n_chunks = w->m.n_chunks - a->chunk_first;
	if (w->o.progress && w->prog_done != w->prog_total)
		w->o.progress(w->o.progress_userdata, w->prog_total, w->prog_total);
	if (pin && memcmp(pin, a->entries[0].sha256, BN_SHA256_LEN) != 0) {
		char want[BN_SHA256_HEX], got[BN_SHA256_HEX];
		bn_hex(pin, BN_SHA256_LEN, want);
		bn_hex(a->entries[0].sha256, BN_SHA256_LEN, got);
		r = bn_fail(err, -EBADMSG, "%s: sha256 is %s, the pack spec pins %s", src, got, want);
		goto out;
	}
out:
	if (r < 0 && added)
		unwind_add(w, &mark);
	scan_free(&s);
	return r;
}

int bn_writer_set_health(struct bn_writer *w, const char *name, const char *ref, struct bn_error *err)
{
	for (size_t i = 0; i < w->m.n_artifacts; i++) {
		struct bn_artifact *a = &w->m.artifacts[i];
		if (strcmp(a->name, name) != 0)
			continue;
		free(a->health);
		a->health = strdup(ref);
		return a->health ? 0 : bn_fail(err, -ENOMEM, "out of memory");
	}
	return bn_fail(err, -EINVAL, "no artifact named '%s'", name);
}

const struct bn_artifact *bn_writer_artifact(const struct bn_writer *w, const char *name)
{
	for (size_t i = 0; i < w->m.n_artifacts; i++)
		if (!strcmp(w->m.artifacts[i].name, name))
			return &w->m.artifacts[i];
	return NULL;
}

int bn_writer_finish(struct bn_writer *w, const char *name, const char *channel, uint64_t version,
                     const char *created, const struct bn_manifest **ret, struct bn_error *err)
{
	if (!bn_name_valid(name) || !bn_name_valid(channel))
		return bn_fail(err, -EINVAL, "bundle name and channel must be letters, digits, '.', '_', '-'");
	/* An earlier failure of the volume writer stays: the volumes are not what the manifest says. */
	int r = bn_volume_drain_all(w, err);
	if (r == 0)
		r = bn_volume_close(w, err);
	if (r < 0)
		return r;
	w->m.format_major = w->m.base ? BN_FORMAT_DELTA_MAJOR : BN_FORMAT_MAJOR;
	/* 1.0 while every chunk is plain zstd, so such bundles stay exactly what
	 * 1.0 writers produced; byte-grouped chunks need a 1.1 reader. */
	w->m.format_minor = 0;
	for (size_t i = 0; i < w->m.n_chunks; i++)
		if (w->m.chunks[i].coding != BN_CODING_ZSTD)
			w->m.format_minor = BN_FORMAT_MINOR;
	w->m.version = version;
	w->m.name = strdup(name);
	w->m.channel = strdup(channel);
	w->m.created = strdup(created);
	if (!w->m.name || !w->m.channel || !w->m.created)
		return bn_fail(err, -ENOMEM, "out of memory");
	w->finished = true;
	*ret = &w->m;
	return 0;
}

int bn_writer_take_manifest(struct bn_writer *w, struct bn_manifest **ret, struct bn_error *err)
{
	if (!w->finished || !w->m.name)
		return bn_fail(err, -EINVAL, "the writer's manifest is taken once, after bn_writer_finish");
	struct bn_manifest *m = malloc(sizeof *m);
	if (!m)
		return bn_fail(err, -ENOMEM, "out of memory");
	*m = w->m;
	memset(&w->m, 0, sizeof w->m);
	*ret = m;
	return 0;
}
