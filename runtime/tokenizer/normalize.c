/* SPDX-License-Identifier: Apache-2.0 */
/* Normalizers: NFC, NFKC, Prepend, Replace. */

#include "tok.h"

static int normalizer_step(struct rt_tokenizer *t, json_t *n, const char *type, struct rt_error *err)
{
	struct norm *x = &t->norms[t->n_norms];
	if (!strcmp(type, "NFC")) {
		x->kind = N_NFC;
	} else if (!strcmp(type, "NFKC")) {
		x->kind = N_NFKC;
	} else if (!strcmp(type, "Prepend")) {
		x->kind = N_PREPEND;
		if (!(x->a = tok_dup_str(json_object_get(n, "prepend"))))
			return BAD("%s: Prepend normalizer without 'prepend'", t->path);
	} else if (!strcmp(type, "Replace")) {
		int r;
		x->kind = N_REPLACE;
		if ((r = tok_replace_args(t, n, "normalizer", &x->a, &x->b, err)) < 0) {
			if (x->a || x->b)
				t->n_norms++; /* freed with the tokenizer */
			return r;
		}
	} else {
		return UNSUP("%s: normalizer '%.40s' not supported", t->path, type);
	}
	t->n_norms++;
	return 0;
}

static int n_normalizer_steps(const struct rt_tokenizer *t)
{
	return t->n_norms;
}

const struct tok_stage tok_normalizers = {"normalizer", "normalizers", "normalizers", n_normalizer_steps,
                                          normalizer_step};

int tok_normalize(const struct rt_tokenizer *t, struct rt_buf *s)
{
	for (int i = 0; i < t->n_norms; i++) {
		const struct norm *x = &t->norms[i];
		struct rt_buf o = {0};
		int r = 0;
		if (s->len == 0)
			return 0;
		switch (x->kind) {
		case N_NFC:
		case N_NFKC: {
			utf8proc_uint8_t *res = NULL;
			utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s->p, s->len, &res,
			                                  UTF8PROC_STABLE | UTF8PROC_COMPOSE |
			                                      (x->kind == N_NFKC ? UTF8PROC_COMPAT : 0));
			if (n < 0)
				return n == UTF8PROC_ERROR_NOMEM ? -ENOMEM : -EILSEQ;
			r = rt_buf_put(&o, res, n);
			free(res);
			break;
		}
		case N_PREPEND:
			r = rt_buf_put(&o, x->a, strlen(x->a));
			if (r == 0)
				r = rt_buf_put(&o, s->p, s->len);
			break;
		case N_REPLACE: {
			size_t an = strlen(x->a), bn = strlen(x->b);
			for (size_t k = 0; k < s->len && r == 0;) {
				if (k + an <= s->len && !memcmp(s->p + k, x->a, an)) {
					r = rt_buf_put(&o, x->b, bn);
					k += an;
				} else {
					r = rt_buf_put(&o, s->p + k, 1);
					k++;
				}
			}
			if (r == 0 && o.len == 0)
				r = rt_buf_put(&o, "", 0);
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
