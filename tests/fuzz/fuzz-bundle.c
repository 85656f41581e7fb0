/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole bundle reader with a trusted signer: bn_bundle_open(),
 * bn_bundle_verify() and bn_bundle_extract().  Input: MANIFEST [SEP VOLUME1
 * [SEP VOLUME2 ...]] (FUZZ_SEP between parts).  The harness writes a bundle
 * directory with those files and a signature by a key fixed at start-up, so
 * every input gets past the signature check and exercises what comes after
 * it: manifest parsing, volume and chunk checks, decompression, extraction.
 *
 * So that mutated volumes are not all stopped by the hash checks, the harness
 * first fills in, where it can, the hashes a signer would have written: each
 * volume's and chunk's stored sha256, the decoded chunk sha256 and the file
 * sha256s.  The manifest's structure (sizes, offsets, paths, modes, links)
 * is left exactly as the input has it.
 *
 * Invariants checked: a failed extraction leaves no target and no temporary
 * directory; anything that fails verify also fails extract; nothing appears
 * beside the bundle and the target; every path in an extracted artifact that
 * resolves at all resolves inside that artifact.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <zstd.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/sha256.h"
#include "fuzz_common.h"
#include "fuzz_sign.h"

#define MAX_VOLUMES 8
#define DECODE_CAP (1u << 20)       /* per chunk, when filling in hashes */
#define STREAM_CAP (4u << 20)       /* per artifact */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_signer_setup();
	return 0;
}

static void set_hash(json_t *o, const char *key, const void *data, size_t len)
{
	uint8_t h[BN_SHA256_LEN];
	char hex[BN_SHA256_HEX];
	bn_sha256(data, len, h);
	bn_hex(h, BN_SHA256_LEN, hex);
	json_object_set_new(o, key, json_string(hex));
}

static bool get_int(json_t *o, const char *key, uint64_t *ret)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*ret = (uint64_t)json_integer_value(v);
	return true;
}

struct stream {
	uint8_t *buf;
	size_t len;
	bool broken; /* a chunk could not be decoded: later offsets are unknown */
};

/* Returns the manifest with hashes filled in (new string), or NULL to sign
 * the input bytes as they are (not a JSON object). */
static char *fill_hashes(const uint8_t *m, size_t ml, const uint8_t **vols, const size_t *vlens, size_t nv)
{
	json_t *root = json_loadb((const char *)m, ml, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root)) {
		json_decref(root);
		return NULL;
	}
	json_t *volumes = json_object_get(root, "volumes"), *chunks = json_object_get(root, "chunks"),
	       *arts = json_object_get(root, "artifacts");
	for (size_t i = 0; i < json_array_size(volumes) && i < nv; i++)
		if (json_is_object(json_array_get(volumes, i)))
			set_hash(json_array_get(volumes, i), "sha256", vols[i], vlens[i]);
	size_t na = json_array_size(arts);
	na = na > BN_MAX_ARTIFACTS ? BN_MAX_ARTIFACTS : na;
	struct stream *st = calloc(na ? na : 1, sizeof *st);
	FUZZ_ASSERT(st);
	uint8_t *dec = malloc(DECODE_CAP);
	FUZZ_ASSERT(dec);
	for (size_t i = 0; i < json_array_size(chunks); i++) {
		json_t *c = json_array_get(chunks, i);
		uint64_t v, off, cs, a;
		if (!json_is_object(c) || !get_int(c, "volume", &v) || !get_int(c, "offset", &off) ||
		    !get_int(c, "csize", &cs) || v >= nv || off > vlens[v] || cs > vlens[v] - off)
			continue;
		const uint8_t *p = vols[v] + off;
		set_hash(c, "csha256", p, cs);
		unsigned long long fcs = ZSTD_getFrameContentSize(p, cs);
		size_t n = fcs <= DECODE_CAP ? ZSTD_decompress(dec, DECODE_CAP, p, cs) : 0;
		bool ok = fcs <= DECODE_CAP && !ZSTD_isError(n);
		if (ok)
			set_hash(c, "sha256", dec, n);
		if (!get_int(c, "artifact", &a) || a >= na)
			continue;
		struct stream *s = &st[a];
		if (!ok || s->len + n > STREAM_CAP) {
			s->broken = true;
			continue;
		}
		if (s->broken)
			continue;
		uint8_t *nb = realloc(s->buf, s->len + n + 1);
		FUZZ_ASSERT(nb);
		s->buf = nb;
		memcpy(s->buf + s->len, dec, n);
		s->len += n;
	}
	for (size_t i = 0; i < na; i++) {
		json_t *ents = json_object_get(json_array_get(arts, i), "entries");
		for (size_t j = 0; j < json_array_size(ents); j++) {
			json_t *e = json_array_get(ents, j);
			uint64_t off, sz;
			if (!json_is_object(e) || !get_int(e, "offset", &off) || !get_int(e, "size", &sz) ||
			    off > st[i].len || sz > st[i].len - off)
				continue;
			set_hash(e, "sha256", st[i].buf ? st[i].buf + off : (const uint8_t *)"", sz);
		}
		free(st[i].buf);
	}
	free(st);
	free(dec);
	char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	FUZZ_ASSERT(text);
	return text;
}

/* Every path below dir that resolves at all resolves inside root. */
static void check_inside(const char *root, const char *dir, int depth)
{
	FUZZ_ASSERT(depth < 4096);
	DIR *d = opendir(dir);
	if (!d)
		return;
	size_t rl = strlen(root);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *p = bn_path_join(dir, de->d_name), real[PATH_MAX];
		FUZZ_ASSERT(p);
		if (realpath(p, real)) {
			bool inside = !strncmp(real, root, rl) && (real[rl] == '/' || real[rl] == '\0');
			if (!inside)
				fprintf(stderr, "%s resolves outside its artifact %s: %s\n", p, root, real);
			FUZZ_ASSERT(inside);
		}
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			check_inside(root, p, depth + 1);
		free(p);
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_signer_setup();
	const uint8_t *parts[1 + MAX_VOLUMES];
	size_t lens[1 + MAX_VOLUMES];
	size_t n = fuzz_split(data, size, parts, lens, 1 + MAX_VOLUMES);
	char *t = fuzz_mkdtemp();
	char *bdir = bn_path_join(t, "bundle"), *target = bn_path_join(t, "out");
	FUZZ_ASSERT(bdir && target && mkdir(bdir, 0755) == 0);
	for (size_t i = 1; i < n; i++) {
		char vn[32];
		bn_volume_name(i - 1, vn);
		free(fuzz_write(bdir, vn, parts[i], lens[i]));
	}
	char *filled = fill_hashes(parts[0], lens[0], parts + 1, lens + 1, n - 1);
	const char *m = filled ? filled : (const char *)parts[0];
	size_t ml = filled ? strlen(filled) : lens[0];
	free(fuzz_write(bdir, "manifest.json", m, ml));
	fuzz_sign(bdir, m, ml);

	struct bn_trust trust = {.keys = &fuzz_pub, .n_keys = 1, .threshold = 1};
	struct bn_bundle *b = NULL;
	struct bn_error err = {0};
	int r = bn_bundle_open(bdir, &trust, &b, &err);
	if (r == 0) {
		FUZZ_ASSERT(b->n_signers == 1 && b->manifest_len == ml);
		int rv = bn_bundle_verify(b, NULL, NULL, &err);
		if (rv < 0 && getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "verify: %s\n", err.msg);
		int rx = bn_bundle_extract(b, target, NULL, &err);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "extract: %s\n", rx < 0 ? err.msg : "ok");
		struct stat st;
		if (rv < 0)
			FUZZ_ASSERT(rx < 0);
		if (rx < 0) {
			FUZZ_ASSERT(lstat(target, &st) < 0 && errno == ENOENT);
		} else {
			char rt[PATH_MAX];
			FUZZ_ASSERT(realpath(target, rt));
			for (size_t i = 0; i < b->m->n_artifacts; i++) {
				char *ad = bn_path_join(rt, b->m->artifacts[i].name);
				FUZZ_ASSERT(ad && lstat(ad, &st) == 0 && S_ISDIR(st.st_mode));
				check_inside(ad, ad, 0);
				free(ad);
			}
		}
		bn_bundle_free(b);
	} else {
		FUZZ_ASSERT(err.msg[0]);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "open: %s\n", err.msg);
	}
	static const char *const allowed[] = {"bundle", "out", NULL};
	fuzz_assert_only(t, allowed);
	free(filled);
	free(bdir);
	free(target);
	fuzz_rmdir(t);
	return 0;
}
