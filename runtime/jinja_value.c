/* SPDX-License-Identifier: Apache-2.0 */
/* Jinja values: refcounted strings, lists and dicts with Python's printing
 * (str / repr), json.dumps as transformers' tojson calls it, equality and
 * ordering. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

/* ---- UTF-8 ---- */
uint32_t ju_next(const char *s, size_t len, size_t *i)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t k = *i;
	uint32_t c = u[k];
	int extra;

	if (c < 0x80) {
		*i = k + 1;
		return c;
	}
	if ((c & 0xe0) == 0xc0)
		extra = 1, c &= 0x1f;
	else if ((c & 0xf0) == 0xe0)
		extra = 2, c &= 0x0f;
	else if ((c & 0xf8) == 0xf0)
		extra = 3, c &= 0x07;
	else
		goto bad;
	if (k + (size_t)extra >= len + 0 && k + (size_t)extra > len - 1)
		goto bad;
	for (int j = 1; j <= extra; j++) {
		if ((u[k + (size_t)j] & 0xc0) != 0x80)
			goto bad;
		c = (c << 6) | (u[k + (size_t)j] & 0x3f);
	}
	*i = k + 1 + (size_t)extra;
	return c;
bad:
	*i = k + 1;
	return 0xdc00 + u[k]; /* surrogateescape, as Python would hold it */
}

size_t ju_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

size_t ju_count(const char *s, size_t len)
{
	size_t i = 0, n = 0;
	while (i < len) {
		ju_next(s, len, &i);
		n++;
	}
	return n;
}

/* Python's str.isspace() */
bool ju_isspace(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
	       c == 0x3000;
}

/* ---- objects ---- */
struct jv jv_ref(const struct jv *v)
{
	if (jv_is_obj(v) && v->u.o->refs != JOBJ_IMMORTAL)
		v->u.o->refs++;
	return *v;
}

void jv_make_immortal(struct jv *v)
{
	/* only strings and scalars are literals in the tree */
	if (v->t == JV_STR)
		v->u.o->refs = JOBJ_IMMORTAL;
}

void jv_free_immortal(struct jv *v)
{
	if (jv_is_obj(v) && v->u.o->refs == JOBJ_IMMORTAL)
		v->u.o->refs = 1;
	jv_unref(v);
}

static void obj_free(struct jv *v)
{
	switch (v->t) {
	case JV_STR: free(v->u.s); break;
	case JV_LIST:
		for (size_t i = 0; i < v->u.l->n; i++)
			jv_unref(&v->u.l->v[i]);
		free(v->u.l->v);
		free(v->u.l);
		break;
	case JV_DICT:
		for (size_t i = 0; i < v->u.d->n; i++) {
			jv_unref(&v->u.d->k[i]);
			jv_unref(&v->u.d->v[i]);
		}
		free(v->u.d->k);
		free(v->u.d->v);
		free(v->u.d);
		break;
	case JV_FUNC:
		if (v->u.fn->self) {
			jv_unref(v->u.fn->self);
			free(v->u.fn->self);
		}
		free(v->u.fn);
		break;
	default: break;
	}
}

void jv_unref(struct jv *v)
{
	/* Values nest at most JINJA_MAX_VDEPTH deep (enforced where they are
	 * built), so this recursion is bounded. */
	if (jv_is_obj(v) && v->u.o->refs != JOBJ_IMMORTAL && --v->u.o->refs == 0)
		obj_free(v);
	v->t = JV_UNDEF;
}

int jv_str(const char *s, size_t len, struct jv *ret)
{
	struct jstr *p;

	if (len > JINJA_MAX_STR)
		return -E2BIG;
	p = malloc(sizeof(*p) + len + 1);
	if (!p)
		return -ENOMEM;
	p->h.refs = 1;
	p->len = len;
	if (len)
		memcpy(p->s, s, len);
	p->s[len] = 0;
	ret->t = JV_STR;
	ret->u.s = p;
	return 0;
}

int jv_str_take_buf(struct rt_buf *b, struct jv *ret)
{
	int r = jv_str(b->p ? b->p : "", b->len, ret);
	rt_buf_release(b);
	return r;
}

int jv_list_new(size_t cap, bool tuple, struct jv *ret)
{
	struct jlist *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->h.refs = 1;
	l->tuple = tuple;
	if (cap) {
		l->v = malloc(cap * sizeof(*l->v));
		if (!l->v) {
			free(l);
			return -ENOMEM;
		}
		l->cap = cap;
	}
	ret->t = JV_LIST;
	ret->u.l = l;
	return 0;
}

unsigned jv_depth(const struct jv *v)
{
	if (v->t == JV_LIST)
		return v->u.l->depth;
	if (v->t == JV_DICT && v->u.d->kind == JD_DICT)
		return v->u.d->depth;
	if (v->t == JV_DICT && v->u.d->kind == JD_LOOP && v->u.d->n == 1) /* holds its items */
		return jv_depth(&v->u.d->k[0]) + 1;
	if (v->t == JV_FUNC && v->u.fn->self)
		return jv_depth(v->u.fn->self) + 1;
	return 0;
}

int jv_list_push(struct jv *list, struct jv item)
{
	struct jlist *l = list->u.l;
	unsigned d = jv_depth(&item) + 1;
	if (d > JINJA_MAX_VDEPTH) {
		jv_unref(&item);
		return -ELOOP;
	}
	if (d > l->depth)
		l->depth = (uint16_t)d;
	if (l->n >= JINJA_MAX_ITEMS) {
		jv_unref(&item);
		return -E2BIG;
	}
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		struct jv *nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv) {
			jv_unref(&item);
			return -ENOMEM;
		}
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = item;
	return 0;
}

int jv_dict_new(int kind, struct jv *ret)
{
	struct jdict *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->h.refs = 1;
	d->kind = (uint8_t)kind;
	ret->t = JV_DICT;
	ret->u.d = d;
	return 0;
}

const struct jv *jv_dict_getv(const struct jv *dict, const struct jv *key)
{
	const struct jdict *d = dict->u.d;
	for (size_t i = 0; i < d->n; i++)
		if (jv_equal(&d->k[i], key, 0))
			return &d->v[i];
	return NULL;
}

const struct jv *jv_dict_get(const struct jv *dict, const char *key, size_t klen)
{
	const struct jdict *d = dict->u.d;
	for (size_t i = 0; i < d->n; i++)
		if (d->k[i].t == JV_STR && d->k[i].u.s->len == klen && !memcmp(d->k[i].u.s->s, key, klen))
			return &d->v[i];
	return NULL;
}

int jv_dict_set(struct jv *dict, struct jv key, struct jv val)
{
	struct jdict *d = dict->u.d;
	unsigned dep = jv_depth(&val) + 1;
	if (jv_depth(&key) + 1 > dep)
		dep = jv_depth(&key) + 1;
	if (dep > JINJA_MAX_VDEPTH) {
		jv_unref(&key);
		jv_unref(&val);
		return -ELOOP;
	}
	if (dep > d->depth && d->kind == JD_DICT)
		d->depth = (uint16_t)dep;
	for (size_t i = 0; i < d->n; i++) {
		if (jv_equal(&d->k[i], &key, 0)) {
			jv_unref(&key);
			jv_unref(&d->v[i]);
			d->v[i] = val;
			return 0;
		}
	}
	if (d->n >= JINJA_MAX_ITEMS) {
		jv_unref(&key);
		jv_unref(&val);
		return -E2BIG;
	}
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 8;
		struct jv *nk = realloc(d->k, nc * sizeof(*nk));
		if (nk)
			d->k = nk;
		struct jv *nv = nk ? realloc(d->v, nc * sizeof(*nv)) : NULL;
		if (!nv) {
			jv_unref(&key);
			jv_unref(&val);
			return -ENOMEM;
		}
		d->v = nv;
		d->cap = nc;
	}
	d->k[d->n] = key;
	d->v[d->n] = val;
	d->n++;
	return 0;
}

/* ---- Python semantics ---- */
bool jv_truthy(const struct jv *v)
{
	switch (v->t) {
	case JV_UNDEF:
	case JV_NONE: return false;
	case JV_BOOL: return v->u.b;
	case JV_INT: return v->u.i != 0;
	case JV_FLOAT: return v->u.f != 0.0;
	case JV_STR: return v->u.s->len > 0;
	case JV_LIST: return v->u.l->gen || v->u.l->n > 0;
	case JV_DICT: return v->u.d->kind == JD_NAMESPACE || v->u.d->kind == JD_LOOP || v->u.d->n > 0;
	default: return true;
	}
}

static bool is_num(const struct jv *v)
{
	return v->t == JV_BOOL || v->t == JV_INT || v->t == JV_FLOAT;
}

static double num_f(const struct jv *v)
{
	return v->t == JV_FLOAT ? v->u.f : v->t == JV_INT ? (double)v->u.i : (double)v->u.b;
}

static int64_t num_i(const struct jv *v)
{
	return v->t == JV_INT ? v->u.i : (int64_t)v->u.b;
}

bool jv_equal(const struct jv *a, const struct jv *b, int depth)
{
	if (depth > JINJA_MAX_VDEPTH)
		return false;
	if (is_num(a) && is_num(b)) {
		if (a->t == JV_FLOAT || b->t == JV_FLOAT)
			return num_f(a) == num_f(b);
		return num_i(a) == num_i(b);
	}
	if (a->t != b->t)
		return false;
	switch (a->t) {
	case JV_UNDEF:
	case JV_NONE: return true;
	case JV_STR: return a->u.s->len == b->u.s->len && !memcmp(a->u.s->s, b->u.s->s, a->u.s->len);
	case JV_LIST:
		if (a->u.l->n != b->u.l->n || a->u.l->tuple != b->u.l->tuple)
			return false;
		for (size_t i = 0; i < a->u.l->n; i++)
			if (!jv_equal(&a->u.l->v[i], &b->u.l->v[i], depth + 1))
				return false;
		return true;
	case JV_DICT:
		if (a->u.d == b->u.d)
			return true;
		if (a->u.d->kind != JD_DICT || b->u.d->kind != JD_DICT || a->u.d->n != b->u.d->n)
			return false;
		for (size_t i = 0; i < a->u.d->n; i++) {
			const struct jv *o = jv_dict_getv(b, &a->u.d->k[i]);
			if (!o || !jv_equal(&a->u.d->v[i], o, depth + 1))
				return false;
		}
		return true;
	default: return a->u.o == b->u.o;
	}
}

int jv_less(const struct jv *a, const struct jv *b, bool *ret_lt)
{
	if (is_num(a) && is_num(b)) {
		if (a->t == JV_FLOAT || b->t == JV_FLOAT)
			*ret_lt = num_f(a) < num_f(b);
		else
			*ret_lt = num_i(a) < num_i(b);
		return 0;
	}
	if (a->t == JV_STR && b->t == JV_STR) {
		/* UTF-8 byte order is code point order, as Python compares */
		size_t n = a->u.s->len < b->u.s->len ? a->u.s->len : b->u.s->len;
		int c = memcmp(a->u.s->s, b->u.s->s, n);
		*ret_lt = c < 0 || (c == 0 && a->u.s->len < b->u.s->len);
		return 0;
	}
	if (a->t == JV_LIST && b->t == JV_LIST) {
		size_t n = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
		for (size_t i = 0; i < n; i++) {
			if (jv_equal(&a->u.l->v[i], &b->u.l->v[i], 0))
				continue;
			return jv_less(&a->u.l->v[i], &b->u.l->v[i], ret_lt);
		}
		*ret_lt = a->u.l->n < b->u.l->n;
		return 0;
	}
	return -EINVAL;
}

const char *jv_type_name(const struct jv *v)
{
	switch (v->t) {
	case JV_UNDEF: return "Undefined";
	case JV_NONE: return "NoneType";
	case JV_BOOL: return "bool";
	case JV_INT: return "int";
	case JV_FLOAT: return "float";
	case JV_STR: return "str";
	case JV_LIST: return v->u.l->tuple ? "tuple" : "list";
	case JV_DICT: return v->u.d->kind == JD_NAMESPACE ? "Namespace" : v->u.d->kind == JD_LOOP ? "LoopContext" : "dict";
	default: return "function";
	}
}

/* Python float repr: the shortest string that round-trips, in fixed
 * notation for exponents -4..15, else d.ddde+XX. */
void jv_float_repr(double f, char *out, size_t n)
{
	char buf[40], digits[24];
	int prec, exp10, nd = 0;

	if (isnan(f)) {
		snprintf(out, n, "nan");
		return;
	}
	if (isinf(f)) {
		snprintf(out, n, f < 0 ? "-inf" : "inf");
		return;
	}
	if (f == 0) {
		snprintf(out, n, signbit(f) ? "-0.0" : "0.0");
		return;
	}
	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, f);
		if (strtod(buf, NULL) == f)
			break;
	}
	/* buf: [-]d[.ddd]e[+-]XX */
	const char *p = buf;
	bool neg = *p == '-';
	if (neg)
		p++;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[nd++] = *p;
	digits[nd] = 0;
	exp10 = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		digits[--nd] = 0;
	char o[64];
	size_t k = 0;
	if (neg)
		o[k++] = '-';
	if (exp10 >= -4 && exp10 < 16) {
		if (exp10 < 0) {
			o[k++] = '0';
			o[k++] = '.';
			for (int z = 0; z < -exp10 - 1; z++)
				o[k++] = '0';
			for (int d = 0; d < nd; d++)
				o[k++] = digits[d];
		} else {
			for (int d = 0; d <= exp10; d++)
				o[k++] = d < nd ? digits[d] : '0';
			o[k++] = '.';
			if (nd > exp10 + 1)
				for (int d = exp10 + 1; d < nd; d++)
					o[k++] = digits[d];
			else
				o[k++] = '0';
		}
		o[k] = 0;
	} else {
		o[k++] = digits[0];
		if (nd > 1) {
			o[k++] = '.';
			for (int d = 1; d < nd; d++)
				o[k++] = digits[d];
		}
		o[k] = 0;
		snprintf(o + k, sizeof(o) - k, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
	}
	snprintf(out, n, "%s", o);
}

static bool printable(uint32_t c)
{
	/* Python's str.isprintable(), approximately: not a control, format,
	 * separator (other than space), surrogate, private-use or unassigned */
	if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
		return false;
	if (c == 0xa0 || c == 0xad || c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
	    (c >= 0x205f && c <= 0x2064) || (c >= 0x2066 && c <= 0x206f) || c == 0x3000 || c == 0xfeff ||
	    (c >= 0xfff9 && c <= 0xfffb) || (c >= 0xd800 && c <= 0xf8ff) || c == 0x61c || c == 0x180e ||
	    (c >= 0x600 && c <= 0x605) || c == 0x6dd || c == 0x70f || c == 0x8e2 || c == 0x110bd || c == 0x110cd ||
	    (c >= 0xe0000 && c <= 0xe0fff) || c >= 0xf0000 || (c & 0xfffe) == 0xfffe)
		return false;
	return true;
}

static int repr_str(const char *s, size_t len, struct rt_buf *b)
{
	bool sq = memchr(s, '\'', len) != NULL, dq = memchr(s, '"', len) != NULL;
	char q = (sq && !dq) ? '"' : '\'';
	int r = rt_buf_putc(b, q);
	size_t i = 0;

	while (r == 0 && i < len) {
		size_t st = i;
		uint32_t c = ju_next(s, len, &i);
		char esc[16];
		if (c == (uint32_t)q || c == '\\') {
			esc[0] = '\\', esc[1] = (char)c;
			r = rt_buf_put(b, esc, 2);
		} else if (c == '\n') {
			r = rt_buf_put(b, "\\n", 2);
		} else if (c == '\r') {
			r = rt_buf_put(b, "\\r", 2);
		} else if (c == '\t') {
			r = rt_buf_put(b, "\\t", 2);
		} else if (c >= 0xdc80 && c <= 0xdcff && i - st == 1 && (unsigned char)s[st] >= 0x80) {
			snprintf(esc, sizeof(esc), "\\udc%02x", (unsigned char)s[st]);
			r = rt_buf_put(b, esc, strlen(esc));
		} else if (!printable(c)) {
			if (c < 0x100)
				snprintf(esc, sizeof(esc), "\\x%02x", c);
			else if (c < 0x10000)
				snprintf(esc, sizeof(esc), "\\u%04x", c);
			else
				snprintf(esc, sizeof(esc), "\\U%08x", c);
			r = rt_buf_put(b, esc, strlen(esc));
		} else {
			r = rt_buf_put(b, s + st, i - st);
		}
	}
	return r ? r : rt_buf_putc(b, q);
}

int jv_repr(const struct jv *v, struct rt_buf *b, int depth)
{
	char num[64];
	int r = 0;

	if (depth > JINJA_MAX_VDEPTH)
		return -ELOOP;
	switch (v->t) {
	case JV_STR: return repr_str(v->u.s->s, v->u.s->len, b);
	case JV_LIST: {
		const struct jlist *l = v->u.l;
		r = rt_buf_putc(b, l->tuple ? '(' : '[');
		for (size_t i = 0; r == 0 && i < l->n; i++) {
			if (i)
				r = rt_buf_put(b, ", ", 2);
			if (r == 0)
				r = jv_repr(&l->v[i], b, depth + 1);
		}
		if (r == 0 && l->tuple && l->n == 1)
			r = rt_buf_putc(b, ',');
		return r ? r : rt_buf_putc(b, l->tuple ? ')' : ']');
	}
	case JV_DICT: {
		const struct jdict *d = v->u.d;
		if (d->kind == JD_LOOP) {
			snprintf(num, sizeof(num), "<LoopContext %lld/%zu>", (long long)d->v[0].u.i + 1, d->k[0].u.l->n);
			return rt_buf_put(b, num, strlen(num));
		}
		if (d->kind == JD_NAMESPACE)
			r = rt_buf_put(b, "<Namespace ", 11);
		if (r == 0)
			r = rt_buf_putc(b, '{');
		for (size_t i = 0; r == 0 && i < d->n; i++) {
			if (i)
				r = rt_buf_put(b, ", ", 2);
			if (r == 0)
				r = jv_repr(&d->k[i], b, depth + 1);
			if (r == 0)
				r = rt_buf_put(b, ": ", 2);
			if (r == 0)
				r = jv_repr(&d->v[i], b, depth + 1);
		}
		if (r == 0)
			r = rt_buf_putc(b, '}');
		if (r == 0 && d->kind == JD_NAMESPACE)
			r = rt_buf_putc(b, '>');
		return r;
	}
	case JV_UNDEF: return depth > 0 ? rt_buf_put(b, "Undefined", 9) : 0; /* repr() inside a container */
	case JV_NONE: return rt_buf_put(b, "None", 4);
	case JV_BOOL: return v->u.b ? rt_buf_put(b, "True", 4) : rt_buf_put(b, "False", 5);
	case JV_INT: snprintf(num, sizeof(num), "%lld", (long long)v->u.i); break;
	case JV_FLOAT: jv_float_repr(v->u.f, num, sizeof(num)); break;
	case JV_FUNC: snprintf(num, sizeof(num), "<function %.32s>", v->u.fn->name); break;
	default: num[0] = 0;
	}
	return rt_buf_put(b, num, strlen(num));
}

int jv_to_str(const struct jv *v, struct rt_buf *b)
{
	if (v->t == JV_STR)
		return rt_buf_put(b, v->u.s->s, v->u.s->len);
	return jv_repr(v, b, 0);
}

/* ---- JSON (Python's json.dumps) ---- */
static int json_str(const char *s, size_t len, struct rt_buf *b)
{
	int r = rt_buf_putc(b, '"');
	size_t i = 0;

	while (r == 0 && i < len) {
		size_t st = i;
		uint32_t c = ju_next(s, len, &i);
		char esc[16];
		switch (c) {
		case '"': r = rt_buf_put(b, "\\\"", 2); break;
		case '\\': r = rt_buf_put(b, "\\\\", 2); break;
		case '\n': r = rt_buf_put(b, "\\n", 2); break;
		case '\r': r = rt_buf_put(b, "\\r", 2); break;
		case '\t': r = rt_buf_put(b, "\\t", 2); break;
		case '\b': r = rt_buf_put(b, "\\b", 2); break;
		case '\f': r = rt_buf_put(b, "\\f", 2); break;
		default:
			if (c < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				r = rt_buf_put(b, esc, strlen(esc));
			} else if (c >= 0xdc80 && c <= 0xdcff && i - st == 1 && (unsigned char)s[st] >= 0x80) {
				snprintf(esc, sizeof(esc), "\\udc%02x", (unsigned char)s[st]);
				r = rt_buf_put(b, esc, strlen(esc));
			} else {
				r = rt_buf_put(b, s + st, i - st);
			}
		}
	}
	return r ? r : rt_buf_putc(b, '"');
}

static int json_nl(struct rt_buf *b, int indent, int level)
{
	int r = rt_buf_putc(b, '\n');
	for (int i = 0; r == 0 && i < indent * level; i++)
		r = rt_buf_putc(b, ' ');
	return r;
}

struct kv_ref {
	const struct jv *k, *v;
};

static int cmp_keys(const void *x, const void *y)
{
	const struct kv_ref *a = x, *b = y;
	bool lt = false;
	if (jv_less(a->k, b->k, &lt) == 0 && lt)
		return -1;
	if (jv_less(b->k, a->k, &lt) == 0 && lt)
		return 1;
	return 0;
}

static int json_key(const struct jv *k, struct rt_buf *b, struct jerr *e)
{
	char num[64];
	switch (k->t) {
	case JV_STR: return json_str(k->u.s->s, k->u.s->len, b);
	case JV_NONE: return rt_buf_put(b, "\"null\"", 6);
	case JV_BOOL: return k->u.b ? rt_buf_put(b, "\"true\"", 6) : rt_buf_put(b, "\"false\"", 7);
	case JV_INT: snprintf(num, sizeof(num), "\"%lld\"", (long long)k->u.i); return rt_buf_put(b, num, strlen(num));
	case JV_FLOAT:
		num[0] = '"';
		jv_float_repr(k->u.f, num + 1, sizeof(num) - 2);
		strcat(num, "\"");
		return rt_buf_put(b, num, strlen(num));
	default:
		snprintf(e->msg, sizeof(e->msg), "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
		return -EINVAL;
	}
}

static int json_level(const struct jv *v, struct rt_buf *b, int indent, const char *isep, const char *ksep,
                      bool sort_keys, int depth, struct jerr *e)
{
	char num[64];
	int r = 0;

	if (depth > JINJA_MAX_VDEPTH) {
		snprintf(e->msg, sizeof(e->msg), "value nested too deeply for tojson");
		return -ELOOP;
	}
	switch (v->t) {
	case JV_NONE: return rt_buf_put(b, "null", 4);
	case JV_BOOL: return v->u.b ? rt_buf_put(b, "true", 4) : rt_buf_put(b, "false", 5);
	case JV_INT: snprintf(num, sizeof(num), "%lld", (long long)v->u.i); return rt_buf_put(b, num, strlen(num));
	case JV_FLOAT:
		if (isnan(v->u.f))
			return rt_buf_put(b, "NaN", 3);
		if (isinf(v->u.f))
			return v->u.f < 0 ? rt_buf_put(b, "-Infinity", 9) : rt_buf_put(b, "Infinity", 8);
		jv_float_repr(v->u.f, num, sizeof(num));
		return rt_buf_put(b, num, strlen(num));
	case JV_STR: return json_str(v->u.s->s, v->u.s->len, b);
	case JV_LIST: {
		const struct jlist *l = v->u.l;
		if (l->n == 0)
			return rt_buf_put(b, "[]", 2);
		r = rt_buf_putc(b, '[');
		for (size_t i = 0; r == 0 && i < l->n; i++) {
			if (i)
				r = rt_buf_put(b, isep, strlen(isep));
			if (r == 0 && indent >= 0)
				r = json_nl(b, indent, depth + 1);
			if (r == 0)
				r = json_level(&l->v[i], b, indent, isep, ksep, sort_keys, depth + 1, e);
		}
		if (r == 0 && indent >= 0)
			r = json_nl(b, indent, depth);
		return r ? r : rt_buf_putc(b, ']');
	}
	case JV_DICT: {
		const struct jdict *d = v->u.d;
		struct kv_ref *kv;
		if (d->kind != JD_DICT) {
			snprintf(e->msg, sizeof(e->msg), "Object of type %s is not JSON serializable", jv_type_name(v));
			return -EINVAL;
		}
		if (d->n == 0)
			return rt_buf_put(b, "{}", 2);
		kv = malloc(d->n * sizeof(*kv));
		if (!kv)
			return -ENOMEM;
		for (size_t i = 0; i < d->n; i++)
			kv[i].k = &d->k[i], kv[i].v = &d->v[i];
		if (sort_keys) {
			for (size_t i = 1; i < d->n; i++) {
				bool lt;
				if (jv_less(kv[0].k, kv[i].k, &lt) < 0) {
					free(kv);
					snprintf(e->msg, sizeof(e->msg), "'<' not supported between dict keys");
					return -EINVAL;
				}
			}
			qsort(kv, d->n, sizeof(*kv), cmp_keys);
		}
		r = rt_buf_putc(b, '{');
		for (size_t i = 0; r == 0 && i < d->n; i++) {
			if (i)
				r = rt_buf_put(b, isep, strlen(isep));
			if (r == 0 && indent >= 0)
				r = json_nl(b, indent, depth + 1);
			if (r == 0)
				r = json_key(kv[i].k, b, e);
			if (r == 0)
				r = rt_buf_put(b, ksep, strlen(ksep));
			if (r == 0)
				r = json_level(kv[i].v, b, indent, isep, ksep, sort_keys, depth + 1, e);
		}
		free(kv);
		if (r == 0 && indent >= 0)
			r = json_nl(b, indent, depth);
		return r ? r : rt_buf_putc(b, '}');
	}
	default:
		snprintf(e->msg, sizeof(e->msg), "Object of type %s is not JSON serializable", jv_type_name(v));
		return -EINVAL;
	}
}

int jv_to_json(const struct jv *v, struct rt_buf *b, int indent, const char *item_sep, const char *key_sep,
               bool sort_keys, int depth, struct jerr *e)
{
	if (!item_sep)
		item_sep = indent >= 0 ? "," : ", ";
	if (!key_sep)
		key_sep = ": ";
	return json_level(v, b, indent, item_sep, key_sep, sort_keys, depth, e);
}
