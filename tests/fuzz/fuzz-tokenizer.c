/* SPDX-License-Identifier: Apache-2.0 */
/* rt_tokenizer_load() on the input as tokenizer.json; when it loads, fixed
 * texts (ASCII, UTF-8, emoji, special-looking and invalid UTF-8) are encoded
 * (every id must be in the vocabulary) and decoded again, and fixed id
 * lists (valid, out of range) are decoded. */
#include <limits.h>
#include <string.h>

#include "agrt/agrt.h"
#include "fuzz_common.h"

static const char *const texts[] = {
	"",
	"Hello, world! The quick brown fox jumps over the lazy dog 12345.",
	"  leading and trailing  spaces\n\ttabs\r\n",
	"caf\xc3\xa9 na\xc3\xafve \xc3\x85ngstr\xc3\xb6m \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xd0\x9f\xd1\x80\xd0\xb8"
	"\xd0\xb2\xd0\xb5\xd1\x82 \xd8\xa7\xd9\x84\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a\xd8\xa9",
	"emoji \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80"
	"\x8d\xf0\x9f\x91\xa7 \xe2\x9d\xa4\xef\xb8\x8f",
	"<|bos|><s></s><unk><|endoftext|><|eot_id|>[INST] hi [/INST]<|im_start|>user<|im_end|><0x41>\xe2\x96\x81",
	"\xff\xfe invalid \xc3 utf-8 \xed\xa0\x80 \xf4\x90\x80\x80 end",
	"a\0b", /* embedded NUL: len covers it */
};
static const size_t text_lens[] = {0, 0, 0, 0, 0, 0, 0, 3};

static void decode(const struct rt_tokenizer *t, const int32_t *ids, size_t n)
{
	for (int skip = 0; skip < 2; skip++) {
		char *text = NULL;
		size_t len = 0;
		struct rt_error e = {0};
		int r = rt_detokenize(t, ids, n, skip, &text, &len, &e);
		if (r < 0) {
			FUZZ_ASSERT(e.msg[0]);
			continue;
		}
		FUZZ_ASSERT(text && text[len] == '\0');
		free(text);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *dir = fuzz_mkdtemp();
	char *path = fuzz_write(dir, "tokenizer.json", data, size);
	struct rt_tokenizer *t = NULL;
	struct rt_error e = {0};
	if (rt_tokenizer_load(path, &t, &e) < 0) {
		FUZZ_ASSERT(e.msg[0] && !t);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "load: %s\n", e.msg);
	} else {
		int nv = rt_tokenizer_vocab_size(t);
		FUZZ_ASSERT(nv >= 0);
		for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
			size_t len = text_lens[i] ? text_lens[i] : strlen(texts[i]);
			for (int special = 0; special < 2; special++) {
				int32_t *ids = NULL;
				size_t n = 0;
				if (rt_tokenize(t, texts[i], len, special, &ids, &n, &e) < 0) {
					FUZZ_ASSERT(e.msg[0]);
					continue;
				}
				for (size_t k = 0; k < n; k++)
					FUZZ_ASSERT(ids[k] >= 0 && ids[k] < nv);
				decode(t, ids, n);
				free(ids);
			}
		}
		int32_t some[64];
		size_t n_some = 0;
		for (int32_t id = 0; id < nv && n_some < 64; id += nv / 64 + 1)
			some[n_some++] = id;
		decode(t, some, n_some);
		static const int32_t hostile[][3] = {{-1, 0, 0}, {INT32_MAX, 0, 0}, {INT32_MIN, 0, 0}};
		for (size_t i = 0; i < 3; i++)
			decode(t, hostile[i], 1);
		int32_t past[2] = {0, nv};
		decode(t, past, 2);
		decode(t, NULL, 0);
		rt_tokenizer_free(t);
	}
	free(path);
	fuzz_assert_only(dir, (const char *const[]){"tokenizer.json", NULL});
	fuzz_rmdir(dir);
	return 0;
}
