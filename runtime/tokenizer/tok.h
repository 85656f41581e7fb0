/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The tokenizer's private interface.  A Hugging Face tokenizer.json is a
 * pipeline, and each stage is one file here, in pipeline order:
 *
 *   added.c      split out added tokens (raw ones on the input, normalized
 *                ones on each normalized piece)
 *   normalize.c  normalizers (NFC, NFKC, Prepend, Replace)
 *   pretok.c     pre-tokenizers (ByteLevel, Split, Metaspace)
 *   bpe.c        the BPE model: vocabulary, merges, byte fallback, unk
 *   post.c       post-processors (TemplateProcessing, ByteLevel)
 *   decode.c     decoders (ByteLevel, Replace, ByteFallback, Fuse, Strip,
 *                Metaspace) and rt_detokenize()
 *   encode.c     rt_tokenize(): the stages above in tokenizers' order
 *   load.c       rt_tokenizer_load(): the file, and the one step loader
 *                every stage's "Sequence" goes through
 *   util.c       pieces, id lists, patterns and UTF-8 checks the stages share
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "agrt/agrt.h"
#include "rt_buf.h"
#include "rt_error.h"

#define MAX_VOCAB     (1 << 22)
#define MAX_MERGES    (1 << 23)
#define MAX_TOKEN_LEN 4096
#define MAX_FILE      (512u << 20)
#define MAX_STEPS     16 /* normalizer / pre-tokenizer / decoder chain length */
#define MAX_TEMPLATE  16
#define TOK_MAX_INPUT (64u << 20)

/* ---- pieces of text and lists of ids (util.c) ---- */

struct piece {
	char *s;
	size_t n;
	size_t off; /* offset of the piece in the original input (Metaspace "first") */
};

struct plist {
	struct piece *v;
	size_t n, cap;
};
void tok_plist_clear(struct plist *l);
int tok_plist_add(struct plist *l, const char *s, size_t n, size_t off);

struct ids {
	int32_t *v;
	size_t n, cap;
};

int tok_ids_add(struct ids *o, int32_t id);

/* ---- the model's tables ---- */

struct smap {
	int32_t *slot; /* id or -1 */
	size_t mask;
};

/* merges: (left id, right id) -> (rank, merged id) */
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

#define BAD(...)   rt_fail(err, RT_ERR_MODEL, -EBADMSG, __VA_ARGS__)
#define UNSUP(...) rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, __VA_ARGS__)
#define NOMEM()    rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory")

/* ---- loading (load.c): one loader for every stage's steps ---- */

/* A stage of the pipeline as tokenizer.json spells it: the key of its
 * "Sequence" list, and how one (non-Sequence) step is loaded. */
struct tok_stage {
	const char *what;    /* "normalizer": "%s without type" */
	const char *seq_key; /* "normalizers": the list of a Sequence */
	const char *plural;  /* "normalizers": "too many %s"; NULL: the stage counts nothing */
	int (*count)(const struct rt_tokenizer *t);
	int (*load_one)(struct rt_tokenizer *t, json_t *n, const char *type, struct rt_error *err);
};

/* Loads n (null or absent: no step; a Sequence: each element in order). */
int tok_load_steps(struct rt_tokenizer *t, const struct tok_stage *st, json_t *n, struct rt_error *err);

extern const struct tok_stage tok_normalizers, tok_pre_tokenizers, tok_decoders, tok_post_processors;

/* util.c: helpers the step loaders share */
char *tok_dup_str(json_t *v);
int tok_get_pattern(struct rt_tokenizer *t, json_t *pat, bool *is_regex, const char **ret, size_t *ret_n,
                    struct rt_error *err);
int tok_compile_re(struct rt_tokenizer *t, const char *pat, size_t n, pcre2_code **ret, struct rt_error *err);
int tok_prepend_scheme(json_t *n);
bool tok_valid_utf8(const char *s, size_t n);
int tok_replace_in(struct piece *p, const char *a, const char *b);
/* A Replace step's literal pattern (*ret_a) and content (*ret_b), new
 * strings; a regex or empty pattern is refused, a missing content is BAD
 * (whatever was made is left in *ret_a / *ret_b for the caller to own). */
int tok_replace_args(struct rt_tokenizer *t, json_t *n, const char *what, char **ret_a, char **ret_b,
                     struct rt_error *err);

/* ---- the stages ---- */

/* bpe.c */
int tok_load_model(struct rt_tokenizer *t, json_t *model, json_t *addedj, struct rt_error *err);
int tok_bpe_word(const struct rt_tokenizer *t, const char *w, size_t n, struct ids *out);

/* added.c */
int tok_split_added_sets(struct rt_tokenizer *t, struct rt_error *err);
typedef int (*leaf_fn)(const struct rt_tokenizer *t, const char *s, size_t n, size_t off, struct ids *out);
int tok_split_added(const struct rt_tokenizer *t, const struct aset *set, const char *text, size_t len, size_t off,
                    leaf_fn leaf, struct ids *out);

/* normalize.c, pretok.c, post.c */
int tok_normalize(const struct rt_tokenizer *t, struct rt_buf *s);
void tok_init_bytelevel(struct rt_tokenizer *t);
int tok_pretokenize(const struct rt_tokenizer *t, struct plist *l);
int tok_post_process(const struct rt_tokenizer *t, bool add_special, struct ids *body, struct ids *ret);
