/* SPDX-License-Identifier: Apache-2.0 */
/* Pieces, id lists, patterns and UTF-8 checks the tokenizer stages share. */

#include "tok.h"
#include <stdio.h>

void tok_plist_clear(struct plist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].s);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int tok_plist_add(struct plist *l, const char *s, size_t n, size_t off)
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

int tok_ids_add(struct ids *o, int32_t id)
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

int tok_compile_re(struct rt_tokenizer *t, const char *pat, size_t n, pcre2_code **ret, struct rt_error *err)
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

char *tok_dup_str(json_t *v)
{
	const char *s = json_string_value(v);
	return s ? strndup(s, json_string_length(v)) : NULL;
}

/* "pattern": {"String": "x"} or {"Regex": "..."}; String only when !regex_ok */
int tok_get_pattern(struct rt_tokenizer *t, json_t *pat, bool *is_regex, const char **ret, size_t *ret_n,
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

int tok_prepend_scheme(json_t *n)
{
	const char *s = json_string_value(json_object_get(n, "prepend_scheme"));
	json_t *aps = json_object_get(n, "add_prefix_space");
	if (s)
		return !strcmp(s, "never") ? 0 : !strcmp(s, "first") ? 1 : !strcmp(s, "always") ? 2 : -1;
	/* older files: add_prefix_space true meant "always" */
	return json_is_false(aps) ? 0 : 2;
}

bool tok_valid_utf8(const char *s, size_t n)
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

int tok_replace_in(struct piece *p, const char *a, const char *b)
{
	struct rt_buf o = {0};
	size_t an = strlen(a), bn = strlen(b);
	int r = rt_buf_put(&o, "", 0);
	for (size_t k = 0; k < p->n && r == 0;) {
		if (k + an <= p->n && !memcmp(p->s + k, a, an)) {
			r = rt_buf_put(&o, b, bn);
			k += an;
		} else {
			r = rt_buf_put(&o, p->s + k, 1);
			k++;
		}
	}
	if (r < 0) {
		free(o.p);
		return r;
	}
	free(p->s);
	p->s = o.p;
	p->n = o.len;
	return 0;
}

int tok_replace_args(struct rt_tokenizer *t, json_t *n, const char *what, char **ret_a, char **ret_b,
                     struct rt_error *err)
{
	bool rx;
	const char *p;
	size_t pn;
	int r = tok_get_pattern(t, json_object_get(n, "pattern"), &rx, &p, &pn, err);
	if (r < 0)
		return r;
	if (rx || pn == 0)
		return UNSUP("%s: Replace %s with a regex or empty pattern not supported", t->path, what);
	*ret_a = strndup(p, pn);
	*ret_b = tok_dup_str(json_object_get(n, "content"));
	if (!*ret_a || !*ret_b)
		return BAD("%s: Replace %s without content", t->path, what);
	return 0;
}
