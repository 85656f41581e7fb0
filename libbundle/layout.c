/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a bundle's volumes are and what to do when one is missing or
 * damaged (docs/FORMAT.md sections 9 and 10).  Three views:
 *
 *   DIR     every volume and parity volume at the top of one directory;
 *   SET     a media set: DIR/medium-NN/ each with a copy of the signed files;
 *   MEDIUM  one medium alone: only its own volumes, checked in isolation.
 *
 * A damaged data volume (missing, wrong size, unreadable, or failing a hash)
 * is rebuilt from k surviving members of its parity group into an unlinked
 * temporary file.  Every survivor is hashed while it streams and compared
 * with its signed sha256, and so is the rebuilt volume; a survivor that fails
 * is dropped and the rebuild retried with another, while the group still has
 * enough.  Nothing rebuilt reaches the chunk reader before its whole-volume
 * hash matched, and the reader then checks every chunk hash again.
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

#include <isa-l/erasure_code.h>

#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "bundle/parity.h"
#include "bundle/tunables.h"
#include "layout_internal.h"
#include "parity_internal.h"

enum { VIEW_DIR, VIEW_SET, VIEW_MEDIUM };
enum { VS_OK, VS_BAD, VS_REBUILT, VS_ABSENT };

#define MAX_NOTES 256

struct bn_layout {
	int view;
	unsigned medium;      /* VIEW_MEDIUM: 1-based */
	char **vpath, **ppath; /* NULL where not in view */
	uint8_t *vst, *pst;
	const char **vwhy, **pwhy;
	bool *pverified;
	int *vfd;             /* rebuilt volumes (unlinked temp files), or -1 */
	char *notes[MAX_NOTES];
	size_t n_notes;
};

static void note(struct bn_layout *l, const char *fmt, ...) BN_PRINTF(2, 3);
static void note(struct bn_layout *l, const char *fmt, ...)
{
	if (l->n_notes == MAX_NOTES)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&l->notes[l->n_notes], fmt, ap) >= 0)
		l->n_notes++;
	va_end(ap);
}

const char *bn_bundle_note(const struct bn_bundle *b, size_t i)
{
	return b->layout && i < b->layout->n_notes ? b->layout->notes[i] : NULL;
}

unsigned bn_bundle_medium(const struct bn_bundle *b)
{
	return b->layout && b->layout->view == VIEW_MEDIUM ? b->layout->medium : 0;
}

void bn_layout_free(struct bn_layout *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_notes; i++)
		free(l->notes[i]);
	free(l->vst);
	free(l->pst);
	free(l->vwhy);
	free(l->pwhy);
	free(l->pverified);
	if (l->vpath)
		for (size_t i = 0; l->vpath[i] != (char *)-1; i++)
			free(l->vpath[i]);
	if (l->ppath)
		for (size_t i = 0; l->ppath[i] != (char *)-1; i++)
			free(l->ppath[i]);
	free(l->vpath);
	free(l->ppath);
	if (l->vfd)
		for (size_t i = 0; l->vfd[i] != -2; i++)
			if (l->vfd[i] >= 0)
				close(l->vfd[i]);
	free(l->vfd);
	free(l);
}

static void medium_name(unsigned i, char out[32])
{
	snprintf(out, 32, "medium-%02u", i);
}

bool bn_media_is_set(const char *dir)
{
	char *q = bn_path_join(dir, "manifest.json");
	struct stat st;
	bool r = q && lstat(q, &st) < 0 && errno == ENOENT;
	if (r) {
		/* Any medium-NN directory marks a set (medium 1 may be the one lost). */
		DIR *d = opendir(dir);
		struct dirent *de;
		r = false;
		while (d && (de = readdir(d)))
			if (!strncmp(de->d_name, "medium-", 7))
				r = true;
		if (d)
			closedir(d);
	}
	free(q);
	return r;
}

int bn_layout_manifest_dir(const char *dir, char **ret, struct bn_error *err)
{
	*ret = NULL;
	if (!bn_media_is_set(dir))
		return 0;
	/* The lowest-numbered medium present supplies the signed files; every
	 * other medium's copy must be byte-identical (bn_layout_check_files). */
	for (unsigned i = 1; i <= BN_MAX_MEDIA; i++) {
		char name[32], *p, *mf;
		medium_name(i, name);
		if (!(p = bn_path_join(dir, name)) || !(mf = bn_path_join(p, "manifest.json"))) {
			free(p);
			return bn_fail(err, -ENOMEM, "out of memory");
		}
		struct stat st;
		bool ok = lstat(mf, &st) == 0 && S_ISREG(st.st_mode);
		free(mf);
		if (ok) {
			*ret = p;
			return 0;
		}
		free(p);
	}
	return bn_fail(err, -EBADMSG, "%s: media set without a readable medium-NN/manifest.json", dir);
}

static int parse_label(const char *dir, unsigned *ret, unsigned *ret_count)
{
	char *p = bn_path_join(dir, BN_MEDIUM_LABEL), *buf = NULL;
	size_t len = 0;
	int r = p ? bn_read_file_nofollow(p, 4096, &buf, &len, NULL) : -ENOMEM;
	free(p);
	if (r < 0)
		return r;
	const char *s = strstr(buf, "\nmedium ");
	unsigned n = 0, c = 0;
	r = s && sscanf(s, "\nmedium %u of %u", &n, &c) == 2 ? 0 : -EBADMSG;
	free(buf);
	*ret = n;
	*ret_count = c;
	return r;
}

static bool in_view_medium(const struct bn_manifest *m, unsigned medium, bool parity, size_t i)
{
	if (!medium)
		return true;
	return (parity ? m->media->par_medium[i] : m->media->vol_medium[i]) == medium;
}

/* A volume file name: 1-based index of a data ('v') or parity ('p') volume, or 0. */
static size_t volume_index(const struct bn_manifest *m, const char *n, char *kind)
{
	unsigned idx = 0;
	char tail;
	if (sscanf(n, "vol-%5u.agv%c", &idx, &tail) == 1 && idx >= 1 && idx <= m->n_volumes &&
	    !strcmp(n, m->volumes[idx - 1].name)) {
		*kind = 'v';
		return idx;
	}
	if (m->parity && sscanf(n, "par-%5u.agp%c", &idx, &tail) == 1 && idx >= 1 && idx <= m->parity->n_volumes &&
	    !strcmp(n, m->parity->volumes[idx - 1].name)) {
		*kind = 'p';
		return idx;
	}
	return 0;
}

/* Top-level entries of a bundle directory or medium: only what the signed manifest names. */
static int check_entries(struct bn_bundle *b, const char *dir, unsigned medium, struct bn_error *err)
{
	const struct bn_manifest *m = b->m;
	DIR *d = opendir(dir);
	if (!d)
		return bn_fail(err, -errno, "%s: %s", dir, strerror(errno));
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		char kind = 0;
		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "manifest.json") || !strcmp(n, "SHA256SUMS") ||
		    !strcmp(n, "signatures") || (medium && !strcmp(n, BN_MEDIUM_LABEL)))
			continue;
		size_t idx = volume_index(m, n, &kind);
		if (idx && in_view_medium(m, medium, kind == 'p', idx - 1))
			continue;
		if (idx && m->media)
			r = bn_fail(err, -EBADMSG, "%s/%s: belongs on medium %u, not here", dir, n,
			            kind == 'p' ? m->media->par_medium[idx - 1] : m->media->vol_medium[idx - 1]);
		else
			r = bn_fail(err, -EBADMSG, "%s/%s: unexpected file in bundle (not named by the signed manifest)", dir, n);
		break;
	}
	closedir(d);
	return r;
}

int bn_layout_attach(struct bn_bundle *b, struct bn_error *err)
{
	const struct bn_manifest *m = b->m;
	bool set = bn_media_is_set(b->dir);
	if (!m->parity && !m->media && !set)
		return 0; /* a plain 1.0 bundle: reader.c's own checks apply */
	size_t nv = m->n_volumes, np = m->parity ? m->parity->n_volumes : 0;
	struct bn_layout *l = calloc(1, sizeof *l);
	if (!l)
		return bn_fail(err, -ENOMEM, "out of memory");
	b->layout = l;
	l->vpath = calloc(nv + 1, sizeof *l->vpath);
	l->ppath = calloc(np + 1, sizeof *l->ppath);
	l->vst = calloc(nv + 1, 1);
	l->pst = calloc(np + 1, 1);
	l->vwhy = calloc(nv + 1, sizeof *l->vwhy);
	l->pwhy = calloc(np + 1, sizeof *l->pwhy);
	l->pverified = calloc(np + 1, sizeof *l->pverified);
	l->vfd = calloc(nv + 1, sizeof *l->vfd);
	/* The end marks and "no fd" before any failure: bn_layout_free walks
	 * each array that was allocated up to its mark and closes fds >= 0. */
	if (l->vpath)
		l->vpath[nv] = (char *)-1;
	if (l->ppath)
		l->ppath[np] = (char *)-1;
	for (size_t i = 0; l->vfd && i < nv; i++)
		l->vfd[i] = -1;
	if (l->vfd)
		l->vfd[nv] = -2;
	if (!l->vpath || !l->ppath || !l->vst || !l->pst || !l->vwhy || !l->pwhy || !l->pverified || !l->vfd)
		return bn_fail(err, -ENOMEM, "out of memory");
	l->view = VIEW_DIR;
	if (set) {
		if (!m->media)
			return bn_fail(err, -EBADMSG, "%s: holds medium-NN directories but the signed manifest names no media",
			               b->dir);
		l->view = VIEW_SET;
	} else if (m->media) {
		char *lp = bn_path_join(b->dir, BN_MEDIUM_LABEL);
		struct stat st;
		if (!lp)
			return bn_fail(err, -ENOMEM, "out of memory");
		bool labelled = lstat(lp, &st) == 0;
		free(lp);
		if (labelled) {
			unsigned c = 0;
			if (parse_label(b->dir, &l->medium, &c) < 0 || l->medium < 1 || l->medium > m->media->count ||
			    c != m->media->count)
				return bn_fail(err, -EBADMSG, "%s/%s: not a label of this bundle's media (expected \"medium N of %u\")",
				               b->dir, BN_MEDIUM_LABEL, m->media->count);
			l->view = VIEW_MEDIUM;
		}
	}
	for (size_t i = 0; i < nv + np; i++) {
		bool par = i >= nv;
		size_t j = par ? i - nv : i;
		const char *name = par ? m->parity->volumes[j].name : m->volumes[j].name;
		char *path = NULL;
		if (l->view == VIEW_MEDIUM && !in_view_medium(m, l->medium, par, j)) {
			(par ? l->pst : l->vst)[j] = VS_ABSENT;
			continue;
		}
		if (l->view == VIEW_SET) {
			char mn[32];
			medium_name(par ? m->media->par_medium[j] : m->media->vol_medium[j], mn);
			if (asprintf(&path, "%s/%s/%s", b->dir, mn, name) < 0)
				path = NULL;
		} else {
			path = bn_path_join(b->dir, name);
		}
		if (!path)
			return bn_fail(err, -ENOMEM, "out of memory");
		(par ? l->ppath : l->vpath)[j] = path;
	}
	return 0;
}

bool bn_layout_in_view(const struct bn_bundle *b, size_t v)
{
	return !b->layout || b->layout->vst[v] != VS_ABSENT;
}

static const char *vname(const struct bn_bundle *b, bool par, size_t i)
{
	return par ? b->m->parity->volumes[i].name : b->m->volumes[i].name;
}

/* Lists the lost members of group g into out. */
static void group_losses(const struct bn_bundle *b, size_t g, char *out, size_t outlen, unsigned *ret_n)
{
	const struct bn_layout *l = b->layout;
	const struct bn_parity_group *gr = &b->m->parity->groups[g];
	unsigned n = 0;
	out[0] = '\0';
	for (uint32_t i = 0; i < gr->k + gr->p; i++) {
		bool par = i >= gr->k;
		size_t v = par ? gr->par[i - gr->k] : gr->data[i];
		uint8_t st = par ? l->pst[v] : l->vst[v];
		if (st != VS_BAD)
			continue;
		n++;
		size_t ol = strlen(out);
		snprintf(out + ol, outlen - ol, "%s%s (%s)", n > 1 ? ", " : "", vname(b, par, v),
		         par ? l->pwhy[v] : l->vwhy[v]);
	}
	*ret_n = n;
}

static int unrecoverable(struct bn_bundle *b, size_t g, struct bn_error *err)
{
	char what[700];
	unsigned n = 0;
	group_losses(b, g, what, sizeof what, &n);
	const struct bn_parity_group *gr = &b->m->parity->groups[g];
	return bn_fail(err, -EBADMSG, "%s: %u volumes of parity group %zu are missing or damaged: %s; its %u parity "
	               "volume(s) can rebuild at most %u", b->dir, n, g + 1, what, gr->p, gr->p);
}

/* A medium's manifest.json is the signed one: read bounded, never through a
 * symlink, a FIFO or a device (a /dev/zero manifest must not hash forever). */
static bool same_manifest(const struct bn_bundle *b, const char *mf, uint8_t *h)
{
	char *buf = NULL;
	size_t len = 0;
	if (bn_read_file_nofollow(mf, BN_MANIFEST_MAX, &buf, &len, NULL) < 0)
		return false;
	bn_sha256(buf, len, h);
	free(buf);
	return len == b->manifest_len && !memcmp(h, b->manifest_sha256, BN_SHA256_LEN);
}

int bn_layout_check_files(struct bn_bundle *b, struct bn_error *err)
{
	struct bn_layout *l = b->layout;
	const struct bn_manifest *m = b->m;
	size_t nv = m->n_volumes, np = m->parity ? m->parity->n_volumes : 0;
	int r = 0;
	if (l->view == VIEW_SET) {
		/* Only medium-NN directories, each holding the same signed manifest. */
		DIR *d = opendir(b->dir);
		if (!d)
			return bn_fail(err, -errno, "%s: %s", b->dir, strerror(errno));
		struct dirent *de;
		while (r == 0 && (de = readdir(d))) {
			unsigned mi = 0;
			char tail, want[32];
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			if (sscanf(de->d_name, "medium-%u%c", &mi, &tail) != 1 || mi < 1 || mi > m->media->count ||
			    (medium_name(mi, want), strcmp(want, de->d_name) != 0)) {
				r = bn_fail(err, -EBADMSG, "%s/%s: unexpected entry in a media set of %u media", b->dir, de->d_name,
				            m->media->count);
				break;
			}
			char *md = bn_path_join(b->dir, de->d_name), *mf = md ? bn_path_join(md, "manifest.json") : NULL;
			uint8_t h[BN_SHA256_LEN];
			struct stat st;
			if (!mf)
				r = bn_fail(err, -ENOMEM, "out of memory");
			else if (lstat(md, &st) < 0 || !S_ISDIR(st.st_mode))
				r = bn_fail(err, -EBADMSG, "%s: not a directory (symbolic links are refused)", md);
			else if (!same_manifest(b, mf, h))
				r = bn_fail(err, -EBADMSG, "%s: manifest.json is not the signed manifest of this set (bundle %s "
				            "version %" PRIu64 "): a medium of another bundle or version", md, m->name, m->version);
			else
				r = check_entries(b, md, mi, err);
			free(mf);
			free(md);
		}
		closedir(d);
	} else {
		r = check_entries(b, b->dir, l->view == VIEW_MEDIUM ? l->medium : 0, err);
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < nv + np; i++) {
		bool par = i >= nv;
		size_t j = par ? i - nv : i;
		const char *p = par ? l->ppath[j] : l->vpath[j];
		uint64_t want = par ? m->parity->volumes[j].size : m->volumes[j].size;
		const char **why = par ? &l->pwhy[j] : &l->vwhy[j];
		uint8_t *st = par ? &l->pst[j] : &l->vst[j];
		struct stat s;
		if (!p)
			continue;
		if (lstat(p, &s) < 0)
			*why = errno == ENOENT ? "missing" : "unreadable";
		else if (!S_ISREG(s.st_mode))
			*why = "not a regular file";
		else if ((uint64_t)s.st_size != want)
			*why = (uint64_t)s.st_size < want ? "truncated" : "extended";
		else
			continue;
		*st = VS_BAD;
		/* A single medium is checked alone: nothing to rebuild from. */
		if (l->view == VIEW_MEDIUM || !m->parity) {
			if (!strcmp(*why, "missing"))
				return bn_fail(err, -EBADMSG, "%s: missing (%s %zu of %zu named in the signed manifest)", p,
				               par ? "parity volume" : "volume", j + 1, par ? np : nv);
			if ((uint64_t)s.st_size != want && S_ISREG(s.st_mode))
				return bn_fail(err, -EBADMSG, "%s: size is %lld bytes, the signed manifest says %" PRIu64 " (%s)", p,
				               (long long)s.st_size, want, *why);
			return bn_fail(err, -EBADMSG, "%s: %s", p, *why);
		}
		if (par)
			note(l, "%s: %s; not used (the data is checked without it)", p, *why);
	}
	if (m->parity && l->view != VIEW_MEDIUM)
		for (size_t g = 0; g < m->parity->n_groups; g++) {
			char what[8];
			unsigned n = 0;
			group_losses(b, g, what, sizeof what, &n);
			if (n > m->parity->groups[g].p)
				return unrecoverable(b, g, err);
		}
	return 0;
}

int bn_layout_require_complete(struct bn_bundle *b, struct bn_error *err)
{
	const struct bn_layout *l = b->layout;
	if (!l || l->view != VIEW_MEDIUM)
		return 0;
	return bn_fail(err, -EBADMSG, "%s: medium %u of %u of bundle %s version %" PRIu64 " holds only part of the "
	               "bundle; extract or stage from the set directory (holding medium-01 ... medium-%02u)", b->dir,
	               l->medium, b->m->media->count, b->m->name, b->m->version, b->m->media->count);
}

/* ---- rebuilding -------------------------------------------------------- */

static const char *repair_dir(void)
{
	const char *d = bn_tunables()->repair_dir;
	return d && *d ? d : "/var/tmp";
}

struct member {
	bool par;
	size_t v;        /* index among data or parity volumes */
	uint32_t row;    /* row of the encoding matrix */
	uint64_t size;
	int fd;
	struct bn_sha256 *sha;
};

/* One rebuild attempt of a parity group: its survivors (src, k of them)
 * and the lost data volumes (out, no of them), their buffers and the
 * decoding tables. */
struct rebuild {
	struct bn_layout *l;
	const struct bn_manifest *m;
	const struct bn_parity_group *gr;
	size_t g;
	uint32_t k, p;
	struct member *src, *out;
	size_t ns, no;
	uint8_t *a, *sub, *inv, *rows, *tbl;
	uint8_t **sbuf, **obuf;
	size_t B;
	const char *rd;
};

/* n members with no file open (fd -1), so rebuild_free closes only what was
 * opened whatever fails after; NULL when out of memory. */
static struct member *members_new(uint32_t n)
{
	struct member *v = calloc(n, sizeof *v);
	for (uint32_t i = 0; v && i < n; i++)
		v[i].fd = -1;
	return v;
}

static void rebuild_free(struct rebuild *rb)
{
	for (uint32_t i = 0; rb->src && i < rb->k; i++) {
		if (rb->src[i].fd >= 0)
			close(rb->src[i].fd);
		bn_sha256_free(rb->src[i].sha);
	}
	for (uint32_t i = 0; rb->out && i < rb->k; i++) {
		if (rb->out[i].fd >= 0)
			close(rb->out[i].fd);
		bn_sha256_free(rb->out[i].sha);
	}
	for (uint32_t i = 0; rb->sbuf && i < rb->k; i++)
		free(rb->sbuf[i]);
	for (uint32_t i = 0; rb->obuf && i < rb->k; i++)
		free(rb->obuf[i]);
	free(rb->sbuf);
	free(rb->obuf);
	free(rb->src);
	free(rb->out);
	free(rb->a);
	free(rb->sub);
	free(rb->inv);
	free(rb->rows);
	free(rb->tbl);
}

/* Survivors: data volumes first (identity rows), then parity volumes; the
 * lost: data volumes marked bad. */
static void rebuild_members(struct rebuild *rb)
{
	const struct bn_layout *l = rb->l;
	const struct bn_manifest *m = rb->m;
	const struct bn_parity_group *gr = rb->gr;
	uint32_t k = rb->k, p = rb->p;
	for (uint32_t i = 0; i < k + p && rb->ns < k; i++) {
		bool par = i >= k;
		size_t v = par ? gr->par[i - k] : gr->data[i];
		uint8_t st = par ? l->pst[v] : l->vst[v];
		if (st == VS_OK || st == VS_REBUILT)
			rb->src[rb->ns++] = (struct member){.par = par, .v = v, .row = i,
			                                    .size = par ? m->parity->volumes[v].size : m->volumes[v].size,
			                                    .fd = -1};
	}
	for (uint32_t i = 0; i < k; i++)
		if (l->vst[gr->data[i]] == VS_BAD)
			rb->out[rb->no++] =
			    (struct member){.v = gr->data[i], .row = i, .size = m->volumes[gr->data[i]].size, .fd = -1};
}

/* data = inverse(survivor rows) x survivors: the lost volumes' rows of the inverse. */
static int rebuild_tables(struct rebuild *rb, struct bn_error *err)
{
	uint32_t k = rb->k;
	for (uint32_t i = 0; i < k; i++)
		memcpy(rb->sub + (size_t)i * k, rb->a + (size_t)rb->src[i].row * k, k);
	if (gf_invert_matrix(rb->sub, rb->inv, (int)k) < 0)
		return bn_fail(err, -EIO, "parity group %zu: cannot invert the decoding matrix", rb->g + 1);
	for (size_t o = 0; o < rb->no; o++)
		memcpy(rb->rows + o * k, rb->inv + (size_t)rb->out[o].row * k, k);
	ec_init_tables((int)k, (int)rb->no, rb->rows, rb->tbl);
	return 0;
}

/* Free space in the repair directory, the survivors opened, an anonymous
 * file for each lost volume.  1: a survivor vanished (marked; try again). */
static int rebuild_open(struct rebuild *rb, struct bn_error *err)
{
	struct bn_layout *l = rb->l;
	const struct bn_manifest *m = rb->m;
	uint32_t k = rb->k;
	size_t no = rb->no;
	const char *rd = rb->rd = repair_dir();
	uint64_t need = 0;
	for (size_t o = 0; o < no; o++)
		need += rb->out[o].size;
	struct statvfs sv;
	if (statvfs(rd, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < need)
		return bn_fail(err, -ENOSPC, "%s: not enough free space to rebuild %zu volume(s) from parity (%" PRIu64
		               " MiB; set AGKIT_REPAIR_DIR)", rd, no, need >> 20);
	size_t B = rb->B = bn_parity_block(k + (uint32_t)no);
	for (uint32_t i = 0; i < k; i++) {
		struct member *s = &rb->src[i];
		if (posix_memalign((void **)&rb->sbuf[i], 64, B) != 0 || !(s->sha = bn_sha256_new())) {
			rb->sbuf[i] = NULL;
			return bn_fail(err, -ENOMEM, "out of memory");
		}
		if (!s->par && l->vst[s->v] == VS_REBUILT)
			s->fd = dup(l->vfd[s->v]);
		else
			s->fd = bn_open_regular(s->par ? l->ppath[s->v] : l->vpath[s->v], true);
		if (s->fd < 0) {
			/* Vanished or unreadable since the check: drop it and try again. */
			(s->par ? l->pst : l->vst)[s->v] = VS_BAD;
			(s->par ? l->pwhy : l->vwhy)[s->v] = "unreadable";
			return 1;
		}
		posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	for (size_t o = 0; o < no; o++) {
		struct member *out = &rb->out[o];
		char *tp = NULL;
		if (asprintf(&tp, "%s/agkit-rebuild-XXXXXX", rd) < 0)
			return bn_fail(err, -ENOMEM, "out of memory");
		out->fd = mkostemp(tp, O_CLOEXEC);
		int e = errno;
		if (out->fd >= 0)
			unlink(tp); /* anonymous: nothing to clean up, even after a crash */
		free(tp);
		if (out->fd < 0)
			return bn_fail(err, -e, "%s: cannot create a file to rebuild %s: %s", rd, m->volumes[out->v].name,
			               strerror(e));
		if (posix_memalign((void **)&rb->obuf[o], 64, B) != 0 || !(out->sha = bn_sha256_new())) {
			rb->obuf[o] = NULL;
			return bn_fail(err, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* The group's stripes: survivors read and hashed, lost volumes decoded,
 * hashed and written.  1: a survivor failed a read (marked; try again). */
static int rebuild_stripes(struct rebuild *rb, struct bn_error *err)
{
	struct bn_layout *l = rb->l;
	const struct bn_manifest *m = rb->m;
	uint32_t k = rb->k;
	size_t no = rb->no, B = rb->B;
	int r;
	for (uint64_t off = 0; off < rb->gr->len; off += B) {
		if ((r = bn_check_cancel(err)) < 0)
			return r;
		size_t len = rb->gr->len - off < B ? (size_t)(rb->gr->len - off) : B;
		for (uint32_t i = 0; i < k; i++) {
			struct member *s = &rb->src[i];
			size_t have = off >= s->size ? 0 : (s->size - off < len ? (size_t)(s->size - off) : len);
			if (have && bn_pread_all(s->fd, rb->sbuf[i], have, off) < 0) {
				(s->par ? l->pst : l->vst)[s->v] = VS_BAD;
				(s->par ? l->pwhy : l->vwhy)[s->v] = "read error";
				return 1;
			}
			bn_sha256_update(s->sha, rb->sbuf[i], have);
			memset(rb->sbuf[i] + have, 0, len - have);
		}
		ec_encode_data((int)len, (int)k, (int)no, rb->tbl, rb->sbuf, rb->obuf);
		for (size_t o = 0; o < no; o++) {
			struct member *out = &rb->out[o];
			size_t have = off >= out->size ? 0 : (out->size - off < len ? (size_t)(out->size - off) : len);
			bn_sha256_update(out->sha, rb->obuf[o], have);
			int q = have ? bn_pwrite_all(out->fd, rb->obuf[o], have, off) : 0;
			if (q < 0)
				return bn_fail(err, q, "%s: cannot write the rebuilt %s: %s", rb->rd, m->volumes[out->v].name,
				               strerror(-q));
		}
	}
	return 0;
}

/* Survivors are trusted only now that their signed hashes matched (1: one
 * did not; marked, try again); then the rebuilt volumes against theirs. */
static int rebuild_check(struct rebuild *rb, struct bn_error *err)
{
	struct bn_layout *l = rb->l;
	const struct bn_manifest *m = rb->m;
	int r = 0;
	for (uint32_t i = 0; i < rb->k; i++) {
		struct member *s = &rb->src[i];
		uint8_t h[BN_SHA256_LEN];
		bn_sha256_final(s->sha, h);
		const uint8_t *want = s->par ? m->parity->volumes[s->v].sha256 : m->volumes[s->v].sha256;
		if (memcmp(h, want, BN_SHA256_LEN) != 0) {
			(s->par ? l->pst : l->vst)[s->v] = VS_BAD;
			(s->par ? l->pwhy : l->vwhy)[s->v] = "sha256 does not match the signed manifest";
			note(l, "%s: sha256 does not match the signed manifest; not used for rebuilding",
			     s->par ? l->ppath[s->v] : l->vpath[s->v]);
			r = 1;
		} else if (s->par) {
			l->pverified[s->v] = true;
		}
	}
	if (r)
		return r;
	for (size_t o = 0; o < rb->no; o++) {
		uint8_t h[BN_SHA256_LEN];
		bn_sha256_final(rb->out[o].sha, h);
		if (memcmp(h, m->volumes[rb->out[o].v].sha256, BN_SHA256_LEN) != 0)
			return bn_fail(err, -EBADMSG, "%s: rebuilt from parity group %zu but its sha256 does not match the "
			               "signed manifest", m->volumes[rb->out[o].v].name, rb->g + 1);
	}
	return 0;
}

/* One attempt at rebuilding every lost data volume of group g.  1: a
 * survivor failed its hash (marked; try again), 0: done, <0: error. */
static int rebuild_once(struct bn_bundle *b, size_t g, struct bn_error *err)
{
	const struct bn_parity_group *gr = &b->m->parity->groups[g];
	uint32_t k = gr->k, p = gr->p;
	struct rebuild rb = {.l = b->layout, .m = b->m, .gr = gr, .g = g, .k = k, .p = p};
	rb.src = members_new(k);
	rb.out = members_new(k);
	rb.a = bn_parity_matrix(k, p);
	rb.sub = malloc((size_t)k * k);
	rb.inv = malloc((size_t)k * k);
	rb.rows = malloc((size_t)k * k);
	rb.tbl = malloc((size_t)32 * k * k);
	rb.sbuf = calloc(k, sizeof *rb.sbuf);
	rb.obuf = calloc(k, sizeof *rb.obuf);
	int r = 0;
	if (!rb.src || !rb.out || !rb.a || !rb.sub || !rb.inv || !rb.rows || !rb.tbl || !rb.sbuf || !rb.obuf) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	rebuild_members(&rb);
	if (rb.no == 0)
		goto out;
	if (rb.ns < k) {
		r = unrecoverable(b, g, err);
		goto out;
	}
	r = rebuild_tables(&rb, err);
	if (r == 0)
		r = rebuild_open(&rb, err);
	if (r == 0)
		r = rebuild_stripes(&rb, err);
	if (r == 0)
		r = rebuild_check(&rb, err);
	if (r)
		goto out;
	struct bn_layout *l = rb.l;
	for (size_t o = 0; o < rb.no; o++) {
		size_t v = rb.out[o].v;
		l->vst[v] = VS_REBUILT;
		l->vfd[v] = rb.out[o].fd;
		rb.out[o].fd = -1;
		note(l, "%s: %s; rebuilt from parity group %zu and verified against the signed sha256", l->vpath[v],
		     l->vwhy[v] ? l->vwhy[v] : "damaged", g + 1);
	}
out:
	rebuild_free(&rb);
	return r;
}

static int rebuild_group(struct bn_bundle *b, size_t g, struct bn_error *err)
{
	/* Each retry follows a survivor newly marked bad: at most k + p rounds. */
	for (unsigned round = 0; round <= BN_PARITY_MAX_SHARDS; round++) {
		char what[8];
		unsigned n = 0;
		group_losses(b, g, what, sizeof what, &n);
		if (n > b->m->parity->groups[g].p)
			return unrecoverable(b, g, err);
		int r = rebuild_once(b, g, err);
		if (r <= 0)
			return r;
	}
	return bn_fail(err, -EIO, "parity group %zu: rebuilding does not converge", g + 1);
}

int bn_layout_rebuild(struct bn_bundle *b, size_t v, struct bn_error *err)
{
	struct bn_layout *l = b->layout;
	if (!l || !b->m->parity || l->view == VIEW_MEDIUM || l->vst[v] == VS_REBUILT || l->vst[v] == VS_ABSENT)
		return 0;
	if (l->vst[v] == VS_OK) {
		l->vst[v] = VS_BAD;
		/* The caller's message says which check failed. */
		l->vwhy[v] = err && strstr(err->msg, "read error") ? "read error" : "sha256 does not match the signed manifest";
	}
	int r = rebuild_group(b, b->m->parity->vgroup[v], err);
	if (r < 0)
		return r;
	return l->vst[v] == VS_REBUILT ? 1 : bn_fail(err, -EIO, "%s: could not be rebuilt", b->m->volumes[v].name);
}

int bn_layout_open_volume(struct bn_bundle *b, size_t v, struct bn_error *err)
{
	struct bn_layout *l = b->layout;
	const struct bn_manifest *m = b->m;
	if (!l) {
		char *p = bn_path_join(b->dir, m->volumes[v].name);
		if (!p)
			return bn_fail(err, -ENOMEM, "out of memory");
		/* Regular files only: a FIFO swapped in after the checks must not block. */
		int r = bn_open_regular(p, true);
		if (r == -ENOENT)
			r = bn_fail(err, -EBADMSG, "%s: missing", p);
		else if (r == -EBADMSG)
			r = bn_fail(err, -EBADMSG, "%s: not a regular file", p);
		else if (r < 0)
			r = bn_fail(err, r, "%s: %s", p, strerror(-r));
		free(p);
		return r;
	}
	if (l->vst[v] == VS_ABSENT)
		return bn_fail(err, -EBADMSG, "%s: is on medium %u; this is medium %u", m->volumes[v].name,
		               m->media->vol_medium[v], l->medium);
	if (l->vst[v] == VS_BAD) {
		int r = bn_layout_rebuild(b, v, err);
		if (r == 0)
			r = bn_fail(err, -EBADMSG, "%s: %s", l->vpath[v], l->vwhy[v]);
		if (r < 0)
			return r;
	}
	if (l->vst[v] == VS_REBUILT) {
		int fd = dup(l->vfd[v]);
		return fd < 0 ? bn_fail(err, -errno, "%s: %s", m->volumes[v].name, strerror(errno)) : fd;
	}
	int fd = bn_open_regular(l->vpath[v], true);
	if (fd >= 0)
		return fd;
	int e = -fd;
	l->vst[v] = VS_BAD;
	l->vwhy[v] = e == ENOENT ? "missing" : e == EBADMSG ? "not a regular file" : "unreadable";
	int r = bn_layout_rebuild(b, v, err);
	if (r > 0)
		return bn_layout_open_volume(b, v, err);
	if (r == 0)
		r = e == ENOENT || e == EBADMSG ? bn_fail(err, -EBADMSG, "%s: %s", l->vpath[v], l->vwhy[v])
		                : bn_fail(err, -e, "%s: %s", l->vpath[v], strerror(e));
	return r;
}

int bn_layout_verify_rest(struct bn_bundle *b, struct bn_error *err)
{
	struct bn_layout *l = b->layout;
	const struct bn_manifest *m = b->m;
	if (!l || !m->parity)
		return 0;
	for (size_t j = 0; j < m->parity->n_volumes; j++) {
		if (l->pst[j] != VS_OK || l->pverified[j] || !l->ppath[j])
			continue;
		uint8_t h[BN_SHA256_LEN];
		struct bn_error e2 = {0};
		int r = bn_sha256_file(l->ppath[j], h, NULL, &e2);
		if (r == 0 && memcmp(h, m->parity->volumes[j].sha256, BN_SHA256_LEN) == 0) {
			l->pverified[j] = true;
			continue;
		}
		const char *why = r < 0 ? "read error" : "sha256 does not match the signed manifest";
		if (l->view == VIEW_MEDIUM)
			return bn_fail(err, -EBADMSG, "%s: %s", l->ppath[j], why);
		l->pst[j] = VS_BAD;
		l->pwhy[j] = why;
		note(l, "%s: %s (damaged or altered); the data is complete without it, redundancy is reduced", l->ppath[j],
		     why);
	}
	return 0;
}
