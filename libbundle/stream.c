/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One-way stream of a bundle for data diodes (docs/FORMAT.md section 11):
 * the bundle's files cut into self-checking records.  The receiver needs no
 * back channel: it resynchronises on the record magic after lost or garbled
 * bytes, drops records whose checksum fails, and at the end removes volumes
 * it could not complete, which the importer then rebuilds from parity (and
 * checks against the signed manifest, like everything else).  The record
 * checksum only detects transmission damage; trust still comes from the
 * signatures.
 */
#include <dirent.h>
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
#include "bundle/sha256.h"
#include "bundle/stream.h"
#include "bundle/tunables.h"

#define MAGIC "AGS1"
#define HDR 32
#define BLOCK 65536u
#define NAME_MAX_LEN 64
#define MAX_FILES (2u * BN_MAX_VOLUMES + BN_MAX_SIGNATURES + 1)
#define MAX_FILE_SIZE (1ull << 40) /* caps what one record may make us allocate and track */
#define MAX_STREAM_BYTES (16ull << 40)

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The only names a stream may carry: what a bundle directory holds. */
static bool stream_name_ok(const char *n)
{
	unsigned idx;
	char tail, id[17];
	size_t l = strlen(n);
	if (!strcmp(n, "manifest.json"))
		return true;
	if ((sscanf(n, "vol-%5u.agv%c", &idx, &tail) == 1 || sscanf(n, "par-%5u.agp%c", &idx, &tail) == 1) && l == 13 &&
	    idx >= 1)
		return true;
	if (l == 35 && !strncmp(n, "signatures/", 11) && !strcmp(n + 27, ".minisig")) {
		memcpy(id, n + 11, 16);
		id[16] = '\0';
		return strspn(id, "0123456789ABCDEF") == 16;
	}
	return false;
}

static int send_file(int out, const char *dir, const char *name, uint8_t *buf, struct bn_error *err)
{
	char *p = bn_path_join(dir, name);
	if (!p)
		return bn_fail(err, -ENOMEM, "out of memory");
	int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int r = 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = bn_fail(err, -errno, "%s: %s", p, strerror(errno));
		goto out;
	}
	size_t nl = strlen(name);
	uint64_t size = (uint64_t)st.st_size;
	for (uint64_t off = 0; off < size || (size == 0 && off == 0); off += BLOCK) {
		uint32_t len = size - off < BLOCK ? (uint32_t)(size - off) : BLOCK;
		memset(buf, 0, HDR);
		memcpy(buf, MAGIC, 4);
		buf[4] = 1;
		buf[5] = (uint8_t)nl;
		put_le(buf + 8, size, 8);
		put_le(buf + 16, off, 8);
		put_le(buf + 24, len, 4);
		memcpy(buf + HDR, name, nl);
		if (len && (r = bn_pread_all(fd, buf + HDR + nl, len, off)) < 0) {
			r = bn_fail(err, r, "%s: read error: %s", p, strerror(-r));
			goto out;
		}
		bn_sha256(buf, HDR + nl + len, buf + HDR + nl + len);
		r = bn_write_all(out, buf, HDR + nl + len + BN_SHA256_LEN);
		if (r < 0) {
			r = bn_fail(err, r, "stream output: write failed: %s", strerror(-r));
			goto out;
		}
		if (size == 0)
			break;
	}
out:
	if (fd >= 0)
		close(fd);
	free(p);
	return r;
}

static int send_signed(int out, const char *dir, uint8_t *buf, struct bn_error *err)
{
	int r = send_file(out, dir, "manifest.json", buf, err);
	char *sd = bn_path_join(dir, "signatures");
	DIR *d = sd ? opendir(sd) : NULL;
	struct dirent *de;
	while (r == 0 && d && (de = readdir(d))) {
		char n[300];
		snprintf(n, sizeof n, "signatures/%s", de->d_name);
		if (stream_name_ok(n))
			r = send_file(out, dir, n, buf, err);
	}
	if (d)
		closedir(d);
	free(sd);
	return r;
}

int bn_stream_write(const char *dir, int out, struct bn_error *err)
{
	if (bn_media_is_set(dir))
		return bn_fail(err, -EINVAL, "%s: streaming a media set is not supported; stream the bundle directory", dir);
	/* The sender's own bundle: its manifest is parsed only to list the files. */
	char *mp = bn_path_join(dir, "manifest.json"), *mb = NULL;
	size_t ml = 0;
	struct bn_manifest *m = NULL;
	int q = mp ? bn_read_file(mp, BN_MANIFEST_MAX, &mb, &ml, err) : bn_fail(err, -ENOMEM, "out of memory");
	free(mp);
	if (q == 0)
		q = bn_manifest_parse(mb, ml, &m, err);
	free(mb);
	if (q < 0)
		return q;
	uint8_t *buf = malloc(HDR + NAME_MAX_LEN + BLOCK + BN_SHA256_LEN);
	if (!buf) {
		bn_manifest_free(m);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	/* The signed files twice up front (a receiver needs them to trust
	 * anything), volumes in order, parity volumes, the signed files again:
	 * a burst of loss costs whole blocks of one or two neighbouring volumes,
	 * which the parity groups rebuild. */
	int r = send_signed(out, dir, buf, err);
	if (r == 0)
		r = send_signed(out, dir, buf, err);
	for (size_t i = 0; r == 0 && i < m->n_volumes; i++)
		r = send_file(out, dir, m->volumes[i].name, buf, err);
	for (size_t i = 0; r == 0 && m->parity && i < m->parity->n_volumes; i++)
		r = send_file(out, dir, m->parity->volumes[i].name, buf, err);
	if (r == 0)
		r = send_signed(out, dir, buf, err);
	free(buf);
	bn_manifest_free(m);
	return r;
}

/* ---- receiving ---------------------------------------------------------- */

struct rfile {
	char name[NAME_MAX_LEN + 1];
	uint64_t size, blocks, have;
	uint8_t *bits;
};

/* One output file is open at a time (records come file after file), so a
 * bundle of any number of volumes needs two descriptors, not one per volume. */
struct rx {
	const char *dir;
	struct rfile *files;
	size_t n, cap;
	uint64_t total;
	uint64_t written;   /* bytes written so far (of total) */
	bool space_check;
	int fd;             /* open output file, or -1 */
	size_t fd_file;     /* its index in files */
};

static void rx_close(struct rx *x)
{
	if (x->fd >= 0)
		close(x->fd);
	x->fd = -1;
}

static int rx_write(struct rx *x, size_t fi, const uint8_t *p, size_t len, uint64_t off, struct bn_error *err)
{
	if (x->fd < 0 || x->fd_file != fi) {
		rx_close(x);
		char *path = bn_path_join(x->dir, x->files[fi].name);
		if (!path)
			return bn_fail(err, -ENOMEM, "out of memory");
		x->fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		free(path);
		if (x->fd < 0)
			return bn_fail(err, -e, "%s/%s: %s", x->dir, x->files[fi].name, strerror(e));
		x->fd_file = fi;
	}
	int r = bn_pwrite_all(x->fd, p, len, off);
	return r < 0 ? bn_fail(err, r, "%s/%s: write failed: %s", x->dir, x->files[fi].name, strerror(-r)) : 0;
}

static struct rfile *rx_file(struct rx *x, const char *name, uint64_t size, struct bn_error *err, int *r)
{
	for (size_t i = 0; i < x->n; i++)
		if (!strcmp(x->files[i].name, name))
			return x->files[i].size == size ? &x->files[i] : NULL;
	/* Bounds what a hostile stream can make us track (bitmaps, sparse files). */
	if (x->n == MAX_FILES || x->total + size > MAX_STREAM_BYTES) {
		*r = bn_fail(err, -EFBIG, "stream: more than %u files or %llu bytes", MAX_FILES,
		             (unsigned long long)MAX_STREAM_BYTES);
		return NULL;
	}
	/* Free space: what every file announced so far still needs, plus this
	 * one, before any of it is written (the files are sparse until then). */
	struct statvfs sv;
	if (x->space_check && statvfs(x->dir, &sv) == 0) {
		uint64_t need = x->total + size - x->written, have = (uint64_t)sv.f_bavail * sv.f_frsize;
		if (need > have) {
			*r = bn_fail(err, -ENOSPC, "%s: not enough free space for the stream: need %" PRIu64 " MiB (%s and "
			             "the rest of the files announced), %" PRIu64 " MiB free", x->dir, (need + (1 << 20) - 1) >> 20,
			             name, have >> 20);
			return NULL;
		}
	}
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 64;
		struct rfile *nf = realloc(x->files, nc * sizeof *nf);
		if (!nf) {
			*r = bn_fail(err, -ENOMEM, "out of memory");
			return NULL;
		}
		x->files = nf;
		x->cap = nc;
	}
	struct rfile *f = &x->files[x->n];
	memset(f, 0, sizeof *f);
	snprintf(f->name, sizeof f->name, "%s", name);
	f->size = size;
	f->blocks = size ? (size + BLOCK - 1) / BLOCK : 1;
	f->bits = calloc((f->blocks + 7) / 8, 1);
	char *p = bn_path_join(x->dir, name);
	if (!f->bits || !p) {
		free(f->bits);
		free(p);
		*r = bn_fail(err, -ENOMEM, "out of memory");
		return NULL;
	}
	x->total += size;
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		*r = bn_fail(err, -errno, "%s: %s", p, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(f->bits);
		free(p);
		return NULL;
	}
	close(fd); /* reopened by rx_write when its records come */
	free(p);
	x->n++;
	return f;
}

int bn_stream_read(int in, const char *dir, struct bn_stream_result *res, struct bn_error *err)
{
	return bn_stream_read_progress(in, dir, NULL, NULL, res, err);
}

int bn_stream_read_progress(int in, const char *dir, bn_progress_fn progress, void *userdata,
                            struct bn_stream_result *res, struct bn_error *err)
{
	memset(res, 0, sizeof *res);
	uint64_t received = 0;
	if (mkdir(dir, 0755) < 0)
		return bn_fail(err, -errno, "%s: %s", dir, strerror(errno));
	char *sd = bn_path_join(dir, "signatures");
	if (!sd || mkdir(sd, 0755) < 0) {
		free(sd);
		return bn_fail(err, -errno, "%s/signatures: %s", dir, strerror(errno));
	}
	free(sd);
	/* The test knob of extract.c (AGKIT_SKIP_SPACE_CHECK=1), same meaning. */
	struct rx x = {.dir = dir, .fd = -1, .space_check = !bn_tunables()->skip_space_check};
	size_t cap = 4 * (HDR + NAME_MAX_LEN + BLOCK + BN_SHA256_LEN);
	uint8_t *buf = malloc(cap);
	size_t have = 0, pos = 0;
	bool eof = false;
	int r = 0;
	if (!buf)
		return bn_fail(err, -ENOMEM, "out of memory");
	for (;;) {
		/* Keep at least one whole record in the buffer when the input has it. */
		if (!eof && have - pos < HDR + NAME_MAX_LEN + BLOCK + BN_SHA256_LEN) {
			memmove(buf, buf + pos, have - pos);
			have -= pos;
			pos = 0;
			while (have < cap) {
				if ((r = bn_check_cancel(err)) < 0)
					goto out;
				ssize_t n = read(in, buf + have, cap - have);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0) {
					r = bn_fail(err, -errno, "stream input: %s", strerror(errno));
					goto out;
				}
				if (n == 0) {
					eof = true;
					break;
				}
				have += (size_t)n;
				received += (uint64_t)n;
				if (progress)
					progress(userdata, received, 0); /* a stream's length is not known */
			}
		}
		if (have - pos < 4)
			break;
		if ((r = bn_check_cancel(err)) < 0)
			goto out;
		uint8_t *p = buf + pos;
		if (memcmp(p, MAGIC, 4) != 0) {
			/* Lost or garbled bytes: skip to the next magic. */
			uint8_t *q = memmem(p + 1, have - pos - 1, MAGIC, 4);
			size_t skip = q ? (size_t)(q - p) : have - pos - 3;
			res->bytes_skipped += skip;
			pos += skip;
			continue;
		}
		size_t nl = have - pos >= HDR ? p[5] : 0;
		uint64_t size = have - pos >= HDR ? get_le(p + 8, 8) : 0, off = have - pos >= HDR ? get_le(p + 16, 8) : 0;
		uint32_t len = have - pos >= HDR ? (uint32_t)get_le(p + 24, 4) : 0;
		size_t total = HDR + nl + len + BN_SHA256_LEN;
		char name[NAME_MAX_LEN + 1] = "";
		/* The header is not signed: every field is bounded before use.  A
		 * record holds one whole block inside the file (only an empty file
		 * has an empty record, at offset 0), so a block is counted only when
		 * all of its bytes arrived, and its bit is inside the bitmap. */
		bool ok = have - pos >= HDR && p[4] == 1 && nl >= 1 && nl <= NAME_MAX_LEN && len <= BLOCK &&
		          size <= MAX_FILE_SIZE && off % BLOCK == 0 &&
		          (size == 0 ? off == 0 && len == 0
		                     : off < size && len > 0 && len == (size - off < BLOCK ? size - off : BLOCK)) &&
		          have - pos >= total;
		if (ok) {
			memcpy(name, p + HDR, nl);
			name[nl] = '\0';
			uint8_t h[BN_SHA256_LEN];
			bn_sha256(p, HDR + nl + len, h);
			ok = strlen(name) == nl && stream_name_ok(name) && !memcmp(h, p + HDR + nl + len, BN_SHA256_LEN) &&
			     !(!strcmp(name, "manifest.json") && size > BN_MANIFEST_MAX) &&
			     !(!strncmp(name, "signatures/", 11) && size > 16384);
		}
		if (!ok) {
			res->records_bad++;
			res->bytes_skipped += 1;
			pos += 1;
			continue;
		}
		struct rfile *f = rx_file(&x, name, size, err, &r);
		if (r < 0)
			goto out;
		if (!f) {
			res->records_bad++; /* a size that contradicts earlier records */
		} else {
			uint64_t blk = off / BLOCK;
			if (blk >= f->blocks) { /* unreachable after the checks above; kept as a guard */
				r = bn_fail(err, -EBADMSG, "%s/%s: record past the end of the file", dir, name);
				goto out;
			}
			if (!(f->bits[blk / 8] >> (blk % 8) & 1)) {
				if (len && (r = rx_write(&x, (size_t)(f - x.files), p + HDR + nl, len, off, err)) < 0)
					goto out;
				x.written += len;
				f->bits[blk / 8] |= (uint8_t)(1u << (blk % 8));
				f->have++;
			}
			res->records_ok++;
		}
		pos += total;
	}
	res->bytes_skipped += have - pos;
	rx_close(&x);
	/* Everything received is durable before the import reads it: one syncfs
	 * instead of a descriptor per file. */
	{
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0 || syncfs(dfd) < 0)
			r = bn_fail(err, -errno, "%s: cannot sync: %s", dir, strerror(errno));
		if (dfd >= 0)
			close(dfd);
	}
	/* Incomplete volumes go: missing is what parity rebuilds; the signed
	 * files must have arrived whole (they were sent three times). */
	for (size_t i = 0; i < x.n && r == 0; i++) {
		struct rfile *f = &x.files[i];
		if (f->have == f->blocks)
			continue;
		if (!strncmp(f->name, "vol-", 4) || !strncmp(f->name, "par-", 4)) {
			char *p = bn_path_join(dir, f->name);
			if (p)
				unlink(p);
			free(p);
			res->files_incomplete++;
			size_t l = strlen(res->incomplete);
			if (l + strlen(f->name) + 3 < sizeof res->incomplete)
				snprintf(res->incomplete + l, sizeof res->incomplete - l, "%s%s", l ? ", " : "", f->name);
		} else {
			r = bn_fail(err, -EBADMSG, "%s/%s: incomplete after the whole stream (all of its copies were damaged)",
			            dir, f->name);
		}
	}
	bool manifest = false;
	for (size_t i = 0; i < x.n; i++)
		manifest |= !strcmp(x.files[i].name, "manifest.json");
	if (r == 0 && !manifest)
		r = bn_fail(err, -EBADMSG, "stream: no manifest.json received (not an agkit stream?)");
	if (r == 0)
		bn_fsync_dir(dir);
out:
	rx_close(&x);
	for (size_t i = 0; i < x.n; i++)
		free(x.files[i].bits);
	free(x.files);
	free(buf);
	if (r < 0)
		bn_rm_rf(dir);
	return r;
}
