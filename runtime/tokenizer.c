/* Tokenizer from a Hugging Face tokenizer.json: BPE model (byte-level or
 * SentencePiece-style with byte fallback), added/special tokens, the
 * normalizers and pre-tokenizers Llama/Mistral/Qwen/GPT-2 files use, the
 * TemplateProcessing post-processor and the matching decoders.  The pipeline
 * mirrors tokenizers' (Rust) order: split out added tokens, normalize each
 * remaining piece, pre-tokenize into words, BPE each word, post-process.
 * Anything else in the file is refused with a message naming it. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "agrt/agrt.h"
#include "rt_error.h"

#define MAX_VOCAB     (1 << 22)
#define MAX_MERGES    (1 << 23)
#define MAX_TOKEN_LEN 4096
#define MAX_FILE      (512u << 20)
#define MAX_STEPS     16 /* normalizer / pre-tokenizer / decoder chain length */
#define MAX_TEMPLATE  16
#define TOK_MAX_INPUT (64u << 20)

static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- growable byte buffer and string lists ---- */

struct buf {
	char *p;
	size_t n, cap;
};

static int buf_add(struct buf *b, const void *s, size_t n)
{
	if (n > (SIZE_MAX >> 2) - b->n)
		return -ENOMEM;
	if (b->n + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		char *np;
		while (nc < b->n + n + 1)
			nc *= 2;
		np = realloc(b->p, nc);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
	return 0;
}

struct piece {
	char *s;
	size_t n;
	size_t off; /* offset of the piece in the original input (Metaspace "first") */
};

struct plist {
	struct piece *v;
	size_t n, cap;
};

static void plist_clear(struct plist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].s);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int plist_add(struct plist *l, const char *s, size_t n, size_t off)
{
	char *c;
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 16;
		struct piece *nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = nc;
	}
	c = malloc(n + 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, s, n);
	c[n] = 0;
	l->v[l->n++] = (struct piece){c, n, off};
	return 0;
}

/* ---- string -> id hash map (open addressing) ---- */

struct smap {
	int32_t *slot; /* id or -1 */
	size_t mask;
};

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ull;
	return h;
}

/* ---- merges: (left id, right id) -> (rank, merged id) ---- */

struct merge_ent {
	uint64_t key; /* left << 32 | right, UINT64_MAX = empty */
	int32_t rank, id;
};

/* ---- pipeline step descriptions ---- */

enum norm_kind { N_NFC, N_NFKC, N_PREPEND, N_REPLACE };
struct norm {
	int kind;
	char *a, *b; /* Prepend: a; Replace: a -> b */
};

enum pre_kind { P_BYTELEVEL, P_SPLIT, P_METASPACE };
enum split_beh { B_ISOLATED, B_REMOVED, B_MERGED_PREV, B_MERGED_NEXT };
struct pre {
	int kind;
	pcre2_code *re; /* Split, or ByteLevel with use_regex */
	int behavior;
	bool add_prefix_space; /* ByteLevel */
	char *repl;            /* Metaspace replacement (UTF-8) */
	int prepend;           /* Metaspace: 0 never, 1 first, 2 always */
	bool split;            /* Metaspace */
};

enum dec_kind { D_BYTELEVEL, D_REPLACE, D_BYTEFALLBACK, D_FUSE, D_STRIP, D_METASPACE };
struct dec {
	int kind;
	char *a, *b;     /* Replace a -> b; Strip content a; Metaspace replacement a */
	int start, stop; /* Strip */
	int prepend;     /* Metaspace */
};

struct added {
	char *s; /* string matched: the content, or for normalized tokens the normalized content */
	size_t n;
	int32_t id;
	bool special, lstrip, rstrip, normalized;
};

/* Added tokens of one kind, sorted by first byte then longest first: the
 * first match at a position is the longest (tokenizers: leftmost-longest). */
struct aset {
	struct added *v;
	int n;
	int at[257]; /* v[at[c] .. at[c+1]) start with byte c */
};

struct rt_tokenizer {
	char **tok; /* id -> token string (vocab or added content), NULL for holes */
	size_t *tok_len;
	char **dtok; /* id -> decode string when it differs from tok (normalized added tokens) */
	bool *is_special;
	int n_ids;
	struct smap vocab; /* model vocab string -> id */
	struct merge_ent *merges;
	size_t merge_mask;
	struct aset raw;  /* normalized: false, matched on the input */
	struct aset norm; /* normalized: true, matched on each normalized piece */
	struct norm norms[MAX_STEPS];
	int n_norms;
	struct pre pres[MAX_STEPS];
	int n_pres;
	struct dec decs[MAX_STEPS];
	int n_decs;
	int32_t tmpl[MAX_TEMPLATE]; /* -1 marks the sequence A */
	int n_tmpl;
	bool byte_fallback, fuse_unk, ignore_merges;
	int32_t unk;           /* -1: none */
	int32_t byte_tok[256]; /* <0xNN> ids or -1 */
	char b2u[256][3];      /* byte-level alphabet, UTF-8, NUL-terminated */
	int16_t u2b[512];      /* codepoint -> byte, -1 */
	const char *path;      /* only valid during load */
};

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

static void init_bytelevel(struct rt_tokenizer *t)
{
	int n = 0;
	for (int i = 0; i < 512; i++)
		t->u2b[i] = -1;
	for (int b = 0; b < 256; b++) {
		int cp;
		if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
			cp = b;
		else
			cp = 256 + n++;
		utf8proc_encode_char(cp, (utf8proc_uint8_t *)t->b2u[b]);
		t->b2u[b][cp < 0x80 ? 1 : 2] = 0;
		t->u2b[cp] = (int16_t)b;
	}
}

void rt_tokenizer_free(struct rt_tokenizer *t)
{
	if (!t)
		return;
	if (t->tok)
		for (int i = 0; i < t->n_ids; i++)
			free(t->tok[i]);
	if (t->dtok)
		for (int i = 0; i < t->n_ids; i++)
			free(t->dtok[i]);
	free(t->tok);
	free(t->dtok);
	free(t->tok_len);
	free(t->is_special);
	free(t->vocab.slot);
	free(t->merges);
	for (int i = 0; i < t->raw.n; i++)
		free(t->raw.v[i].s);
	for (int i = 0; i < t->norm.n; i++)
		free(t->norm.v[i].s);
	free(t->raw.v);
	free(t->norm.v);
	for (int i = 0; i < t->n_norms; i++) {
		free(t->norms[i].a);
		free(t->norms[i].b);
	}
	for (int i = 0; i < t->n_pres; i++) {
		pcre2_code_free(t->pres[i].re);
		free(t->pres[i].repl);
	}
	for (int i = 0; i < t->n_decs; i++) {
		free(t->decs[i].a);
		free(t->decs[i].b);
	}
	free(t);
}

int rt_tokenizer_vocab_size(const struct rt_tokenizer *t)
{
	return t->n_ids;
}

/* ---- loading ---- */

#define BAD(...)   rt_fail(err, RT_ERR_MODEL, -EBADMSG, __VA_ARGS__)
#define UNSUP(...) rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, __VA_ARGS__)

static int compile_re(struct rt_tokenizer *t, const char *pat, size_t n, pcre2_code **ret, struct rt_error *err)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		return BAD("%s: split regex does not compile at offset %zu: %s", t->path, (size_t)eo, (char *)msg);
	}
	/* JIT is an optimisation only; failure is fine */
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	*ret = re;
	return 0;
}

static char *dup_str(json_t *v)
{
	const char *s = json_string_value(v);
	return s ? strndup(s, json_string_length(v)) : NULL;
}

/* "pattern": {"String": "x"} or {"Regex": "..."}; String only when !regex_ok */
static int get_pattern(struct rt_tokenizer *t, json_t *pat, bool *is_regex, const char **ret, size_t *ret_n,
                       struct rt_error *err)
{
	json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
	if (json_is_string(s)) {
		*is_regex = false;
		*ret = json_string_value(s);
		*ret_n = json_string_length(s);
		return 0;
	}
	if (json_is_string(r)) {
		*is_regex = true;
		*ret = json_string_value(r);
		*ret_n = json_string_length(r);
		return 0;
	}
	return BAD("%s: pattern must be {\"String\": ...} or {\"Regex\": ...}", t->path);
}

static int load_normalizer(struct rt_tokenizer *t, json_t *n, struct rt_error *err)
{
	const char *type;
	struct norm *x;

	if (!n || json_is_null(n))
		return 0;
	type = json_string_value(json_object_get(n, "type"));
	if (!type)
		return BAD("%s: normalizer without type", t->path);
	if (!strcmp(type, "Sequence")) {
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(n, "normalizers"), i, e)
		{
			int r = load_normalizer(t, e, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (t->n_norms >= MAX_STEPS)
		return BAD("%s: too many normalizers", t->path);
	x = &t->norms[t->n_norms];
	if (!strcmp(type, "NFC")) {
		x->kind = N_NFC;
	} else if (!strcmp(type, "NFKC")) {
		x->kind = N_NFKC;
	} else if (!strcmp(type, "Prepend")) {
		x->kind = N_PREPEND;
		if (!(x->a = dup_str(json_object_get(n, "prepend"))))
			return BAD("%s: Prepend normalizer without 'prepend'", t->path);
	} else if (!strcmp(type, "Replace")) {
		bool rx;
		const char *p;
		size_t pn;
		int r = get_pattern(t, json_object_get(n, "pattern"), &rx, &p, &pn, err);
		if (r < 0)
			return r;
		if (rx || pn == 0)
			return UNSUP("%s: Replace normalizer with a regex or empty pattern not supported", t->path);
		x->kind = N_REPLACE;
		x->a = strndup(p, pn);
		x->b = dup_str(json_object_get(n, "content"));
		if (!x->a || !x->b) {
			t->n_norms++;
			return BAD("%s: Replace normalizer without content", t->path);
		}
	} else {
		return UNSUP("%s: normalizer '%.40s' not supported", t->path, type);
	}
	t->n_norms++;
	return 0;
}

static int parse_prepend_scheme(json_t *n)
{
	const char *s = json_string_value(json_object_get(n, "prepend_scheme"));
	json_t *aps = json_object_get(n, "add_prefix_space");
	if (s)
		return !strcmp(s, "never") ? 0 : !strcmp(s, "first") ? 1 : !strcmp(s, "always") ? 2 : -1;
	/* older files: add_prefix_space true meant "always" */
	return json_is_false(aps) ? 0 : 2;
}

static int load_pre(struct rt_tokenizer *t, json_t *n, struct rt_error *err)
{
	const char *type;
	struct pre *x;
	int r;

	if (!n || json_is_null(n))
		return 0;
	type = json_string_value(json_object_get(n, "type"));
	if (!type)
		return BAD("%s: pre_tokenizer without type", t->path);
	if (!strcmp(type, "Sequence")) {
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(n, "pretokenizers"), i, e)
		{
			r = load_pre(t, e, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (t->n_pres >= MAX_STEPS)
		return BAD("%s: too many pre-tokenizers", t->path);
	x = &t->pres[t->n_pres];
	memset(x, 0, sizeof(*x));
	if (!strcmp(type, "ByteLevel")) {
		x->kind = P_BYTELEVEL;
		x->add_prefix_space = json_is_true(json_object_get(n, "add_prefix_space"));
		if (!json_is_false(json_object_get(n, "use_regex")) &&
		    (r = compile_re(t, GPT2_PATTERN, strlen(GPT2_PATTERN), &x->re, err)) < 0)
			return r;
		x->behavior = B_ISOLATED;
	} else if (!strcmp(type, "Split")) {
		const char *beh = json_string_value(json_object_get(n, "behavior"));
		bool rx;
		const char *p;
		size_t pn;
		char *lit = NULL;
		if (json_is_true(json_object_get(n, "invert")))
			return UNSUP("%s: Split pre-tokenizer with invert not supported", t->path);
		if (!beh)
			return BAD("%s: Split without behavior", t->path);
		if (!strcmp(beh, "Isolated"))
			x->behavior = B_ISOLATED;
		else if (!strcmp(beh, "Removed"))
			x->behavior = B_REMOVED;
		else if (!strcmp(beh, "MergedWithPrevious"))
			x->behavior = B_MERGED_PREV;
		else if (!strcmp(beh, "MergedWithNext"))
			x->behavior = B_MERGED_NEXT;
		else
			return UNSUP("%s: Split behavior '%.40s' not supported", t->path, beh);
		if ((r = get_pattern(t, json_object_get(n, "pattern"), &rx, &p, &pn, err)) < 0)
			return r;
		if (!rx) {
			/* a literal string: quote it for PCRE2 */
			lit = malloc(pn + 5);
			if (!lit)
				return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
			memcpy(lit, "\\Q", 2);
			memcpy(lit + 2, p, pn);
			memcpy(lit + 2 + pn, "\\E", 3);
			if (memmem(p, pn, "\\E", 2)) {
				free(lit);
				return UNSUP("%s: Split string pattern containing \\E not supported", t->path);
			}
			p = lit;
			pn += 4;
		}
		x->kind = P_SPLIT;
		r = compile_re(t, p, pn, &x->re, err);
		free(lit);
		if (r < 0)
			return r;
	} else if (!strcmp(type, "Metaspace")) {
		x->kind = P_METASPACE;
		x->repl = dup_str(json_object_get(n, "replacement"));
		x->prepend = parse_prepend_scheme(n);
		x->split = !json_is_false(json_object_get(n, "split"));
		if (!x->repl || !*x->repl || x->prepend < 0) {
			t->n_pres++;
			return BAD("%s: bad Metaspace pre-tokenizer", t->path);
		}
	} else {
		return UNSUP("%s: pre-tokenizer '%.40s' not supported", t->path, type);
	}
	t->n_pres++;
	return 0;
}

static int load_decoder(struct rt_tokenizer *t, json_t *n, struct rt_error *err)
{
	const char *type;
	struct dec *x;

	if (!n || json_is_null(n))
		return 0;
	type = json_string_value(json_object_get(n, "type"));
	if (!type)
		return BAD("%s: decoder without type", t->path);
	if (!strcmp(type, "Sequence")) {
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(n, "decoders"), i, e)
		{
			int r = load_decoder(t, e, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (t->n_decs >= MAX_STEPS)
		return BAD("%s: too many decoders", t->path);
	x = &t->decs[t->n_decs];
	memset(x, 0, sizeof(*x));
	if (!strcmp(type, "ByteLevel")) {
		x->kind = D_BYTELEVEL;
	} else if (!strcmp(type, "ByteFallback")) {
		x->kind = D_BYTEFALLBACK;
	} else if (!strcmp(type, "Fuse")) {
		x->kind = D_FUSE;
	} else if (!strcmp(type, "Replace")) {
		bool rx;
		const char *p;
		size_t pn;
		int r = get_pattern(t, json_object_get(n, "pattern"), &rx, &p, &pn, err);
		if (r < 0)
			return r;
		if (rx || pn == 0)
			return UNSUP("%s: Replace decoder with a regex or empty pattern not supported", t->path);
		x->kind = D_REPLACE;
		x->a = strndup(p, pn);
		x->b = dup_str(json_object_get(n, "content"));
		t->n_decs++;
		if (!x->a || !x->b)
			return BAD("%s: Replace decoder without content", t->path);
		return 0;
	} else if (!strcmp(type, "Strip")) {
		json_int_t st = json_integer_value(json_object_get(n, "start"));
		json_int_t sp = json_integer_value(json_object_get(n, "stop"));
		x->kind = D_STRIP;
		x->a = dup_str(json_object_get(n, "content"));
		x->start = st < 0 ? 0 : st > 64 ? 64 : (int)st;
		x->stop = sp < 0 ? 0 : sp > 64 ? 64 : (int)sp;
		t->n_decs++;
		if (!x->a || utf8proc_iterate((const utf8proc_uint8_t *)x->a, -1, &(utf8proc_int32_t){0}) !=
		                 (utf8proc_ssize_t)strlen(x->a))
			return BAD("%s: Strip decoder content must be one character", t->path);
		return 0;
	} else if (!strcmp(type, "Metaspace")) {
		x->kind = D_METASPACE;
		x->a = dup_str(json_object_get(n, "replacement"));
		x->prepend = parse_prepend_scheme(n);
		t->n_decs++;
		if (!x->a || !*x->a || x->prepend < 0)
			return BAD("%s: bad Metaspace decoder", t->path);
		return 0;
	} else {
		return UNSUP("%s: decoder '%.40s' not supported", t->path, type);
	}
	t->n_decs++;
	return 0;
}

static int load_post(struct rt_tokenizer *t, json_t *n, struct rt_error *err)
{
	const char *type;
	size_t i;
	json_t *e;

	if (!n || json_is_null(n))
		return 0;
	type = json_string_value(json_object_get(n, "type"));
	if (!type)
		return BAD("%s: post_processor without type", t->path);
	if (!strcmp(type, "Sequence")) {
		json_array_foreach(json_object_get(n, "processors"), i, e)
		{
			int r = load_post(t, e, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (!strcmp(type, "ByteLevel"))
		return 0; /* only adjusts offsets */
	if (strcmp(type, "TemplateProcessing"))
		return UNSUP("%s: post_processor '%.40s' not supported", t->path, type);
	t->n_tmpl = 0;
	json_array_foreach(json_object_get(n, "single"), i, e)
	{
		json_t *sp = json_object_get(e, "SpecialToken"), *seq = json_object_get(e, "Sequence");
		if (t->n_tmpl >= MAX_TEMPLATE)
			return BAD("%s: template too long", t->path);
		if (seq) {
			t->tmpl[t->n_tmpl++] = -1;
		} else if (sp) {
			const char *name = json_string_value(json_object_get(sp, "id"));
			json_t *st = json_object_get(json_object_get(n, "special_tokens"), name ? name : "");
			json_t *ids = json_object_get(st, "ids");
			size_t k;
			json_t *idv;
			if (!name || !json_is_array(ids))
				return BAD("%s: template special token '%.40s' not defined", t->path,
				           name ? name : "?");
			json_array_foreach(ids, k, idv)
			{
				json_int_t id = json_integer_value(idv);
				if (!json_is_integer(idv) || id < 0 || id >= t->n_ids || t->n_tmpl >= MAX_TEMPLATE)
					return BAD("%s: template special token '%.40s' has a bad id", t->path, name);
				t->tmpl[t->n_tmpl++] = (int32_t)id;
			}
		} else {
			return BAD("%s: bad template entry", t->path);
		}
	}
	return 0;
}

static int cmp_added(const void *a, const void *b)
{
	const struct added *x = a, *y = b;
	unsigned char cx = x->s[0], cy = y->s[0];
	if (cx != cy)
		return cx < cy ? -1 : 1;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
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

static int load_model(struct rt_tokenizer *t, json_t *model, json_t *addedj, struct rt_error *err)
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
	/* added tokens: all start in raw; split_added_sets() moves the
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
		struct buf cat = {0};
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
		if (buf_add(&cat, a, an) < 0 || buf_add(&cat, b, bn) < 0) {
			free(cat.p);
			return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		}
		im = smap_find(t, cat.p, cat.n);
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

static int normalize(const struct rt_tokenizer *t, struct buf *s);

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
static int split_added_sets(struct rt_tokenizer *t, struct rt_error *err)
{
	int k = 0;
	for (int i = 0; i < t->raw.n; i++) {
		struct added a = t->raw.v[i];
		struct buf b = {0};
		int r;
		if (!a.normalized) {
			t->raw.v[k++] = a;
			continue;
		}
		r = buf_add(&b, a.s, a.n);
		if (r == 0)
			r = normalize(t, &b);
		if (r < 0 || b.n == 0) {
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
		if (b.n != a.n || memcmp(b.p, a.s, a.n)) {
			char *d = strndup(b.p, b.n);
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
		a.n = b.n;
		t->norm.v[t->norm.n++] = a;
	}
	t->raw.n = k;
	index_aset(&t->raw);
	index_aset(&t->norm);
	return 0;
}

int rt_tokenizer_load(const char *path, struct rt_tokenizer **ret_tok, struct rt_error *err)
{
	struct rt_tokenizer *t;
	json_t *root = NULL;
	json_error_t jerr;
	struct stat st;
	int r;

	if (!path || !ret_tok)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	if (stat(path, &st) < 0)
		return rt_fail(err, RT_ERR_IO, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE)
		return rt_fail(err, RT_ERR_MODEL, -EFBIG, "%s: not a regular file of at most 512 MiB", path);
	t = calloc(1, sizeof(*t));
	if (!t)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	t->path = path;
	init_bytelevel(t);
	root = json_load_file(path, 0, &jerr);
	if (!root || !json_is_object(root)) {
		r = rt_fail(err, root ? RT_ERR_MODEL : (jerr.line < 0 ? RT_ERR_IO : RT_ERR_MODEL), -EBADMSG,
		            "%s: invalid JSON: %s", path, root ? "not an object" : jerr.text);
		goto out;
	}
	if ((r = load_model(t, json_object_get(root, "model"), json_object_get(root, "added_tokens"), err)) < 0 ||
	    (r = load_normalizer(t, json_object_get(root, "normalizer"), err)) < 0 ||
	    (r = split_added_sets(t, err)) < 0 || (r = load_pre(t, json_object_get(root, "pre_tokenizer"), err)) < 0 ||
	    (r = load_decoder(t, json_object_get(root, "decoder"), err)) < 0 ||
	    (r = load_post(t, json_object_get(root, "post_processor"), err)) < 0)
		goto out;
	t->path = NULL;
	*ret_tok = t;
	t = NULL;
	r = 0;
out:
	json_decref(root);
	rt_tokenizer_free(t);
	return r;
}

/* ---- encoding ---- */

static bool valid_utf8(const char *s, size_t n)
{
	utf8proc_int32_t cp;
	for (size_t k = 0; k < n;) {
		utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)s + k, n - k, &cp);
		if (cl <= 0)
			return false;
		k += cl;
	}
	return true;
}

static int normalize(const struct rt_tokenizer *t, struct buf *s)
{
	for (int i = 0; i < t->n_norms; i++) {
		const struct norm *x = &t->norms[i];
		struct buf o = {0};
		int r = 0;
		if (s->n == 0)
			return 0;
		switch (x->kind) {
		case N_NFC:
		case N_NFKC: {
			utf8proc_uint8_t *res = NULL;
			utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s->p, s->n, &res,
			                                  UTF8PROC_STABLE | UTF8PROC_COMPOSE |
			                                      (x->kind == N_NFKC ? UTF8PROC_COMPAT : 0));
			if (n < 0)
				return n == UTF8PROC_ERROR_NOMEM ? -ENOMEM : -EILSEQ;
			r = buf_add(&o, res, n);
			free(res);
			break;
		}
		case N_PREPEND:
			r = buf_add(&o, x->a, strlen(x->a));
			if (r == 0)
				r = buf_add(&o, s->p, s->n);
			break;
		case N_REPLACE: {
			size_t an = strlen(x->a), bn = strlen(x->b);
			for (size_t k = 0; k < s->n && r == 0;) {
				if (k + an <= s->n && !memcmp(s->p + k, x->a, an)) {
					r = buf_add(&o, x->b, bn);
					k += an;
				} else {
					r = buf_add(&o, s->p + k, 1);
					k++;
				}
			}
			if (r == 0 && o.n == 0)
				r = buf_add(&o, "", 0);
			break;
		}
		}
		if (r < 0) {
			free(o.p);
			return r;
		}
		free(s->p);
		*s = o;
	}
	return 0;
}

/* Split every piece by re according to behavior. */
static int split_re(const pcre2_code *re, int behavior, struct plist *l)
{
	struct plist out = {0};
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
	int r = 0;

	if (!md)
		return -ENOMEM;
	for (size_t i = 0; i < l->n && r == 0; i++) {
		const char *s = l->v[i].s;
		size_t n = l->v[i].n, at = 0, off = l->v[i].off, pend = 0; /* pend: start of a pending merged piece */
		while (at <= n && r == 0) {
			/* the input was validated once; per-call UTF checks would make this quadratic */
			int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, md, NULL);
			PCRE2_SIZE *ov;
			size_t ms, me;
			if (rc < 0)
				break;
			ov = pcre2_get_ovector_pointer(md);
			ms = ov[0];
			me = ov[1];
			if (me == ms) {
				/* empty match: step over one character */
				at = ms + 1;
				while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80)
					at++;
				if (ms >= n)
					break;
				continue;
			}
			switch (behavior) {
			case B_ISOLATED:
				if (ms > pend)
					r = plist_add(&out, s + pend, ms - pend, off + pend);
				if (r == 0)
					r = plist_add(&out, s + ms, me - ms, off + ms);
				pend = me;
				break;
			case B_REMOVED:
				if (ms > pend)
					r = plist_add(&out, s + pend, ms - pend, off + pend);
				pend = me;
				break;
			case B_MERGED_PREV:
				r = plist_add(&out, s + pend, me - pend, off + pend);
				pend = me;
				break;
			case B_MERGED_NEXT:
				if (ms > pend)
					r = plist_add(&out, s + pend, ms - pend, off + pend);
				pend = ms;
				break;
			}
			at = me;
		}
		if (r == 0 && pend < n)
			r = plist_add(&out, s + pend, n - pend, off + pend);
	}
	pcre2_match_data_free(md);
	if (r < 0) {
		plist_clear(&out);
		return r;
	}
	plist_clear(l);
	*l = out;
	return 0;
}

static int bytelevel_map(const struct rt_tokenizer *t, struct plist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct buf o = {0};
		for (size_t k = 0; k < l->v[i].n; k++) {
			const char *m = t->b2u[(unsigned char)l->v[i].s[k]];
			if (buf_add(&o, m, strlen(m)) < 0) {
				free(o.p);
				return -ENOMEM;
			}
		}
		if (!o.p && buf_add(&o, "", 0) < 0)
			return -ENOMEM;
		free(l->v[i].s);
		l->v[i].s = o.p;
		l->v[i].n = o.n;
	}
	return 0;
}

static int replace_in(struct piece *p, const char *a, const char *b)
{
	struct buf o = {0};
	size_t an = strlen(a), bn = strlen(b);
	int r = buf_add(&o, "", 0);
	for (size_t k = 0; k < p->n && r == 0;) {
		if (k + an <= p->n && !memcmp(p->s + k, a, an)) {
			r = buf_add(&o, b, bn);
			k += an;
		} else {
			r = buf_add(&o, p->s + k, 1);
			k++;
		}
	}
	if (r < 0) {
		free(o.p);
		return r;
	}
	free(p->s);
	p->s = o.p;
	p->n = o.n;
	return 0;
}

static int pretokenize(const struct rt_tokenizer *t, struct plist *l)
{
	for (int i = 0; i < t->n_pres; i++) {
		const struct pre *x = &t->pres[i];
		int r = 0;
		switch (x->kind) {
		case P_BYTELEVEL:
			if (x->add_prefix_space)
				for (size_t k = 0; k < l->n && r == 0; k++)
					if (l->v[k].n && l->v[k].s[0] != ' ') {
						struct piece p = l->v[k];
						char *ns = malloc(p.n + 2);
						if (!ns)
							return -ENOMEM;
						ns[0] = ' ';
						memcpy(ns + 1, p.s, p.n + 1);
						free(p.s);
						l->v[k].s = ns;
						l->v[k].n++;
					}
			if (x->re && (r = split_re(x->re, B_ISOLATED, l)) < 0)
				return r;
			r = bytelevel_map(t, l);
			break;
		case P_SPLIT: r = split_re(x->re, x->behavior, l); break;
		case P_METASPACE: {
			size_t rn = strlen(x->repl);
			for (size_t k = 0; k < l->n && r == 0; k++) {
				struct piece *p = &l->v[k];
				r = replace_in(p, " ", x->repl);
				if (r == 0 && (x->prepend == 2 || (x->prepend == 1 && p->off == 0)) &&
				    !(p->n >= rn && !memcmp(p->s, x->repl, rn))) {
					char *ns = malloc(p->n + rn + 1);
					if (!ns)
						return -ENOMEM;
					memcpy(ns, x->repl, rn);
					memcpy(ns + rn, p->s, p->n + 1);
					free(p->s);
					p->s = ns;
					p->n += rn;
				}
			}
			if (r == 0 && x->split) {
				/* split on the replacement, merged with the next piece */
				struct plist out = {0};
				for (size_t k = 0; k < l->n && r == 0; k++) {
					const char *s = l->v[k].s;
					size_t n = l->v[k].n, st = 0;
					for (size_t j = 1; j + rn <= n && r == 0; j++)
						if (!memcmp(s + j, x->repl, rn)) {
							r = plist_add(&out, s + st, j - st, l->v[k].off + st);
							st = j;
						}
					if (r == 0 && n > st)
						r = plist_add(&out, s + st, n - st, l->v[k].off + st);
				}
				if (r < 0) {
					plist_clear(&out);
					return r;
				}
				plist_clear(l);
				*l = out;
			}
			break;
		}
		}
		if (r < 0)
			return r;
	}
	return 0;
}

struct ids {
	int32_t *v;
	size_t n, cap;
};

static int ids_add(struct ids *o, int32_t id)
{
	if (o->n == o->cap) {
		size_t nc = o->cap ? 2 * o->cap : 64;
		int32_t *nv = realloc(o->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		o->v = nv;
		o->cap = nc;
	}
	o->v[o->n++] = id;
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
static int bpe_word(const struct rt_tokenizer *t, const char *w, size_t n, struct ids *out)
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
			return ids_add(out, id);
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
		r = ids_add(out, s[k].id);
out:
	free(s);
	free(h);
	return r;
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

typedef int (*leaf_fn)(const struct rt_tokenizer *t, const char *s, size_t n, size_t off, struct ids *out);

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
static int split_added(const struct rt_tokenizer *t, const struct aset *set, const char *text, size_t len, size_t off,
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
			r = ids_add(out, a->id);
		seg = i = end;
	}
	if (r == 0 && len > seg)
		r = leaf(t, text + seg, len - seg, off + seg, out);
	return r;
}

/* Pre-tokenize normalized text and run BPE on each word.  off is 0 only for
 * text at the very start of the input (Metaspace prepend_scheme "first"). */
static int encode_words(const struct rt_tokenizer *t, const char *s, size_t n, size_t off, struct ids *out)
{
	struct plist l = {0};
	int r = plist_add(&l, s, n, off);
	if (r == 0)
		r = pretokenize(t, &l);
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = bpe_word(t, l.v[i].s, l.v[i].n, out);
	plist_clear(&l);
	return r;
}

/* Text between raw added tokens: normalize, then split on normalized added tokens. */
static int encode_segment(const struct rt_tokenizer *t, const char *s, size_t n, size_t off, struct ids *out)
{
	struct buf b = {0};
	int r = buf_add(&b, s, n);
	if (r == 0)
		r = normalize(t, &b);
	if (r == 0 && b.n)
		r = split_added(t, &t->norm, b.p, b.n, off, encode_words, out);
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
	if (!valid_utf8(text, len))
		return rt_fail(err, RT_ERR_USAGE, -EILSEQ, "input is not valid UTF-8");
	r = split_added(t, &t->raw, text, len, 0, encode_segment, &body);
	if (r < 0)
		goto out;
	if (add_special && t->n_tmpl) {
		for (int k = 0; k < t->n_tmpl && r == 0; k++) {
			if (t->tmpl[k] >= 0) {
				r = ids_add(&out, t->tmpl[k]);
				continue;
			}
			for (size_t j = 0; j < body.n && r == 0; j++)
				r = ids_add(&out, body.v[j]);
		}
		free(body.v);
		body = (struct ids){0};
	} else {
		out = body;
		body = (struct ids){0};
	}
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

/* ---- decoding ---- */

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	                              : -1;
}

static int byte_token(const char *s, size_t n)
{
	int hi, lo;
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || (hi = hexval(s[3])) < 0 || (lo = hexval(s[4])) < 0)
		return -1;
	return hi * 16 + lo;
}

/* Bytes -> UTF-8 with each invalid sequence replaced by U+FFFD, like Rust's
 * String::from_utf8_lossy (maximal subparts per the WHATWG rule). */
static int lossy(const char *s, size_t n, struct buf *o)
{
	size_t k = 0;
	while (k < n) {
		unsigned char c = s[k];
		size_t need, j;
		unsigned lo = 0x80, hi = 0xBF;
		if (c < 0x80) {
			if (buf_add(o, s + k, 1) < 0)
				return -ENOMEM;
			k++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			need = 1;
		else if (c >= 0xE0 && c <= 0xEF) {
			need = 2;
			if (c == 0xE0)
				lo = 0xA0;
			if (c == 0xED)
				hi = 0x9F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3;
			if (c == 0xF0)
				lo = 0x90;
			if (c == 0xF4)
				hi = 0x8F;
		} else {
			if (buf_add(o, "\xEF\xBF\xBD", 3) < 0)
				return -ENOMEM;
			k++;
			continue;
		}
		for (j = 1; j <= need; j++) {
			unsigned char d;
			if (k + j >= n)
				break;
			d = s[k + j];
			if (d < lo || d > hi)
				break;
			lo = 0x80, hi = 0xBF;
		}
		if (j > need) {
			if (buf_add(o, s + k, need + 1) < 0)
				return -ENOMEM;
			k += need + 1;
		} else {
			if (buf_add(o, "\xEF\xBF\xBD", 3) < 0)
				return -ENOMEM;
			k += j;
		}
	}
	return 0;
}

static int set_piece(struct piece *p, struct buf *b)
{
	if (!b->p && buf_add(b, "", 0) < 0)
		return -ENOMEM;
	free(p->s);
	p->s = b->p;
	p->n = b->n;
	*b = (struct buf){0};
	return 0;
}

static int decode_step(const struct rt_tokenizer *t, const struct dec *x, struct plist *l)
{
	int r = 0;
	switch (x->kind) {
	case D_BYTELEVEL: {
		struct buf raw = {0}, o = {0};
		for (size_t i = 0; i < l->n && r == 0; i++) {
			/* a token with any char outside the byte alphabet passes through as UTF-8 */
			struct buf tb = {0};
			bool ok = true;
			for (size_t k = 0; k < l->v[i].n && ok && r == 0;) {
				utf8proc_int32_t cp;
				utf8proc_ssize_t cl =
				    utf8proc_iterate((const utf8proc_uint8_t *)l->v[i].s + k, l->v[i].n - k, &cp);
				if (cl <= 0 || cp >= 512 || t->u2b[cp] < 0) {
					ok = false;
					break;
				}
				{
					char byte = (char)t->u2b[cp];
					r = buf_add(&tb, &byte, 1);
				}
				k += cl;
			}
			if (r == 0)
				r = ok ? buf_add(&raw, tb.p ? tb.p : "", tb.n) : buf_add(&raw, l->v[i].s, l->v[i].n);
			free(tb.p);
		}
		if (r == 0)
			r = lossy(raw.p ? raw.p : "", raw.n, &o);
		free(raw.p);
		if (r == 0) {
			plist_clear(l);
			r = plist_add(l, o.p ? o.p : "", o.n, 0);
		}
		free(o.p);
		return r;
	}
	case D_REPLACE:
		for (size_t i = 0; i < l->n && r == 0; i++)
			r = replace_in(&l->v[i], x->a, x->b);
		return r;
	case D_BYTEFALLBACK: {
		struct plist out = {0};
		struct buf bytes = {0};
		size_t nb = 0;
		for (size_t i = 0; i <= l->n && r == 0; i++) {
			int b = i < l->n ? byte_token(l->v[i].s, l->v[i].n) : -1;
			if (b >= 0) {
				char c = (char)b;
				r = buf_add(&bytes, &c, 1);
				nb++;
				continue;
			}
			if (nb) {
				if (valid_utf8(bytes.p, bytes.n))
					r = plist_add(&out, bytes.p, bytes.n, 0);
				else
					for (size_t k = 0; k < nb && r == 0; k++)
						r = plist_add(&out, "\xEF\xBF\xBD", 3, 0);
				bytes.n = 0;
				nb = 0;
			}
			if (r == 0 && i < l->n)
				r = plist_add(&out, l->v[i].s, l->v[i].n, 0);
		}
		free(bytes.p);
		if (r < 0) {
			plist_clear(&out);
			return r;
		}
		plist_clear(l);
		*l = out;
		return 0;
	}
	case D_FUSE: {
		struct buf o = {0};
		for (size_t i = 0; i < l->n && r == 0; i++)
			r = buf_add(&o, l->v[i].s, l->v[i].n);
		if (r == 0) {
			plist_clear(l);
			r = plist_add(l, o.p ? o.p : "", o.n, 0);
		}
		free(o.p);
		return r;
	}
	case D_STRIP: {
		size_t cn = strlen(x->a);
		for (size_t i = 0; i < l->n; i++) {
			struct piece *p = &l->v[i];
			size_t a = 0, e = p->n;
			for (int k = 0; k < x->start && a + cn <= e && !memcmp(p->s + a, x->a, cn); k++)
				a += cn;
			for (int k = 0; k < x->stop && e >= a + cn && !memcmp(p->s + e - cn, x->a, cn); k++)
				e -= cn;
			memmove(p->s, p->s + a, e - a);
			p->n = e - a;
			p->s[p->n] = 0;
		}
		return 0;
	}
	case D_METASPACE: {
		size_t rn = strlen(x->a);
		for (size_t i = 0; i < l->n && r == 0; i++) {
			struct piece *p = &l->v[i];
			struct buf o = {0};
			for (size_t k = 0; k < p->n && r == 0;) {
				if (k + rn <= p->n && !memcmp(p->s + k, x->a, rn)) {
					/* tokenizers drops every replacement char of the first token */
					if (!(i == 0 && x->prepend != 0))
						r = buf_add(&o, " ", 1);
					k += rn;
				} else {
					r = buf_add(&o, p->s + k, 1);
					k++;
				}
			}
			if (r == 0)
				r = set_piece(p, &o);
			free(o.p);
		}
		return r;
	}
	}
	return 0;
}

int rt_detokenize(const struct rt_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **ret_text,
                  size_t *ret_len, struct rt_error *err)
{
	struct plist l = {0};
	struct buf o = {0};
	int r = 0;

	if (!t || (!ids && n) || !ret_text)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	for (size_t i = 0; i < n && r == 0; i++) {
		int32_t id = ids[i];
		if (id < 0 || id >= t->n_ids || !t->tok[id]) {
			plist_clear(&l);
			return rt_fail(err, RT_ERR_USAGE, -EINVAL, "token id %d not in the tokenizer", id);
		}
		if (skip_special && t->is_special[id])
			continue;
		if (t->dtok[id])
			r = plist_add(&l, t->dtok[id], strlen(t->dtok[id]), 0);
		else
			r = plist_add(&l, t->tok[id], t->tok_len[id], 0);
	}
	for (int k = 0; k < t->n_decs && r == 0; k++)
		r = decode_step(t, &t->decs[k], &l);
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = buf_add(&o, l.v[i].s, l.v[i].n);
	if (r == 0 && !o.p)
		r = buf_add(&o, "", 0);
	plist_clear(&l);
	if (r < 0) {
		free(o.p);
		return rt_fail(err, RT_ERR_INTERNAL, r, "detokenize: %s", strerror(-r));
	}
	*ret_text = o.p;
	if (ret_len)
		*ret_len = o.n;
	return 0;
}
