/* SPDX-License-Identifier: Apache-2.0 */
/* Added tokens: matched leftmost-longest, raw ones on the input and
 * normalized ones on each normalized piece, with lstrip/rstrip. */

#include "tok.h"

static int cmp_added(const void *a, const void *b)
{
	const struct added *x = a, *y = b;
	unsigned char cx = x->s[0], cy = y->s[0];
	if (cx != cy)
		return cx < cy ? -1 : 1;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

static void index_aset(struct aset *a)
{
	qsort(a->v, a->n, sizeof(*a->v), cmp_added);
	for (int c = 0, k = 0; c <= 256; c++) {
		while (k < a->n && (unsigned char)a->v[k].s[0] < c)
			k++;
		a->at[c] = k;
	}
}

/* Move normalized added tokens to their own set, matched against normalized
 * text by their normalized content (so with Llama-2's Prepend normalizer
 * "<s>" matches as "\u2581<s>", as tokenizers does). */
int tok_split_added_sets(struct rt_tokenizer *t, struct rt_error *err)
{
	int k = 0;
	for (int i = 0; i < t->raw.n; i++) {
		struct added a = t->raw.v[i];
		struct rt_buf b = {0};
		int r;
		if (!a.normalized) {
			t->raw.v[k++] = a;
			continue;
		}
		r = rt_buf_put(&b, a.s, a.n);
		if (r == 0)
			r = tok_normalize(t, &b);
		if (r < 0 || b.len == 0) {
			free(b.p);
			t->raw.v[k++] = a; /* still owned, freed with the tokenizer */
			t->raw.n = k + (t->raw.n - i - 1);
			memmove(&t->raw.v[k], &t->raw.v[i + 1], sizeof(a) * (t->raw.n - k));
			return r < 0 ? rt_fail(err, RT_ERR_INTERNAL, r, "out of memory")
			             : BAD("%s: added token '%.40s' normalizes to nothing", t->path, a.s);
		}
		/* tokenizers then decodes the id as the normalized content, and
		 * skip_special compares that string with the raw special
		 * contents, so a changed one is no longer skipped */
		if (b.len != a.n || memcmp(b.p, a.s, a.n)) {
			char *d = strndup(b.p, b.len);
			if (!d) {
				free(b.p);
				t->raw.v[k++] = a;
				t->raw.n = k + (t->raw.n - i - 1);
				memmove(&t->raw.v[k], &t->raw.v[i + 1], sizeof(a) * (t->raw.n - k));
				return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
			}
			/* tok[] stays: the vocab hash map points at it */
			free(t->dtok[a.id]);
			t->dtok[a.id] = d;
			t->is_special[a.id] = false;
		}
		free(a.s);
		a.s = b.p;
		a.n = b.len;
		t->norm.v[t->norm.n++] = a;
	}
	t->raw.n = k;
	index_aset(&t->raw);
	index_aset(&t->norm);
	return 0;
}

static bool is_ws(const char *s, size_t n, size_t *len)
{
	utf8proc_int32_t cp;
	utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)s, n, &cp);
	if (cl <= 0)
		return false;
	*len = cl;
	return cp == ' ' || (cp >= 9 && cp <= 13) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
	       cp == 0x3000;
}

static const struct added *match_added(const struct aset *set, const char *s, size_t n)
{
	unsigned char c = s[0];
	for (int i = set->at[c]; i < set->at[c + 1]; i++) {
		const struct added *a = &set->v[i];
		if (a->n <= n && !memcmp(a->s, s, a->n))
			return a;
	}
	return NULL;
}

/* Split text on the added tokens of set (with lstrip/rstrip), emitting their
 * ids and handing the text between them to leaf. */
int tok_split_added(const struct rt_tokenizer *t, const struct aset *set, const char *text, size_t len, size_t off,
                    leaf_fn leaf, struct ids *out)
{
	size_t seg = 0, i = 0;
	int r = 0;

	while (i < len && r == 0) {
		const struct added *a = set->n ? match_added(set, text + i, len - i) : NULL;
		size_t start, end, wl;
		if (!a) {
			i++;
			continue;
		}
		start = i;
		end = i + a->n;
		if (a->lstrip)
			while (start > seg) {
				/* step back one UTF-8 character */
				size_t p = start - 1;
				while (p > seg && ((unsigned char)text[p] & 0xC0) == 0x80)
					p--;
				if (!is_ws(text + p, start - p, &wl))
					break;
				start = p;
			}
		if (a->rstrip)
			while (end < len && is_ws(text + end, len - end, &wl))
				end += wl;
		if (start > seg)
			r = leaf(t, text + seg, start - seg, off + seg, out);
		if (r == 0)
			r = tok_ids_add(out, a->id);
		seg = i = end;
	}
	if (r == 0 && len > seg)
		r = leaf(t, text + seg, len - seg, off + seg, out);
	return r;
}
