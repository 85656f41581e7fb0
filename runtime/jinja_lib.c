/* SPDX-License-Identifier: Apache-2.0 */
/* Jinja library: the filters, tests and global functions of jinja2 that
 * chat templates use, transformers' globals (raise_exception, strftime_now)
 * and tojson, Python's str / dict / list methods allowed by the immutable
 * sandbox, and the binary operators with Python's semantics. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "jinja.h"

enum {
	B_NONE,
	/* globals */
	G_RANGE = 1,
	G_NAMESPACE,
	G_DICT,
	G_RAISE,
	G_STRFTIME,
	/* str methods */
	M_STARTSWITH,
	M_ENDSWITH,
	M_STRIP,
	M_LSTRIP,
	M_RSTRIP,
	M_SPLIT,
	M_RSPLIT,
	M_REPLACE,
	M_UPPER,
	M_LOWER,
	M_TITLE,
	M_CAPITALIZE,
	M_FIND,
	M_RFIND,
	M_COUNT,
	M_JOIN,
	M_SPLITLINES,
	M_ISDIGIT,
	M_ISALPHA,
	M_ISSPACE,
	M_ISUPPER,
	M_ISLOWER,
	M_FORMAT,
	/* dict methods */
	M_ITEMS,
	M_KEYS,
	M_VALUES,
	M_GET,
	/* list methods */
	M_LCOUNT,
	M_LINDEX,
};

struct bentry {
	const char *name;
	int id;
};

static const struct bentry globals_tab[] = {
	{"range", G_RANGE},         {"namespace", G_NAMESPACE},       {"dict", G_DICT},
	{"raise_exception", G_RAISE}, {"strftime_now", G_STRFTIME}, {NULL, 0},
};

static const struct bentry str_methods[] = {
	{"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"strip", M_STRIP},
	{"lstrip", M_LSTRIP},         {"rstrip", M_RSTRIP},     {"split", M_SPLIT},
	{"rsplit", M_RSPLIT},         {"replace", M_REPLACE},   {"upper", M_UPPER},
	{"lower", M_LOWER},           {"title", M_TITLE},       {"capitalize", M_CAPITALIZE},
	{"find", M_FIND},             {"rfind", M_RFIND},       {"count", M_COUNT},
	{"join", M_JOIN},             {"splitlines", M_SPLITLINES}, {"isdigit", M_ISDIGIT},
	{"isalpha", M_ISALPHA},       {"isspace", M_ISSPACE},   {"isupper", M_ISUPPER},
	{"islower", M_ISLOWER},       {"format", M_FORMAT},     {NULL, 0},
};

static const struct bentry dict_methods[] = {
	{"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET}, {NULL, 0},
};

static const struct bentry list_methods[] = {
	{"count", M_LCOUNT},
	{"index", M_LINDEX},
	{NULL, 0},
};

static int find_entry(const struct bentry *t, const char *name, size_t nlen)
{
	for (; t->name; t++)
		if (strlen(t->name) == nlen && !memcmp(t->name, name, nlen))
			return t->id;
	return 0;
}

static int make_func(int id, const char *name, size_t nlen, const struct jv *self, struct jv *ret)
{
	struct jfunc *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->h.refs = 1;
	f->builtin = id;
	snprintf(f->name, sizeof(f->name), "%.*s", (int)(nlen > 31 ? 31 : nlen), name);
	if (self) {
		if (jv_depth(self) + 1 > JINJA_MAX_VDEPTH) {
			free(f);
			return -ELOOP;
		}
		f->self = malloc(sizeof(*f->self));
		if (!f->self) {
			free(f);
			return -ENOMEM;
		}
		*f->self = jv_ref(self);
	}
	ret->t = JV_FUNC;
	ret->u.fn = f;
	return 0;
}

int jlib_global(const char *name, struct jv *ret)
{
	int id = find_entry(globals_tab, name, strlen(name));
	if (!id) {
		*ret = jv_undef();
		return 0;
	}
	return make_func(id, name, strlen(name), NULL, ret);
}

int jlib_method(const struct jv *obj, const char *name, size_t nlen, struct jv *ret)
{
	int id = 0;
	if (obj->t == JV_STR)
		id = find_entry(str_methods, name, nlen);
	else if (obj->t == JV_DICT && obj->u.d->kind == JD_DICT)
		id = find_entry(dict_methods, name, nlen);
	else if (obj->t == JV_LIST && !obj->u.l->gen)
		id = find_entry(list_methods, name, nlen);
	if (!id) {
		*ret = jv_undef();
		return 0;
	}
	return make_func(id, name, nlen, obj, ret);
}

/* ---- helpers ---- */
static int err_oom(struct jctx *c, int r)
{
	if (r == -ENOMEM)
		return jctx_fail(c, r, "out of memory");
	if (r == -E2BIG)
		return jctx_fail(c, r, "value too large (limit %u bytes, %d items)", JINJA_MAX_STR, JINJA_MAX_ITEMS);
	if (r == -ELOOP)
		return jctx_fail(c, r, "value nested deeper than %d", JINJA_MAX_VDEPTH);
	return r;
}

/* Argument by position (counted among positional arguments, after the
 * subject for filters) or keyword; NULL when absent. */
static const struct jv *arg(struct jv *args, size_t n, char **kw, size_t pos, const char *name)
{
	size_t p = 0;
	for (size_t i = 0; i < n; i++) {
		if (kw && kw[i]) {
			if (name && !strcmp(kw[i], name))
				return &args[i];
			continue;
		}
		if (p++ == pos)
			return &args[i];
	}
	return NULL;
}

static size_t npositional(size_t n, char **kw)
{
	size_t p = 0;
	for (size_t i = 0; i < n; i++)
		if (!kw || !kw[i])
			p++;
	return p;
}

static int new_str(struct jctx *c, const char *s, size_t n, struct jv *ret)
{
	int r = jctx_charge(c, n);
	if (r < 0)
		return r;
	return err_oom(c, jv_str(s, n, ret));
}

static int buf_str(struct jctx *c, struct rt_buf *b, struct jv *ret)
{
	int r = jctx_charge(c, b->len);
	if (r == 0)
		r = err_oom(c, jv_str_take_buf(b, ret));
	rt_buf_release(b);
	return r;
}

static int to_str(struct jctx *c, const struct jv *v, struct jv *ret)
{
	struct rt_buf b = {.max = JINJA_MAX_STR};
	int r;
	if (v->t == JV_STR) {
		*ret = jv_ref(v);
		return 0;
	}
	r = jv_to_str(v, &b);
	if (r < 0) {
		rt_buf_release(&b);
		return err_oom(c, r);
	}
	return buf_str(c, &b, ret);
}

static bool want_bool(const struct jv *v, bool dflt)
{
	return v ? jv_truthy(v) : dflt;
}

static int need_str(struct jctx *c, const struct jv *v, const char *what)
{
	if (!v || v->t != JV_STR)
		return jctx_fail(c, -EINVAL, "%s: expected a string, got %s", what, v ? jv_type_name(v) : "nothing");
	return 0;
}

static int need_int(struct jctx *c, const struct jv *v, const char *what, int64_t *ret)
{
	if (v && v->t == JV_INT) {
		*ret = v->u.i;
		return 0;
	}
	if (v && v->t == JV_BOOL) {
		*ret = v->u.b;
		return 0;
	}
	return jctx_fail(c, -EINVAL, "%s: expected an integer, got %s", what, v ? jv_type_name(v) : "nothing");
}

/* Items of an iterable (list items, dict keys, string characters) as a new
 * list reference. */
static int items_of(struct jctx *c, const struct jv *v, struct jv *ret)
{
	int r;
	if (v->t == JV_LIST) {
		*ret = jv_ref(v);
		return 0;
	}
	if ((r = jv_list_new(0, false, ret)) < 0)
		return err_oom(c, r);
	if (v->t == JV_UNDEF)
		return 0;
	if (v->t == JV_DICT && v->u.d->kind == JD_DICT) {
		for (size_t i = 0; i < v->u.d->n; i++)
			if ((r = jv_list_push(ret, jv_ref(&v->u.d->k[i]))) < 0)
				goto fail;
		return 0;
	}
	if (v->t == JV_STR) {
		size_t pos = 0;
		while (pos < v->u.s->len) {
			size_t st = pos;
			struct jv ch;
			ju_next(v->u.s->s, v->u.s->len, &pos);
			if ((r = jv_str(v->u.s->s + st, pos - st, &ch)) < 0 || (r = jv_list_push(ret, ch)) < 0)
				goto fail;
		}
		return 0;
	}
	jv_unref(ret);
	return jctx_fail(c, -EINVAL, "'%s' object is not iterable", jv_type_name(v));
fail:
	jv_unref(ret);
	return err_oom(c, r);
}

/* Case mapping of a string's code points.
 * mode: 0 upper, 1 lower, 2 capitalize, 3 Python str.title, 4 jinja2's title filter */
static int map_cp(struct jctx *c, const struct jv *s, int mode, struct jv *ret)
{
	struct rt_buf b = {.max = JINJA_MAX_STR};
	size_t pos = 0;
	bool prev_cased = false, first = true;
	int r = 0;

	while (r == 0 && pos < s->u.s->len) {
		size_t st = pos;
		uint32_t cp = ju_next(s->u.s->s, s->u.s->len, &pos), o = cp;
		utf8proc_int32_t u = (utf8proc_int32_t)cp;
		char enc[4];
		if (cp >= 0xdc80 && cp <= 0xdcff && pos - st == 1) { /* invalid byte: as is */
			r = rt_buf_put(&b, s->u.s->s + st, 1);
			first = false;
			prev_cased = false;
			continue;
		}
		bool cased = utf8proc_islower(u) || utf8proc_isupper(u) ||
		             utf8proc_category(u) == UTF8PROC_CATEGORY_LT;
		if (cp == 0xdf && (mode == 0 || ((mode == 2 || mode == 4) && first) || (mode == 3 && !prev_cased))) {
			/* Python's full case mapping of sharp s: upper SS, title Ss */
			r = rt_buf_put(&b, mode == 0 || mode == 4 ? "SS" : "Ss", 2);
			prev_cased = true;
			first = false;
			continue;
		}
		switch (mode) {
		case 0: o = (uint32_t)utf8proc_toupper(u); break;
		case 1: o = (uint32_t)utf8proc_tolower(u); break;
		case 2: o = (uint32_t)(first ? utf8proc_totitle(u) : utf8proc_tolower(u)); break;
		case 3:
			o = (uint32_t)(prev_cased ? utf8proc_tolower(u) : utf8proc_totitle(u));
			prev_cased = cased;
			break;
		default: {
			/* jinja2's do_title: words start after whitespace or -({[< */
			bool sep = ju_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
			o = (uint32_t)(first ? utf8proc_toupper(u) : utf8proc_tolower(u));
			r = rt_buf_put(&b, enc, ju_encode(o, enc));
			first = sep;
			continue;
		}
		}
		first = false;
		r = rt_buf_put(&b, enc, ju_encode(o, enc));
	}
	if (r < 0) {
		rt_buf_release(&b);
		return err_oom(c, r);
	}
	return buf_str(c, &b, ret);
}

static bool in_chars(uint32_t cp, const struct jv *chars)
{
	size_t pos = 0;
	if (!chars)
		return ju_isspace(cp);
	while (pos < chars->u.s->len)
		if (ju_next(chars->u.s->s, chars->u.s->len, &pos) == cp)
			return true;
	return false;
}

/* Python str.strip / lstrip / rstrip; chars NULL: Unicode whitespace. */
static int do_strip(struct jctx *c, const struct jv *s, const struct jv *chars, bool left, bool right,
                    struct jv *ret)
{
	const char *p = s->u.s->s;
	size_t len = s->u.s->len, a = 0, z = len;
	if (chars && chars->t == JV_NONE)
		chars = NULL;
	if (chars && chars->t != JV_STR)
		return jctx_fail(c, -EINVAL, "strip arg must be None or str");
	if (left)
		while (a < z) {
			size_t q = a;
			if (!in_chars(ju_next(p, len, &q), chars))
				break;
			a = q;
		}
	if (right)
		while (z > a) {
			size_t st = z - 1;
			while (st > a && ((unsigned char)p[st] & 0xc0) == 0x80 && z - st < 4)
				st--;
			size_t q = st;
			uint32_t cp = ju_next(p, len, &q);
			if (q != z) { /* not a whole sequence: treat the last byte alone */
				st = z - 1;
				q = st;
				cp = ju_next(p, len, &q);
			}
			if (!in_chars(cp, chars))
				break;
			z = st;
		}
	return new_str(c, p + a, z - a, ret);
}

static const char *memfind(const char *h, size_t hl, const char *n, size_t nl)
{
	if (nl == 0)
		return h;
	if (nl > hl)
		return NULL;
	for (size_t i = 0; i + nl <= hl; i++)
		if (h[i] == n[0] && !memcmp(h + i, n, nl))
			return h + i;
	return NULL;
}

static const char *memrfind(const char *h, size_t hl, const char *n, size_t nl)
{
	if (nl > hl)
		return NULL;
	for (size_t i = hl - nl + 1; i-- > 0;)
		if (!memcmp(h + i, n, nl))
			return h + i;
	return NULL;
}

static int do_replace(struct jctx *c, const struct jv *s, const struct jv *old, const struct jv *new, int64_t count,
                      struct jv *ret)
{
	struct rt_buf b = {.max = JINJA_MAX_STR};
	const char *p = s->u.s->s, *end = p + s->u.s->len;
	size_t ol = old->u.s->len;
	int r = 0;
	int64_t done = 0;

	if (ol == 0) {
		/* inserts new before every character and at the end */
		size_t pos = 0;
		while (r == 0 && (count < 0 || done < count)) {
			size_t st = pos;
			r = rt_buf_put(&b, new->u.s->s, new->u.s->len);
			done++;
			if (pos >= s->u.s->len)
				break;
			ju_next(p, s->u.s->len, &pos);
			if (r == 0)
				r = rt_buf_put(&b, p + st, pos - st);
		}
		if (r == 0 && pos < s->u.s->len)
			r = rt_buf_put(&b, p + pos, s->u.s->len - pos);
	} else {
		while (r == 0) {
			const char *f = (count < 0 || done < count) ? memfind(p, (size_t)(end - p), old->u.s->s, ol) : NULL;
			if (!f) {
				r = rt_buf_put(&b, p, (size_t)(end - p));
				break;
			}
			r = rt_buf_put(&b, p, (size_t)(f - p));
			if (r == 0)
				r = rt_buf_put(&b, new->u.s->s, new->u.s->len);
			p = f + ol;
			done++;
		}
	}
	if (r < 0) {
		rt_buf_release(&b);
		return err_oom(c, r);
	}
	return buf_str(c, &b, ret);
}

static int push_str(struct jctx *c, struct jv *list, const char *s, size_t n)
{
	struct jv v;
	int r = new_str(c, s, n, &v);
	if (r < 0)
		return r;
	return err_oom(c, jv_list_push(list, v));
}

/* Python str.split / rsplit */
static int do_split(struct jctx *c, const struct jv *s, const struct jv *sep, int64_t maxsplit, bool rev,
                    struct jv *ret)
{
	const char *p = s->u.s->s;
	size_t len = s->u.s->len;
	int r;

	if (sep && sep->t == JV_NONE)
		sep = NULL;
	if (sep && sep->t != JV_STR)
		return jctx_fail(c, -EINVAL, "must be str or None, not %s", jv_type_name(sep));
	if (sep && sep->u.s->len == 0)
		return jctx_fail(c, -EINVAL, "empty separator");
	if ((r = jv_list_new(0, false, ret)) < 0)
		return err_oom(c, r);
	if (!sep) {
		/* runs of whitespace; leading/trailing ignored */
		size_t *st = NULL, *en = NULL, nw = 0, cap = 0, pos = 0;
		while (pos < len) {
			size_t q = pos;
			if (ju_isspace(ju_next(p, len, &q))) {
				pos = q;
				continue;
			}
			size_t ws = pos;
			while (pos < len) {
				q = pos;
				if (ju_isspace(ju_next(p, len, &q)))
					break;
				pos = q;
			}
			if (nw == cap) {
				cap = cap ? cap * 2 : 16;
				size_t *ns = realloc(st, cap * sizeof(*ns));
				if (ns)
					st = ns;
				size_t *ne = ns ? realloc(en, cap * sizeof(*ne)) : NULL;
				if (!ne) {
					free(st);
					free(en);
					jv_unref(ret);
					return err_oom(c, -ENOMEM);
				}
				en = ne;
			}
			st[nw] = ws;
			en[nw] = pos;
			nw++;
		}
		r = 0;
		if (!rev) {
			for (size_t i = 0; r == 0 && i < nw; i++) {
				if (maxsplit >= 0 && (int64_t)i == maxsplit) {
					/* the rest as is, from its first non-space */
					r = push_str(c, ret, p + st[i], len - st[i]);
					break;
				}
				r = push_str(c, ret, p + st[i], en[i] - st[i]);
			}
		} else {
			/* rsplit: collect from the right, then reverse */
			size_t k = 0;
			struct jv tmp;
			if ((r = err_oom(c, jv_list_new(0, false, &tmp))) == 0) {
				for (size_t i = nw; r == 0 && i-- > 0; k++) {
					if (maxsplit >= 0 && (int64_t)k == maxsplit) {
						r = push_str(c, &tmp, p, en[i]);
						break;
					}
					r = push_str(c, &tmp, p + st[i], en[i] - st[i]);
				}
				for (size_t i = tmp.u.l->n; r == 0 && i-- > 0;)
					r = err_oom(c, jv_list_push(ret, jv_ref(&tmp.u.l->v[i])));
				jv_unref(&tmp);
			}
		}
		free(st);
		free(en);
	} else {
		const char *sp = sep->u.s->s;
		size_t sl = sep->u.s->len;
		r = 0;
		if (!rev) {
			const char *q = p, *end = p + len;
			int64_t done = 0;
			while (r == 0) {
				const char *f =
				        (maxsplit < 0 || done < maxsplit) ? memfind(q, (size_t)(end - q), sp, sl) : NULL;
				if (!f) {
					r = push_str(c, ret, q, (size_t)(end - q));
					break;
				}
				r = push_str(c, ret, q, (size_t)(f - q));
				q = f + sl;
				done++;
			}
		} else {
			struct jv tmp;
			size_t end = len;
			int64_t done = 0;
			if ((r = err_oom(c, jv_list_new(0, false, &tmp))) == 0) {
				while (r == 0) {
					const char *f = (maxsplit < 0 || done < maxsplit) ? memrfind(p, end, sp, sl) : NULL;
					if (!f) {
						r = push_str(c, &tmp, p, end);
						break;
					}
					r = push_str(c, &tmp, f + sl, end - (size_t)(f - p) - sl);
					end = (size_t)(f - p);
					done++;
				}
				for (size_t i = tmp.u.l->n; r == 0 && i-- > 0;)
					r = err_oom(c, jv_list_push(ret, jv_ref(&tmp.u.l->v[i])));
				jv_unref(&tmp);
			}
		}
	}
	if (r < 0)
		jv_unref(ret);
	return r;
}

static int do_join(struct jctx *c, const struct jv *items, const struct jv *sep, const struct jv *attr, bool strict,
                   struct jv *ret)
{
	struct rt_buf b = {.max = JINJA_MAX_STR};
	struct jv list;
	int r = items_of(c, items, &list);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < list.u.l->n; i++) {
		struct jv item = jv_ref(&list.u.l->v[i]);
		if (i && sep)
			r = rt_buf_put(&b, sep->u.s->s, sep->u.s->len);
		if (r == 0 && attr) {
			struct jv x;
			if ((r = jctx_getitem(c, &item, attr, &x)) == 0) {
				jv_unref(&item);
				item = x;
			}
		}
		if (r == 0 && strict && item.t != JV_STR)
			r = jctx_fail(c, -EINVAL, "sequence item %zu: expected str instance, %s found", i,
			              jv_type_name(&item));
		if (r == 0)
			r = err_oom(c, jv_to_str(&item, &b));
		jv_unref(&item);
	}
	jv_unref(&list);
	if (r < 0) {
		rt_buf_release(&b);
		return err_oom(c, r);
	}
	return buf_str(c, &b, ret);
}

/* jinja2's environment.getattr with a dotted path ("a.b", "0") as
 * selectattr / map / sort use it. */
static int get_path(struct jctx *c, const struct jv *obj, const struct jv *path, struct jv *ret)
{
	struct jv cur = jv_ref(obj);
	const char *p, *end;
	int r = 0;

	if (path->t == JV_INT)
		return jctx_getitem(c, obj, path, ret);
	if (path->t != JV_STR) {
		jv_unref(&cur);
		return jctx_fail(c, -EINVAL, "attribute must be a string");
	}
	p = path->u.s->s;
	end = p + path->u.s->len;
	while (r == 0) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
		struct jv key, next;
		bool digits = n > 0;
		for (size_t i = 0; i < n; i++)
			if (p[i] < '0' || p[i] > '9')
				digits = false;
		if (digits && n < 18)
			key = jv_int(strtoll(p, NULL, 10));
		else if ((r = new_str(c, p, n, &key)) < 0)
			break;
		r = jctx_getitem(c, &cur, &key, &next);
		jv_unref(&key);
		if (r < 0)
			break;
		jv_unref(&cur);
		cur = next;
		if (!dot)
			break;
		p = dot + 1;
	}
	if (r < 0) {
		jv_unref(&cur);
		return r;
	}
	*ret = cur;
	return 0;
}

static int apply_test(struct jctx *c, const struct jv *item, const struct jv *tname, struct jv *extra, size_t nextra,
                      bool *ret)
{
	struct jv args[8];
	if (!tname) {
		*ret = jv_truthy(item);
		return 0;
	}
	if (tname->t != JV_STR)
		return jctx_fail(c, -EINVAL, "test name must be a string");
	if (nextra > 7)
		return jctx_fail(c, -E2BIG, "too many test arguments");
	args[0] = *item;
	for (size_t i = 0; i < nextra; i++)
		args[i + 1] = extra[i];
	return jlib_test(c, tname->u.s->s, args, nextra + 1, ret);
}

/* select / reject / selectattr / rejectattr */
static int do_select(struct jctx *c, struct jv *args, size_t n, char **kw, bool attr, bool want, struct jv *ret)
{
	struct jv list, out;
	const struct jv *aname = attr ? arg(args, n, kw, 1, NULL) : NULL;
	size_t first_test = attr ? 2 : 1;
	const struct jv *tname = arg(args, n, kw, first_test, NULL);
	size_t np = npositional(n, kw);
	struct jv *extra = NULL;
	size_t nextra = np > first_test + 1 ? np - first_test - 1 : 0;
	int r;

	if (attr && !aname)
		return jctx_fail(c, -EINVAL, "selectattr: missing attribute");
	if (nextra) {
		/* positional arguments after the test name (kwargs not supported) */
		extra = calloc(nextra, sizeof(*extra));
		if (!extra)
			return err_oom(c, -ENOMEM);
		for (size_t i = 0; i < nextra; i++) {
			const struct jv *x = arg(args, n, kw, first_test + 1 + i, NULL);
			extra[i] = x ? *x : jv_undef();
		}
	}
	/* jinja2: "if value:" before iterating, so a falsy value selects nothing */
	r = jv_truthy(&args[0]) ? items_of(c, &args[0], &list) : err_oom(c, jv_list_new(0, false, &list));
	if (r < 0) {
		free(extra);
		return r;
	}
	if ((r = err_oom(c, jv_list_new(0, false, &out))) == 0) {
		out.u.l->gen = true;
		for (size_t i = 0; r == 0 && i < list.u.l->n; i++) {
			struct jv v = jv_undef();
			bool ok = false;
			if (attr)
				r = get_path(c, &list.u.l->v[i], aname, &v);
			else
				v = jv_ref(&list.u.l->v[i]);
			if (r == 0)
				r = apply_test(c, &v, tname, extra, nextra, &ok);
			jv_unref(&v);
			if (r == 0 && ok == want)
				r = err_oom(c, jv_list_push(&out, jv_ref(&list.u.l->v[i])));
		}
		if (r < 0)
			jv_unref(&out);
	}
	free(extra);
	jv_unref(&list);
	if (r == 0)
		*ret = out;
	return r;
}

static int do_map(struct jctx *c, struct jv *args, size_t n, char **kw, struct jv *ret)
{
	struct jv list, out;
	const struct jv *attr = arg(args, n, kw, 99, "attribute");
	const struct jv *dflt = arg(args, n, kw, 99, "default");
	const struct jv *fname = arg(args, n, kw, 1, NULL);
	int r;

	if (!attr && (!fname || fname->t != JV_STR))
		return jctx_fail(c, -EINVAL, "map: expected a filter name or attribute=");
	/* jinja2: "if value:" before iterating */
	r = jv_truthy(&args[0]) ? items_of(c, &args[0], &list) : err_oom(c, jv_list_new(0, false, &list));
	if (r < 0)
		return r;
	if ((r = err_oom(c, jv_list_new(list.u.l->n, false, &out))) == 0) {
		out.u.l->gen = true;
		for (size_t i = 0; r == 0 && i < list.u.l->n; i++) {
			struct jv v = jv_undef();
			if (attr) {
				r = get_path(c, &list.u.l->v[i], attr, &v);
				if (r == 0 && v.t == JV_UNDEF && dflt)
					v = jv_ref(dflt);
			} else {
				/* remaining positional arguments go to the filter */
				struct jv fa[8];
				char *fk[8] = {NULL};
				size_t np = npositional(n, kw), k = 1;
				if (np > 8) {
					r = jctx_fail(c, -E2BIG, "too many map arguments");
					break;
				}
				fa[0] = list.u.l->v[i];
				for (size_t j = 2; j < np; j++) {
					const struct jv *x = arg(args, n, kw, j, NULL);
					fa[k++] = x ? *x : jv_undef();
				}
				r = jlib_filter(c, fname->u.s->s, fa, k, fk, &v);
			}
			if (r == 0)
				r = err_oom(c, jv_list_push(&out, v));
			else
				jv_unref(&v);
		}
		if (r < 0)
			jv_unref(&out);
	}
	jv_unref(&list);
	if (r == 0)
		*ret = out;
	return r;
}

struct sort_item {
	struct jv key;
	struct jv val;
	size_t idx;
};

/* Python's sort: stable merge sort; fails when two keys do not order. */
static int sort_cmp(const struct sort_item *a, const struct sort_item *b, bool rev, int *ret)
{
	bool lt = false;
	const struct sort_item *x = rev ? b : a, *y = rev ? a : b;
	if (jv_less(&y->key, &x->key, &lt) < 0)
		return -EINVAL;
	*ret = lt ? 1 : 0; /* 1: b goes before a */
	return 0;
}

static int merge_sort(struct sort_item *v, struct sort_item *tmp, size_t n, bool rev)
{
	size_t h = n / 2, i = 0, j = h, k = 0;
	int r, after;
	if (n < 2)
		return 0;
	if ((r = merge_sort(v, tmp, h, rev)) < 0 || (r = merge_sort(v + h, tmp, n - h, rev)) < 0)
		return r;
	while (i < h && j < n) {
		if ((r = sort_cmp(&v[i], &v[j], rev, &after)) < 0)
			return r;
		tmp[k++] = after ? v[j++] : v[i++];
	}
	while (i < h)
		tmp[k++] = v[i++];
	while (j < n)
		tmp[k++] = v[j++];
	memcpy(v, tmp, n * sizeof(*v));
	return 0;
}

static int sort_key(struct jctx *c, const struct jv *item, const struct jv *attr, bool case_sensitive, struct jv *ret)
{
	struct jv k;
	int r;
	if (attr)
		r = get_path(c, item, attr, &k);
	else
		k = jv_ref(item), r = 0;
	if (r < 0)
		return r;
	if (!case_sensitive && k.t == JV_STR) {
		struct jv low;
		r = map_cp(c, &k, 1, &low);
		jv_unref(&k);
		if (r < 0)
			return r;
		k = low;
	}
	*ret = k;
	return 0;
}

/* sort (stable; reverse keeps equal items in order, as Python) */
static int do_sort(struct jctx *c, const struct jv *v, bool rev, bool case_sensitive, const struct jv *attr,
                   struct jv *ret)
{
	struct jv list;
	struct sort_item *it;
	size_t n;
	int r = items_of(c, v, &list);

	if (r < 0)
		return r;
	n = list.u.l->n;
	it = calloc(n ? n : 1, sizeof(*it));
	if (!it) {
		jv_unref(&list);
		return err_oom(c, -ENOMEM);
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		it[i].val = list.u.l->v[i];
		it[i].idx = i;
		r = sort_key(c, &list.u.l->v[i], attr, case_sensitive, &it[i].key);
	}
	if (r == 0) {
		/* stable both ways: with reverse, equal elements keep their order, as
		 * Python's sort(reverse=True) does */
		struct sort_item *tmp = malloc((n ? n : 1) * sizeof(*tmp));
		if (!tmp)
			r = err_oom(c, -ENOMEM);
		else if (merge_sort(it, tmp, n, rev) < 0)
			r = jctx_fail(c, -EINVAL, "'<' not supported between these values");
		free(tmp);
		if (r == 0)
			r = jctx_charge(c, n * 16);
	}
	if (r == 0 && (r = err_oom(c, jv_list_new(n, false, ret))) == 0)
		for (size_t i = 0; r == 0 && i < n; i++)
			r = err_oom(c, jv_list_push(ret, jv_ref(&it[i].val)));
	for (size_t i = 0; i < n; i++)
		jv_unref(&it[i].key);
	free(it);
	jv_unref(&list);
	return r;
}

static int do_unique(struct jctx *c, const struct jv *v, bool case_sensitive, const struct jv *attr, struct jv *ret)
{
	struct jv list, keys;
	int r = items_of(c, v, &list);
	if (r < 0)
		return r;
	if ((r = err_oom(c, jv_list_new(0, false, ret))) < 0) {
		jv_unref(&list);
		return r;
	}
	ret->u.l->gen = true;
	if ((r = err_oom(c, jv_list_new(0, false, &keys))) == 0) {
		for (size_t i = 0; r == 0 && i < list.u.l->n; i++) {
			struct jv k;
			bool seen = false;
			if ((r = sort_key(c, &list.u.l->v[i], attr, case_sensitive, &k)) < 0)
				break;
			if (k.t == JV_DICT || (k.t == JV_LIST && !k.u.l->tuple)) {
				r = jctx_fail(c, -EINVAL, "unhashable type: '%s'", jv_type_name(&k));
				jv_unref(&k);
				break;
			}
			for (size_t j = 0; j < keys.u.l->n && !seen; j++)
				seen = jv_equal(&keys.u.l->v[j], &k, 0);
			if ((r = jctx_charge(c, 16 * keys.u.l->n)) < 0) {
				jv_unref(&k);
				break;
			}
			if (seen) {
				jv_unref(&k);
				continue;
			}
			if ((r = err_oom(c, jv_list_push(&keys, k))) == 0)
				r = err_oom(c, jv_list_push(ret, jv_ref(&list.u.l->v[i])));
		}
		jv_unref(&keys);
	}
	jv_unref(&list);
	if (r < 0)
		jv_unref(ret);
	return r;
}

static int do_indent(struct jctx *c, const struct jv *s, const struct jv *width, bool first, bool blank,
                     struct jv *ret)
{
	struct rt_buf pad = {.max = JINJA_MAX_STR}, b = {.max = JINJA_MAX_STR};
	const char *p = s->u.s->s, *end = p + s->u.s->len;
	bool at_start = true;
	int r = 0;

	if (!width || width->t == JV_INT) {
		int64_t w = width ? width->u.i : 4;
		if (w < 0)
			w = 0;
		if (w > 4096)
			return jctx_fail(c, -E2BIG, "indent width too large");
		for (int64_t i = 0; r == 0 && i < w; i++)
			r = rt_buf_putc(&pad, ' ');
	} else if (width->t == JV_STR) {
		r = rt_buf_put(&pad, width->u.s->s, width->u.s->len);
	} else {
		return jctx_fail(c, -EINVAL, "indent width must be an int or str");
	}
	/* jinja2: lines split on \n (after normalising), every line but the first
	 * gets the pad unless blank and empty; first=True pads the first line */
	while (r == 0 && p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		bool pad_it = at_start ? first : (blank || ll > 0);
		if (at_start && first && !blank && ll == 0)
			pad_it = true;
		if (pad_it && pad.len)
			r = rt_buf_put(&b, pad.p, pad.len);
		if (r == 0)
			r = rt_buf_put(&b, p, ll);
		if (!nl)
			break;
		if (r == 0)
			r = rt_buf_putc(&b, '\n');
		p = nl + 1;
		at_start = false;
		if (r == 0 && (r = jctx_charge(c, pad.len)) < 0)
			break;
	}
	rt_buf_release(&pad);
	if (r < 0) {
		rt_buf_release(&b);
		return err_oom(c, r);
	}
	return buf_str(c, &b, ret);
}

static int html_escape(struct jctx *c, const struct jv *v, struct jv *ret)
{
	struct jv s;
	struct rt_buf b = {.max = JINJA_MAX_STR};
	int r = to_str(c, v, &s);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < s.u.s->len; i++) {
		char ch = s.u.s->s[i];
		switch (ch) {
		case '&': r = rt_buf_put(&b, "&amp;", 5); break;
		case '<': r = rt_buf_put(&b, "&lt;", 4); break;
		case '>': r = rt_buf_put(&b, "&gt;", 4); break;
		case '"': r = rt_buf_put(&b, "&#34;", 5); break;
		case '\'': r = rt_buf_put(&b, "&#39;", 5); break;
		default: r = rt_buf_putc(&b, ch);
		}
	}
	jv_unref(&s);
	if (r < 0) {
		rt_buf_release(&b);
		return err_oom(c, r);
	}
	return buf_str(c, &b, ret);
}

/* ensure_ascii=True: \uXXXX (with surrogate pairs) for non-ASCII */
static int ascii_escape(struct rt_buf *in, struct rt_buf *out)
{
	size_t pos = 0;
	int r = 0;
	while (r == 0 && pos < in->len) {
		size_t st = pos;
		uint32_t cp = ju_next(in->p, in->len, &pos);
		char esc[16];
		if (cp < 0x80) {
			r = rt_buf_put(out, in->p + st, pos - st);
		} else if (cp < 0x10000) {
			snprintf(esc, sizeof(esc), "\\u%04x", cp);
			r = rt_buf_put(out, esc, 6);
		} else {
			uint32_t v = cp - 0x10000;
			snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
			r = rt_buf_put(out, esc, 12);
		}
	}
	return r;
}

static int do_tojson(struct jctx *c, struct jv *args, size_t n, char **kw, struct jv *ret)
{
	/* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
	const struct jv *ea = arg(args, n, kw, 1, "ensure_ascii");
	const struct jv *ind = arg(args, n, kw, 2, "indent");
	const struct jv *seps = arg(args, n, kw, 3, "separators");
	const struct jv *sk = arg(args, n, kw, 4, "sort_keys");
	struct rt_buf b = {.max = JINJA_MAX_STR};
	struct jerr je = {0};
	char isep[64] = "", ksep[64] = "";
	int indent = -1, r;

	if (ind && ind->t != JV_NONE) {
		if (ind->t != JV_INT || ind->u.i < 0 || ind->u.i > 64)
			return jctx_fail(c, -EINVAL, "tojson: indent must be an integer 0..64");
		indent = (int)ind->u.i;
	}
	if (seps && seps->t != JV_NONE) {
		if (seps->t != JV_LIST || seps->u.l->n != 2 || seps->u.l->v[0].t != JV_STR ||
		    seps->u.l->v[1].t != JV_STR || seps->u.l->v[0].u.s->len >= sizeof(isep) ||
		    seps->u.l->v[1].u.s->len >= sizeof(ksep))
			return jctx_fail(c, -EINVAL, "tojson: separators must be a pair of short strings");
		memcpy(isep, seps->u.l->v[0].u.s->s, seps->u.l->v[0].u.s->len + 1);
		memcpy(ksep, seps->u.l->v[1].u.s->s, seps->u.l->v[1].u.s->len + 1);
	}
	r = jv_to_json(&args[0], &b, indent, isep[0] || (seps && seps->t != JV_NONE) ? isep : NULL,
	               ksep[0] || (seps && seps->t != JV_NONE) ? ksep : NULL, want_bool(sk, false), 0, &je);
	if (r < 0) {
		rt_buf_release(&b);
		if (je.msg[0])
			return jctx_fail(c, r, "tojson: %s", je.msg);
		return err_oom(c, r);
	}
	if (want_bool(ea, false)) {
		struct rt_buf a = {.max = JINJA_MAX_STR};
		r = ascii_escape(&b, &a);
		rt_buf_release(&b);
		if (r < 0) {
			rt_buf_release(&a);
			return err_oom(c, r);
		}
		b = a;
	}
	return buf_str(c, &b, ret);
}

static int py_int_of_str(const char *s, size_t len, int64_t *ret)
{
	/* int(str): optional whitespace, sign, digits (underscores between digits) */
	size_t i = 0;
	bool neg = false, any = false;
	int64_t v = 0;
	while (i < len && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
		i++;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	for (; i < len && ((s[i] >= '0' && s[i] <= '9') || (s[i] == '_' && any)); i++) {
		if (s[i] == '_')
			continue;
		if (v > (INT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (s[i] - '0');
		any = true;
	}
	while (i < len && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
		i++;
	if (!any || i != len)
		return -EINVAL;
	*ret = neg ? -v : v;
	return 0;
}

static int py_float_of_str(const char *s, size_t len, double *ret)
{
	char buf[128], *end;
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = 0;
	*ret = strtod(buf, &end);
	while (*end == ' ' || (*end >= '\t' && *end <= '\r'))
		end++;
	if (end == buf || *end)
		return -EINVAL;
	return 0;
}

/* Python round() with half-to-even at a number of digits. */
static double py_round(double x, int64_t nd)
{
	if (!isfinite(x) || nd > 300)
		return x;
	if (nd < -300)
		return 0.0 * x;
	char buf[400];
	snprintf(buf, sizeof(buf), "%.*f", nd >= 0 ? (int)nd : 0, nd >= 0 ? x : x / pow(10, (double)-nd));
	double r = strtod(buf, NULL);
	if (nd < 0)
		r = nearbyint(x / pow(10, (double)-nd)) * pow(10, (double)-nd);
	return r;
}

static int length_of(struct jctx *c, const struct jv *v, int64_t *ret)
{
	switch (v->t) {
	case JV_UNDEF: *ret = 0; return 0;
	case JV_STR: *ret = (int64_t)ju_count(v->u.s->s, v->u.s->len); return 0;
	case JV_LIST:
		if (!v->u.l->gen) {
			*ret = (int64_t)v->u.l->n;
			return 0;
		}
		break;
	case JV_DICT:
		if (v->u.d->kind == JD_DICT) {
			*ret = (int64_t)v->u.d->n;
			return 0;
		}
		break;
	default: break;
	}
	return jctx_fail(c, -EINVAL, "object of type '%s' has no len()", v->t == JV_LIST ? "generator" : jv_type_name(v));
}

static int dict_items(struct jctx *c, const struct jv *d, struct jv *ret)
{
	int r = err_oom(c, jv_list_new(d->u.d->n, false, ret));
	for (size_t i = 0; r == 0 && i < d->u.d->n; i++) {
		struct jv t;
		if ((r = err_oom(c, jv_list_new(2, true, &t))) < 0)
			break;
		if ((r = jv_list_push(&t, jv_ref(&d->u.d->k[i]))) < 0 ||
		    (r = jv_list_push(&t, jv_ref(&d->u.d->v[i]))) < 0) {
			jv_unref(&t);
			r = err_oom(c, r);
			break;
		}
		r = err_oom(c, jv_list_push(ret, t));
	}
	if (r < 0)
		jv_unref(ret);
	return r;
}

int jlib_filter(struct jctx *c, const char *name, struct jv *args, size_t n, char **kw, struct jv *ret)
{
	const struct jv *v = &args[0];
	const struct jv *a1 = arg(args, n, kw, 1, NULL);
	int r;

	if (!strcmp(name, "list") && v->t == JV_LIST && !v->u.l->gen && !v->u.l->tuple) {
		*ret = jv_ref(v);
		return 0;
	}
	if (!strcmp(name, "list")) {
		if ((r = items_of(c, v, ret)) < 0)
			return r;
		if (ret->u.l->gen || ret->u.l->tuple) {
			struct jv l;
			if ((r = err_oom(c, jv_list_new(ret->u.l->n, false, &l))) == 0)
				for (size_t i = 0; r == 0 && i < ret->u.l->n; i++)
					r = err_oom(c, jv_list_push(&l, jv_ref(&ret->u.l->v[i])));
			jv_unref(ret);
			if (r < 0) {
				jv_unref(&l);
				return r;
			}
			*ret = l;
		}
		return 0;
	}
	if (!strcmp(name, "string") || !strcmp(name, "safe")) /* safe: Markup(str(x)) */
		return to_str(c, v, ret);
	if (!strcmp(name, "default") || !strcmp(name, "d")) {
		const struct jv *d = arg(args, n, kw, 1, "default_value");
		bool boolean = want_bool(arg(args, n, kw, 2, "boolean"), false);
		if (v->t == JV_UNDEF || (boolean && !jv_truthy(v))) {
			if (d)
				*ret = jv_ref(d);
			else
				return new_str(c, "", 0, ret);
		} else {
			*ret = jv_ref(v);
		}
		return 0;
	}
	if (!strcmp(name, "length") || !strcmp(name, "count")) {
		int64_t len = 0;
		if ((r = length_of(c, v, &len)) < 0)
			return r;
		*ret = jv_int(len);
		return 0;
	}
	if (!strcmp(name, "tojson"))
		return do_tojson(c, args, n, kw, ret);
	if (!strcmp(name, "trim") || !strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize") ||
	    !strcmp(name, "title") || !strcmp(name, "replace") || !strcmp(name, "indent") || !strcmp(name, "e") ||
	    !strcmp(name, "escape") || !strcmp(name, "forceescape")) {
		struct jv s;
		if (!strcmp(name, "indent") && v->t != JV_STR)
			return jctx_fail(c, -EINVAL, "indent: expected a string, got %s", jv_type_name(v));
		if ((r = to_str(c, v, &s)) < 0)
			return r;
		if (!strcmp(name, "trim")) {
			const struct jv *ch = arg(args, n, kw, 1, "chars");
			r = do_strip(c, &s, ch, true, true, ret);
		} else if (!strcmp(name, "upper"))
			r = map_cp(c, &s, 0, ret);
		else if (!strcmp(name, "lower"))
			r = map_cp(c, &s, 1, ret);
		else if (!strcmp(name, "capitalize"))
			r = map_cp(c, &s, 2, ret);
		else if (!strcmp(name, "title"))
			r = map_cp(c, &s, 4, ret);
		else if (!strcmp(name, "replace")) {
			const struct jv *o = arg(args, n, kw, 1, "old"), *nw = arg(args, n, kw, 2, "new"),
			                *cnt = arg(args, n, kw, 3, "count");
			int64_t count = -1;
			struct jv os = jv_undef(), ns = jv_undef();
			if (!o || !nw)
				r = jctx_fail(c, -EINVAL, "replace: needs old and new");
			if (r == 0 && cnt && cnt->t != JV_NONE)
				r = need_int(c, cnt, "replace", &count);
			if (r == 0)
				r = to_str(c, o, &os);
			if (r == 0)
				r = to_str(c, nw, &ns);
			if (r == 0)
				r = do_replace(c, &s, &os, &ns, count, ret);
			jv_unref(&os);
			jv_unref(&ns);
		} else if (!strcmp(name, "indent"))
			r = do_indent(c, &s, arg(args, n, kw, 1, "width"), want_bool(arg(args, n, kw, 2, "first"), false),
			              want_bool(arg(args, n, kw, 3, "blank"), false), ret);
		else
			r = html_escape(c, &s, ret);
		jv_unref(&s);
		return r;
	}
	if (!strcmp(name, "items")) {
		if (v->t == JV_UNDEF)
			return err_oom(c, jv_list_new(0, false, ret));
		if (v->t != JV_DICT || v->u.d->kind != JD_DICT)
			return jctx_fail(c, -EINVAL, "items: can only get item pairs from a mapping");
		if ((r = dict_items(c, v, ret)) == 0)
			ret->u.l->gen = true;
		return r;
	}
	if (!strcmp(name, "dictsort")) {
		struct jv items;
		bool cs = want_bool(arg(args, n, kw, 1, "case_sensitive"), false);
		const struct jv *by = arg(args, n, kw, 2, "by");
		bool rev = want_bool(arg(args, n, kw, 3, "reverse"), false);
		struct jv idx = jv_int(by && by->t == JV_STR && !strcmp(by->u.s->s, "value") ? 1 : 0);
		if (v->t != JV_DICT || v->u.d->kind != JD_DICT)
			return jctx_fail(c, -EINVAL, "dictsort: expected a mapping");
		if ((r = dict_items(c, v, &items)) < 0)
			return r;
		r = do_sort(c, &items, rev, cs, &idx, ret);
		jv_unref(&items);
		return r;
	}
	if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
		return do_select(c, args, n, kw, true, name[0] == 's', ret);
	if (!strcmp(name, "select") || !strcmp(name, "reject"))
		return do_select(c, args, n, kw, false, name[0] == 's', ret);
	if (!strcmp(name, "map"))
		return do_map(c, args, n, kw, ret);
	if (!strcmp(name, "join")) {
		const struct jv *sep = arg(args, n, kw, 1, "d");
		struct jv ss = jv_undef();
		if (sep && (r = to_str(c, sep, &ss)) < 0)
			return r;
		r = do_join(c, v, sep ? &ss : NULL, arg(args, n, kw, 2, "attribute"), false, ret);
		jv_unref(&ss);
		return r;
	}
	if (!strcmp(name, "first") || !strcmp(name, "last")) {
		struct jv list;
		if (v->t == JV_LIST && v->u.l->gen && name[0] == 'l') {
			*ret = jv_undef(); /* reversed() of a generator fails; jinja2 returns undefined */
			return 0;
		}
		if ((r = items_of(c, v, &list)) < 0)
			return r;
		if (list.u.l->n == 0)
			*ret = jv_undef();
		else
			*ret = jv_ref(&list.u.l->v[name[0] == 'f' ? 0 : list.u.l->n - 1]);
		jv_unref(&list);
		return 0;
	}
	if ((!strcmp(name, "int") || !strcmp(name, "float")) && v->t == JV_UNDEF)
		return jctx_fail(c, -EINVAL, "%s of an undefined value", name); /* Undefined.__int__ raises */
	if (!strcmp(name, "int")) {
		const struct jv *d = arg(args, n, kw, 1, "default");
		int64_t i;
		double f;
		if (v->t == JV_INT || v->t == JV_BOOL)
			*ret = jv_int(v->t == JV_INT ? v->u.i : v->u.b);
		else if (v->t == JV_FLOAT && isfinite(v->u.f) && fabs(v->u.f) < 9.2e18)
			*ret = jv_int((int64_t)v->u.f);
		else if (v->t == JV_STR && py_int_of_str(v->u.s->s, v->u.s->len, &i) == 0)
			*ret = jv_int(i);
		else if (v->t == JV_STR && py_float_of_str(v->u.s->s, v->u.s->len, &f) == 0 && isfinite(f) &&
		         fabs(f) < 9.2e18)
			*ret = jv_int((int64_t)f);
		else
			*ret = d ? jv_ref(d) : jv_int(0);
		return 0;
	}
	if (!strcmp(name, "float")) {
		const struct jv *d = arg(args, n, kw, 1, "default");
		double f;
		if (v->t == JV_INT || v->t == JV_BOOL || v->t == JV_FLOAT)
			*ret = jv_float(v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i : v->u.b);
		else if (v->t == JV_STR && py_float_of_str(v->u.s->s, v->u.s->len, &f) == 0)
			*ret = jv_float(f);
		else
			*ret = d ? jv_ref(d) : jv_float(0.0);
		return 0;
	}
	if (!strcmp(name, "abs")) {
		if (v->t == JV_INT && v->u.i != INT64_MIN)
			*ret = jv_int(v->u.i < 0 ? -v->u.i : v->u.i);
		else if (v->t == JV_BOOL)
			*ret = jv_int(v->u.b);
		else if (v->t == JV_FLOAT)
			*ret = jv_float(fabs(v->u.f));
		else
			return jctx_fail(c, -EINVAL, "bad operand type for abs(): '%s'", jv_type_name(v));
		return 0;
	}
	if (!strcmp(name, "round")) {
		const struct jv *pr = arg(args, n, kw, 1, "precision"), *m = arg(args, n, kw, 2, "method");
		int64_t prec = 0;
		const char *meth = m && m->t == JV_STR ? m->u.s->s : "common";
		if (pr && (r = need_int(c, pr, "round", &prec)) < 0)
			return r;
		if (v->t != JV_INT && v->t != JV_FLOAT && v->t != JV_BOOL)
			return jctx_fail(c, -EINVAL, "round: expected a number");
		double x = v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i : v->u.b;
		if (!strcmp(meth, "common")) {
			if (v->t != JV_FLOAT)
				*ret = jv_int(v->t == JV_INT ? v->u.i : v->u.b); /* round(True) is 1 */
			else
				*ret = jv_float(py_round(x, prec));
		} else if (!strcmp(meth, "ceil") || !strcmp(meth, "floor")) {
			double p10 = pow(10, (double)prec);
			*ret = jv_float((meth[0] == 'c' ? ceil(x * p10) : floor(x * p10)) / p10);
		} else {
			return jctx_fail(c, -EINVAL, "method must be common, ceil or floor");
		}
		return 0;
	}
	if (!strcmp(name, "unique"))
		return do_unique(c, v, want_bool(arg(args, n, kw, 1, "case_sensitive"), false),
		                 arg(args, n, kw, 2, "attribute"), ret);
	if (!strcmp(name, "sort"))
		return do_sort(c, v, want_bool(arg(args, n, kw, 1, "reverse"), false),
		               want_bool(arg(args, n, kw, 2, "case_sensitive"), false), arg(args, n, kw, 3, "attribute"),
		               ret);
	if (!strcmp(name, "reverse")) {
		struct jv list;
		if (v->t == JV_STR) {
			struct rt_buf b = {.max = JINJA_MAX_STR};
			size_t end = v->u.s->len;
			r = 0;
			while (r == 0 && end > 0) {
				size_t st = end - 1;
				while (st > 0 && ((unsigned char)v->u.s->s[st] & 0xc0) == 0x80 && end - st < 4)
					st--;
				r = rt_buf_put(&b, v->u.s->s + st, end - st);
				end = st;
			}
			if (r < 0) {
				rt_buf_release(&b);
				return err_oom(c, r);
			}
			return buf_str(c, &b, ret);
		}
		if ((r = items_of(c, v, &list)) < 0)
			return r;
		if ((r = err_oom(c, jv_list_new(list.u.l->n, false, ret))) == 0) {
			ret->u.l->gen = true;
			for (size_t i = list.u.l->n; r == 0 && i-- > 0;)
				r = err_oom(c, jv_list_push(ret, jv_ref(&list.u.l->v[i])));
			if (r < 0)
				jv_unref(ret);
		}
		jv_unref(&list);
		return r;
	}
	if (!strcmp(name, "sum") || !strcmp(name, "max") || !strcmp(name, "min")) {
		struct jv list, acc = jv_int(0);
		const struct jv *attr = arg(args, n, kw, name[1] == 'u' ? 1 : 99, "attribute");
		if ((r = items_of(c, v, &list)) < 0)
			return r;
		if (name[1] == 'u') {
			const struct jv *start = arg(args, n, kw, 2, "start");
			if (start)
				acc = jv_ref(start);
		} else if (list.u.l->n == 0) {
			acc = jv_undef();
		}
		for (size_t i = 0; r == 0 && i < list.u.l->n; i++) {
			struct jv x, y;
			if ((r = attr ? get_path(c, &list.u.l->v[i], attr, &x) : (x = jv_ref(&list.u.l->v[i]), 0)) < 0)
				break;
			if (name[1] == 'u') {
				r = jlib_binop(c, JOP_ADD, &acc, &x, &y);
				jv_unref(&x);
				if (r == 0) {
					jv_unref(&acc);
					acc = y;
				}
			} else if (i == 0) {
				acc = x;
			} else {
				bool lt;
				if (jv_less(&x, &acc, &lt) < 0) {
					jv_unref(&x);
					r = jctx_fail(c, -EINVAL, "'<' not supported between these values");
					break;
				}
				if (lt == (name[1] == 'i')) {
					jv_unref(&acc);
					acc = x;
				} else {
					jv_unref(&x);
				}
			}
		}
		jv_unref(&list);
		if (r < 0) {
			jv_unref(&acc);
			return r;
		}
		*ret = acc;
		return 0;
	}
	if (!strcmp(name, "wordcount")) {
		/* jinja2: the number of \w+ runs */
		struct jv s;
		size_t pos = 0;
		int64_t words = 0;
		bool in = false;
		if ((r = to_str(c, v, &s)) < 0)
			return r;
		while (pos < s.u.s->len) {
			utf8proc_int32_t cp = (utf8proc_int32_t)ju_next(s.u.s->s, s.u.s->len, &pos);
			utf8proc_category_t cat = utf8proc_category(cp);
			bool w = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
			         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) || cp == '_' ||
			         cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC;
			if (w && !in)
				words++;
			in = w;
		}
		jv_unref(&s);
		*ret = jv_int(words);
		return 0;
	}
	(void)a1;
	return jctx_fail(c, -EINVAL, "no filter named '%s'", name);
}

static bool is_intlike(const struct jv *v)
{
	return v->t == JV_INT || v->t == JV_BOOL;
}

int jlib_test(struct jctx *c, const char *name, struct jv *args, size_t n, bool *ret)
{
	const struct jv *v = &args[0], *o = n > 1 ? &args[1] : NULL;
	int r;

	if (!strcmp(name, "defined"))
		*ret = v->t != JV_UNDEF;
	else if (!strcmp(name, "undefined"))
		*ret = v->t == JV_UNDEF;
	else if (!strcmp(name, "none"))
		*ret = v->t == JV_NONE;
	else if (!strcmp(name, "string"))
		*ret = v->t == JV_STR;
	else if (!strcmp(name, "number"))
		*ret = v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL;
	else if (!strcmp(name, "integer"))
		*ret = v->t == JV_INT;
	else if (!strcmp(name, "float"))
		*ret = v->t == JV_FLOAT;
	else if (!strcmp(name, "boolean"))
		*ret = v->t == JV_BOOL;
	else if (!strcmp(name, "true"))
		*ret = v->t == JV_BOOL && v->u.b;
	else if (!strcmp(name, "false"))
		*ret = v->t == JV_BOOL && !v->u.b;
	else if (!strcmp(name, "mapping"))
		*ret = v->t == JV_DICT && v->u.d->kind == JD_DICT;
	else if (!strcmp(name, "iterable"))
		*ret = v->t == JV_STR || v->t == JV_LIST || v->t == JV_UNDEF || (v->t == JV_DICT && v->u.d->kind == JD_DICT);
	else if (!strcmp(name, "sequence"))
		*ret = v->t == JV_STR || (v->t == JV_LIST && !v->u.l->gen) || v->t == JV_UNDEF ||
		       (v->t == JV_DICT && v->u.d->kind == JD_DICT);
	else if (!strcmp(name, "callable"))
		*ret = v->t == JV_FUNC || v->t == JV_UNDEF; /* Undefined defines __call__ (which raises) */
	else if (!strcmp(name, "odd") || !strcmp(name, "even")) {
		/* jinja2: value % 2 == 1 (or == 0), for floats too */
		struct jv m;
		if ((r = jlib_binop(c, JOP_MOD, v, &(struct jv){.t = JV_INT, .u.i = 2}, &m)) < 0)
			return r;
		*ret = jv_equal(&m, &(struct jv){.t = JV_INT, .u.i = name[0] == 'o' ? 1 : 0}, 0);
		jv_unref(&m);
	} else if (!strcmp(name, "divisibleby")) {
		struct jv m;
		if (!o)
			return jctx_fail(c, -EINVAL, "divisibleby: needs an argument");
		if ((r = jlib_binop(c, JOP_MOD, v, o, &m)) < 0)
			return r;
		*ret = jv_equal(&m, &(struct jv){.t = JV_INT, .u.i = 0}, 0);
		jv_unref(&m);
	} else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==") || !strcmp(name, "ne") ||
	           !strcmp(name, "!=")) {
		if (!o)
			return jctx_fail(c, -EINVAL, "%s: needs an argument", name);
		*ret = jv_equal(v, o, 0) == (name[0] != 'n' && name[0] != '!');
	} else if (!strcmp(name, "lt") || !strcmp(name, "gt") || !strcmp(name, "le") || !strcmp(name, "ge") ||
	           !strcmp(name, "lessthan") || !strcmp(name, "greaterthan")) {
		struct jv res;
		int op = name[0] == 'l' ? (name[1] == 'e' && name[2] != 's' ? JOP_LE : JOP_LT)
		                        : (name[1] == 'e' ? JOP_GE : JOP_GT);
		if (!o)
			return jctx_fail(c, -EINVAL, "%s: needs an argument", name);
		if ((r = jlib_binop(c, op, v, o, &res)) < 0)
			return r;
		*ret = res.u.b;
	} else if (!strcmp(name, "in")) {
		struct jv res;
		if (!o)
			return jctx_fail(c, -EINVAL, "in: needs an argument");
		if ((r = jlib_binop(c, JOP_IN, v, o, &res)) < 0)
			return r;
		*ret = res.u.b;
	} else if (!strcmp(name, "sameas")) {
		if (!o)
			return jctx_fail(c, -EINVAL, "sameas: needs an argument");
		if (v->t != o->t)
			*ret = false;
		else if (jv_is_obj(v))
			*ret = v->u.o == o->u.o;
		else
			*ret = jv_equal(v, o, 0);
	} else if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
		struct jv s;
		if ((r = to_str(c, v, &s)) < 0)
			return r;
		bool any = false, ok = true;
		size_t pos = 0;
		while (pos < s.u.s->len) {
			uint32_t cp = ju_next(s.u.s->s, s.u.s->len, &pos);
			if (utf8proc_islower((utf8proc_int32_t)cp)) {
				any |= name[0] == 'l';
				ok &= name[0] == 'l';
			} else if (utf8proc_isupper((utf8proc_int32_t)cp)) {
				any |= name[0] == 'u';
				ok &= name[0] == 'u';
			}
		}
		jv_unref(&s);
		*ret = any && ok;
	} else {
		return jctx_fail(c, -EINVAL, "no test named '%s'", name);
	}
	return 0;
}

/* ---- calls ---- */
static bool starts_at(const struct jv *s, const struct jv *p, bool end)
{
	if (p->u.s->len > s->u.s->len)
		return false;
	return !memcmp(s->u.s->s + (end ? s->u.s->len - p->u.s->len : 0), p->u.s->s, p->u.s->len);
}

static int str_method(struct jctx *c, int id, const struct jv *s, struct jv *args, size_t n, char **kw, struct jv *ret)
{
	const struct jv *a0 = arg(args, n, kw, 0, NULL), *a1 = arg(args, n, kw, 1, NULL);
	int r;

	switch (id) {
	case M_STARTSWITH:
	case M_ENDSWITH:
		if (a1)
			return jctx_fail(c, -EINVAL, "startswith/endswith: start/end arguments are not supported");
		if (a0 && a0->t == JV_LIST && a0->u.l->tuple) {
			bool any = false;
			for (size_t i = 0; i < a0->u.l->n; i++) {
				if (a0->u.l->v[i].t != JV_STR)
					return jctx_fail(c, -EINVAL, "tuple for startswith must only contain str");
				any |= starts_at(s, &a0->u.l->v[i], id == M_ENDSWITH);
			}
			*ret = jv_bool(any);
			return 0;
		}
		if ((r = need_str(c, a0, id == M_ENDSWITH ? "endswith" : "startswith")) < 0)
			return r;
		*ret = jv_bool(starts_at(s, a0, id == M_ENDSWITH));
		return 0;
	case M_STRIP:
	case M_LSTRIP:
	case M_RSTRIP: return do_strip(c, s, a0, id != M_RSTRIP, id != M_LSTRIP, ret);
	case M_SPLIT:
	case M_RSPLIT: {
		const struct jv *sep = arg(args, n, kw, 0, "sep"), *ms = arg(args, n, kw, 1, "maxsplit");
		int64_t maxsplit = -1;
		if (ms && (r = need_int(c, ms, "split", &maxsplit)) < 0)
			return r;
		return do_split(c, s, sep, maxsplit, id == M_RSPLIT, ret);
	}
	case M_REPLACE: {
		int64_t count = -1;
		const struct jv *cnt = arg(args, n, kw, 2, "count");
		if ((r = need_str(c, a0, "replace")) < 0 || (r = need_str(c, a1, "replace")) < 0)
			return r;
		if (cnt && (r = need_int(c, cnt, "replace", &count)) < 0)
			return r;
		return do_replace(c, s, a0, a1, count, ret);
	}
	case M_UPPER: return map_cp(c, s, 0, ret);
	case M_LOWER: return map_cp(c, s, 1, ret);
	case M_TITLE: return map_cp(c, s, 3, ret);
	case M_CAPITALIZE: return map_cp(c, s, 2, ret);
	case M_FIND:
	case M_RFIND:
	case M_COUNT: {
		const char *f;
		if ((r = need_str(c, a0, "find")) < 0)
			return r;
		if (a1)
			return jctx_fail(c, -EINVAL, "find/count: start/end arguments are not supported");
		if (id == M_COUNT) {
			int64_t k = 0;
			const char *p = s->u.s->s, *end = p + s->u.s->len;
			if (a0->u.s->len == 0) {
				*ret = jv_int((int64_t)ju_count(p, s->u.s->len) + 1);
				return 0;
			}
			while ((f = memfind(p, (size_t)(end - p), a0->u.s->s, a0->u.s->len))) {
				k++;
				p = f + a0->u.s->len;
			}
			*ret = jv_int(k);
			return 0;
		}
		f = id == M_FIND ? memfind(s->u.s->s, s->u.s->len, a0->u.s->s, a0->u.s->len)
		                 : memrfind(s->u.s->s, s->u.s->len, a0->u.s->s, a0->u.s->len);
		*ret = jv_int(f ? (int64_t)ju_count(s->u.s->s, (size_t)(f - s->u.s->s)) : -1);
		return 0;
	}
	case M_JOIN:
		if (!a0)
			return jctx_fail(c, -EINVAL, "join: needs an iterable");
		return do_join(c, a0, s, NULL, true, ret);
	case M_SPLITLINES: {
		const char *p = s->u.s->s, *end = p + s->u.s->len;
		if ((r = err_oom(c, jv_list_new(0, false, ret))) < 0)
			return r;
		while (r == 0 && p < end) {
			const char *q = p;
			while (q < end && *q != '\n' && *q != '\r')
				q++;
			r = push_str(c, ret, p, (size_t)(q - p));
			if (q < end && *q == '\r' && q + 1 < end && q[1] == '\n')
				q++;
			p = q < end ? q + 1 : q;
		}
		if (r < 0)
			jv_unref(ret);
		return r;
	}
	case M_ISDIGIT:
	case M_ISALPHA:
	case M_ISSPACE:
	case M_ISUPPER:
	case M_ISLOWER: {
		size_t pos = 0;
		bool ok = s->u.s->len > 0, cased = false;
		while (pos < s->u.s->len) {
			utf8proc_int32_t cp = (utf8proc_int32_t)ju_next(s->u.s->s, s->u.s->len, &pos);
			utf8proc_category_t cat = utf8proc_category(cp);
			if (id == M_ISDIGIT)
				ok &= cat == UTF8PROC_CATEGORY_ND;
			else if (id == M_ISALPHA)
				ok &= cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
			else if (id == M_ISSPACE)
				ok &= ju_isspace((uint32_t)cp);
			else if (id == M_ISUPPER) {
				if (utf8proc_islower(cp))
					ok = false;
				if (utf8proc_isupper(cp))
					cased = true;
			} else {
				if (utf8proc_isupper(cp))
					ok = false;
				if (utf8proc_islower(cp))
					cased = true;
			}
		}
		if (id == M_ISUPPER || id == M_ISLOWER)
			ok = ok && cased;
		*ret = jv_bool(ok);
		return 0;
	}
	case M_FORMAT: {
		/* "{}" / "{0}" / "{name}" with str() of the argument; no format specs */
		struct rt_buf b = {.max = JINJA_MAX_STR};
		const char *p = s->u.s->s, *end = p + s->u.s->len;
		size_t auto_i = 0;
		r = 0;
		while (r == 0 && p < end) {
			if (*p == '{' && p + 1 < end && p[1] == '{') {
				r = rt_buf_putc(&b, '{');
				p += 2;
			} else if (*p == '}' && p + 1 < end && p[1] == '}') {
				r = rt_buf_putc(&b, '}');
				p += 2;
			} else if (*p == '{') {
				const char *q = memchr(p, '}', (size_t)(end - p));
				const struct jv *val = NULL;
				char key[64];
				size_t kl;
				if (!q || (kl = (size_t)(q - p - 1)) >= sizeof(key)) {
					r = jctx_fail(c, -EINVAL, "format: bad replacement field");
					break;
				}
				memcpy(key, p + 1, kl);
				key[kl] = 0;
				if (kl == 0)
					val = arg(args, n, kw, auto_i++, NULL);
				else if (key[0] >= '0' && key[0] <= '9')
					val = arg(args, n, kw, (size_t)atoi(key), NULL);
				else
					val = arg(args, n, kw, (size_t)-1, key);
				if (!val || strchr(key, ':') || strchr(key, '!') || strchr(key, '.') || strchr(key, '[')) {
					r = jctx_fail(c, -EINVAL, "format: unsupported or missing field '%s'", key);
					break;
				}
				r = err_oom(c, jv_to_str(val, &b));
				p = q + 1;
			} else if (*p == '}') {
				r = jctx_fail(c, -EINVAL, "Single '}' encountered in format string");
			} else {
				r = rt_buf_putc(&b, *p++);
			}
		}
		if (r < 0) {
			rt_buf_release(&b);
			return err_oom(c, r);
		}
		return buf_str(c, &b, ret);
	}
	}
	return jctx_fail(c, -EINVAL, "unsupported method");
}

static int make_ns(struct jctx *c, struct jv *args, size_t n, char **kw, int kind, struct jv *ret)
{
	int r = err_oom(c, jv_dict_new(kind, ret));
	const struct jv *init = arg(args, n, kw, 0, NULL);
	if (r < 0)
		return r;
	if (init) {
		if (init->t != JV_DICT || init->u.d->kind != JD_DICT) {
			jv_unref(ret);
			return jctx_fail(c, -EINVAL, "%s: positional argument must be a mapping",
			                 kind == JD_NAMESPACE ? "namespace" : "dict");
		}
		for (size_t i = 0; r == 0 && i < init->u.d->n; i++)
			r = err_oom(c, jv_dict_set(ret, jv_ref(&init->u.d->k[i]), jv_ref(&init->u.d->v[i])));
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct jv k;
		if (!kw || !kw[i])
			continue;
		if ((r = new_str(c, kw[i], strlen(kw[i]), &k)) == 0)
			r = err_oom(c, jv_dict_set(ret, k, jv_ref(&args[i])));
	}
	if (r == 0 && kind == JD_NAMESPACE)
		r = jctx_track_ns(c, ret);
	if (r < 0)
		jv_unref(ret);
	return r;
}

int jlib_call(struct jctx *c, const struct jfunc *f, struct jv *args, size_t n, char **kw, struct jv *ret)
{
	const struct jv *self = f->self;
	int r;

	switch (f->builtin) {
	case G_RANGE: {
		int64_t a = 0, b = 0, st = 1;
		size_t np = npositional(n, kw);
		if (np < 1 || np > 3)
			return jctx_fail(c, -EINVAL, "range expected 1 to 3 arguments");
		if (np == 1) {
			if ((r = need_int(c, arg(args, n, kw, 0, NULL), "range", &b)) < 0)
				return r;
		} else {
			if ((r = need_int(c, arg(args, n, kw, 0, NULL), "range", &a)) < 0 ||
			    (r = need_int(c, arg(args, n, kw, 1, NULL), "range", &b)) < 0)
				return r;
			if (np == 3 && (r = need_int(c, arg(args, n, kw, 2, NULL), "range", &st)) < 0)
				return r;
		}
		if (st == 0)
			return jctx_fail(c, -EINVAL, "range() arg 3 must not be zero");
		double cnt = st > 0 ? ceil(((double)b - (double)a) / (double)st) : ceil(((double)a - (double)b) / (double)-st);
		if (cnt > JINJA_MAX_RANGE)
			return jctx_fail(c, -E2BIG, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
			                 JINJA_MAX_RANGE);
		if ((r = err_oom(c, jv_list_new(cnt > 0 ? (size_t)cnt : 0, false, ret))) < 0)
			return r;
		for (int64_t i = a; r == 0 && (st > 0 ? i < b : i > b); i += st)
			r = err_oom(c, jv_list_push(ret, jv_int(i)));
		if (r < 0)
			jv_unref(ret);
		return r;
	}
	case G_NAMESPACE: return make_ns(c, args, n, kw, JD_NAMESPACE, ret);
	case G_DICT: return make_ns(c, args, n, kw, JD_DICT, ret);
	case G_RAISE: {
		const struct jv *m = arg(args, n, kw, 0, "message");
		struct jv s;
		if (!m)
			return jctx_raise(c, "", 0);
		if ((r = to_str(c, m, &s)) < 0)
			return r;
		r = jctx_raise(c, s.u.s->s, s.u.s->len);
		jv_unref(&s);
		return r;
	}
	case G_STRFTIME: {
		const struct jv *fmt = arg(args, n, kw, 0, "format");
		char out[512];
		time_t now = time(NULL);
		struct tm tm;
		size_t len;
		if ((r = need_str(c, fmt, "strftime_now")) < 0)
			return r;
		if (fmt->u.s->len > 128)
			return jctx_fail(c, -E2BIG, "strftime_now: format too long");
		localtime_r(&now, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		len = strftime(out, sizeof(out), fmt->u.s->s, &tm);
#pragma GCC diagnostic pop
		return new_str(c, out, len, ret);
	}
	case M_ITEMS: return dict_items(c, self, ret);
	case M_KEYS:
	case M_VALUES:
		if ((r = err_oom(c, jv_list_new(self->u.d->n, false, ret))) < 0)
			return r;
		for (size_t i = 0; r == 0 && i < self->u.d->n; i++)
			r = err_oom(c, jv_list_push(ret, jv_ref(f->builtin == M_KEYS ? &self->u.d->k[i] : &self->u.d->v[i])));
		if (r < 0)
			jv_unref(ret);
		return r;
	case M_GET: {
		const struct jv *k = arg(args, n, kw, 0, NULL), *d = arg(args, n, kw, 1, NULL);
		const struct jv *v;
		if (!k)
			return jctx_fail(c, -EINVAL, "get expected at least 1 argument");
		v = jv_dict_getv(self, k);
		*ret = v ? jv_ref(v) : d ? jv_ref(d) : jv_none();
		return 0;
	}
	case M_LCOUNT:
	case M_LINDEX: {
		const struct jv *x = arg(args, n, kw, 0, NULL);
		int64_t k = 0;
		if (!x)
			return jctx_fail(c, -EINVAL, "%s: needs an argument", f->name);
		for (size_t i = 0; i < self->u.l->n; i++) {
			if (!jv_equal(&self->u.l->v[i], x, 0))
				continue;
			if (f->builtin == M_LINDEX) {
				*ret = jv_int((int64_t)i);
				return 0;
			}
			k++;
		}
		if (f->builtin == M_LINDEX)
			return jctx_fail(c, -EINVAL, "value is not in list");
		*ret = jv_int(k);
		return 0;
	}
	default:
		if (self && self->t == JV_STR)
			return str_method(c, f->builtin, self, args, n, kw, ret);
	}
	return jctx_fail(c, -EINVAL, "'%s' is not callable", f->name);
}

/* ---- operators ---- */
static bool numeric(const struct jv *v)
{
	return v->t == JV_INT || v->t == JV_FLOAT || v->t == JV_BOOL;
}

static double fval(const struct jv *v)
{
	return v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i : (double)v->u.b;
}

static int64_t ival(const struct jv *v)
{
	return v->t == JV_INT ? v->u.i : v->t == JV_BOOL ? (int64_t)v->u.b : 0; /* floats use fval */
}

static const char *op_name(int op)
{
	static const char *const names[] = {"",  "+",  "-", "*",  "/",  "//", "%",  "**",
	                                    "~", "==", "!=", "<", "<=", ">",  ">=", "in", "not in"};
	return op > 0 && op <= JOP_NOTIN ? names[op] : "?";
}

static int type_err(struct jctx *c, int op, const struct jv *a, const struct jv *b)
{
	if (a->t == JV_UNDEF || b->t == JV_UNDEF)
		return jctx_fail(c, -EINVAL, "undefined value in '%s' operation", op_name(op));
	return jctx_fail(c, -EINVAL, "unsupported operand type(s) for %s: '%s' and '%s'", op_name(op), jv_type_name(a),
	                 jv_type_name(b));
}

static int repeat(struct jctx *c, const struct jv *seq, int64_t times, struct jv *ret)
{
	int r;
	if (times < 0 || (seq->t == JV_STR ? seq->u.s->len == 0 : seq->u.l->n == 0))
		times = 0; /* '' * 10**13 is '' at once, not 10**13 empty copies */
	if (seq->t == JV_STR) {
		struct rt_buf b = {.max = JINJA_MAX_STR};
		if (seq->u.s->len && (uint64_t)times > JINJA_MAX_STR / seq->u.s->len)
			return err_oom(c, -E2BIG);
		for (int64_t i = 0; i < times; i++)
			if ((r = rt_buf_put(&b, seq->u.s->s, seq->u.s->len)) < 0) {
				rt_buf_release(&b);
				return err_oom(c, r);
			}
		return buf_str(c, &b, ret);
	}
	if (seq->u.l->n && (uint64_t)times > JINJA_MAX_ITEMS / seq->u.l->n)
		return err_oom(c, -E2BIG);
	if ((r = jctx_charge(c, (size_t)times * seq->u.l->n * 8)) < 0)
		return r;
	if ((r = err_oom(c, jv_list_new(0, seq->u.l->tuple, ret))) < 0)
		return r;
	for (int64_t i = 0; r == 0 && i < times; i++)
		for (size_t k = 0; r == 0 && k < seq->u.l->n; k++)
			r = err_oom(c, jv_list_push(ret, jv_ref(&seq->u.l->v[k])));
	if (r < 0)
		jv_unref(ret);
	return r;
}

int jlib_binop(struct jctx *c, int op, const struct jv *a, const struct jv *b, struct jv *ret)
{
	int r;
	bool lt;

	switch (op) {
	case JOP_EQ: *ret = jv_bool(jv_equal(a, b, 0)); return 0;
	case JOP_NE: *ret = jv_bool(!jv_equal(a, b, 0)); return 0;
	case JOP_LT:
	case JOP_GT:
	case JOP_LE:
	case JOP_GE: {
		bool res;
		if (op == JOP_LT || op == JOP_GE)
			r = jv_less(a, b, &lt);
		else
			r = jv_less(b, a, &lt);
		if (r < 0)
			return jctx_fail(c, -EINVAL, "'%s' not supported between instances of '%s' and '%s'", op_name(op),
			                 jv_type_name(a), jv_type_name(b));
		res = (op == JOP_LT || op == JOP_GT) ? lt : !lt;
		*ret = jv_bool(res);
		return 0;
	}
	case JOP_IN:
	case JOP_NOTIN: {
		bool found = false;
		if (b->t == JV_STR) {
			if (a->t != JV_STR)
				return jctx_fail(c, -EINVAL, "'in <string>' requires string as left operand, not %s",
				                 jv_type_name(a));
			found = memfind(b->u.s->s, b->u.s->len, a->u.s->s, a->u.s->len) != NULL;
		} else if (b->t == JV_LIST) {
			for (size_t i = 0; i < b->u.l->n && !found; i++)
				found = jv_equal(&b->u.l->v[i], a, 0);
			if ((r = jctx_charge(c, b->u.l->n)) < 0)
				return r;
		} else if (b->t == JV_DICT && b->u.d->kind != JD_NAMESPACE) {
			if (a->t == JV_DICT || (a->t == JV_LIST && !a->u.l->tuple))
				return jctx_fail(c, -EINVAL, "unhashable type: '%s'", jv_type_name(a));
			found = jv_dict_getv(b, a) != NULL;
		} else if (b->t != JV_UNDEF) {
			return jctx_fail(c, -EINVAL, "argument of type '%s' is not iterable", jv_type_name(b));
		}
		*ret = jv_bool(op == JOP_IN ? found : !found);
		return 0;
	}
	case JOP_CONCAT: {
		struct rt_buf buf = {.max = JINJA_MAX_STR};
		if ((r = jv_to_str(a, &buf)) < 0 || (r = jv_to_str(b, &buf)) < 0) {
			rt_buf_release(&buf);
			return err_oom(c, r);
		}
		return buf_str(c, &buf, ret);
	}
	default: break;
	}
	if (numeric(a) && numeric(b)) {
		bool flt = a->t == JV_FLOAT || b->t == JV_FLOAT;
		int64_t x = ival(a), y = ival(b), z;
		double fx = fval(a), fy = fval(b);
		switch (op) {
		case JOP_ADD:
			if (flt)
				*ret = jv_float(fx + fy);
			else if (__builtin_add_overflow(x, y, &z))
				return jctx_fail(c, -ERANGE, "integer overflow");
			else
				*ret = jv_int(z);
			return 0;
		case JOP_SUB:
			if (flt)
				*ret = jv_float(fx - fy);
			else if (__builtin_sub_overflow(x, y, &z))
				return jctx_fail(c, -ERANGE, "integer overflow");
			else
				*ret = jv_int(z);
			return 0;
		case JOP_MUL:
			if (flt)
				*ret = jv_float(fx * fy);
			else if (__builtin_mul_overflow(x, y, &z))
				return jctx_fail(c, -ERANGE, "integer overflow");
			else
				*ret = jv_int(z);
			return 0;
		case JOP_DIV:
			if (fy == 0)
				return jctx_fail(c, -EDOM, "division by zero");
			*ret = jv_float(fx / fy);
			return 0;
		case JOP_FLOORDIV:
		case JOP_MOD:
			if ((flt && fy == 0) || (!flt && y == 0))
				return jctx_fail(c, -EDOM, op == JOP_MOD ? "modulo by zero" : "division by zero");
			if (flt) {
				double m = fmod(fx, fy);
				if (m != 0 && ((m < 0) != (fy < 0)))
					m += fy;
				if (op == JOP_MOD) {
					*ret = jv_float(m);
				} else {
					/* CPython's float floor division */
					double mod = fmod(fx, fy), div = (fx - mod) / fy, fl;
					if (mod != 0 && ((fy < 0) != (mod < 0)))
						div -= 1.0;
					if (div != 0) {
						fl = floor(div);
						if (div - fl > 0.5)
							fl += 1.0;
					} else {
						fl = copysign(0.0, fx / fy);
					}
					*ret = jv_float(fl);
				}
				return 0;
			}
			if (x == INT64_MIN && y == -1)
				return jctx_fail(c, -ERANGE, "integer overflow");
			{
				int64_t q = x / y, m = x % y;
				if (m != 0 && ((m < 0) != (y < 0))) {
					m += y;
					q -= 1;
				}
				*ret = jv_int(op == JOP_MOD ? m : q);
			}
			return 0;
		case JOP_POW:
			if (!flt && y >= 0) {
				int64_t acc = 1, base = x;
				for (int64_t e = y; e > 0; e >>= 1) {
					if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
						return jctx_fail(c, -ERANGE, "integer overflow");
					if (e > 1 && __builtin_mul_overflow(base, base, &base))
						return jctx_fail(c, -ERANGE, "integer overflow");
				}
				*ret = jv_int(acc);
				return 0;
			}
			if (fx == 0 && fy < 0)
				return jctx_fail(c, -EDOM, "0.0 cannot be raised to a negative power");
			*ret = jv_float(pow(fx, fy));
			return 0;
		default: break;
		}
	}
	if (op == JOP_ADD && a->t == JV_STR && b->t == JV_STR) {
		struct rt_buf buf = {.max = JINJA_MAX_STR};
		if ((r = rt_buf_put(&buf, a->u.s->s, a->u.s->len)) < 0 || (r = rt_buf_put(&buf, b->u.s->s, b->u.s->len)) < 0) {
			rt_buf_release(&buf);
			return err_oom(c, r);
		}
		return buf_str(c, &buf, ret);
	}
	if (op == JOP_ADD && a->t == JV_LIST && b->t == JV_LIST && !a->u.l->gen && !b->u.l->gen &&
	    a->u.l->tuple == b->u.l->tuple) {
		if ((r = err_oom(c, jv_list_new(a->u.l->n + b->u.l->n, a->u.l->tuple, ret))) < 0)
			return r;
		if ((r = jctx_charge(c, 8 * (a->u.l->n + b->u.l->n))) < 0) {
			jv_unref(ret);
			return r;
		}
		for (size_t i = 0; r == 0 && i < a->u.l->n; i++)
			r = err_oom(c, jv_list_push(ret, jv_ref(&a->u.l->v[i])));
		for (size_t i = 0; r == 0 && i < b->u.l->n; i++)
			r = err_oom(c, jv_list_push(ret, jv_ref(&b->u.l->v[i])));
		if (r < 0)
			jv_unref(ret);
		return r;
	}
	if (op == JOP_MUL) {
		if ((a->t == JV_STR || (a->t == JV_LIST && !a->u.l->gen)) && is_intlike(b))
			return repeat(c, a, ival(b), ret);
		if ((b->t == JV_STR || (b->t == JV_LIST && !b->u.l->gen)) && is_intlike(a))
			return repeat(c, b, ival(a), ret);
	}
	if (op == JOP_MOD && a->t == JV_STR)
		return jctx_fail(c, -EINVAL, "printf-style '%%' formatting is not supported");
	return type_err(c, op, a, b);
}
