/* SPDX-License-Identifier: Apache-2.0 */
/* Jinja evaluator: executes the tree against a context, with jinja2's
 * scoping (a for loop is a scope, if is not; macros see the template's
 * top-level names), default Undefined (prints empty, is falsy, iterates as
 * empty; attribute or item access on it is an error) and the sandbox's
 * attribute lookup (x.y tries the attribute, then x['y']; x['y'] the item,
 * then the attribute).  Every statement, expression and loop iteration
 * costs a step; recursion, output and string sizes are capped (jinja.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

struct scope {
	struct jv vars; /* JD_DICT */
	struct scope *parent;
};

struct jctx {
	struct jerr *e;
	struct rt_buf *out;
	struct scope *scope, *root;
	const struct jv *globals;
	struct jv nss; /* namespaces created, each held once, cleared at the end */
	size_t steps, bytes;
	int depth, calls;
	int brk; /* 1 break, 2 continue */
};

int jctx_fail(struct jctx *c, int r, const char *fmt, ...)
{
	va_list ap;
	if (c->e->msg[0]) /* keep the first (innermost) message */
		return r;
	va_start(ap, fmt);
	vsnprintf(c->e->msg, sizeof(c->e->msg), fmt, ap);
	va_end(ap);
	return r;
}

int jctx_raise(struct jctx *c, const char *msg, size_t len)
{
	if (!c->e->msg[0]) {
		if (len >= sizeof(c->e->msg))
			len = sizeof(c->e->msg) - 1;
		memcpy(c->e->msg, msg, len);
		c->e->msg[len] = 0;
		c->e->raised = true;
	}
	return -ECANCELED;
}

int jctx_charge(struct jctx *c, size_t bytes)
{
	c->bytes += bytes;
	if (c->bytes > JINJA_MAX_BYTES)
		return jctx_fail(c, -E2BIG, "template built more than %u bytes of strings", JINJA_MAX_BYTES);
	return 0;
}

int jctx_track_ns(struct jctx *c, const struct jv *ns)
{
	int r = jv_list_push(&c->nss, jv_ref(ns));
	if (r < 0)
		return jctx_fail(c, r, "too many namespaces");
	return 0;
}

static int step(struct jctx *c)
{
	if (++c->steps > JINJA_MAX_STEPS)
		return jctx_fail(c, -E2BIG, "template ran more than %d steps", JINJA_MAX_STEPS);
	return 0;
}

static int enter(struct jctx *c)
{
	if (++c->depth > JINJA_MAX_DEPTH)
		return jctx_fail(c, -ELOOP, "template recursion deeper than %d", JINJA_MAX_DEPTH);
	return step(c);
}

static int oom(struct jctx *c, int r)
{
	if (r == -ENOMEM)
		return jctx_fail(c, r, "out of memory");
	if (r == -E2BIG)
		return jctx_fail(c, r, "value too large (limit %u bytes, %d items)", JINJA_MAX_STR, JINJA_MAX_ITEMS);
	if (r == -ELOOP)
		return jctx_fail(c, r, "value nested deeper than %d", JINJA_MAX_VDEPTH);
	return r;
}

static const struct jv *lookup(struct jctx *c, const char *name)
{
	size_t n = strlen(name);
	for (struct scope *s = c->scope; s; s = s->parent) {
		const struct jv *v = jv_dict_get(&s->vars, name, n);
		if (v)
			return v;
	}
	return jv_dict_get(c->globals, name, n);
}

static int set_var(struct jctx *c, const char *name, struct jv val)
{
	struct jv k;
	int r = jv_str(name, strlen(name), &k);
	if (r < 0) {
		jv_unref(&val);
		return oom(c, r);
	}
	return oom(c, jv_dict_set(&c->scope->vars, k, val));
}

static int eval(struct jctx *c, const struct jnode *n, struct jv *ret);
static int exec_block(struct jctx *c, const struct jnode *n);

static bool is(const char *name, size_t nlen, const char *w)
{
	return strlen(w) == nlen && !memcmp(name, w, nlen);
}

/* loop.index and friends, from the loop object's (items, index0) */
static int loop_attr(const struct jv *loop, const char *name, size_t nlen, struct jv *ret)
{
	const struct jlist *items = loop->u.d->k[0].u.l;
	int64_t i = loop->u.d->v[0].u.i, n = (int64_t)items->n;

	if (is(name, nlen, "index"))
		*ret = jv_int(i + 1);
	else if (is(name, nlen, "index0"))
		*ret = jv_int(i);
	else if (is(name, nlen, "revindex"))
		*ret = jv_int(n - i);
	else if (is(name, nlen, "revindex0"))
		*ret = jv_int(n - i - 1);
	else if (is(name, nlen, "first"))
		*ret = jv_bool(i == 0);
	else if (is(name, nlen, "last"))
		*ret = jv_bool(i + 1 == n);
	else if (is(name, nlen, "length"))
		*ret = jv_int(n);
	else if (is(name, nlen, "depth"))
		*ret = jv_int(1);
	else if (is(name, nlen, "depth0"))
		*ret = jv_int(0);
	else if (is(name, nlen, "previtem"))
		*ret = i > 0 ? jv_ref(&items->v[i - 1]) : jv_undef();
	else if (is(name, nlen, "nextitem"))
		*ret = i + 1 < n ? jv_ref(&items->v[i + 1]) : jv_undef();
	else
		*ret = jv_undef();
	return 0;
}

int jctx_getattr(struct jctx *c, const struct jv *obj, const char *name, size_t nlen, struct jv *ret)
{
	int r;
	if (obj->t == JV_UNDEF)
		return jctx_fail(c, -EINVAL, "'%.*s' is undefined: attribute access on an undefined value",
		                 (int)(nlen > 64 ? 64 : nlen), name);
	if (obj->t == JV_DICT && obj->u.d->kind == JD_LOOP)
		return loop_attr(obj, name, nlen, ret);
	if ((r = jlib_method(obj, name, nlen, ret)) < 0)
		return oom(c, r);
	if (ret->t != JV_UNDEF)
		return 0;
	if (obj->t == JV_DICT) {
		const struct jv *v = jv_dict_get(obj, name, nlen);
		*ret = v ? jv_ref(v) : jv_undef();
		return 0;
	}
	*ret = jv_undef();
	return 0;
}

/* Python index for a list or str position; false when out of range. */
static bool norm_index(int64_t i, size_t n, size_t *ret)
{
	if (i < 0)
		i += (int64_t)n;
	if (i < 0 || (uint64_t)i >= n)
		return false;
	*ret = (size_t)i;
	return true;
}

int jctx_getitem(struct jctx *c, const struct jv *obj, const struct jv *key, struct jv *ret)
{
	size_t idx;
	if (obj->t == JV_UNDEF)
		return jctx_fail(c, -EINVAL, "subscript of an undefined value");
	if (obj->t == JV_DICT) {
		const struct jv *v = jv_dict_getv(obj, key);
		if (v) {
			*ret = jv_ref(v);
			return 0;
		}
	} else if (obj->t == JV_LIST && (key->t == JV_INT || key->t == JV_BOOL)) {
		int64_t i = key->t == JV_INT ? key->u.i : key->u.b;
		if (norm_index(i, obj->u.l->n, &idx)) {
			*ret = jv_ref(&obj->u.l->v[idx]);
			return 0;
		}
	} else if (obj->t == JV_STR && (key->t == JV_INT || key->t == JV_BOOL)) {
		int64_t i = key->t == JV_INT ? key->u.i : key->u.b;
		const char *s = obj->u.s->s;
		size_t len = obj->u.s->len, cnt = ju_count(s, len), pos = 0, k = 0;
		if (norm_index(i, cnt, &idx)) {
			while (k < idx) {
				ju_next(s, len, &pos);
				k++;
			}
			size_t st = pos;
			ju_next(s, len, &pos);
			return oom(c, jv_str(s + st, pos - st, ret));
		}
	}
	if (key->t == JV_STR)
		return jctx_getattr(c, obj, key->u.s->s, key->u.s->len, ret);
	*ret = jv_undef();
	return 0;
}

/* Python's slice.indices() and the slice itself. */
static int do_slice(struct jctx *c, const struct jv *obj, const struct jv *sv[3], struct jv *ret)
{
	int64_t start, stop, stepv = 1, len;
	bool has[3];
	int64_t val[3];
	int r;

	for (int k = 0; k < 3; k++) {
		has[k] = sv[k]->t != JV_NONE && sv[k]->t != JV_UNDEF;
		if (has[k] && sv[k]->t != JV_INT && sv[k]->t != JV_BOOL)
			return jctx_fail(c, -EINVAL, "slice indices must be integers or None");
		val[k] = sv[k]->t == JV_INT ? sv[k]->u.i : sv[k]->t == JV_BOOL ? sv[k]->u.b : 0;
	}
	if (has[2])
		stepv = val[2];
	if (stepv == 0)
		return jctx_fail(c, -EINVAL, "slice step cannot be zero");
	if (obj->t == JV_LIST)
		len = (int64_t)obj->u.l->n;
	else if (obj->t == JV_STR)
		len = (int64_t)ju_count(obj->u.s->s, obj->u.s->len);
	else
		return jctx_fail(c, -EINVAL, "'%s' object is not subscriptable", jv_type_name(obj));
	if (!has[0])
		start = stepv < 0 ? len - 1 : 0;
	else {
		start = val[0];
		if (start < 0)
			start += len;
		if (start < 0)
			start = stepv < 0 ? -1 : 0;
		if (start >= len)
			start = stepv < 0 ? len - 1 : len;
	}
	if (!has[1])
		stop = stepv < 0 ? -1 : len;
	else {
		stop = val[1];
		if (stop < 0)
			stop += len;
		if (stop < 0)
			stop = stepv < 0 ? -1 : 0;
		if (stop >= len)
			stop = stepv < 0 ? len - 1 : len;
	}
	if (obj->t == JV_LIST) {
		if ((r = jv_list_new(0, obj->u.l->tuple, ret)) < 0)
			return oom(c, r);
		for (int64_t i = start; stepv > 0 ? i < stop : i > stop; i += stepv) {
			if ((r = step(c)) < 0 || (r = jv_list_push(ret, jv_ref(&obj->u.l->v[i]))) < 0) {
				jv_unref(ret);
				return oom(c, r);
			}
		}
		return 0;
	}
	/* strings: code point offsets */
	const char *s = obj->u.s->s;
	size_t slen = obj->u.s->len, *off = malloc(((size_t)len + 1) * sizeof(*off)), pos = 0;
	struct rt_buf b = {.max = JINJA_MAX_STR};
	if (!off)
		return oom(c, -ENOMEM);
	for (int64_t i = 0; i < len; i++) {
		off[i] = pos;
		ju_next(s, slen, &pos);
	}
	off[len] = pos;
	r = 0;
	for (int64_t i = start; r == 0 && (stepv > 0 ? i < stop : i > stop); i += stepv)
		r = rt_buf_put(&b, s + off[i], off[i + 1] - off[i]);
	free(off);
	if (r == 0)
		r = jctx_charge(c, b.len);
	if (r == 0)
		r = jv_str_take_buf(&b, ret);
	rt_buf_release(&b);
	return oom(c, r);
}

static void free_vals(struct jv *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		jv_unref(&v[i]);
	free(v);
}

/* Evaluate n's argument list into args[off..]; args[0..off) left for the caller. */
static int eval_args(struct jctx *c, const struct jnode *n, size_t off, struct jv **ret)
{
	struct jv *a = calloc(n->n + off + 1, sizeof(*a));
	int r;
	if (!a)
		return oom(c, -ENOMEM);
	for (size_t i = 0; i < n->n; i++) {
		if ((r = eval(c, n->v[i], &a[off + i])) < 0) {
			free_vals(a, n->n + off);
			return r;
		}
	}
	*ret = a;
	return 0;
}

/* kwnames shifted by off (NULL for the first off slots) */
static char **kwnames_of(const struct jnode *n, size_t off, char **buf, size_t cap)
{
	if (n->n + off > cap)
		return NULL;
	for (size_t i = 0; i < off; i++)
		buf[i] = NULL;
	for (size_t i = 0; i < n->n; i++)
		buf[off + i] = n->names ? n->names[i] : NULL;
	return buf;
}

#define MAX_ARGS 32

int jctx_call_macro(struct jctx *c, const struct jfunc *f, struct jv *args, size_t nargs, char **kwnames,
                    struct jv *ret)
{
	const struct jnode *m = f->macro;
	struct scope sc = {.parent = c->root};
	struct rt_buf b = {.max = JINJA_MAX_STR};
	struct rt_buf *saved_out = c->out;
	struct scope *saved = c->scope;
	int r, saved_brk = c->brk;
	size_t npos = 0;

	if (c->calls >= JINJA_MAX_CALLS)
		return jctx_fail(c, -ELOOP, "macro calls nested deeper than %d", JINJA_MAX_CALLS);
	for (size_t i = 0; i < nargs; i++)
		if (!kwnames[i])
			npos++;
	if (npos > m->n)
		return jctx_fail(c, -EINVAL, "macro '%s' takes not more than %zu argument(s)", m->name, m->n);
	if ((r = jv_dict_new(JD_DICT, &sc.vars)) < 0)
		return oom(c, r);
	c->calls++;
	c->scope = &sc;
	/* positional, then keyword, then defaults (evaluated in the macro's scope) */
	for (size_t i = 0, p = 0; r == 0 && i < nargs; i++)
		if (!kwnames[i])
			r = set_var(c, m->names[p++], jv_ref(&args[i]));
	for (size_t i = 0; r == 0 && i < nargs; i++) {
		if (!kwnames[i])
			continue;
		bool found = false;
		for (size_t k = 0; k < m->n; k++)
			if (!strcmp(m->names[k], kwnames[i]))
				found = true;
		if (!found) {
			r = jctx_fail(c, -EINVAL, "macro '%s' takes no keyword argument '%s'", m->name, kwnames[i]);
			break;
		}
		r = set_var(c, kwnames[i], jv_ref(&args[i]));
	}
	for (size_t k = 0; r == 0 && k < m->n; k++) {
		struct jv d = jv_undef();
		if (jv_dict_get(&sc.vars, m->names[k], strlen(m->names[k])))
			continue;
		if (m->v[k] && (r = eval(c, m->v[k], &d)) < 0)
			break;
		r = set_var(c, m->names[k], d);
	}
	if (r == 0) {
		c->out = &b;
		c->brk = 0;
		r = exec_block(c, m->body);
		c->brk = saved_brk;
		c->out = saved_out;
	}
	c->scope = saved;
	c->calls--;
	jv_unref(&sc.vars);
	if (r == 0)
		r = oom(c, jv_str_take_buf(&b, ret));
	rt_buf_release(&b);
	return r;
}

static int call_value(struct jctx *c, const struct jv *fv, const struct jnode *n, struct jv *ret)
{
	struct jv *args = NULL;
	char *kwbuf[MAX_ARGS], **kw;
	int r;

	if (fv->t != JV_FUNC) {
		if (fv->t == JV_UNDEF)
			return jctx_fail(c, -EINVAL, "call of an undefined value");
		return jctx_fail(c, -EINVAL, "'%s' object is not callable", jv_type_name(fv));
	}
	if (!(kw = kwnames_of(n, 0, kwbuf, MAX_ARGS)))
		return jctx_fail(c, -E2BIG, "too many arguments");
	if ((r = eval_args(c, n, 0, &args)) < 0)
		return r;
	if (fv->u.fn->macro)
		r = jctx_call_macro(c, fv->u.fn, args, n->n, kw, ret);
	else
		r = jlib_call(c, fv->u.fn, args, n->n, kw, ret);
	free_vals(args, n->n);
	return r;
}

static int eval_filter(struct jctx *c, const struct jnode *n, const struct jv *subject, struct jv *ret)
{
	struct jv *args = NULL;
	char *kwbuf[MAX_ARGS], **kw;
	int r;

	if (!(kw = kwnames_of(n, 1, kwbuf, MAX_ARGS)))
		return jctx_fail(c, -E2BIG, "too many arguments");
	if ((r = eval_args(c, n, 1, &args)) < 0)
		return r;
	args[0] = jv_ref(subject);
	r = jlib_filter(c, n->name, args, n->n + 1, kw, ret);
	free_vals(args, n->n + 1);
	return r;
}

static int eval(struct jctx *c, const struct jnode *n, struct jv *ret)
{
	struct jv a = jv_undef(), b = jv_undef();
	int r;

	if ((r = enter(c)) < 0)
		return r;
	switch (n->kind) {
	case E_LIT: *ret = jv_ref(&n->lit); break;
	case E_NAME: {
		const struct jv *v = lookup(c, n->name);
		if (v)
			*ret = jv_ref(v);
		else if ((r = jlib_global(n->name, ret)) < 0)
			r = oom(c, r);
		break;
	}
	case E_ATTR:
		if ((r = eval(c, n->a, &a)) == 0)
			r = jctx_getattr(c, &a, n->name, strlen(n->name), ret);
		break;
	case E_ITEM:
		if ((r = eval(c, n->a, &a)) == 0 && (r = eval(c, n->b, &b)) == 0)
			r = jctx_getitem(c, &a, &b, ret);
		break;
	case E_SLICE: {
		struct jv sv[3] = {jv_none(), jv_none(), jv_none()};
		const struct jv *svp[3] = {&sv[0], &sv[1], &sv[2]};
		if ((r = eval(c, n->a, &a)) < 0)
			break;
		for (int k = 0; r == 0 && k < 3; k++)
			if (n->v[k])
				r = eval(c, n->v[k], &sv[k]);
		if (r == 0)
			r = do_slice(c, &a, svp, ret);
		for (int k = 0; k < 3; k++)
			jv_unref(&sv[k]);
		break;
	}
	case E_CALL:
		if ((r = eval(c, n->a, &a)) == 0)
			r = call_value(c, &a, n, ret);
		break;
	case E_FILTER:
		if ((r = eval(c, n->a, &a)) == 0)
			r = eval_filter(c, n, &a, ret);
		break;
	case E_TEST: {
		struct jv *args = NULL;
		bool res = false;
		if ((r = eval(c, n->a, &a)) < 0)
			break;
		if ((r = eval_args(c, n, 1, &args)) < 0)
			break;
		args[0] = jv_ref(&a);
		r = jlib_test(c, n->name, args, n->n + 1, &res);
		free_vals(args, n->n + 1);
		if (r == 0)
			*ret = jv_bool(n->op ? !res : res);
		break;
	}
	case E_NOT:
		if ((r = eval(c, n->a, &a)) == 0)
			*ret = jv_bool(!jv_truthy(&a));
		break;
	case E_NEG:
	case E_POS:
		if ((r = eval(c, n->a, &a)) < 0)
			break;
		if (a.t == JV_INT || a.t == JV_BOOL) {
			int64_t i = a.t == JV_INT ? a.u.i : a.u.b;
			if (n->kind == E_NEG && i == INT64_MIN)
				r = jctx_fail(c, -ERANGE, "integer overflow");
			*ret = jv_int(n->kind == E_NEG ? -i : i);
		} else if (a.t == JV_FLOAT) {
			*ret = jv_float(n->kind == E_NEG ? -a.u.f : a.u.f);
		} else {
			r = jctx_fail(c, -EINVAL, "bad operand type for unary %c: '%s'", n->kind == E_NEG ? '-' : '+',
			              jv_type_name(&a));
		}
		break;
	case E_BIN:
		if ((r = eval(c, n->a, &a)) == 0 && (r = eval(c, n->b, &b)) == 0)
			r = jlib_binop(c, n->op, &a, &b, ret);
		break;
	case E_AND:
	case E_OR:
		if ((r = eval(c, n->a, &a)) < 0)
			break;
		if (jv_truthy(&a) == (n->kind == E_OR)) {
			*ret = a;
			a = jv_undef();
		} else {
			r = eval(c, n->b, ret);
		}
		break;
	case E_COND:
		if ((r = eval(c, n->a, &a)) < 0)
			break;
		if (jv_truthy(&a))
			r = eval(c, n->b, ret);
		else if (n->c)
			r = eval(c, n->c, ret);
		else
			*ret = jv_undef();
		break;
	case E_LIST:
	case E_TUPLE:
		if ((r = jv_list_new(n->n, n->kind == E_TUPLE, &a)) < 0) {
			r = oom(c, r);
			break;
		}
		for (size_t i = 0; r == 0 && i < n->n; i++) {
			if ((r = eval(c, n->v[i], &b)) == 0)
				r = oom(c, jv_list_push(&a, b));
			b = jv_undef();
		}
		if (r == 0) {
			*ret = a;
			a = jv_undef();
		}
		break;
	case E_DICT:
		if ((r = jv_dict_new(JD_DICT, &a)) < 0) {
			r = oom(c, r);
			break;
		}
		for (size_t i = 0; r == 0 && i + 1 < n->n; i += 2) {
			struct jv k = jv_undef(), v = jv_undef();
			if ((r = eval(c, n->v[i], &k)) == 0 && (r = eval(c, n->v[i + 1], &v)) == 0) {
				if (k.t == JV_LIST && !k.u.l->tuple)
					r = jctx_fail(c, -EINVAL, "unhashable type: 'list'");
				else if (k.t == JV_DICT)
					r = jctx_fail(c, -EINVAL, "unhashable type: 'dict'");
				if (r == 0) {
					r = oom(c, jv_dict_set(&a, k, v));
					k = v = jv_undef();
				}
			}
			jv_unref(&k);
			jv_unref(&v);
		}
		if (r == 0) {
			*ret = a;
			a = jv_undef();
		}
		break;
	default: r = jctx_fail(c, -EINVAL, "template line %d: not an expression", n->line);
	}
	jv_unref(&a);
	jv_unref(&b);
	c->depth--;
	return r;
}

static int output(struct jctx *c, const char *s, size_t n)
{
	int r = rt_buf_put(c->out, s, n);
	if (r == -E2BIG)
		return jctx_fail(c, r, "rendered text is longer than %zu bytes", c->out->max);
	if (r == 0)
		r = jctx_charge(c, n);
	return oom(c, r);
}

/* Bind target (E_NAME or E_TUPLE of names / namespace attributes) to val
 * (taken). */
static int assign(struct jctx *c, const struct jnode *t, struct jv val)
{
	int r = 0;
	if (t->kind == E_NAME)
		return set_var(c, t->name, val);
	if (t->kind == E_ATTR) {
		struct jv ns = jv_undef(), k;
		if ((r = eval(c, t->a, &ns)) < 0) {
			jv_unref(&val);
			return r;
		}
		if (ns.t != JV_DICT || ns.u.d->kind != JD_NAMESPACE) {
			jv_unref(&ns);
			jv_unref(&val);
			return jctx_fail(c, -EINVAL, "cannot assign attribute on non-namespace object");
		}
		if ((r = jv_str(t->name, strlen(t->name), &k)) < 0)
			jv_unref(&val);
		else
			r = jv_dict_set(&ns, k, val);
		jv_unref(&ns);
		return oom(c, r);
	}
	/* tuple unpacking */
	if (val.t == JV_LIST) {
		if (val.u.l->n != t->n) {
			r = jctx_fail(c, -EINVAL, val.u.l->n > t->n ? "too many values to unpack (expected %zu)"
			                                             : "not enough values to unpack (expected %zu)",
			              t->n);
		}
		for (size_t i = 0; r == 0 && i < t->n; i++)
			r = assign(c, t->v[i], jv_ref(&val.u.l->v[i]));
	} else if (val.t == JV_STR && ju_count(val.u.s->s, val.u.s->len) == t->n) {
		size_t pos = 0;
		for (size_t i = 0; r == 0 && i < t->n; i++) {
			size_t st = pos;
			struct jv ch;
			ju_next(val.u.s->s, val.u.s->len, &pos);
			if ((r = oom(c, jv_str(val.u.s->s + st, pos - st, &ch))) == 0)
				r = assign(c, t->v[i], ch);
		}
	} else {
		r = jctx_fail(c, -EINVAL, "cannot unpack non-iterable %s object", jv_type_name(&val));
	}
	jv_unref(&val);
	return r;
}

/* The items a for loop walks: list items, dict keys, string characters. */
static int iter_items(struct jctx *c, const struct jv *v, struct jv *ret)
{
	int r;
	switch (v->t) {
	case JV_UNDEF: return oom(c, jv_list_new(0, false, ret));
	case JV_LIST: *ret = jv_ref(v); return 0;
	case JV_DICT:
		if (v->u.d->kind != JD_DICT)
			break;
		if ((r = jv_list_new(v->u.d->n, false, ret)) < 0)
			return oom(c, r);
		for (size_t i = 0; i < v->u.d->n; i++)
			if ((r = jv_list_push(ret, jv_ref(&v->u.d->k[i]))) < 0) {
				jv_unref(ret);
				return oom(c, r);
			}
		return 0;
	case JV_STR: {
		size_t pos = 0;
		const char *s = v->u.s->s;
		if ((r = jv_list_new(0, false, ret)) < 0)
			return oom(c, r);
		while (pos < v->u.s->len) {
			size_t st = pos;
			struct jv ch;
			ju_next(s, v->u.s->len, &pos);
			if ((r = step(c)) < 0 || (r = jv_str(s + st, pos - st, &ch)) < 0 ||
			    (r = jv_list_push(ret, ch)) < 0) {
				jv_unref(ret);
				return oom(c, r);
			}
		}
		return 0;
	}
	default: break;
	}
	return jctx_fail(c, -EINVAL, "'%s' object is not iterable", jv_type_name(v));
}

static int exec_for(struct jctx *c, const struct jnode *n)
{
	struct jv src = jv_undef(), items = jv_undef(), sel = jv_undef();
	struct scope sc = {.parent = c->scope};
	struct scope *saved = c->scope;
	int r;

	if ((r = eval(c, n->a, &src)) < 0)
		return r;
	r = iter_items(c, &src, &items);
	jv_unref(&src);
	if (r < 0)
		return r;
	if ((r = jv_dict_new(JD_DICT, &sc.vars)) < 0) {
		jv_unref(&items);
		return oom(c, r);
	}
	c->scope = &sc;
	/* the inline filter decides which items the loop (and loop.length) sees */
	if (n->c) {
		if ((r = oom(c, jv_list_new(0, false, &sel))) == 0) {
			for (size_t i = 0; r == 0 && i < items.u.l->n; i++) {
				struct jv ok = jv_undef();
				if ((r = step(c)) < 0 || (r = assign(c, n->b, jv_ref(&items.u.l->v[i]))) < 0 ||
				    (r = eval(c, n->c, &ok)) < 0)
					break;
				if (jv_truthy(&ok))
					r = oom(c, jv_list_push(&sel, jv_ref(&items.u.l->v[i])));
				jv_unref(&ok);
			}
		}
		jv_unref(&items);
		items = sel;
		/* names bound by the filter do not leak into the loop's scope */
		jv_unref(&sc.vars);
		if (r == 0)
			r = oom(c, jv_dict_new(JD_DICT, &sc.vars));
	}
	size_t len = r == 0 ? items.u.l->n : 0;
	for (size_t i = 0; r == 0 && i < len; i++) {
		struct jv loop;
		const struct jv *it = items.u.l->v;
		if ((r = step(c)) < 0)
			break;
		/* the loop object holds the items and the position; its attributes
		 * are computed on access (jctx_getattr) */
		if ((r = oom(c, jv_dict_new(JD_LOOP, &loop))) < 0)
			break;
		if ((r = oom(c, jv_dict_set(&loop, jv_ref(&items), jv_int((int64_t)i)))) < 0) {
			jv_unref(&loop);
			break;
		}
		if ((r = set_var(c, "loop", loop)) < 0)
			break;
		if ((r = assign(c, n->b, jv_ref(&it[i]))) < 0)
			break;
		r = exec_block(c, n->body);
		if (c->brk == 1) {
			c->brk = 0;
			break;
		}
		c->brk = 0;
	}
	c->scope = saved;
	jv_unref(&sc.vars);
	if (r == 0 && len == 0 && n->orelse)
		r = exec_block(c, n->orelse);
	jv_unref(&items);
	return r;
}

static int exec_stmt(struct jctx *c, const struct jnode *n)
{
	struct jv v = jv_undef();
	int r;

	if ((r = enter(c)) < 0)
		return r;
	switch (n->kind) {
	case N_BLOCK: r = exec_block(c, n); break;
	case N_TEXT: r = output(c, n->lit.u.s->s, n->lit.u.s->len); break;
	case N_OUTPUT: {
		struct rt_buf b = {.max = JINJA_MAX_STR};
		if ((r = eval(c, n->a, &v)) < 0)
			break;
		if (v.t == JV_STR) {
			r = output(c, v.u.s->s, v.u.s->len);
			break;
		}
		r = jv_to_str(&v, &b);
		if (r == -ELOOP)
			r = jctx_fail(c, r, "value nested too deeply to print");
		if (r == 0)
			r = output(c, b.p ? b.p : "", b.len);
		rt_buf_release(&b);
		r = oom(c, r);
		break;
	}
	case N_IF:
		if ((r = eval(c, n->a, &v)) < 0)
			break;
		if (jv_truthy(&v))
			r = exec_block(c, n->body);
		else if (n->orelse)
			r = n->orelse->kind == N_IF ? exec_stmt(c, n->orelse) : exec_block(c, n->orelse);
		break;
	case N_FOR: r = exec_for(c, n); break;
	case N_SET:
		if ((r = eval(c, n->a, &v)) == 0) {
			r = assign(c, n->b, v);
			v = jv_undef();
		}
		break;
	case N_SETBLOCK: {
		struct rt_buf b = {.max = JINJA_MAX_STR};
		struct rt_buf *saved = c->out;
		c->out = &b;
		r = exec_block(c, n->body);
		c->out = saved;
		if (r == 0 && (r = oom(c, jv_str_take_buf(&b, &v))) == 0) {
			r = assign(c, n->b, v);
			v = jv_undef();
		}
		rt_buf_release(&b);
		break;
	}
	case N_MACRO: {
		struct jfunc *f = calloc(1, sizeof(*f));
		if (!f) {
			r = oom(c, -ENOMEM);
			break;
		}
		f->h.refs = 1;
		f->macro = n;
		snprintf(f->name, sizeof(f->name), "%s", n->name);
		v.t = JV_FUNC;
		v.u.fn = f;
		r = set_var(c, n->name, v);
		v = jv_undef();
		break;
	}
	case N_BREAK: c->brk = 1; break;
	case N_CONTINUE: c->brk = 2; break;
	case N_FILTERBLOCK: {
		struct rt_buf b = {.max = JINJA_MAX_STR};
		struct rt_buf *saved = c->out;
		struct jv body = jv_undef();
		const struct jnode *chain[JINJA_MAX_NEST + 1];
		size_t nc = 0;
		c->out = &b;
		r = exec_block(c, n->body);
		c->out = saved;
		if (r == 0)
			r = oom(c, jv_str_take_buf(&b, &body));
		rt_buf_release(&b);
		if (r < 0)
			break;
		for (const struct jnode *f = n->a; f && f->kind == E_FILTER && nc <= JINJA_MAX_NEST; f = f->a)
			chain[nc++] = f;
		while (r == 0 && nc > 0) {
			r = eval_filter(c, chain[--nc], &body, &v);
			jv_unref(&body);
			body = v;
			v = jv_undef();
		}
		if (r == 0) {
			struct rt_buf s = {.max = JINJA_MAX_STR};
			r = oom(c, jv_to_str(&body, &s));
			if (r == 0)
				r = output(c, s.p ? s.p : "", s.len);
			rt_buf_release(&s);
		}
		jv_unref(&body);
		break;
	}
	default: r = jctx_fail(c, -EINVAL, "template line %d: not a statement", n->line);
	}
	jv_unref(&v);
	c->depth--;
	return r;
}

static int exec_block(struct jctx *c, const struct jnode *n)
{
	int r = 0;
	if (n->kind != N_BLOCK)
		return exec_stmt(c, n);
	for (size_t i = 0; r == 0 && i < n->n && !c->brk; i++)
		r = exec_stmt(c, n->v[i]);
	return r;
}

int jinja_render(const struct jnode *tree, const struct jv *globals, char **ret_text, size_t *ret_len,
                 struct jerr *e)
{
	struct rt_buf out = {.max = JINJA_MAX_OUTPUT};
	struct scope root = {0};
	struct jctx c = {.e = e, .out = &out, .globals = globals};
	int r;

	if ((r = jv_dict_new(JD_DICT, &root.vars)) < 0 || (r = jv_list_new(0, false, &c.nss)) < 0) {
		jv_unref(&root.vars);
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		return -ENOMEM;
	}
	c.scope = c.root = &root;
	r = exec_block(&c, tree);
	/* break namespace cycles: empty each one while all are still held */
	for (size_t i = 0; i < c.nss.u.l->n; i++) {
		struct jdict *d = c.nss.u.l->v[i].u.d;
		for (size_t k = 0; k < d->n; k++) {
			jv_unref(&d->k[k]);
			jv_unref(&d->v[k]);
		}
		d->n = 0;
	}
	jv_unref(&c.nss);
	jv_unref(&root.vars);
	if (r < 0) {
		if (!e->msg[0])
			snprintf(e->msg, sizeof(e->msg), "template failed (%d)", r);
		rt_buf_release(&out);
		return r;
	}
	if (!out.p && rt_buf_put(&out, "", 0) < 0) {
		snprintf(e->msg, sizeof(e->msg), "out of memory");
		return -ENOMEM;
	}
	*ret_text = out.p;
	*ret_len = out.len;
	return 0;
}
