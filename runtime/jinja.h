/* SPDX-License-Identifier: Apache-2.0 */
/* Jinja subset interpreter (chat templates), private to the runtime.
 *
 * Stages, one file each (as Jinja2's lexer.py / parser.py / runtime.py):
 *   jinja_lex.c    source -> tokens (trim_blocks, lstrip_blocks, - and +)
 *   jinja_parse.c  tokens -> tree (struct jnode)
 *   jinja_eval.c   tree + context -> text (statements and expressions)
 *   jinja_lib.c    filters, tests, global functions and methods
 *   jinja_value.c  values: refcounted strings, lists, dicts; Python repr,
 *                  json.dumps, comparisons
 *
 * Ownership: a struct jv holding an object owns one reference.  jv_ref()
 * returns a new reference, jv_unref() drops one; functions taking a
 * "const struct jv *" borrow, functions returning a struct jv through a
 * ret_ pointer hand over a reference.  Lists and dicts are immutable once
 * built (the sandbox forbids list.append and friends) except namespaces,
 * which the render tracks so cycles through them are broken at the end.
 *
 * Limits (templates travel inside bundles and are hostile input):
 * JINJA_MAX_* below; every one fails the compile or the render cleanly. */
#ifndef AGRT_JINJA_H
#define AGRT_JINJA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rt_buf.h"

#define JINJA_MAX_SOURCE    (1u << 20) /* template source bytes */
#define JINJA_MAX_NEST      64         /* block / bracket nesting in the source */
#define JINJA_MAX_DEPTH     512        /* evaluator recursion (all kinds together) */
#define JINJA_MAX_CALLS     64         /* macro call depth */
#define JINJA_MAX_VDEPTH    64         /* nesting of values printed, compared, dumped */
#define JINJA_MAX_STEPS     1000000    /* nodes evaluated + loop iterations */
#define JINJA_MAX_OUTPUT    (4u << 20) /* rendered text */
#define JINJA_MAX_STR       (4u << 20) /* any single string built while rendering */
#define JINJA_MAX_BYTES     (256u << 20) /* string bytes built in one render, in total */
#define JINJA_MAX_ITEMS     1000000    /* elements of a list built while rendering */
#define JINJA_MAX_RANGE     100000     /* range() length, as jinja2's sandbox */

enum jv_type { JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_FUNC };

/* refs == JOBJ_IMMORTAL: a literal owned by a compiled template's tree.
 * Renders on several threads share the tree, so its objects are never
 * counted (jv_ref / jv_unref leave them alone); jinja_node_free frees them. */
#define JOBJ_IMMORTAL UINT32_MAX
struct jobj {
	uint32_t refs;
};

/* s is NUL-terminated UTF-8 (not validated: bytes pass through). */
struct jstr {
	struct jobj h;
	size_t len;
	char s[];
};

struct jv;

struct jlist {
	struct jobj h;
	bool tuple; /* prints as (a, b) */
	bool gen;   /* a generator (selectattr, map, unique...): always true, no len, no index */
	uint16_t depth; /* nesting below, at most JINJA_MAX_VDEPTH (so freeing recursion is bounded) */
	size_t n, cap;
	struct jv *v;
};

/* Ordered like a Python dict; keys are usually strings.  A namespace is a
 * mutable dict printed as <Namespace {...}>; a loop object is read-only. */
enum jdict_kind { JD_DICT, JD_NAMESPACE, JD_LOOP };
struct jdict {
	struct jobj h;
	uint8_t kind;
	uint16_t depth; /* as jlist's; a namespace counts as depth 1 for its holders */
	size_t n, cap;
	struct jv *k, *v;
};

struct jnode;
/* A callable: a builtin (global function or method bound to self) or a
 * macro defined by the template. */
struct jfunc {
	struct jobj h;
	int builtin; /* enum in jinja_lib.c; 0 for a macro */
	const struct jnode *macro;
	struct jv *self; /* bound object or NULL */
	char name[32];
};

struct jv {
	uint8_t t;
	union {
		bool b;
		int64_t i;
		double f;
		struct jobj *o;
		struct jstr *s;
		struct jlist *l;
		struct jdict *d;
		struct jfunc *fn;
	} u;
};

/* ---- tokens (jinja_lex.c) ---- */
enum jtok_kind {
	T_EOF,
	T_TEXT,
	T_VAR_BEGIN,
	T_VAR_END,
	T_BLOCK_BEGIN,
	T_BLOCK_END,
	T_NAME,
	T_STRING,
	T_INT,
	T_FLOAT,
	T_OP,
};

struct jtok {
	uint8_t kind;
	int line;
	const char *p; /* into the normalised source (T_TEXT, T_NAME, T_OP) */
	size_t len;
	char *str; /* T_STRING: unescaped, malloc'ed */
	int64_t i;
	double f;
};

struct jtoks {
	struct jtok *v;
	size_t n, cap;
	char *src; /* normalised source the tokens point into */
};

/* Error text of the stages: one line, the template's words verbatim for
 * raise_exception. */
struct jerr {
	char msg[512];
	bool raised; /* raise_exception() */
};

int jinja_lex(const char *src, size_t len, struct jtoks *ret, struct jerr *e);
void jinja_toks_release(struct jtoks *t);

/* ---- tree (jinja_parse.c) ---- */
enum jnode_kind {
	/* statements */
	N_BLOCK, /* v[n]: statements in order */
	N_TEXT,  /* lit: string */
	N_OUTPUT, /* a: expression */
	N_IF,    /* a: condition, body, orelse */
	N_FOR,   /* b: target (E_NAME or E_TUPLE of names), a: iterable, c: filter, body, orelse */
	N_SET,   /* b: target (E_NAME, E_ATTR of a namespace, E_TUPLE), a: value */
	N_SETBLOCK, /* b: target, body */
	N_MACRO, /* name, names[n] params, v[n] defaults (NULL: none), body */
	N_BREAK,
	N_CONTINUE,
	N_FILTERBLOCK, /* a: E_FILTER chain whose innermost subject is NULL, body */
	/* expressions */
	E_LIT,   /* lit */
	E_NAME,  /* name */
	E_ATTR,  /* a.name */
	E_ITEM,  /* a[b] */
	E_SLICE, /* a[v[0]:v[1]:v[2]] (each may be NULL) */
	E_CALL,  /* a(v[n]) with names[i] the keyword or NULL */
	E_FILTER, /* a|name(v[n]) */
	E_TEST,  /* a is [not] name(v[n]); op: negated */
	E_NOT,
	E_NEG,
	E_POS,
	E_BIN,  /* a op b; op one of the JOP_* */
	E_AND,
	E_OR,
	E_COND, /* b if a else c (c may be NULL) */
	E_LIST, /* v[n] */
	E_TUPLE,
	E_DICT, /* names unused; v[2i] key, v[2i+1] value */
};

enum jop {
	JOP_ADD = 1,
	JOP_SUB,
	JOP_MUL,
	JOP_DIV,
	JOP_FLOORDIV,
	JOP_MOD,
	JOP_POW,
	JOP_CONCAT,
	JOP_EQ,
	JOP_NE,
	JOP_LT,
	JOP_LE,
	JOP_GT,
	JOP_GE,
	JOP_IN,
	JOP_NOTIN,
};

struct jnode {
	uint8_t kind;
	uint8_t op;
	int line;
	struct jv lit;
	char *name;
	struct jnode *a, *b, *c;
	struct jnode *body, *orelse;
	struct jnode **v;
	char **names;
	size_t n, cap;
};

/* Parse a whole template; *ret is an N_BLOCK. */
int jinja_parse(const struct jtoks *t, struct jnode **ret, struct jerr *e);
void jinja_node_free(struct jnode *n);

/* ---- values (jinja_value.c) ---- */

static inline struct jv jv_undef(void)
{
	struct jv v = {.t = JV_UNDEF};
	return v;
}
static inline struct jv jv_none(void)
{
	struct jv v = {.t = JV_NONE};
	return v;
}
static inline struct jv jv_bool(bool b)
{
	struct jv v = {.t = JV_BOOL, .u.b = b};
	return v;
}
static inline struct jv jv_int(int64_t i)
{
	struct jv v = {.t = JV_INT, .u.i = i};
	return v;
}
static inline struct jv jv_float(double f)
{
	struct jv v = {.t = JV_FLOAT, .u.f = f};
	return v;
}
static inline bool jv_is_obj(const struct jv *v)
{
	return v->t >= JV_STR;
}
struct jv jv_ref(const struct jv *v);
void jv_unref(struct jv *v);
/* Make a tree literal immortal; jv_free_immortal releases it. */
void jv_make_immortal(struct jv *v);
void jv_free_immortal(struct jv *v);

/* Constructors return 0 or -ENOMEM / -E2BIG; *ret gets one reference. */
int jv_str(const char *s, size_t len, struct jv *ret);
int jv_str_take_buf(struct rt_buf *b, struct jv *ret); /* empties b */
int jv_list_new(size_t cap, bool tuple, struct jv *ret);
int jv_list_push(struct jv *list, struct jv item); /* takes item's reference, even on failure */
int jv_dict_new(int kind, struct jv *ret);
/* Set (replace or append) key to val; takes both references, even on failure. */
int jv_dict_set(struct jv *dict, struct jv key, struct jv val);
/* Borrowed pointer to the value for a string key, or NULL. */
const struct jv *jv_dict_get(const struct jv *dict, const char *key, size_t klen);
const struct jv *jv_dict_getv(const struct jv *dict, const struct jv *key);

bool jv_truthy(const struct jv *v);
/* Nesting depth of lists / dicts / bound methods below v. */
unsigned jv_depth(const struct jv *v);
/* Python ==; depth-limited (false past the limit). */
bool jv_equal(const struct jv *a, const struct jv *b, int depth);
/* Python <: 0 and *ret_lt, or -EINVAL when the types do not order. */
int jv_less(const struct jv *a, const struct jv *b, bool *ret_lt);
const char *jv_type_name(const struct jv *v);

/* str(v) and repr(v) appended to b; -ELOOP past JINJA_MAX_VDEPTH, -E2BIG past b's max. */
int jv_to_str(const struct jv *v, struct rt_buf *b);
int jv_repr(const struct jv *v, struct rt_buf *b, int depth);
/* Python's repr of a float. */
void jv_float_repr(double f, char *out, size_t n);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: None), separators, sort_keys) */
int jv_to_json(const struct jv *v, struct rt_buf *b, int indent, const char *item_sep, const char *key_sep,
               bool sort_keys, int depth, struct jerr *e);

/* UTF-8 helpers: code point at s (advancing *i); invalid bytes are single units. */
uint32_t ju_next(const char *s, size_t len, size_t *i);
size_t ju_encode(uint32_t cp, char out[4]);
size_t ju_count(const char *s, size_t len);
bool ju_isspace(uint32_t cp);

/* ---- evaluation (jinja_eval.c) ---- */
struct jctx;
/* Render tree with the variables in globals (a JD_DICT, borrowed). */
int jinja_render(const struct jnode *tree, const struct jv *globals, char **ret_text, size_t *ret_len,
                 struct jerr *e);

/* The evaluator's services for jinja_lib.c. */
int jctx_fail(struct jctx *c, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int jctx_raise(struct jctx *c, const char *msg, size_t len);
int jctx_charge(struct jctx *c, size_t bytes);
int jctx_track_ns(struct jctx *c, const struct jv *ns);
int jctx_call_macro(struct jctx *c, const struct jfunc *f, struct jv *args, size_t nargs, char **kwnames,
                    struct jv *ret);
int jctx_getattr(struct jctx *c, const struct jv *obj, const char *name, size_t nlen, struct jv *ret);
int jctx_getitem(struct jctx *c, const struct jv *obj, const struct jv *key, struct jv *ret);

/* ---- library (jinja_lib.c) ---- */
/* args[0] is the subject for filters and tests; kwnames[i] NULL for a
 * positional argument.  Arguments are borrowed. */
int jlib_filter(struct jctx *c, const char *name, struct jv *args, size_t n, char **kwnames, struct jv *ret);
int jlib_test(struct jctx *c, const char *name, struct jv *args, size_t n, bool *ret);
/* A global function by name (range, namespace, dict, raise_exception,
 * strftime_now, cycler...), or 0 with JV_UNDEF. */
int jlib_global(const char *name, struct jv *ret);
/* A method of obj (str.startswith, dict.items...), bound; 0 with JV_UNDEF when none. */
int jlib_method(const struct jv *obj, const char *name, size_t nlen, struct jv *ret);
int jlib_call(struct jctx *c, const struct jfunc *f, struct jv *args, size_t n, char **kwnames, struct jv *ret);
/* Binary operators on values (+ - * / // % ** ~ and comparisons). */
int jlib_binop(struct jctx *c, int op, const struct jv *a, const struct jv *b, struct jv *ret);

#endif
