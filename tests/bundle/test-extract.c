/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the one resumable extractor (libbundle/extract.c): a run
 * killed after each chunk's checkpoint resumes to the same tree; serial and
 * parallel runs give identical trees; a corrupt chunk leaves no output; the
 * progress record reads its earlier formats.  Bundles are made with $AGPACK.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "bundle/tunables.h"
#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "extract_internal.h"

static struct bn_pubkey pk;
static struct bn_trust trust = {.keys = &pk, .n_keys = 1};

/* in/: random data over many chunks, a file of zeros (holes), a BF16
 * safetensors file (byte-grouped chunks), small and empty files, a
 * directory, a symlink. */
static void make_input(void)
{
	char p[512];
	snprintf(p, sizeof p, "%s/in/sub/deeper", W);
	if (bn_mkdir_p(p, 0755) < 0)
		ut_die("mkdir");
	size_t n = 700 * 1024;
	uint8_t *buf = malloc(n);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)ut_rand();
	snprintf(p, sizeof p, "%s/in/random.bin", W);
	ut_write(p, buf, n);
	memset(buf, 0, n);
	snprintf(p, sizeof p, "%s/in/sub/zeros.bin", W);
	ut_write(p, buf, 300 * 1024);
	/* BF16: 256 Ki elements with exponents near 0x3c (small weights). */
	const char *hdr0 = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[262144],\"data_offsets\":[0,524288]}}";
	size_t hl = (strlen(hdr0) + 7) / 8 * 8;
	uint8_t *st = calloc(1, 8 + hl + 524288);
	for (int i = 0; i < 8; i++)
		st[i] = (uint8_t)(hl >> (8 * i));
	memset(st + 8, ' ', hl);
	memcpy(st + 8, hdr0, strlen(hdr0));
	for (size_t i = 0; i < 262144; i++) {
		uint64_t r = ut_rand();
		st[8 + hl + 2 * i] = (uint8_t)r;
		st[8 + hl + 2 * i + 1] = (uint8_t)(0x3c + (r >> 8) % 3) | (r >> 16 & 1 ? 0x80 : 0);
	}
	snprintf(p, sizeof p, "%s/in/model.safetensors", W);
	ut_write(p, st, 8 + hl + 524288);
	free(st);
	for (int i = 0; i < 5; i++) {
		char s[64];
		int l = snprintf(s, sizeof s, "small file %d\n", i);
		snprintf(p, sizeof p, "%s/in/sub/deeper/s%d.txt", W, i);
		ut_write(p, s, (size_t)l);
	}
	snprintf(p, sizeof p, "%s/in/empty", W);
	ut_write(p, "", 0);
	snprintf(p, sizeof p, "%s/in/link", W);
	if (symlink("sub/zeros.bin", p) < 0)
		ut_die("symlink");
	free(buf);
}

static struct bn_bundle *open_bundle(const char *dir)
{
	struct bn_bundle *b = NULL;
	struct bn_error err = {0};
	if (bn_bundle_open(dir, &trust, &b, &err) < 0) {
		printf("# %s\n", err.msg);
		return NULL;
	}
	return b;
}

/* Compares target/data (an extracted artifact) with in/ entry by entry, as
 * the manifest lists them, plus modes; 0 when identical. */
static int tree_diff(const struct bn_bundle *b, const char *target)
{
	const struct bn_artifact *a = &b->m->artifacts[0];
	int bad = 0;
	for (size_t i = 0; i < a->n_entries; i++) {
		const struct bn_entry *e = &a->entries[i];
		char x[512], in[512];
		snprintf(x, sizeof x, "%s/%s/%s", target, a->name, e->path);
		snprintf(in, sizeof in, "%s/in/%s", W, e->path);
		struct stat st;
		if (lstat(x, &st) < 0) {
			bad++;
			continue;
		}
		if (e->type == BN_ENTRY_FILE)
			bad += !S_ISREG(st.st_mode) || (st.st_mode & 07777) != bn_entry_mode(e->mode, false) ||
			       !ut_same_file(x, in);
		else if (e->type == BN_ENTRY_DIR)
			bad += !S_ISDIR(st.st_mode) || (st.st_mode & 07777) != bn_entry_mode(e->mode, true);
		else {
			char t[512];
			ssize_t n = readlink(x, t, sizeof t - 1);
			bad += n < 0 || (t[n] = '\0', strcmp(t, e->target) != 0);
		}
	}
	return bad;
}

/* Anything named PREFIX* beside PREFIX (temporary siblings). */
static bool leftovers(const char *name)
{
	DIR *d = opendir(W);
	struct dirent *de;
	bool found = false;
	while (d && (de = readdir(d)))
		found |= !strncmp(de->d_name, name, strlen(name));
	if (d)
		closedir(d);
	return found;
}

static int extract(const char *bundle, const char *target, unsigned threads, const char *work, size_t *resumed,
                   struct bn_error *err)
{
	struct bn_bundle *b = open_bundle(bundle);
	if (!b)
		return -EBADMSG;
	b->threads = threads;
	struct bn_extract_opts o = {.work_dir = work};
	int r = bn_bundle_extract(b, target, &o, err);
	if (resumed)
		*resumed = o.resumed_chunks;
	bn_bundle_free(b);
	return r;
}

static size_t count_bits(const struct bn_bundle *b, const char *work)
{
	int fd = open(work, O_RDONLY | O_DIRECTORY);
	uint8_t *bits = calloc(BN_XPROGRESS_BITS(b) + 1, 1);
	size_t n = 0;
	if (fd >= 0 && bn_xprogress_read(b, fd, ".agkit-progress", bits) == 1)
		for (size_t i = 0; i < b->m->n_chunks; i++)
			n += bits[i / 8] >> (i % 8) & 1;
	if (fd >= 0)
		close(fd);
	free(bits);
	return n;
}

static void test_serial_parallel(struct bn_bundle *b, const char *bdir)
{
	char x1[512], x4[512];
	snprintf(x1, sizeof x1, "%s/x1", W);
	snprintf(x4, sizeof x4, "%s/x4", W);
	struct bn_error err = {0};
	int r1 = extract(bdir, x1, 1, NULL, NULL, &err);
	TAP_OK(r1 == 0, "serial extract (1 thread) succeeds%s%s", r1 ? ": " : "", r1 ? err.msg : "");
	int r4 = extract(bdir, x4, 4, NULL, NULL, &err);
	TAP_OK(r4 == 0, "parallel extract (4 threads) succeeds%s%s", r4 ? ": " : "", r4 ? err.msg : "");
	TAP_OK(tree_diff(b, x1) == 0, "serial tree is the input (contents, modes, symlink)");
	TAP_OK(tree_diff(b, x4) == 0, "parallel tree is the input (contents, modes, symlink)");
	char cmd[1200];
	snprintf(cmd, sizeof cmd, "diff -r --no-dereference %s %s >/dev/null", x1, x4);
	TAP_OK(ut_sh("%s", cmd) == 0, "serial and parallel trees are identical");
	char z[600];
	snprintf(z, sizeof z, "%s/data/sub/zeros.bin", x4);
	struct stat st;
	TAP_OK(stat(z, &st) == 0 && st.st_blocks == 0, "an all-zero file is left as a hole (%lld blocks)",
	       (long long)st.st_blocks);
}

/* Every checkpoint (one per chunk) kills the run; each rerun must resume
 * exactly one chunk further, and the last one completes. */
static void test_crash_each_chunk(struct bn_bundle *b, const char *bdir, unsigned threads)
{
	char out[512], work[512];
	snprintf(out, sizeof out, "%s/out%u", W, threads);
	snprintf(work, sizeof work, "%s/work%u", W, threads);
	size_t n = b->m->n_chunks, k;
	bool all_killed = true, all_steps = true, none_out = true;
	for (k = 0; k < n; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			bn_set_tunables(&(struct bn_tunables){.crash_at = "extract:checkpoint", .checkpoint_bytes = 1});
			struct bn_error e = {0};
			_exit(extract(bdir, out, threads, work, NULL, &e) == 0 ? 0 : 3);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		all_killed &= WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
		size_t have = count_bits(b, work);
		if (have != k + 1) {
			printf("# threads %u, run %zu: %zu chunks recorded, expected %zu\n", threads, k, have, k + 1);
			all_steps = false;
		}
		none_out &= access(out, F_OK) != 0;
		if (!all_killed || !all_steps)
			break;
	}
	TAP_OK(all_killed, "threads %u: each of the %zu runs is killed at its first checkpoint", threads, n);
	TAP_OK(all_steps, "threads %u: each run recorded exactly one more chunk than the one before", threads);
	TAP_OK(none_out, "threads %u: no target while the runs are killed", threads);
	struct bn_error err = {0};
	size_t resumed = 0;
	int r = extract(bdir, out, threads, work, &resumed, &err);
	TAP_OK(r == 0, "threads %u: the last run completes%s%s", threads, r ? ": " : "", r ? err.msg : "");
	TAP_OK(resumed == n, "threads %u: it resumed with all %zu chunks in place (%zu)", threads, n, resumed);
	TAP_OK(tree_diff(b, out) == 0, "threads %u: the resumed tree is the input", threads);
	TAP_OK(access(work, F_OK) != 0, "threads %u: the work dir is gone", threads);
}

/* Bytes changed in the work dir between a killed run and its resumption are
 * caught: a resumed tree is hashed whole. */
static void test_resume_tampered(struct bn_bundle *b, const char *bdir)
{
	char out[512], work[512], f[600];
	snprintf(out, sizeof out, "%s/outt", W);
	snprintf(work, sizeof work, "%s/workt", W);
	pid_t pid = fork();
	if (pid == 0) {
		bn_set_tunables(&(struct bn_tunables){.crash_at = "extract:checkpoint", .checkpoint_bytes = 600000});
		struct bn_error e = {0};
		_exit(extract(bdir, out, 2, work, NULL, &e) == 0 ? 0 : 3);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	TAP_OK(WIFSIGNALED(st) && count_bits(b, work) > 0, "a run killed after its first checkpoint left a record");
	snprintf(f, sizeof f, "%s/data/random.bin", work);
	int fd = open(f, O_WRONLY);
	bool flipped = fd >= 0 && pwrite(fd, "X", 1, 10) == 1;
	if (fd >= 0)
		close(fd);
	struct bn_error err = {0};
	int r = extract(bdir, out, 2, work, NULL, &err);
	TAP_OK(flipped && r == -EBADMSG && strstr(err.msg, "random.bin: sha256 does not match"),
	       "a byte changed in the work dir is refused on resume (%s)", err.msg);
	TAP_OK(access(out, F_OK) != 0 && access(work, F_OK) != 0, "and neither target nor work dir is left");
}

/* A work dir left by an earlier release: its record says "<sha256> 0 1" and
 * only the first chunk's file exists, holding that chunk's bytes (that
 * release made files as it reached them); the rest is made on resume. */
static void test_resume_legacy(struct bn_bundle *b, const char *bdir)
{
	char out[512], work[512], p[700], in[700], hex[BN_SHA256_HEX], rec[128];
	snprintf(out, sizeof out, "%s/outl", W);
	snprintf(work, sizeof work, "%s/workl", W);
	const struct bn_artifact *a = &b->m->artifacts[0];
	ssize_t fi = bn_artifact_file_at(a, 0);
	const struct bn_chunk *c = &b->m->chunks[0];
	if (fi < 0 || a->entries[fi].size < c->usize)
		ut_die("unexpected layout of the test bundle");
	snprintf(p, sizeof p, "%s/data", work);
	if (bn_mkdir_p(p, 0700) < 0)
		ut_die("mkdir");
	snprintf(in, sizeof in, "%s/in/%s", W, a->entries[fi].path);
	snprintf(p, sizeof p, "%s/data/%s", work, a->entries[fi].path);
	char *x = NULL;
	size_t lx = 0;
	if (bn_read_file(in, 64u << 20, &x, &lx, NULL) < 0)
		ut_die(in);
	ut_write(p, x, c->usize);
	free(x);
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, hex);
	int l = snprintf(rec, sizeof rec, "%s 0 1\n", hex);
	snprintf(p, sizeof p, "%s/.agkit-progress", work);
	ut_write(p, rec, (size_t)l);
	struct bn_error err = {0};
	size_t resumed = 0;
	int r = extract(bdir, out, 2, work, &resumed, &err);
	TAP_OK(r == 0 && resumed == 1, "a work dir of the earlier format resumes after its 1 chunk (%zu)%s%s", resumed,
	       r ? ": " : "", r ? err.msg : "");
	TAP_OK(r == 0 && tree_diff(b, out) == 0, "and the tree is the input");
}

static void test_corrupt_chunk(struct bn_bundle *b, const char *bdir)
{
	char cmd[2400], t[512], out[512], work[512];
	snprintf(t, sizeof t, "%s/bad", W);
	snprintf(out, sizeof out, "%s/outc", W);
	snprintf(work, sizeof work, "%s/workc", W);
	/* The middle chunk: earlier chunks are placed (in parallel) before it fails. */
	size_t ci = b->m->n_chunks / 2;
	const struct bn_chunk *c = &b->m->chunks[ci];
	snprintf(cmd, sizeof cmd,
	         "rm -rf %s && cp -a %s %s && printf '\\377' | dd of=%s/%s bs=1 seek=%llu conv=notrunc status=none", t,
	         bdir, t, t, b->m->volumes[c->volume].name, (unsigned long long)(c->voffset + c->csize / 2));
	if (ut_sh("%s", cmd) != 0)
		ut_die("cannot corrupt a copy");
	char want[64];
	snprintf(want, sizeof want, "chunk %zu ", ci);
	for (int pass = 0; pass < 2; pass++) {
		const char *wd = pass ? work : NULL;
		struct bn_error err = {0};
		int r = extract(t, out, 3, wd, NULL, &err);
		TAP_OK(r == -EBADMSG && strstr(err.msg, want), "%s: a corrupt chunk is refused, naming it (%s)",
		       pass ? "with a work dir" : "plain", err.msg);
		TAP_OK(access(out, F_OK) != 0 && !leftovers("outc"), "%s: no target and no temporary sibling",
		       pass ? "with a work dir" : "plain");
		if (pass)
			TAP_OK(access(work, F_OK) != 0, "with a work dir: the work dir is removed");
	}
}

static void test_record_formats(struct bn_bundle *b)
{
	char d[512], hex[BN_SHA256_HEX], rec[256];
	snprintf(d, sizeof d, "%s/rec", W);
	mkdir(d, 0700);
	int dfd = open(d, O_RDONLY | O_DIRECTORY);
	size_t nb = BN_XPROGRESS_BITS(b), n = b->m->n_chunks;
	uint8_t *bits = calloc(nb + 1, 1), *back = calloc(nb + 1, 1);
	for (size_t i = 0; i < n; i += 3)
		bits[i / 8] |= (uint8_t)(1u << (i % 8));
	TAP_OK(bn_xprogress_read(b, dfd, "p", back) == 0, "no record: 0");
	TAP_OK(bn_xprogress_write(b, dfd, "p", bits) == 0 && bn_xprogress_read(b, dfd, "p", back) == 1 &&
	           memcmp(bits, back, nb) == 0,
	       "a written record reads back the same bits");
	/* extract.c's record before the one record. */
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, hex);
	int l = snprintf(rec, sizeof rec, "%s 0 3\n", hex);
	char p[600];
	snprintf(p, sizeof p, "%s/old", d);
	ut_write(p, rec, (size_t)l);
	memset(back, 0xff, nb);
	bool ok = bn_xprogress_read(b, dfd, "old", back) == 1;
	for (size_t i = 0; i < n; i++)
		ok &= (bool)(back[i / 8] >> (i % 8) & 1) == (i < 3);
	TAP_OK(ok, "an extract record of the earlier format (\"<sha256> 0 3\") reads as chunks 0..2");
	/* stage.c's record before the one record. */
	size_t ml = strlen("agkit-media-progress 1 ");
	char *m = malloc(ml + 65 + nb);
	memcpy(m, "agkit-media-progress 1 ", ml);
	memcpy(m + ml, hex, 64);
	m[ml + 64] = '\n';
	memcpy(m + ml + 65, bits, nb);
	snprintf(p, sizeof p, "%s/media", d);
	ut_write(p, m, ml + 65 + nb);
	memset(back, 0, nb);
	TAP_OK(bn_xprogress_read(b, dfd, "media", back) == 1 && memcmp(bits, back, nb) == 0,
	       "a media staging record of the earlier format reads back its bits");
	hex[0] = hex[0] == 'a' ? 'b' : 'a';
	l = snprintf(rec, sizeof rec, "%s 0 3\n", hex);
	snprintf(p, sizeof p, "%s/other", d);
	ut_write(p, rec, (size_t)l);
	TAP_OK(bn_xprogress_read(b, dfd, "other", back) == -ESTALE, "a record of another manifest: -ESTALE");
	snprintf(p, sizeof p, "%s/junk", d);
	ut_write(p, "agkit-progress 2 zz\n", 20);
	TAP_OK(bn_xprogress_read(b, dfd, "junk", back) == -EBADMSG, "a truncated record: -EBADMSG");
	free(m);
	free(bits);
	free(back);
	close(dfd);
}

int main(void)
{
	const char *agpack = getenv("AGPACK");
	if (!agpack) {
		printf("1..0 # SKIP AGPACK not set\n");
		return 77;
	}
	ut_setup("extract", NULL, NULL);
	make_input();
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "cd %s && printf '%%s' '{\"name\": \"t\", \"channel\": \"c\", \"version\": 1, \"artifacts\": "
	         "[{\"type\": \"files\", \"name\": \"data\", \"path\": \"in\"}]}' > spec.json && "
	         "'%s' keygen --out k --no-passphrase >/dev/null 2>&1 && "
	         "'%s' build spec.json --key k.key --out b --chunk-size 64K --volume-size 200K >/dev/null 2>&1",
	         W, agpack, agpack);
	if (ut_sh("%s", cmd) != 0)
		ut_die("cannot build the test bundle");
	char key[512], bdir[512];
	snprintf(key, sizeof key, "%s/k.pub", W);
	snprintf(bdir, sizeof bdir, "%s/b", W);
	struct bn_error err = {0};
	if (bn_pubkey_load(key, &pk, &err) < 0)
		ut_die(err.msg);
	struct bn_bundle *b = open_bundle(bdir);
	if (!b)
		ut_die("cannot open the test bundle");
	size_t grouped = 0;
	for (size_t i = 0; i < b->m->n_chunks; i++)
		grouped += b->m->chunks[i].coding != BN_CODING_ZSTD;
	printf("# bundle: %zu chunks in %zu volumes, %zu byte-grouped\n", b->m->n_chunks, b->m->n_volumes, grouped);
	TAP_OK(b->m->n_chunks >= 10 && b->m->n_volumes >= 3 && grouped > 0,
	       "the test bundle has many chunks, several volumes and byte-grouped chunks");
	test_serial_parallel(b, bdir);
	test_crash_each_chunk(b, bdir, 1);
	test_crash_each_chunk(b, bdir, 3);
	test_resume_tampered(b, bdir);
	test_resume_legacy(b, bdir);
	test_corrupt_chunk(b, bdir);
	test_record_formats(b);
	bn_bundle_free(b);
	bn_rm_rf(W);
	return tap_done();
}
