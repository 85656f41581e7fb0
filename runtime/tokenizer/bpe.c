/* SPDX-License-Identifier: Apache-2.0 */
/* The BPE model: vocabulary, added-token ids, merges, and BPE on one word
 * (with byte fallback and unk) exactly as tokenizers' Word::merge_all. */

#include "tok.h"
#include <stdio.h>

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

static int smap_find(const struct rt_tokenizer *t, const char *s, size_t n)
{
	const struct smap *m = &t->vocab;
	size_t i = hash_bytes(s, n) & m->mask;
	for (;; i = (i + 1) & m->mask) {
		int32_t id = m->slot[i];
		if (id < 0)
			return -1;
		if (t->tok_len[id] == n && !memcmp(t->tok[id], s, n))
			return id;
	}
}

static void smap_put(struct rt_tokenizer *t, int32_t id)
{
	struct smap *m = &t->vocab;
	size_t i = hash_bytes(t->tok[id], t->tok_len[id]) & m->mask;
	while (m->slot[i] >= 0)
		i = (i + 1) & m->mask;
	m->slot[i] = id;
}

static const struct merge_ent *merge_find(const struct rt_tokenizer *t, int32_t a, int32_t b)
{
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	size_t i = (key * 0x9E3779B97F4A7C15ull >> 20) & t->merge_mask;
	if (!t->merges)
		return NULL;
	for (;; i = (i + 1) & t->merge_mask) {
		if (t->merges[i].key == UINT64_MAX)
			return NULL;
		if (t->merges[i].key == key)
			return &t->merges[i];
	}
}

static int set_token(struct rt_tokenizer *t, int32_t id, const char *s, size_t n, struct rt_error *err)
{
	if (id < 0 || id >= t->n_ids)
		return BAD("%s: token id %d out of range", t->path, id);
	if (t->tok[id]) {
		if (t->tok_len[id] == n && !memcmp(t->tok[id], s, n))
			return 0;
		return BAD("%s: id %d assigned to two different tokens", t->path, id);
	}
	t->tok[id] = strndup(s, n);
	if (!t->tok[id])
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	t->tok_len[id] = n;
	return 0;
}

int tok_load_model(struct rt_tokenizer *t, json_t *model, json_t *addedj, struct rt_error *err)
{
	json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges"), *v, *e;
	const char *type = json_string_value(json_object_get(model, "type")), *key;
	json_int_t max_id = -1;
	size_t i, nm, cap;
	int r;

	if (!type && json_is_object(vocab) && merges)
		type = "BPE";
	if (!type || strcmp(type, "BPE"))
		return UNSUP("%s: model type '%.40s' not supported (BPE only)", t->path, type ? type : "?");
	if (!json_is_object(vocab) || json_object_size(vocab) > MAX_VOCAB)
		return BAD("%s: model.vocab missing or too large", t->path);
	if (merges && !json_is_array(merges))
		return BAD("%s: model.merges is not a list", t->path);
	if (json_array_size(merges) > MAX_MERGES)
		return BAD("%s: too many merges", t->path);
	{
		json_t *cs = json_object_get(model, "continuing_subword_prefix");
		json_t *ew = json_object_get(model, "end_of_word_suffix");
		json_t *dr = json_object_get(model, "dropout");
		if ((cs && !json_is_null(cs) && json_string_length(cs)) ||
		    (ew && !json_is_null(ew) && json_string_length(ew)))
			return UNSUP("%s: BPE subword prefix/suffix not supported", t->path);
		if (dr && !json_is_null(dr) && json_number_value(dr) != 0.0)
			return UNSUP("%s: BPE dropout not supported", t->path);
	}
	t->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
	t->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
	t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
	json_object_foreach(vocab, key, v)
	{
		json_int_t id = json_integer_value(v);
		if (!json_is_integer(v) || id < 0 || id >= MAX_VOCAB)
			return BAD("%s: vocab entry '%.40s' has a bad id", t->path, key);
		if (id > max_id)
			max_id = id;
	}
	if (json_array_size(addedj) > MAX_VOCAB)
		return BAD("%s: too many added tokens", t->path);
	json_array_foreach(addedj, i, e)
	{
		json_t *idv = json_object_get(e, "id");
		json_int_t id = json_integer_value(idv);
		if (!json_is_integer(idv) || id < 0 || id >= MAX_VOCAB ||
		    !json_is_string(json_object_get(e, "content")))
			return BAD("%s: added_tokens entry %zu is malformed", t->path, i);
		if (id > max_id)
			max_id = id;
	}
	t->n_ids = (int)max_id + 1;
	t->tok = calloc(t->n_ids, sizeof(char *));
	t->tok_len = calloc(t->n_ids, sizeof(size_t));
	t->is_special = calloc(t->n_ids, sizeof(bool));
	t->dtok = calloc(t->n_ids, sizeof(char *));
	for (cap = 16; cap < 2 * json_object_size(vocab) + 16; cap *= 2)
		;
	t->vocab.slot = malloc(cap * sizeof(int32_t));
	if (!t->tok || !t->tok_len || !t->is_special || !t->dtok || !t->vocab.slot)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	memset(t->vocab.slot, 0xff, cap * sizeof(int32_t));
	t->vocab.mask = cap - 1;
	json_object_foreach(vocab, key, v)
	{
		size_t kn = strlen(key);
		if (kn > MAX_TOKEN_LEN)
			return BAD("%s: vocab token longer than %d bytes", t->path, MAX_TOKEN_LEN);
		if ((r = set_token(t, (int32_t)json_integer_value(v), key, kn, err)) < 0)
			return r;
		smap_put(t, (int32_t)json_integer_value(v));
	}
	/* added tokens: all start in raw; tok_split_added_sets() moves the
	 * normalized ones once the normalizer is known */
	t->raw.v = calloc(json_array_size(addedj) + 1, sizeof(*t->raw.v));
	t->norm.v = calloc(json_array_size(addedj) + 1, sizeof(*t->norm.v));
	if (!t->raw.v || !t->norm.v)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	json_array_foreach(addedj, i, e)
	{
		json_t *c = json_object_get(e, "content"), *nz = json_object_get(e, "normalized");
		struct added *a = &t->raw.v[t->raw.n];
		if (json_string_length(c) == 0 || json_string_length(c) > MAX_TOKEN_LEN)
			return BAD("%s: added token %zu has an empty or huge content", t->path, i);
		a->id = (int32_t)json_integer_value(json_object_get(e, "id"));
		a->n = json_string_length(c);
		a->s = strndup(json_string_value(c), a->n);
		if (!a->s)
			return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		t->raw.n++;
		a->special = json_is_true(json_object_get(e, "special"));
		/* tokenizers' AddedToken default: normalized = !special */
		a->normalized = nz ? json_is_true(nz) : !a->special;
		a->lstrip = json_is_true(json_object_get(e, "lstrip"));
		a->rstrip = json_is_true(json_object_get(e, "rstrip"));
		if (json_is_true(json_object_get(e, "single_word")))
			return UNSUP("%s: added token '%.40s' with single_word not supported", t->path, a->s);
		if ((r = set_token(t, a->id, a->s, a->n, err)) < 0)
			return r;
		t->is_special[a->id] = a->special;
	}
	{
		json_t *u = json_object_get(model, "unk_token");
		t->unk = -1;
		if (json_is_string(u)) {
			t->unk = smap_find(t, json_string_value(u), json_string_length(u));
			if (t->unk < 0)
				return BAD("%s: unk_token '%.40s' not in vocab", t->path, json_string_value(u));
		}
	}
	for (int b = 0; b < 256; b++) {
		char name[8];
		snprintf(name, sizeof(name), "<0x%02X>", b);
		t->byte_tok[b] = smap_find(t, name, 6);
	}
	nm = json_array_size(merges);
	for (cap = 16; cap < 2 * nm + 16; cap *= 2)
		;
	t->merges = malloc(cap * sizeof(*t->merges));
	if (!t->merges)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	for (size_t k = 0; k < cap; k++)
		t->merges[k].key = UINT64_MAX;
	t->merge_mask = cap - 1;
	json_array_foreach(merges, i, e)
	{
		const char *a, *b;
		size_t an, bn;
		int32_t ia, ib, im;
		struct rt_buf cat = {0};
		uint64_t mkey;
		size_t slot;
		if (json_is_string(e)) {
			/* "a b": exactly one space separates the halves */
			const char *s = json_string_value(e), *sp = strchr(s, ' ');
			if (!sp || strchr(sp + 1, ' '))
				return BAD("%s: merge %zu '%.40s' is not 'a b'", t->path, i, s);
			a = s, an = sp - s, b = sp + 1, bn = strlen(sp + 1);
		} else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
		           json_is_string(json_array_get(e, 1))) {
			a = json_string_value(json_array_get(e, 0));
			an = json_string_length(json_array_get(e, 0));
			b = json_string_value(json_array_get(e, 1));
			bn = json_string_length(json_array_get(e, 1));
		} else {
			return BAD("%s: merge %zu is malformed", t->path, i);
		}
		ia = smap_find(t, a, an);
		ib = smap_find(t, b, bn);
		if (rt_buf_put(&cat, a, an) < 0 || rt_buf_put(&cat, b, bn) < 0) {
			free(cat.p);
			return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		}
		im = smap_find(t, cat.p, cat.len);
		free(cat.p);
		if (ia < 0 || ib < 0 || im < 0)
			return BAD("%s: merge %zu refers to tokens not in the vocab", t->path, i);
		mkey = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
		slot = (mkey * 0x9E3779B97F4A7C15ull >> 20) & t->merge_mask;
		while (t->merges[slot].key != UINT64_MAX && t->merges[slot].key != mkey)
			slot = (slot + 1) & t->merge_mask;
		if (t->merges[slot].key == mkey)
			continue; /* duplicate merge: the first (best rank) wins */
		t->merges[slot] = (struct merge_ent){mkey, (int32_t)i, im};
	}
	return 0;
}

struct sym {
	int32_t id;
	int prev, next; /* -1 at the ends */
	bool alive;
};

struct hent {
	int32_t rank, pos, left, right;
};

static bool hless(const struct hent *a, const struct hent *b)
{
	return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct hent *h, size_t *n, struct hent e)
{
	size_t i = (*n)++;
	while (i > 0 && hless(&e, &h[(i - 1) / 2])) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = e;
}

static struct hent heap_pop(struct hent *h, size_t *n)
{
	struct hent top = h[0], last = h[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && hless(&h[c + 1], &h[c]))
			c++;
		if (!hless(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = last;
	return top;
}

static bool have_byte_tokens(const struct rt_tokenizer *t, const char *s, size_t n)
{
	for (size_t b = 0; b < n; b++)
		if (t->byte_tok[(unsigned char)s[b]] < 0)
			return false;
	return true;
}

/* BPE on one pre-tokenized word.  HOT LOOP for long SentencePiece inputs:
 * a heap of candidate merges ordered by (rank, position), as tokenizers'
 * Word::merge_all does, so the result matches it exactly. */
int tok_bpe_word(const struct rt_tokenizer *t, const char *w, size_t n, struct ids *out)
{
	struct sym *s = NULL;
	struct hent *h = NULL;
	size_t ns = 0, nh = 0, hcap;
	int r = 0;

	if (n == 0)
		return 0;
	if (t->ignore_merges) {
		int id = smap_find(t, w, n);
		if (id >= 0)
			return tok_ids_add(out, id);
	}
	s = malloc(sizeof(*s) * (n + 1));
	hcap = 2 * n + 2;
	h = malloc(sizeof(*h) * hcap);
	if (!s || !h) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < n;) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)w + k, n - k, &cp);
		int id;
		if (cl <= 0)
			cl = 1; /* cannot happen: input was validated */
		id = smap_find(t, w + k, cl);
		if (id >= 0) {
			s[ns++] = (struct sym){id, 0, 0, true};
		} else if (t->byte_fallback && have_byte_tokens(t, w + k, cl)) {
			for (utf8proc_ssize_t b = 0; b < cl; b++)
				s[ns++] = (struct sym){t->byte_tok[(unsigned char)w[k + b]], 0, 0, true};
		} else if (t->unk >= 0) {
			if (!(t->fuse_unk && ns > 0 && s[ns - 1].id == t->unk))
				s[ns++] = (struct sym){t->unk, 0, 0, true};
		}
		/* no unk token: the character is dropped, as tokenizers does */
		k += cl;
	}
	for (size_t k = 0; k < ns; k++) {
		s[k].prev = (int)k - 1;
		s[k].next = k + 1 < ns ? (int)k + 1 : -1;
	}
	for (size_t k = 0; k + 1 < ns; k++) {
		const struct merge_ent *m = merge_find(t, s[k].id, s[k + 1].id);
		if (m)
			heap_push(h, &nh, (struct hent){m->rank, (int32_t)k, s[k].id, s[k + 1].id});
	}
	while (nh > 0) {
		struct hent e = heap_pop(h, &nh);
		struct sym *a = &s[e.pos], *b;
		const struct merge_ent *m;
		if (!a->alive || a->id != e.left || a->next < 0)
			continue;
		b = &s[a->next];
		if (b->id != e.right)
			continue;
		m = merge_find(t, a->id, b->id);
		if (!m)
			continue;
		a->id = m->id;
		b->alive = false;
		a->next = b->next;
		if (b->next >= 0)
			s[b->next].prev = e.pos;
		if (nh + 2 > hcap) {
			struct hent *nhp = realloc(h, sizeof(*h) * hcap * 2);
			if (!nhp) {
				r = -ENOMEM;
				goto out;
			}
			h = nhp;
			hcap *= 2;
		}
		if (a->prev >= 0 && (m = merge_find(t, s[a->prev].id, a->id)))
			heap_push(h, &nh, (struct hent){m->rank, a->prev, s[a->prev].id, a->id});
		if (a->next >= 0 && (m = merge_find(t, a->id, s[a->next].id)))
			heap_push(h, &nh, (struct hent){m->rank, e.pos, a->id, s[a->next].id});
	}
	for (int k = ns ? 0 : -1; k >= 0 && r == 0; k = s[k].next)
		r = tok_ids_add(out, s[k].id);
out:
	free(s);
	free(h);
	return r;
}
