/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "bundle/fsutil.h"
#include "bundle/writer.h"

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

struct bn_writer {
	struct bn_writer_opts o;
	struct bn_manifest m;
	size_t cap_artifacts, cap_chunks, cap_volumes;
	ZSTD_CCtx *cctx;
	uint8_t *ubuf, *cbuf;  /* one chunk uncompressed / compressed */
	size_t ulen, cbound;
	int vfd;               /* open volume or -1 */
	struct bn_sha256 *vsha, *fsha;
	bool finished;
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

int bn_writer_new(const struct bn_writer_opts *o, struct bn_writer **ret, struct bn_error *err)
{
	struct bn_writer *w = calloc(1, sizeof *w);
	if (!w)
		return bn_fail(err, -ENOMEM, "out of memory");
	w->o = *o;
	w->vfd = -1;
	if (!w->o.chunk_size)
		w->o.chunk_size = BN_DEFAULT_CHUNK_SIZE;
	if (!w->o.volume_size)
		w->o.volume_size = BN_DEFAULT_VOLUME_SIZE;
	if (!w->o.level)
		w->o.level = 3;
	int r = 0;
	if (w->o.chunk_size < BN_MIN_CHUNK_SIZE || w->o.chunk_size > BN_MAX_CHUNK_SIZE) {
		r = bn_fail(err, -EINVAL, "chunk size must be between %u and %u bytes", BN_MIN_CHUNK_SIZE, BN_MAX_CHUNK_SIZE);
		goto fail;
	}
	w->cbound = ZSTD_compressBound(w->o.chunk_size);
	if (w->o.volume_size < w->cbound) {
		r = bn_fail(err, -EINVAL, "volume size %" PRIu64 " is smaller than one compressed chunk (%zu bytes)",
		            w->o.volume_size, w->cbound);
		goto fail;
	}
	if (w->o.level < ZSTD_minCLevel() || w->o.level > ZSTD_maxCLevel()) {
		r = bn_fail(err, -EINVAL, "zstd level %d is out of range", w->o.level);
		goto fail;
	}
	w->cctx = ZSTD_createCCtx();
	w->ubuf = malloc(w->o.chunk_size);
	w->cbuf = malloc(w->cbound);
	w->vsha = bn_sha256_new();
	w->fsha = bn_sha256_new();
	if (!w->cctx || !w->ubuf || !w->cbuf || !w->vsha || !w->fsha) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->o.level);
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 0);
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_contentSizeFlag, 1);
	w->m.chunk_size = w->o.chunk_size;
	w->m.volume_size = w->o.volume_size;
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
	if (w->vfd >= 0)
		close(w->vfd);
	ZSTD_freeCCtx(w->cctx);
	free(w->ubuf);
	free(w->cbuf);
	bn_sha256_free(w->vsha);
	bn_sha256_free(w->fsha);
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
                    struct bn_error *err)
{
	if (depth > 256)
		return bn_fail(err, -ELOOP, "%s: directory tree too deep", abs);
	DIR *d = opendir(abs);
	if (!d)
		return bn_fail(err, -errno, "%s: cannot open directory: %s", abs, strerror(errno));
	int r = 0;
	struct dirent *de;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = bn_fail(err, -EIO, "%s: cannot read directory: %s", abs, strerror(errno));
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *a = bn_path_join(abs, de->d_name);
		char *p = NULL;
		if (rel[0] ? asprintf(&p, "%s/%s", rel, de->d_name) < 0 : !(p = strdup(de->d_name)))
			p = NULL;
		if (!a || !p) {
			free(a);
			free(p);
			r = bn_fail(err, -ENOMEM, "out of memory");
			break;
		}
		struct stat st;
		if (lstat(a, &st) < 0) {
			r = bn_fail(err, -errno, "%s: cannot stat: %s", a, strerror(errno));
			free(a);
			free(p);
			break;
		}
		if (!utf8_valid(p) || strlen(p) > BN_MAX_PATH || strlen(de->d_name) > 255) {
			r = bn_fail(err, -EINVAL, "%s: file name is not valid UTF-8 or too long", a);
			free(a);
			free(p);
			break;
		}
		if (s->n >= BN_MAX_ENTRIES) {
			r = bn_fail(err, -EFBIG, "%s: more than %u entries", abs, BN_MAX_ENTRIES);
			free(a);
			free(p);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			char tgt[BN_MAX_PATH + 1];
			ssize_t n = readlink(a, tgt, sizeof tgt - 1);
			if (n < 0) {
				r = bn_fail(err, -errno, "%s: cannot read link: %s", a, strerror(errno));
				free(a);
				free(p);
				break;
			}
			tgt[n] = '\0';
			if (!bn_symlink_inside(p, tgt) || !link_chain_inside(a, tgt) || !utf8_valid(tgt) ||
			    memchr(tgt, '\0', (size_t)n)) {
				warnf(w, "%s: symlink to '%s' leaves the tree; skipped", a, tgt);
				free(a);
				free(p);
				continue;
			}
			struct scan_item *it = scan_push(s);
			if (!it || !(it->target = strdup(tgt))) {
				free(a);
				free(p);
				r = bn_fail(err, -ENOMEM, "out of memory");
				break;
			}
			it->path = p;
			it->src = a;
			it->type = BN_ENTRY_SYMLINK;
			continue;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			r = bn_fail(err, -EPERM, "%s: device nodes, fifos and sockets cannot be packed", a);
			free(a);
			free(p);
			break;
		}
		if (st.st_mode & 07000) {
			r = bn_fail(err, -EPERM, "%s: has setuid, setgid or sticky bits (mode %04o); clear them to pack it", a,
			            (unsigned)(st.st_mode & 07777));
			free(a);
			free(p);
			break;
		}
		struct scan_item *it = scan_push(s);
		if (!it) {
			free(a);
			free(p);
			r = bn_fail(err, -ENOMEM, "out of memory");
			break;
		}
		it->path = p;
		it->src = a;
		it->mode = st.st_mode & 0777;
		if (S_ISDIR(st.st_mode)) {
			it->type = BN_ENTRY_DIR;
			r = scan_dir(w, s, a, p, depth + 1, err);
			if (r < 0)
				break;
		} else {
			it->type = BN_ENTRY_FILE;
			it->size = (uint64_t)st.st_size;
		}
	}
	closedir(d);
	return r;
}

static int cmp_item(const void *a, const void *b)
{
	return strcmp(((const struct scan_item *)a)->path, ((const struct scan_item *)b)->path);
}

/* ---- chunks and volumes ---------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
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

static int close_volume(struct bn_writer *w, struct bn_error *err)
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

static int open_volume(struct bn_writer *w, struct bn_error *err)
{
	int r = grow((void **)&w->m.volumes, &w->cap_volumes, w->m.n_volumes + 1, sizeof *w->m.volumes);
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
	bn_sha256_reset(w->vsha);
	return 0;
}

static int flush_chunk(struct bn_writer *w, uint32_t artifact, struct bn_error *err)
{
	if (w->ulen == 0)
		return 0;
	if (w->m.n_chunks >= BN_MAX_CHUNKS)
		return bn_fail(err, -EFBIG, "more than %u chunks; use a larger chunk size", BN_MAX_CHUNKS);
	int r = grow((void **)&w->m.chunks, &w->cap_chunks, w->m.n_chunks + 1, sizeof *w->m.chunks);
	if (r < 0)
		return bn_fail(err, r, "out of memory");
	/* Independent frames: each chunk decodes on its own (parallel import, resume). */
	size_t cl = ZSTD_compress2(w->cctx, w->cbuf, w->cbound, w->ubuf, w->ulen);
	if (ZSTD_isError(cl))
		return bn_fail(err, -EIO, "zstd: %s", ZSTD_getErrorName(cl));
	struct bn_chunk *c = &w->m.chunks[w->m.n_chunks];
	memset(c, 0, sizeof *c);
	c->artifact = artifact;
	c->usize = (uint32_t)w->ulen;
	c->csize = (uint32_t)cl;
	c->coding = BN_CODING_ZSTD;
	bn_sha256(w->ubuf, w->ulen, c->sha256);
	bn_sha256(w->cbuf, cl, c->csha256);
	/* A chunk never spans two volumes. */
	if (w->vfd >= 0 && w->m.volumes[w->m.n_volumes - 1].size + cl > w->o.volume_size) {
		r = close_volume(w, err);
		if (r < 0)
			return r;
	}
	if (w->vfd < 0) {
		r = open_volume(w, err);
		if (r < 0)
			return r;
	}
	struct bn_volume *v = &w->m.volumes[w->m.n_volumes - 1];
	r = bn_write_all(w->vfd, w->cbuf, cl);
	if (r < 0)
		return bn_fail(err, r, "%s/%s: write failed: %s", w->o.dir, v->name, strerror(-r));
	bn_sha256_update(w->vsha, w->cbuf, cl);
	c->volume = (uint32_t)(w->m.n_volumes - 1);
	c->voffset = v->size;
	v->size += cl;
	w->m.n_chunks++;
	w->ulen = 0;
	return 0;
}

static int pack_file(struct bn_writer *w, uint32_t artifact, const struct scan_item *it, struct bn_entry *e,
                     struct bn_error *err)
{
	int fd = open(it->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return bn_fail(err, -errno, "%s: cannot open: %s", it->src, strerror(errno));
	bn_sha256_reset(w->fsha);
	uint64_t done = 0;
	int r = 0;
	for (;;) {
		if (w->ulen == w->o.chunk_size) {
			r = flush_chunk(w, artifact, err);
			if (r < 0)
				break;
		}
		ssize_t n = read(fd, w->ubuf + w->ulen, w->o.chunk_size - w->ulen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = bn_fail(err, -EIO, "%s: read error: %s", it->src, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		bn_sha256_update(w->fsha, w->ubuf + w->ulen, (size_t)n);
		w->ulen += (size_t)n;
		done += (uint64_t)n;
		if (done > it->size)
			break;
	}
	close(fd);
	if (r < 0)
		return r;
	if (done != it->size)
		return bn_fail(err, -EIO, "%s: file changed size while being packed (%" PRIu64 " -> %" PRIu64 " bytes)",
		               it->src, it->size, done);
	bn_sha256_final(w->fsha, e->sha256);
	return 0;
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
	r = grow((void **)&w->m.artifacts, &w->cap_artifacts, w->m.n_artifacts + 1, sizeof *w->m.artifacts);
	if (r < 0) {
		r = bn_fail(err, r, "out of memory");
		goto out;
	}
	uint32_t ai = (uint32_t)w->m.n_artifacts;
	struct bn_artifact *a = &w->m.artifacts[ai];
	memset(a, 0, sizeof *a);
	w->m.n_artifacts++;
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
	r = flush_chunk(w, ai, err);
	if (r < 0)
		goto out;
	a->n_chunks = w->m.n_chunks - a->chunk_first;
	if (pin && memcmp(pin, a->entries[0].sha256, BN_SHA256_LEN) != 0) {
		char want[BN_SHA256_HEX], got[BN_SHA256_HEX];
		bn_hex(pin, BN_SHA256_LEN, want);
		bn_hex(a->entries[0].sha256, BN_SHA256_LEN, got);
		r = bn_fail(err, -EBADMSG, "%s: sha256 is %s, the pack spec pins %s", src, got, want);
		goto out;
	}
out:
	scan_free(&s);
	return r;
}

int bn_writer_finish(struct bn_writer *w, const char *name, const char *channel, uint64_t version,
                     const char *created, const struct bn_manifest **ret, struct bn_error *err)
{
	if (!bn_name_valid(name) || !bn_name_valid(channel))
		return bn_fail(err, -EINVAL, "bundle name and channel must be letters, digits, '.', '_', '-'");
	int r = close_volume(w, err);
	if (r < 0)
		return r;
	w->m.format_major = BN_FORMAT_MAJOR;
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
