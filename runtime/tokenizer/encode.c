/* SPDX-License-Identifier: Apache-2.0 */
/* rt_tokenize(): the stages in tokenizers' order. */

#include "tok.h"

/* Pre-tokenize normalized text and run BPE on each word.  off is 0 only for
 * text at the very start of the input (Metaspace prepend_scheme "first"). */
static int encode_words(const struct rt_tokenizer *t, const char *s, size_t n, size_t off, struct ids *out)
{
	struct plist l = {0};
	int r = tok_plist_add(&l, s, n, off);
	if (r == 0)
		r = tok_pretokenize(t, &l);
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = tok_bpe_word(t, l.v[i].s, l.v[i].n, out);
	tok_plist_clear(&l);
	return r;
}

/* Text between raw added tokens: normalize, then split on normalized added tokens. */
static int encode_segment(const struct rt_tokenizer *t, const char *s, size_t n, size_t off, struct ids *out)
{
	struct rt_buf b = {0};
	int r = rt_buf_put(&b, s, n);
	if (r == 0)
		r = tok_normalize(t, &b);
	if (r == 0 && b.len)
		r = tok_split_added(t, &t->norm, b.p, b.len, off, encode_words, out);
	free(b.p);
	return r;
}

int rt_tokenize(const struct rt_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ret_ids,
                size_t *ret_n, struct rt_error *err)
{
	struct ids out = {0}, body = {0};
	int r = 0;

	if (!t || (!text && len) || !ret_ids || !ret_n)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	if (len > TOK_MAX_INPUT)
		return rt_fail(err, RT_ERR_USAGE, -E2BIG, "input longer than 64 MiB");
	if (!tok_valid_utf8(text, len))
		return rt_fail(err, RT_ERR_USAGE, -EILSEQ, "input is not valid UTF-8");
	r = tok_split_added(t, &t->raw, text, len, 0, encode_segment, &body);
	if (r < 0)
		goto out;
	r = tok_post_process(t, add_special, &body, &out);
	if (r < 0)
		goto out;
	if (!out.v && (out.v = malloc(sizeof(int32_t))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	*ret_ids = out.v;
	*ret_n = out.n;
	out.v = NULL;
out:
	free(out.v);
	free(body.v);
	if (r < 0)
		return rt_fail(err, r == -ENOMEM ? RT_ERR_INTERNAL : RT_ERR_USAGE, r, "tokenize: %s", strerror(-r));
	return 0;
}
