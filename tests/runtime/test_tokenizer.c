/* Tokenizer vectors test: encode/decode every recorded text of one family
 * and compare with what Hugging Face tokenizers produced (vectors.json,
 * written by tokgen/build_vectors.js).  TAP output.
 * usage: test_tokenizer TOKENIZER.json.zst VECTORS.json FAMILY [normalized-added]
 * normalized-added: mark every added token "normalized": true before loading
 * (the llama2_normadded family is derived from llama2 that way). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "agrt/agrt.h"

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 && (p = malloc(n + 1)) &&
	    fread(p, 1, n, f) == (size_t)n) {
		*len = n;
	} else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

/* Decompress the .zst next to a temp file, since the loader takes a path. */
static int unpack(const char *zpath, char *out, size_t outsz)
{
	size_t zn, rn;
	char *z = read_file(zpath, &zn), *raw;
	unsigned long long sz;
	int fd;
	if (!z)
		return -errno;
	sz = ZSTD_getFrameContentSize(z, zn);
	if (sz == ZSTD_CONTENTSIZE_ERROR || sz == ZSTD_CONTENTSIZE_UNKNOWN || sz > (1ull << 30)) {
		free(z);
		return -EBADMSG;
	}
	raw = malloc(sz);
	rn = raw ? ZSTD_decompress(raw, sz, z, zn) : 0;
	free(z);
	if (!raw || ZSTD_isError(rn)) {
		free(raw);
		return -EBADMSG;
	}
	snprintf(out, outsz, "%s/agrt-tok-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkstemp(out);
	if (fd < 0 || write(fd, raw, rn) != (ssize_t)rn) {
		free(raw);
		return -EIO;
	}
	close(fd);
	free(raw);
	return 0;
}

static int same_ids(json_t *want, const int32_t *got, size_t n)
{
	if (json_array_size(want) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (json_integer_value(json_array_get(want, i)) != got[i])
			return 0;
	return 1;
}

static void print_ids(const char *label, const int32_t *v, size_t n)
{
	printf("#   %s:", label);
	for (size_t i = 0; i < n && i < 64; i++)
		printf(" %d", v[i]);
	printf("\n");
}

int main(int argc, char **argv)
{
	struct rt_tokenizer *t = NULL;
	struct rt_error e = {0};
	char tmp[4096];
	json_t *root, *cases, *c;
	json_error_t jerr;
	size_t i;
	int r, n = 0, failed = 0;

	if (argc != 4 && !(argc == 5 && !strcmp(argv[4], "normalized-added"))) {
		fprintf(stderr, "usage: %s TOKENIZER.json.zst VECTORS.json FAMILY [normalized-added]\n", argv[0]);
		return 2;
	}
	r = unpack(argv[1], tmp, sizeof(tmp));
	if (r < 0) {
		printf("1..0 # SKIP cannot unpack %s: %s\n", argv[1], strerror(-r));
		return 77;
	}
	if (argc == 5) {
		json_t *tj = json_load_file(tmp, 0, &jerr), *a;
		size_t k;
		json_array_foreach(json_object_get(tj, "added_tokens"), k, a)
		    json_object_set_new(a, "normalized", json_true());
		if (!tj || json_dump_file(tj, tmp, JSON_COMPACT) < 0) {
			printf("1..1\nnot ok 1 - cannot rewrite %s\n", tmp);
			return 1;
		}
		json_decref(tj);
	}
	r = rt_tokenizer_load(tmp, &t, &e);
	unlink(tmp);
	root = json_load_file(argv[2], JSON_ALLOW_NUL, &jerr);
	cases = json_object_get(json_object_get(root, "families"), argv[3]);
	if (!json_is_array(cases)) {
		printf("1..1\nnot ok 1 - no vectors for family %s in %s\n", argv[3], argv[2]);
		return 1;
	}
	printf("1..%zu\n", 3 * json_array_size(cases) + 1);
	printf("%s %d - load %s%s%s\n", r < 0 ? "not ok" : "ok", ++n, argv[1], r < 0 ? ": " : "", r < 0 ? e.msg : "");
	if (r < 0)
		return 1;
	json_array_foreach(cases, i, c)
	{
		json_t *jt = json_object_get(c, "text");
		const char *text = json_string_value(jt);
		size_t len = json_string_length(jt), nids, dlen;
		int32_t *ids = NULL;
		char *dec = NULL;
		int ok;

		/* with and without the post-processor template */
		for (int sp = 1; sp >= 0; sp--) {
			json_t *want = json_object_get(c, sp ? "ids" : "ids_plain");
			r = rt_tokenize(t, text, len, sp, &ids, &nids, &e);
			ok = r == 0 && same_ids(want, ids, nids);
			failed += !ok;
			printf("%s %d - %s encode%s case %zu\n", ok ? "ok" : "not ok", ++n, argv[3],
			       sp ? "+special" : "", i);
			if (!ok) {
				printf("#   text: %.200s\n", text);
				if (r < 0)
					printf("#   error: %s\n", e.msg);
				else
					print_ids("got ", ids, nids);
				{
					int32_t w[256];
					size_t wn = json_array_size(want) < 256 ? json_array_size(want) : 256;
					for (size_t k = 0; k < wn; k++)
						w[k] = json_integer_value(json_array_get(want, k));
					print_ids("want", w, wn);
				}
			}
			free(ids);
			ids = NULL;
		}
		/* decode the HF ids (with specials) and compare the text */
		{
			json_t *w = json_object_get(c, "ids"), *v;
			json_t *wd = json_object_get(c, "decoded");
			size_t k;
			int32_t *hid = calloc(json_array_size(w) + 1, sizeof(int32_t));
			json_array_foreach(w, k, v) hid[k] = json_integer_value(v);
			r = rt_detokenize(t, hid, json_array_size(w), false, &dec, &dlen, &e);
			ok = r == 0 && dlen == json_string_length(wd) && !memcmp(dec, json_string_value(wd), dlen);
			failed += !ok;
			printf("%s %d - %s decode case %zu\n", ok ? "ok" : "not ok", ++n, argv[3], i);
			if (!ok)
				printf("#   got:  %.200s\n#   want: %.200s\n", r == 0 ? dec : e.msg,
				       json_string_value(wd));
			free(dec);
			free(hid);
		}
	}
	rt_tokenizer_free(t);
	json_decref(root);
	return failed ? 1 : 0;
}
