/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the writer (libbundle/writer.c) through its API: a tree is
 * packed with a small chunk and volume size, signed, and read back; the
 * manifest's chunks tile each artifact's stream and the volumes as
 * docs/FORMAT.md section 3.2 says (checked here from the volume files on
 * disk, not from the writer's own bookkeeping); what the writer must refuse
 * is refused.
 */
#include "unit.h"

#include "bundle/sha256.h"
#include "bundle/writer.h"

#define CHUNK (16u << 10)
#define VOLUME (50u << 10)

static struct bn_pubkey pk;
static struct bn_seckey sk;
static int warnings;

static void on_warn(void *u, const char *msg)
{
	(void)u;
	printf("# warning: %s\n", msg);
	warnings++;
}

static void make_input(void)
{
	if (bn_mkdir_p(ut_path("in/sub/deep"), 0755) < 0)
		ut_die("mkdir");
	ut_random_file(ut_path("in/a.bin"), 100000);
	ut_random_file(ut_path("in/sub/b.bin"), 3 * CHUNK); /* ends on a chunk boundary */
	ut_random_file(ut_path("in/sub/deep/c"), 1);
	ut_random_file(ut_path("in/sub/deep/d"), 5000);
	ut_write(ut_path("in/empty"), "", 0);
	if (chmod(ut_path("in/sub/deep/d"), 0755) < 0 || symlink("sub/b.bin", ut_path("in/link")) < 0 ||
	    symlink("../../outside", ut_path("in/sub/escape")) < 0)
		ut_die("input");
}

/* Packs W/in as artifact "data" and W/in/sub/deep/d as "single" into W/out
 * with threads; the manifest text. */
static char *pack(const char *out, unsigned threads, struct bn_error *err)
{
	struct ut_pack_opts o = {.version = 7, .volume_size = VOLUME, .chunk_size = CHUNK, .threads = threads,
	                         .warn = on_warn, .single = "in/sub/deep/d"};
	char *text = NULL;
	if (ut_pack("in", out, &sk, &o, err) < 0 ||
	    bn_read_file(ut_path("%s/manifest.json", out), 1 << 20, &text, NULL, err) < 0)
		return NULL;
	return text;
}

/* FORMAT.md 3.2 and 3.3 against the files on disk. */
/* dir: relative to W. */
static void check_tiling(const struct bn_manifest *m, const char *dir)
{
	bool stream_ok = true, cut_ok = true, place_ok = true, fill_ok = true, hash_ok = true, cap_ok = true;
	for (size_t ai = 0; ai < m->n_artifacts; ai++) {
		const struct bn_artifact *a = &m->artifacts[ai];
		uint64_t sum = 0;
		for (size_t c = a->chunk_first; c < a->chunk_first + a->n_chunks; c++) {
			const struct bn_chunk *ch = &m->chunks[c];
			stream_ok &= ch->artifact == ai && ch->soffset == sum && ch->usize >= 1 && ch->usize <= m->chunk_size;
			/* Random data: every chunk but an artifact's last is full. */
			if (c + 1 < a->chunk_first + a->n_chunks)
				cut_ok &= ch->usize == m->chunk_size;
			sum += ch->usize;
		}
		stream_ok &= sum == a->size;
		if (ai + 1 < m->n_artifacts)
			stream_ok &= m->artifacts[ai + 1].chunk_first == a->chunk_first + a->n_chunks;
	}
	uint64_t *fill = calloc(m->n_volumes, sizeof *fill);
	for (size_t c = 0; c < m->n_chunks; c++) {
		const struct bn_chunk *ch = &m->chunks[c], *pr = c ? &m->chunks[c - 1] : NULL;
		bool next_in_same = pr && ch->volume == pr->volume && ch->voffset == pr->voffset + pr->csize;
		bool starts_next = ch->voffset == 0 && (pr ? ch->volume == pr->volume + 1 : ch->volume == 0);
		place_ok &= next_in_same || starts_next;
		if (ch->volume < m->n_volumes)
			fill[ch->volume] += ch->csize;
	}
	for (size_t v = 0; v < m->n_volumes; v++) {
		struct stat st;
		char name[32];
		bn_volume_name(v, name);
		const char *p = ut_path("%s/%s", dir, name);
		fill_ok &= !strcmp(name, m->volumes[v].name) && stat(p, &st) == 0 && (uint64_t)st.st_size == fill[v] &&
		           m->volumes[v].size == fill[v];
		cap_ok &= fill[v] <= m->volume_size;
		uint8_t h[BN_SHA256_LEN];
		hash_ok &= bn_sha256_file(p, h, NULL, NULL) == 0 && !memcmp(h, m->volumes[v].sha256, sizeof h);
	}
	/* Every stored chunk hashes to its csha256 where the manifest places it. */
	for (size_t c = 0; c < m->n_chunks && hash_ok; c++) {
		const struct bn_chunk *ch = &m->chunks[c];
		char name[32];
		bn_volume_name(ch->volume, name);
		int fd = open(ut_path("%s/%s", dir, name), O_RDONLY);
		uint8_t *buf = malloc(ch->csize), h[BN_SHA256_LEN];
		hash_ok &= fd >= 0 && bn_pread_all(fd, buf, ch->csize, ch->voffset) == 0;
		bn_sha256(buf, ch->csize, h);
		hash_ok &= !memcmp(h, ch->csha256, sizeof h);
		free(buf);
		if (fd >= 0)
			close(fd);
	}
	free(fill);
	TAP_OK(stream_ok, "chunks tile each artifact's stream in order and add up to its size");
	TAP_OK(cut_ok, "the stream is cut at chunk_size");
	TAP_OK(place_ok, "each chunk follows the previous one in its volume or starts the next volume at 0");
	TAP_OK(fill_ok, "the chunks of each volume add up to the volume file and its manifest size");
	TAP_OK(cap_ok, "no volume exceeds volume_size");
	TAP_OK(hash_ok, "volume and stored chunk hashes match the bytes on disk");
}

static void check_files(const struct bn_manifest *m)
{
	const struct bn_artifact *a = &m->artifacts[0];
	uint64_t off = 0;
	bool ok = true, found_link = false, found_escape = false;
	for (size_t i = 0; i < a->n_entries; i++) {
		const struct bn_entry *e = &a->entries[i];
		if (e->type == BN_ENTRY_FILE) {
			ok &= e->offset == off;
			off += e->size;
		}
		found_link |= e->type == BN_ENTRY_SYMLINK && !strcmp(e->path, "link") && !strcmp(e->target, "sub/b.bin");
		found_escape |= !strcmp(e->path, "sub/escape");
	}
	TAP_OK(ok && off == a->size && a->n_files == 5, "file entries tile the stream (5 files, %" PRIu64 " bytes)", off);
	TAP_OK(found_link && !found_escape && warnings >= 1,
	       "a symlink inside is kept, one leaving the tree is skipped with a warning");
	TAP_OK(m->n_artifacts == 2 && m->artifacts[1].n_files == 1 && !strcmp(m->artifacts[1].entries[0].path, "d") &&
	               m->artifacts[1].entries[0].mode == 0755,
	       "a single file is packed under its base name with its exec bit");
}

static void test_read_back(void)
{
	struct bn_error err = {0};
	char *text = pack("out", 3, &err);
	TAP_OK(text != NULL, "pack and sign (%s)", err.msg);
	if (!text)
		return;
	struct bn_bundle *b = ut_open(ut_path("out"), &pk, &err);
	TAP_OK(b != NULL, "the signed bundle opens under its key");
	if (!b) {
		free(text);
		return;
	}
	printf("# %zu chunks in %zu volumes\n", b->m->n_chunks, b->m->n_volumes);
	TAP_OK(b->m->n_volumes >= 4 && b->m->n_chunks >= 10, "many chunks over several volumes");
	check_tiling(b->m, "out");
	check_files(b->m);
	TAP_OK(bn_bundle_verify(b, NULL, NULL, &err) == 0, "verify (%s)", err.msg);
	TAP_OK(bn_bundle_extract(b, ut_path("x"), NULL, &err) == 0, "extract (%s)", err.msg);
	TAP_OK(ut_same_file(ut_path("in/a.bin"), ut_path("x/data/a.bin")) &&
	               ut_same_file(ut_path("in/sub/b.bin"), ut_path("x/data/sub/b.bin")) &&
	               ut_same_file(ut_path("in/sub/deep/d"), ut_path("x/single/d")),
	       "extracted files are the input's bytes");
	char *f = NULL;
	size_t fl = 0;
	TAP_OK(bn_bundle_read_file(b, "data", "sub/deep/d", 1 << 20, &f, &fl, &err) == 0 && fl == 5000 &&
	               ut_sh("cmp -s '%s' '%s'", ut_path("in/sub/deep/d"), ut_path("x/data/sub/deep/d")) == 0,
	       "read one file back (%s)", err.msg);
	free(f);
	bn_bundle_free(b);

	/* The output bytes do not depend on the thread count. */
	char *text1 = pack("out1", 1, &err);
	TAP_OK(text1 && !strcmp(text, text1) && ut_sh("cmp -s '%s' '%s'", ut_path("out/vol-00003.agv"),
	                                              ut_path("out1/vol-00003.agv")) == 0,
	       "1 and 3 threads write the same manifest and volumes");
	free(text1);
	free(text);
}

static void test_refusals(void)
{
	struct bn_error err = {0};
	struct bn_writer_opts o = {.dir = ut_path("out"), .chunk_size = 1000};
	TAP_OK(bn_writer_check_opts(&o, &err) == -EINVAL, "chunk size below 4 KiB refused (%s)", err.msg);
	o.chunk_size = CHUNK;
	o.volume_size = 100;
	TAP_OK(bn_writer_check_opts(&o, &err) == -EINVAL, "volume smaller than a chunk's bound refused (%s)", err.msg);
	o.volume_size = VOLUME;
	o.level = 99;
	TAP_OK(bn_writer_check_opts(&o, &err) == -EINVAL, "zstd level 99 refused (%s)", err.msg);
	o.level = 0;
	TAP_OK(bn_writer_check_opts(&o, &err) == 0, "the test's options pass the check");
	TAP_OK(bn_writer_fit_chunk_size(1u << 20) <= (1u << 19) && bn_writer_fit_chunk_size(0) > 0 &&
	               bn_writer_fit_chunk_size(4096) == BN_MIN_CHUNK_SIZE,
	       "fitted chunk size: two chunks per volume, at least 4 KiB");

	if (bn_mkdir_p(ut_path("ref"), 0755) < 0 || bn_mkdir_p(ut_path("bad/fifo"), 0755) < 0 ||
	    bn_mkdir_p(ut_path("bad/suid"), 0755) < 0)
		ut_die("mkdir");
	if (mkfifo(ut_path("bad/fifo/p"), 0644) < 0)
		ut_die("mkfifo");
	ut_write(ut_path("bad/suid/s"), "x", 1);
	if (chmod(ut_path("bad/suid/s"), 04755) < 0)
		ut_die("chmod");
	char ref[1024]; /* the writer borrows dir: not in ut_path's rotating buffers */
	snprintf(ref, sizeof ref, "%s", ut_path("ref"));
	o.dir = ref;
	struct bn_writer *w = NULL;
	if (bn_writer_new(&o, &w, &err) < 0)
		ut_die(err.msg);
	int r = bn_writer_add(w, "f", "files", "tree", ut_path("bad/fifo"), NULL, NULL, &err);
	TAP_OK(r < 0, "a fifo in the tree refused (%d: %s)", r, err.msg);
	r = bn_writer_add(w, "s", "files", "tree", ut_path("bad/suid"), NULL, NULL, &err);
	TAP_OK(r < 0, "a setuid file refused (%d: %s)", r, err.msg);
	uint8_t pin[BN_SHA256_LEN] = {0};
	r = bn_writer_add(w, "p", "files", "tree", ut_path("in/sub/deep/c"), pin, NULL, &err);
	TAP_OK(r < 0, "a file that does not match its sha256 pin refused (%d: %s)", r, err.msg);
	uint64_t sz = 0;
	if (bn_sha256_file(ut_path("in/sub/deep/c"), pin, &sz, NULL) < 0)
		ut_die("hash");
	r = bn_writer_add(w, "q", "files", "tree", ut_path("in/sub/deep/c"), pin, NULL, &err);
	TAP_OK(r == 0, "the same file with its right pin is taken (%s)", err.msg);
	r = bn_writer_add(w, "q", "files", "tree", ut_path("in/sub/deep/c"), NULL, NULL, &err);
	TAP_OK(r < 0, "a second artifact of the same name refused (%d: %s)", r, err.msg);

	struct bn_manifest *own = NULL;
	r = bn_writer_take_manifest(w, &own, &err);
	TAP_OK(r == -EINVAL && !own, "the manifest cannot be taken before finish (%d: %s)", r, err.msg);
	const struct bn_manifest *m = NULL;
	if (bn_writer_finish(w, "t", "c", 1, "2026-01-01T00:00:00Z", &m, &err) < 0)
		ut_die(err.msg);
	r = bn_writer_take_manifest(w, &own, &err);
	TAP_OK(r == 0 && own && own->n_artifacts == 1 && !strcmp(own->artifacts[0].name, "q") &&
	           !strcmp(own->name, "t") && own->version == 1,
	       "after finish the caller takes the manifest the writer made (%s)", err.msg);
	struct bn_manifest *again = NULL;
	r = bn_writer_take_manifest(w, &again, &err);
	TAP_OK(r == -EINVAL && !again, "it is taken once (%d: %s)", r, err.msg);
	bn_writer_free(w);
	bn_manifest_free(own); /* outlives the writer */
}

/* Adds "one" and "two" (a wrong pin first when refuse) and, with sysfile, a
 * file whose stat size is more than it holds (refused mid-file) in between,
 * into W/dir; the manifest text, NULL on failure. */
static char *pack_after_refusals(const char *dir, bool refuse, const char *sysfile)
{
	struct bn_error err = {0};
	char out[1024]; /* the writer borrows dir */
	snprintf(out, sizeof out, "%s", ut_path("%s", dir));
	struct bn_writer_opts o = {.dir = out, .volume_size = VOLUME, .chunk_size = CHUNK, .threads = 2};
	struct bn_writer *w = NULL;
	const struct bn_manifest *m = NULL;
	char *text = NULL;
	size_t len = 0;
	uint8_t pin[BN_SHA256_LEN] = {0};
	if (bn_mkdir_p(o.dir, 0755) < 0 || bn_writer_new(&o, &w, &err) < 0 ||
	    bn_writer_add(w, "one", "files", "tree", ut_path("undo/one"), NULL, NULL, &err) < 0)
		ut_die(err.msg);
	if (refuse) {
		int r = bn_writer_add(w, "two", "files", "tree", ut_path("undo/two"), pin, NULL, &err);
		TAP_OK(r == -EBADMSG && !bn_writer_artifact(w, "two"),
		       "a refused add over several volumes leaves no artifact (%d: %s)", r, err.msg);
		if (sysfile) {
			r = bn_writer_add(w, "sys", "files", "tree", sysfile, NULL, NULL, &err);
			TAP_OK(r == -EIO && !bn_writer_artifact(w, "sys"),
			       "a file refused mid-read leaves no artifact (%d: %s)", r, err.msg);
		}
	}
	if (bn_writer_add(w, "two", "files", "tree", ut_path("undo/two"), NULL, NULL, &err) < 0 ||
	    bn_writer_finish(w, "t", "c", 1, "2026-01-01T00:00:00Z", &m, &err) < 0 ||
	    bn_manifest_format(m, &text, &len) < 0 || bn_bundle_write_signed(o.dir, text, len, m, &sk, &err) < 0) {
		printf("# %s\n", err.msg);
		free(text);
		text = NULL;
	}
	bn_writer_free(w);
	return text;
}

/* A refused add leaves the writer as before the call: what follows packs the
 * same bundle, byte for byte, as a writer that never saw the refused add. */
static void test_refused_add_leaves_no_trace(void)
{
	if (bn_mkdir_p(ut_path("undo"), 0755) < 0)
		ut_die("mkdir");
	ut_random_file(ut_path("undo/one"), VOLUME + 20000); /* the second volume is open after it */
	ut_random_file(ut_path("undo/two"), 3 * VOLUME);
	/* sysfs files claim 4096 bytes and hold fewer. */
	const char *sysfile = "/sys/kernel/mm/transparent_hugepage/enabled";
	struct stat st;
	if (stat(sysfile, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 100)
		sysfile = NULL;
	char *clean = pack_after_refusals("undo-clean", false, NULL);
	char *again = pack_after_refusals("undo-again", true, sysfile);
	if (!sysfile)
		TAP_OK(true, "# SKIP no sysfs file that holds less than its size");
	TAP_OK(clean && again && !strcmp(clean, again), "after the refusals the manifest is that of a clean pack");
	/* the signatures differ when the two packs fall in different seconds
	 * (the minisign trusted comment's timestamp), and SHA256SUMS lists them */
	TAP_OK(ut_sh("diff -r --no-dereference -x signatures -x SHA256SUMS '%s' '%s' >/dev/null 2>&1",
	             ut_path("undo-clean"), ut_path("undo-again")) == 0,
	       "and so are the volumes on disk");
	struct bn_error err = {0};
	struct bn_bundle *b = again ? ut_open(ut_path("undo-again"), &pk, &err) : NULL;
	TAP_OK(b && bn_bundle_verify(b, NULL, NULL, &err) == 0 && b->m->n_artifacts == 2,
	       "the bundle opens and verifies with its two artifacts (%s)", err.msg);
	bn_bundle_free(b);
	free(clean);
	free(again);
}

int main(void)
{
	ut_setup("writer", &pk, &sk);
	make_input();
	test_read_back();
	test_refusals();
	test_refused_add_leaves_no_trace();
	bn_rm_rf(W);
	return tap_done();
}
