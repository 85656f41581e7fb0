/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Helpers shared by libbundle's per-module unit tests (tests/bundle/test-*.c):
 * a work directory, deterministic input, bundles packed with the writer API
 * (with parity and media as agpack build makes them), and opening them under
 * a key.  Header only: each test is one executable.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "bundle/tunables.h"
#include "bundle/writer.h"

static char W[256]; /* the test's work directory */

static inline void ut_die(const char *what)
{
	printf("Bail out! %s\n", what);
	exit(1);
}

/* W/fmt..., in a static buffer of its own per slot (4 slots, rotating). */
static inline const char *ut_path(const char *fmt, ...)
{
	static char bufs[4][1024];
	static unsigned k;
	char *b = bufs[k++ % 4];
	int n = snprintf(b, 1024, "%s/", W);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b + n, (size_t)(1024 - n), fmt, ap);
	va_end(ap);
	return b;
}

static inline void ut_write(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || bn_write_all(fd, p, n) < 0)
		ut_die(path);
	close(fd);
}

/* The exit status of the shell command fmt... (128: killed). */
static inline int ut_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* A small xorshift: the inputs are the same in every run. */
static uint64_t ut_rng = 88172645463325252ull;
static inline uint64_t ut_rand(void)
{
	ut_rng ^= ut_rng << 13;
	ut_rng ^= ut_rng >> 7;
	ut_rng ^= ut_rng << 17;
	return ut_rng;
}

/* n random bytes in path. */
static inline void ut_random_file(const char *path, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		ut_die("out of memory");
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)ut_rand();
	ut_write(path, b, n);
	free(b);
}

/* Creates W (with W/in/sub) under $TMPDIR and initialises libsodium; with
 * pk and sk, a new key pair in them. */
static inline void ut_setup(const char *name, struct bn_pubkey *pk, struct bn_seckey *sk)
{
	snprintf(W, sizeof W, "%s/agkit-test-%s.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name);
	if (!mkdtemp(W) || bn_crypto_init() < 0 || bn_mkdir_p(ut_path("in/sub"), 0755) < 0)
		ut_die("setup");
	if (pk && bn_keygen(pk, sk) < 0)
		ut_die("keygen");
}

/* Parity repair writes into W/repair (not /var/tmp); skip_space: no free-space
 * checks before a stream is received. */
static inline void ut_tunables(bool skip_space)
{
	static char repair[1024];
	snprintf(repair, sizeof repair, "%s/repair", W);
	if (bn_mkdir_p(repair, 0755) < 0)
		ut_die(repair);
	struct bn_tunables t = {.repair_dir = repair, .skip_space_check = skip_space};
	bn_set_tunables(&t);
}

/* Opens dir under one key (NULL and the error in # lines when it fails). */
static inline struct bn_bundle *ut_open(const char *dir, const struct bn_pubkey *pk, struct bn_error *err)
{
	struct bn_trust t = {.keys = pk, .n_keys = 1};
	struct bn_bundle *b = NULL;
	if (bn_bundle_open(dir, &t, &b, err) < 0) {
		printf("# %s\n", err->msg);
		return NULL;
	}
	return b;
}

/* True when the two files hold the same bytes. */
static inline bool ut_same_file(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t lx = 0, ly = 0;
	bool ok = bn_read_file(a, 256u << 20, &x, &lx, NULL) == 0 && bn_read_file(b, 256u << 20, &y, &ly, NULL) == 0 &&
	          lx == ly && memcmp(x, y, lx) == 0;
	free(x);
	free(y);
	return ok;
}

/* True when diff -r finds the trees the same. */
static inline bool ut_same_tree(const char *a, const char *b)
{
	return ut_sh("diff -r --no-dereference '%s' '%s' >/dev/null 2>&1", a, b) == 0;
}

struct ut_pack_opts {
	const char *name, *channel; /* NULL: "t", "c" */
	uint64_t version;           /* 0: 1 */
	const char *created;        /* NULL: 2026-01-01T00:00:00Z */
	uint64_t volume_size;       /* 0: 64 KiB */
	uint32_t chunk_size;        /* 0: 16 KiB */
	unsigned parity;            /* parity volumes per group (0: none) */
	size_t groups;              /* parity groups (0: the fewest) */
	uint64_t media;             /* media capacity in bytes (0: a plain directory) */
	unsigned threads;           /* writer threads (0: online CPUs) */
	bn_warn_fn warn;            /* the writer's notes (NULL: none) */
	const char *single;         /* optional: W/SINGLE added as a second artifact, "single" */
};

/* Packs W/SRC (a file or a tree) as artifact "data" into the new directory
 * W/OUT with the writer API, adds parity volumes and lays it out as media
 * when asked (in agpack build's order: media plan, parity, the parity
 * volumes' media, sign, layout) and signs it with sk; 0 or a negative errno. */
static inline int ut_pack(const char *src, const char *out, const struct bn_seckey *sk, const struct ut_pack_opts *po,
                          struct bn_error *err)
{
	struct ut_pack_opts none = {0};
	if (!po)
		po = &none;
	char dir[1024], in[1024], one[1024];
	snprintf(dir, sizeof dir, "%s/%s", W, out);
	snprintf(in, sizeof in, "%s/%s", W, src);
	snprintf(one, sizeof one, "%s/%s", W, po->single ? po->single : "");
	if (bn_mkdir_p(dir, 0755) < 0)
		return bn_fail(err, -EIO, "%s: cannot create", dir);
	struct bn_writer_opts o = {.dir = dir, .volume_size = po->volume_size ? po->volume_size : 64u << 10,
	                           .chunk_size = po->chunk_size ? po->chunk_size : 16u << 10,
	                           .threads = po->threads,
	                           .warn = po->warn};
	struct bn_writer *w = NULL;
	const struct bn_manifest *wm = NULL;
	struct bn_manifest *m = NULL; /* taken from the writer, for parity and media */
	char *text = NULL;
	size_t len = 0, columns = 0;
	int r = bn_writer_new(&o, &w, err);
	if (r == 0)
		r = bn_writer_add(w, "data", "files", "tree", in, NULL, NULL, err);
	if (r == 0 && po->single)
		r = bn_writer_add(w, "single", "files", "tree", one, NULL, NULL, err);
	if (r == 0)
		r = bn_writer_finish(w, po->name ? po->name : "t", po->channel ? po->channel : "c",
		                     po->version ? po->version : 1, po->created ? po->created : "2026-01-01T00:00:00Z",
		                     &wm, err);
	if (r == 0)
		r = bn_writer_take_manifest(w, &m, err);
	/* The media plan reserves room on each medium for the signed files:
	 * twice the manifest so far and 8 KiB. */
	if (r == 0 && po->media && bn_manifest_format(m, &text, &len) < 0)
		r = bn_fail(err, -ENOMEM, "cannot format the manifest");
	if (r == 0 && po->media)
		r = bn_media_plan(m, po->media, len * 2 + 8192, &columns, err);
	if (r == 0 && po->parity)
		r = bn_parity_build(dir, m, po->parity, po->media ? columns : po->groups, err);
	if (r == 0 && po->media)
		r = bn_media_assign_parity(m, columns, err);
	free(text);
	text = NULL;
	if (r == 0 && bn_manifest_format(m, &text, &len) < 0)
		r = bn_fail(err, -ENOMEM, "cannot format the manifest");
	if (r == 0)
		r = bn_bundle_write_signed(dir, text, len, m, sk, err);
	if (r == 0 && po->media)
		r = bn_media_layout(dir, m, err);
	free(text);
	bn_manifest_free(m);
	bn_writer_free(w);
	return r;
}
