/* SPDX-License-Identifier: Apache-2.0 */
/* Jinja parser: tokens -> tree, following jinja2's parser.py precedence:
 * cond (a if b else c) < or < and < not < comparisons (==, !=, <, >, <=,
 * >=, in, not in) < + - < ~ < * / // % < ** < unary - + < postfix (.x,
 * [i], [a:b:c], call) < filters (|f) and tests (is [not] t).
 * Statements: if/elif/else, for (targets, inline if, else), set (name,
 * namespace attribute, tuple, block form), macro, break/continue, filter
 * blocks, and transformers' {% generation %} marker (rendered as its body). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

struct parser {
	const struct jtoks *t;
	size_t i;
	int nest;
	struct jerr *e;
};

static const struct jtok *cur(struct parser *p)
{
	return &p->t->v[p->i];
}

static const struct jtok *peek(struct parser *p, size_t k)
{
	size_t j = p->i + k;
	return j < p->t->n ? &p->t->v[j] : &p->t->v[p->t->n - 1];
}

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int k = snprintf(p->e->msg, sizeof(p->e->msg), "template line %d: ", cur(p)->line);
	va_start(ap, fmt);
	if (k > 0 && (size_t)k < sizeof(p->e->msg))
		vsnprintf(p->e->msg + k, sizeof(p->e->msg) - (size_t)k, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool is_op(const struct jtok *t, const char *op)
{
	return t->kind == T_OP && t->len == strlen(op) && !memcmp(t->p, op, t->len);
}

static bool is_name(const struct jtok *t, const char *name)
{
	return t->kind == T_NAME && t->len == strlen(name) && !memcmp(t->p, name, t->len);
}

static bool accept_op(struct parser *p, const char *op)
{
	if (is_op(cur(p), op)) {
		p->i++;
		return true;
	}
	return false;
}

static bool accept_name(struct parser *p, const char *name)
{
	if (is_name(cur(p), name)) {
		p->i++;
		return true;
	}
	return false;
}

static int expect_op(struct parser *p, const char *op)
{
	if (accept_op(p, op))
		return 0;
	return perr(p, "expected '%s'", op);
}

static struct jnode *node(struct parser *p, int kind)
{
	struct jnode *n = calloc(1, sizeof(*n));
	if (n) {
		n->kind = (uint8_t)kind;
		n->line = cur(p)->line;
	}
	return n;
}

void jinja_node_free(struct jnode *n)
{
	/* the tree is at most JINJA_MAX_NEST * a few levels deep */
	if (!n)
		return;
	jv_free_immortal(&n->lit);
	free(n->name);
	jinja_node_free(n->a);
	jinja_node_free(n->b);
	jinja_node_free(n->c);
	jinja_node_free(n->body);
	jinja_node_free(n->orelse);
	for (size_t i = 0; i < n->n; i++) {
		jinja_node_free(n->v[i]);
		if (n->names)
			free(n->names[i]);
	}
	free(n->v);
	free(n->names);
	free(n);
}

/* Append child (may be NULL, e.g. a missing default) and its name. */
static int add(struct jnode *n, struct jnode *child, const char *name, size_t nlen)
{
	if (n->n == n->cap) {
		size_t nc = n->cap ? n->cap * 2 : 4;
		struct jnode **nv = realloc(n->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		n->v = nv;
		char **nn = realloc(n->names, nc * sizeof(*nn));
		if (!nn)
			return -ENOMEM;
		n->names = nn;
		n->cap = nc;
	}
	n->names[n->n] = NULL;
	if (name && !(n->names[n->n] = strndup(name, nlen)))
		return -ENOMEM;
	n->v[n->n++] = child;
	return 0;
}

static char *tok_name(const struct jtok *t)
{
	return strndup(t->p, t->len);
}

static int parse_expr(struct parser *p, struct jnode **ret);
static int parse_unary(struct parser *p, bool with_filter, struct jnode **ret);

static int enter(struct parser *p)
{
	if (++p->nest > JINJA_MAX_NEST)
		return perr(p, "expressions or blocks nested deeper than %d", JINJA_MAX_NEST);
	return 0;
}

/* Arguments of a call, filter or test after "(": positional and name=value. */
static int parse_args(struct parser *p, struct jnode *n)
{
	int r;
	while (!accept_op(p, ")")) {
		struct jnode *a = NULL;
		const char *kw = NULL;
		size_t kwlen = 0;
		if (n->n > 0 && (r = expect_op(p, ",")) < 0)
			return r;
		if (accept_op(p, ")"))
			break;
		if (cur(p)->kind == T_NAME && is_op(peek(p, 1), "=")) {
			kw = cur(p)->p;
			kwlen = cur(p)->len;
			p->i += 2;
		} else if (n->n > 0 && n->names[n->n - 1]) {
			return perr(p, "positional argument after keyword argument");
		}
		if ((r = parse_expr(p, &a)) < 0)
			return r;
		if ((r = add(n, a, kw, kwlen)) < 0) {
			jinja_node_free(a);
			return r;
		}
	}
	return 0;
}

static int parse_primary(struct parser *p, struct jnode **ret)
{
	const struct jtok *t = cur(p);
	struct jnode *n = NULL;
	int r = 0;

	if ((r = enter(p)) < 0)
		return r;
	if (t->kind == T_NAME) {
		n = node(p, E_LIT);
		if (!n)
			return -ENOMEM;
		if (is_name(t, "true") || is_name(t, "True"))
			n->lit = jv_bool(true);
		else if (is_name(t, "false") || is_name(t, "False"))
			n->lit = jv_bool(false);
		else if (is_name(t, "none") || is_name(t, "None"))
			n->lit = jv_none();
		else {
			n->kind = E_NAME;
			if (!(n->name = tok_name(t)))
				r = -ENOMEM;
		}
		p->i++;
	} else if (t->kind == T_STRING) {
		/* adjacent literals concatenate */
		struct rt_buf b = {0};
		while (r == 0 && cur(p)->kind == T_STRING) {
			r = rt_buf_put(&b, cur(p)->str, cur(p)->len);
			p->i++;
		}
		if (r == 0 && !(n = node(p, E_LIT)))
			r = -ENOMEM;
		if (r == 0)
			r = jv_str_take_buf(&b, &n->lit);
		rt_buf_release(&b);
	} else if (t->kind == T_INT || t->kind == T_FLOAT) {
		if (!(n = node(p, E_LIT)))
			return -ENOMEM;
		n->lit = t->kind == T_INT ? jv_int(t->i) : jv_float(t->f);
		p->i++;
	} else if (is_op(t, "(")) {
		p->i++;
		if (accept_op(p, ")")) {
			if (!(n = node(p, E_TUPLE)))
				return -ENOMEM;
		} else {
			struct jnode *first = NULL;
			if ((r = parse_expr(p, &first)) < 0)
				return r;
			if (is_op(cur(p), ",")) {
				if (!(n = node(p, E_TUPLE)) || add(n, first, NULL, 0) < 0) {
					jinja_node_free(first);
					jinja_node_free(n);
					return -ENOMEM;
				}
				while (accept_op(p, ",")) {
					struct jnode *x = NULL;
					if (is_op(cur(p), ")"))
						break;
					if ((r = parse_expr(p, &x)) < 0)
						break;
					if ((r = add(n, x, NULL, 0)) < 0) {
						jinja_node_free(x);
						break;
					}
				}
			} else {
				n = first;
			}
			if (r == 0)
				r = expect_op(p, ")");
		}
	} else if (is_op(t, "[")) {
		p->i++;
		if (!(n = node(p, E_LIST)))
			return -ENOMEM;
		while (r == 0 && !accept_op(p, "]")) {
			struct jnode *x = NULL;
			if (n->n > 0 && (r = expect_op(p, ",")) < 0)
				break;
			if (accept_op(p, "]"))
				break;
			if ((r = parse_expr(p, &x)) < 0)
				break;
			if ((r = add(n, x, NULL, 0)) < 0)
				jinja_node_free(x);
		}
	} else if (is_op(t, "{")) {
		p->i++;
		if (!(n = node(p, E_DICT)))
			return -ENOMEM;
		while (r == 0 && !accept_op(p, "}")) {
			struct jnode *k = NULL, *v = NULL;
			if (n->n > 0 && (r = expect_op(p, ",")) < 0)
				break;
			if (accept_op(p, "}"))
				break;
			if ((r = parse_expr(p, &k)) < 0)
				break;
			if ((r = add(n, k, NULL, 0)) < 0) {
				jinja_node_free(k);
				break;
			}
			if ((r = expect_op(p, ":")) < 0)
				break;
			if ((r = parse_expr(p, &v)) < 0)
				break;
			if ((r = add(n, v, NULL, 0)) < 0)
				jinja_node_free(v);
		}
	} else {
		return perr(p, "unexpected %s", t->kind == T_EOF ? "end of template" : "token");
	}
	if (r < 0) {
		jinja_node_free(n);
		return r;
	}
	p->nest--;
	*ret = n;
	return 0;
}

static int parse_postfix(struct parser *p, struct jnode **io)
{
	int r;
	for (;;) {
		struct jnode *n;
		if (is_op(cur(p), ".")) {
			p->i++;
			if (cur(p)->kind == T_NAME) {
				if (!(n = node(p, E_ATTR)) || !(n->name = tok_name(cur(p)))) {
					jinja_node_free(n);
					return -ENOMEM;
				}
			} else if (cur(p)->kind == T_INT) {
				if (!(n = node(p, E_ITEM)) || !(n->b = node(p, E_LIT))) {
					jinja_node_free(n);
					return -ENOMEM;
				}
				n->b->lit = jv_int(cur(p)->i);
			} else {
				return perr(p, "expected a name after '.'");
			}
			p->i++;
			n->a = *io;
			*io = n;
		} else if (is_op(cur(p), "[")) {
			struct jnode *parts[3] = {NULL, NULL, NULL};
			int k = 0;
			n = NULL;
			bool slice = false;
			p->i++;
			if ((r = enter(p)) < 0)
				return r;
			for (;;) {
				if (is_op(cur(p), ":")) {
					slice = true;
					if (++k > 2) {
						r = perr(p, "bad slice");
						break;
					}
					p->i++;
					continue;
				}
				if (is_op(cur(p), "]"))
					break;
				if (parts[k]) {
					r = perr(p, "expected ']'");
					break;
				}
				if ((r = parse_expr(p, &parts[k])) < 0)
					break;
			}
			if (r == 0 && !slice && !parts[0])
				r = perr(p, "empty subscript");
			if (r == 0)
				r = expect_op(p, "]");
			if (r == 0 && !(n = node(p, slice ? E_SLICE : E_ITEM)))
				r = -ENOMEM;
			if (r == 0 && slice)
				for (int j = 0; j < 3 && r == 0; j++)
					if ((r = add(n, parts[j], NULL, 0)) == 0)
						parts[j] = NULL;
			if (r < 0) {
				for (int j = 0; j < 3; j++)
					jinja_node_free(parts[j]);
				return r;
			}
			if (!slice)
				n->b = parts[0];
			n->a = *io;
			*io = n;
			p->nest--;
		} else if (is_op(cur(p), "(")) {
			p->i++;
			if ((r = enter(p)) < 0)
				return r;
			if (!(n = node(p, E_CALL)))
				return -ENOMEM;
			n->a = *io;
			*io = n;
			if ((r = parse_args(p, n)) < 0)
				return r;
			p->nest--;
		} else {
			return 0;
		}
	}
}

static int parse_filter_expr(struct parser *p, struct jnode **io)
{
	int r;
	for (;;) {
		if (is_op(cur(p), "|")) {
			struct jnode *n;
			p->i++;
			if (cur(p)->kind != T_NAME)
				return perr(p, "expected a filter name");
			if (!(n = node(p, E_FILTER)))
				return -ENOMEM;
			n->a = *io;
			*io = n;
			if (!(n->name = tok_name(cur(p))))
				return -ENOMEM;
			p->i++;
			while (accept_op(p, ".")) { /* dotted filter names */
				return perr(p, "unknown filter");
			}
			if (accept_op(p, "(")) {
				if ((r = enter(p)) < 0 || (r = parse_args(p, n)) < 0)
					return r;
				p->nest--;
			}
		} else if (is_name(cur(p), "is")) {
			struct jnode *n;
			p->i++;
			if (!(n = node(p, E_TEST)))
				return -ENOMEM;
			n->a = *io;
			*io = n;
			if (accept_name(p, "not"))
				n->op = 1;
			if (cur(p)->kind != T_NAME)
				return perr(p, "expected a test name");
			if (!(n->name = tok_name(cur(p))))
				return -ENOMEM;
			p->i++;
			if (accept_op(p, "(")) {
				if ((r = enter(p)) < 0 || (r = parse_args(p, n)) < 0)
					return r;
				p->nest--;
			} else {
				const struct jtok *t = cur(p);
				if ((t->kind == T_NAME && !is_name(t, "else") && !is_name(t, "or") &&
				     !is_name(t, "and") && !is_name(t, "is") && !is_name(t, "if") && !is_name(t, "in") &&
				     !is_name(t, "not")) ||
				    t->kind == T_STRING || t->kind == T_INT || t->kind == T_FLOAT || is_op(t, "[") ||
				    is_op(t, "{")) {
					struct jnode *arg = NULL;
					if ((r = parse_primary(p, &arg)) < 0)
						return r;
					if ((r = parse_postfix(p, &arg)) < 0 || (r = add(n, arg, NULL, 0)) < 0) {
						jinja_node_free(arg);
						return r;
					}
				}
			}
		} else if (is_op(cur(p), "(")) {
			/* a call on a filtered value: (x|f)(...) */
			return parse_postfix(p, io);
		} else {
			return 0;
		}
	}
}

static int parse_unary(struct parser *p, bool with_filter, struct jnode **ret)
{
	struct jnode *n = NULL;
	int r;

	if ((r = enter(p)) < 0)
		return r;
	if (is_op(cur(p), "-") || is_op(cur(p), "+")) {
		bool neg = is_op(cur(p), "-");
		p->i++;
		if (!(n = node(p, neg ? E_NEG : E_POS)))
			return -ENOMEM;
		if ((r = parse_unary(p, false, &n->a)) < 0) {
			jinja_node_free(n);
			return r;
		}
	} else if ((r = parse_primary(p, &n)) < 0) {
		return r;
	}
	if ((r = parse_postfix(p, &n)) < 0 || (with_filter && (r = parse_filter_expr(p, &n)) < 0)) {
		jinja_node_free(n);
		return r;
	}
	p->nest--;
	*ret = n;
	return 0;
}

static int binary(struct parser *p, int kind, int op, struct jnode *a, struct jnode *b, struct jnode **ret)
{
	struct jnode *n = node(p, kind);
	if (!n) {
		jinja_node_free(a);
		jinja_node_free(b);
		return -ENOMEM;
	}
	n->op = (uint8_t)op;
	n->a = a;
	n->b = b;
	*ret = n;
	return 0;
}

/* One left-associative precedence level: operands from next, joined by
 * any of ops (operator tokens, or keywords for and/or). */
struct binop {
	const char *tok; /* NULL ends the list */
	int kind, op;
};

struct binlevel {
	int (*next)(struct parser *p, struct jnode **ret);
	bool keywords;
	struct binop ops[5];
};

static int parse_left(struct parser *p, const struct binlevel *L, struct jnode **ret)
{
	struct jnode *a = NULL, *b = NULL;
	int r = L->next(p, &a);
	while (r == 0) {
		const struct binop *o = L->ops;
		while (o->tok && !(L->keywords ? accept_name(p, o->tok) : accept_op(p, o->tok)))
			o++;
		if (!o->tok)
			break;
		if ((r = L->next(p, &b)) < 0)
			break;
		if ((r = binary(p, o->kind, o->op, a, b, &a)) < 0)
			return r;
	}
	if (r < 0) {
		jinja_node_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

static int parse_unary_filtered(struct parser *p, struct jnode **ret)
{
	return parse_unary(p, true, ret);
}

static int parse_pow(struct parser *p, struct jnode **ret)
{
	static const struct binlevel L = {parse_unary_filtered, false, {{"**", E_BIN, JOP_POW}, {0}}};
	return parse_left(p, &L, ret);
}

static int parse_math2(struct parser *p, struct jnode **ret)
{
	static const struct binlevel L = {parse_pow, false,
	                                  {{"*", E_BIN, JOP_MUL},
	                                   {"/", E_BIN, JOP_DIV},
	                                   {"//", E_BIN, JOP_FLOORDIV},
	                                   {"%", E_BIN, JOP_MOD},
	                                   {0}}};
	return parse_left(p, &L, ret);
}

static int parse_concat(struct parser *p, struct jnode **ret)
{
	static const struct binlevel L = {parse_math2, false, {{"~", E_BIN, JOP_CONCAT}, {0}}};
	return parse_left(p, &L, ret);
}

static int parse_math1(struct parser *p, struct jnode **ret)
{
	static const struct binlevel L = {parse_concat, false, {{"+", E_BIN, JOP_ADD}, {"-", E_BIN, JOP_SUB}, {0}}};
	return parse_left(p, &L, ret);
}

/* Chained comparisons a < b < c become (a < b) and (b < c); the middle
 * operand is evaluated twice, harmless as expressions have no side effects
 * other than raise_exception. */
static int parse_compare(struct parser *p, struct jnode **ret)
{
	struct jnode *a = NULL, *result = NULL;
	int r = parse_math1(p, &a);
	for (;;) {
		int op = 0;
		struct jnode *b = NULL, *cmp;
		const struct jtok *t = cur(p);
		if (r < 0)
			break;
		if (is_op(t, "=="))
			op = JOP_EQ;
		else if (is_op(t, "!="))
			op = JOP_NE;
		else if (is_op(t, "<"))
			op = JOP_LT;
		else if (is_op(t, "<="))
			op = JOP_LE;
		else if (is_op(t, ">"))
			op = JOP_GT;
		else if (is_op(t, ">="))
			op = JOP_GE;
		else if (is_name(t, "in"))
			op = JOP_IN;
		else if (is_name(t, "not") && is_name(peek(p, 1), "in"))
			op = JOP_NOTIN, p->i++;
		else
			break;
		p->i++;
		if ((r = parse_math1(p, &b)) < 0)
			break;
		if (!result) {
			if ((r = binary(p, E_BIN, op, a, b, &result)) < 0)
				return r;
			a = NULL;
		} else {
			/* copy of the previous right operand is not possible without a
			 * deep copy; chains beyond one comparison are rare: refuse */
			jinja_node_free(b);
			r = perr(p, "chained comparisons are not supported");
			break;
		}
		(void)cmp;
	}
	if (r < 0) {
		jinja_node_free(a);
		jinja_node_free(result);
		return r;
	}
	*ret = result ? result : a;
	return 0;
}

static int parse_not(struct parser *p, struct jnode **ret)
{
	int r;
	if (is_name(cur(p), "not")) {
		struct jnode *n;
		p->i++;
		if ((r = enter(p)) < 0)
			return r;
		if (!(n = node(p, E_NOT)))
			return -ENOMEM;
		if ((r = parse_not(p, &n->a)) < 0) {
			jinja_node_free(n);
			return r;
		}
		p->nest--;
		*ret = n;
		return 0;
	}
	return parse_compare(p, ret);
}

static int parse_and(struct parser *p, struct jnode **ret)
{
	static const struct binlevel L = {parse_not, true, {{"and", E_AND, 0}, {0}}};
	return parse_left(p, &L, ret);
}

static int parse_or(struct parser *p, struct jnode **ret)
{
	static const struct binlevel L = {parse_and, true, {{"or", E_OR, 0}, {0}}};
	return parse_left(p, &L, ret);
}

/* with_cond false: no "a if b else c" (for loop iterables, where "if"
 * starts the loop filter). */
static int parse_expr_c(struct parser *p, bool with_cond, struct jnode **ret)
{
	struct jnode *a = NULL;
	int r;

	if ((r = enter(p)) < 0)
		return r;
	if ((r = parse_or(p, &a)) < 0)
		return r;
	while (with_cond && is_name(cur(p), "if")) {
		struct jnode *n;
		p->i++;
		if (!(n = node(p, E_COND))) {
			jinja_node_free(a);
			return -ENOMEM;
		}
		n->b = a;
		a = n;
		if ((r = parse_or(p, &n->a)) < 0)
			break;
		if (accept_name(p, "else") && (r = parse_expr_c(p, true, &n->c)) < 0)
			break;
	}
	if (r < 0) {
		jinja_node_free(a);
		return r;
	}
	p->nest--;
	*ret = a;
	return 0;
}

static int parse_expr(struct parser *p, struct jnode **ret)
{
	return parse_expr_c(p, true, ret);
}

/* Assignment target: a name, "ns.attr", or names separated by commas. */
static int parse_target1(struct parser *p, bool allow_attr, struct jnode **ret)
{
	struct jnode *n;
	if (cur(p)->kind != T_NAME)
		return perr(p, "expected a name to assign to");
	if (!(n = node(p, E_NAME)) || !(n->name = tok_name(cur(p)))) {
		jinja_node_free(n);
		return -ENOMEM;
	}
	p->i++;
	if (allow_attr && is_op(cur(p), ".") && peek(p, 1)->kind == T_NAME) {
		struct jnode *at = node(p, E_ATTR);
		if (!at || !(at->name = tok_name(peek(p, 1)))) {
			jinja_node_free(at);
			jinja_node_free(n);
			return -ENOMEM;
		}
		at->a = n;
		n = at;
		p->i += 2;
	}
	*ret = n;
	return 0;
}

static int parse_target(struct parser *p, bool allow_attr, struct jnode **ret)
{
	struct jnode *first = NULL, *tup;
	int r = parse_target1(p, allow_attr, &first);

	if (r < 0)
		return r;
	if (!is_op(cur(p), ",")) {
		*ret = first;
		return 0;
	}
	if (!(tup = node(p, E_TUPLE)) || add(tup, first, NULL, 0) < 0) {
		jinja_node_free(first);
		jinja_node_free(tup);
		return -ENOMEM;
	}
	while (accept_op(p, ",")) {
		struct jnode *x = NULL;
		if (cur(p)->kind != T_NAME)
			break;
		if ((r = parse_target1(p, allow_attr, &x)) < 0 || (r = add(tup, x, NULL, 0)) < 0) {
			jinja_node_free(x);
			jinja_node_free(tup);
			return r;
		}
	}
	*ret = tup;
	return 0;
}

static int expect_block_end(struct parser *p)
{
	if (cur(p)->kind == T_BLOCK_END) {
		p->i++;
		return 0;
	}
	return perr(p, "expected end of statement '%%}'");
}

static int parse_body(struct parser *p, const char *const *ends, struct jnode **ret, int *ret_which);

static int parse_if(struct parser *p, struct jnode **ret)
{
	static const char *const ends[] = {"elif", "else", "endif", NULL};
	struct jnode *n = node(p, N_IF);
	int which, r;

	if (!n)
		return -ENOMEM;
	if ((r = parse_expr(p, &n->a)) < 0 || (r = expect_block_end(p)) < 0 ||
	    (r = parse_body(p, ends, &n->body, &which)) < 0)
		goto fail;
	if (which == 0) {
		if ((r = enter(p)) < 0 || (r = parse_if(p, &n->orelse)) < 0)
			goto fail;
		p->nest--;
		*ret = n;
		return 0;
	}
	if (which == 1) {
		static const char *const ends2[] = {"endif", NULL};
		if ((r = expect_block_end(p)) < 0 || (r = parse_body(p, ends2, &n->orelse, &which)) < 0)
			goto fail;
	}
	if ((r = expect_block_end(p)) < 0)
		goto fail;
	*ret = n;
	return 0;
fail:
	jinja_node_free(n);
	return r;
}

static int parse_for(struct parser *p, struct jnode **ret)
{
	static const char *const ends[] = {"else", "endfor", NULL};
	struct jnode *n = node(p, N_FOR);
	int which, r;

	if (!n)
		return -ENOMEM;
	if ((r = parse_target(p, false, &n->b)) < 0)
		goto fail;
	if (!accept_name(p, "in")) {
		r = perr(p, "expected 'in'");
		goto fail;
	}
	if ((r = parse_expr_c(p, false, &n->a)) < 0)
		goto fail;
	if (accept_name(p, "if") && (r = parse_expr(p, &n->c)) < 0)
		goto fail;
	if (accept_name(p, "recursive")) {
		r = perr(p, "recursive loops are not supported");
		goto fail;
	}
	if ((r = expect_block_end(p)) < 0 || (r = parse_body(p, ends, &n->body, &which)) < 0)
		goto fail;
	if (which == 0) {
		static const char *const ends2[] = {"endfor", NULL};
		if ((r = expect_block_end(p)) < 0 || (r = parse_body(p, ends2, &n->orelse, &which)) < 0)
			goto fail;
	}
	if ((r = expect_block_end(p)) < 0)
		goto fail;
	*ret = n;
	return 0;
fail:
	jinja_node_free(n);
	return r;
}

static int parse_set(struct parser *p, struct jnode **ret)
{
	struct jnode *n = node(p, N_SET);
	int r;

	if (!n)
		return -ENOMEM;
	if ((r = parse_target(p, true, &n->b)) < 0)
		goto fail;
	if (accept_op(p, "=")) {
		/* the value may be a bare tuple: set a = 1, 2 */
		if ((r = parse_expr(p, &n->a)) < 0)
			goto fail;
		if (is_op(cur(p), ",")) {
			struct jnode *t = node(p, E_TUPLE);
			if (!t || add(t, n->a, NULL, 0) < 0) {
				jinja_node_free(t);
				r = -ENOMEM;
				goto fail;
			}
			n->a = t;
			while (accept_op(p, ",")) {
				struct jnode *x = NULL;
				if (cur(p)->kind == T_BLOCK_END)
					break;
				if ((r = parse_expr(p, &x)) < 0)
					goto fail;
				if ((r = add(t, x, NULL, 0)) < 0) {
					jinja_node_free(x);
					goto fail;
				}
			}
		}
		if ((r = expect_block_end(p)) < 0)
			goto fail;
	} else {
		static const char *const ends[] = {"endset", NULL};
		int which;
		n->kind = N_SETBLOCK;
		if (is_op(cur(p), "|")) {
			r = perr(p, "filtered block set is not supported");
			goto fail;
		}
		if ((r = expect_block_end(p)) < 0 || (r = parse_body(p, ends, &n->body, &which)) < 0 ||
		    (r = expect_block_end(p)) < 0)
			goto fail;
	}
	*ret = n;
	return 0;
fail:
	jinja_node_free(n);
	return r;
}

static int parse_macro(struct parser *p, struct jnode **ret)
{
	static const char *const ends[] = {"endmacro", NULL};
	struct jnode *n = node(p, N_MACRO);
	int which, r = 0;

	if (!n)
		return -ENOMEM;
	if (cur(p)->kind != T_NAME) {
		r = perr(p, "expected a macro name");
		goto fail;
	}
	if (!(n->name = tok_name(cur(p)))) {
		r = -ENOMEM;
		goto fail;
	}
	p->i++;
	if ((r = expect_op(p, "(")) < 0)
		goto fail;
	while (!accept_op(p, ")")) {
		struct jnode *def = NULL;
		const struct jtok *t;
		if (n->n > 0 && (r = expect_op(p, ",")) < 0)
			goto fail;
		t = cur(p);
		if (t->kind != T_NAME) {
			r = perr(p, "expected a parameter name");
			goto fail;
		}
		p->i++;
		if (accept_op(p, "=") && (r = parse_expr(p, &def)) < 0)
			goto fail;
		if ((r = add(n, def, t->p, t->len)) < 0) {
			jinja_node_free(def);
			goto fail;
		}
	}
	if ((r = expect_block_end(p)) < 0 || (r = parse_body(p, ends, &n->body, &which)) < 0)
		goto fail;
	if (cur(p)->kind == T_NAME) /* {% endmacro name %} */
		p->i++;
	if ((r = expect_block_end(p)) < 0)
		goto fail;
	*ret = n;
	return 0;
fail:
	jinja_node_free(n);
	return r;
}

static int parse_filterblock(struct parser *p, struct jnode **ret)
{
	static const char *const ends[] = {"endfilter", NULL};
	struct jnode *n = node(p, N_FILTERBLOCK);
	struct jnode *subj = NULL;
	int which, r;

	if (!n)
		return -ENOMEM;
	/* parse "x|f|g" with a placeholder subject, then cut it off */
	if (!(subj = node(p, E_LIT))) {
		r = -ENOMEM;
		goto fail;
	}
	{
		/* a filter block starts with the filter name itself */
		struct jnode *f;
		if (cur(p)->kind != T_NAME) {
			jinja_node_free(subj);
			r = perr(p, "expected a filter name");
			goto fail;
		}
		if (!(f = node(p, E_FILTER)) || !(f->name = tok_name(cur(p)))) {
			jinja_node_free(f);
			jinja_node_free(subj);
			r = -ENOMEM;
			goto fail;
		}
		p->i++;
		f->a = subj;
		n->a = f;
		if (accept_op(p, "(") && (r = parse_args(p, f)) < 0)
			goto fail;
		if ((r = parse_filter_expr(p, &n->a)) < 0)
			goto fail;
	}
	if ((r = expect_block_end(p)) < 0 || (r = parse_body(p, ends, &n->body, &which)) < 0 ||
	    (r = expect_block_end(p)) < 0)
		goto fail;
	*ret = n;
	return 0;
fail:
	jinja_node_free(n);
	return r;
}

/* Statements until a {% NAME %} with NAME in ends (NULL: until EOF); the
 * parser is left after NAME, before the rest of that tag. */
static int parse_body(struct parser *p, const char *const *ends, struct jnode **ret, int *ret_which)
{
	struct jnode *blk = node(p, N_BLOCK);
	int r = 0;

	if (!blk)
		return -ENOMEM;
	if ((r = enter(p)) < 0)
		goto fail;
	for (;;) {
		const struct jtok *t = cur(p);
		struct jnode *s = NULL;
		if (t->kind == T_EOF) {
			if (ends) {
				int last = 0;
				while (ends[last + 1])
					last++;
				r = perr(p, "missing {%% %s %%}", ends[last]);
				goto fail;
			}
			break;
		}
		if (t->kind == T_TEXT) {
			if (!(s = node(p, N_TEXT)) || (r = jv_str(t->p, t->len, &s->lit)) < 0) {
				jinja_node_free(s);
				r = r ? r : -ENOMEM;
				goto fail;
			}
			p->i++;
		} else if (t->kind == T_VAR_BEGIN) {
			p->i++;
			if (!(s = node(p, N_OUTPUT))) {
				r = -ENOMEM;
				goto fail;
			}
			if ((r = parse_expr(p, &s->a)) < 0) {
				jinja_node_free(s);
				goto fail;
			}
			if (cur(p)->kind != T_VAR_END) {
				jinja_node_free(s);
				r = perr(p, "expected end of print statement '}}'");
				goto fail;
			}
			p->i++;
		} else if (t->kind == T_BLOCK_BEGIN) {
			const struct jtok *kw = peek(p, 1);
			if (kw->kind != T_NAME) {
				p->i++;
				r = perr(p, "expected a statement name");
				goto fail;
			}
			if (ends)
				for (int k = 0; ends[k]; k++)
					if (is_name(kw, ends[k])) {
						p->i += 2;
						*ret_which = k;
						p->nest--;
						*ret = blk;
						return 0;
					}
			p->i += 2;
			if (is_name(kw, "if"))
				r = parse_if(p, &s);
			else if (is_name(kw, "for"))
				r = parse_for(p, &s);
			else if (is_name(kw, "set"))
				r = parse_set(p, &s);
			else if (is_name(kw, "macro"))
				r = parse_macro(p, &s);
			else if (is_name(kw, "filter"))
				r = parse_filterblock(p, &s);
			else if (is_name(kw, "break") || is_name(kw, "continue")) {
				if (!(s = node(p, is_name(kw, "break") ? N_BREAK : N_CONTINUE)))
					r = -ENOMEM;
				else if ((r = expect_block_end(p)) < 0)
					jinja_node_free(s);
			} else if (is_name(kw, "generation")) {
				static const char *const gends[] = {"endgeneration", NULL};
				int w;
				if ((r = expect_block_end(p)) == 0 && (r = parse_body(p, gends, &s, &w)) == 0 &&
				    (r = expect_block_end(p)) < 0) {
					jinja_node_free(s);
					s = NULL;
				}
			} else {
				p->i--;
				r = perr(p, "unsupported or unexpected statement '%.*s'", (int)kw->len, kw->p);
			}
			if (r < 0)
				goto fail;
		} else {
			r = perr(p, "unexpected token");
			goto fail;
		}
		if ((r = add(blk, s, NULL, 0)) < 0) {
			jinja_node_free(s);
			goto fail;
		}
	}
	p->nest--;
	*ret = blk;
	return 0;
fail:
	jinja_node_free(blk);
	return r;
}

static void immortalise(struct jnode *n)
{
	if (!n)
		return;
	jv_make_immortal(&n->lit);
	immortalise(n->a);
	immortalise(n->b);
	immortalise(n->c);
	immortalise(n->body);
	immortalise(n->orelse);
	for (size_t i = 0; i < n->n; i++)
		immortalise(n->v[i]);
}

int jinja_parse(const struct jtoks *t, struct jnode **ret, struct jerr *e)
{
	struct parser p = {.t = t, .e = e};
	int which;
	int r = parse_body(&p, NULL, ret, &which);
	if (r == -ENOMEM)
		snprintf(e->msg, sizeof(e->msg), "out of memory");
	if (r == 0)
		immortalise(*ret); /* renders on several threads share the tree */
	return r;
}
