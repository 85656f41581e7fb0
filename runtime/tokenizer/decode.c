/* SPDX-License-Identifier: Apache-2.0 */
/* Decoders and rt_detokenize(): ByteLevel, Replace, ByteFallback, Fuse,
 * Strip, Metaspace, applied to the token strings in order. */

#include "tok.h"

static int decoder_step(struct rt_tokenizer *t, json_t *n, const char *type, struct rt_error *err)
{
	struct dec *x = &t->decs[t->n_decs];
	memset(x, 0, sizeof(*x));
	if (!strcmp(type, "ByteLevel")) {
		x->kind = D_BYTELEVEL;
	} else if (!strcmp(type, "ByteFallback")) {
		x->kind = D_BYTEFALLBACK;
	} else if (!strcmp(type, "Fuse")) {
		x->kind = D_FUSE;
	} else if (!strcmp(type, "Replace")) {
		x->kind = D_REPLACE;
		int r = tok_replace_args(t, n, "decoder", &x->a, &x->b, err);
		if (r < 0 && !x->a && !x->b)
			return r;
		t->n_decs++; /* what was made is freed with the tokenizer */
		return r;
	} else if (!strcmp(type, "Strip")) {
		json_int_t st = json_integer_value(json_object_get(n, "start"));
		json_int_t sp = json_integer_value(json_object_get(n, "stop"));
		x->kind = D_STRIP;
		x->a = tok_dup_str(json_object_get(n, "content"));
		x->start = st < 0 ? 0 : st > 64 ? 64 : (int)st;
		x->stop = sp < 0 ? 0 : sp > 64 ? 64 : (int)sp;
		t->n_decs++;
		if (!x->a || utf8proc_iterate((const utf8proc_uint8_t *)x->a, -1, &(utf8proc_int32_t){0}) !=
		                 (utf8proc_ssize_t)strlen(x->a))
			return BAD("%s: Strip decoder content must be one character", t->path);
		return 0;
	} else if (!strcmp(type, "Metaspace")) {
		x->kind = D_METASPACE;
		x->a = tok_dup_str(json_object_get(n, "replacement"));
		x->prepend = tok_prepend_scheme(n);
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

static int n_decoder_steps(const struct rt_tokenizer *t)
{
	return t->n_decs;
}

const struct tok_stage tok_decoders = {"decoder", "decoders", "decoders", n_decoder_steps, decoder_step};

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
static int lossy(const char *s, size_t n, struct rt_buf *o)
{
	size_t k = 0;
	while (k < n) {
		unsigned char c = s[k];
		size_t need, j;
		unsigned lo = 0x80, hi = 0xBF;
		if (c < 0x80) {
			if (rt_buf_put(o, s + k, 1) < 0)
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
			if (rt_buf_put(o, "\xEF\xBF\xBD", 3) < 0)
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
			if (rt_buf_put(o, s + k, need + 1) < 0)
				return -ENOMEM;
			k += need + 1;
		} else {
			if (rt_buf_put(o, "\xEF\xBF\xBD", 3) < 0)
				return -ENOMEM;
			k += j;
		}
	}
	return 0;
}

static int set_piece(struct piece *p, struct rt_buf *b)
{
	if (!b->p && rt_buf_put(b, "", 0) < 0)
		return -ENOMEM;
	free(p->s);
	p->s = b->p;
	p->n = b->len;
	*b = (struct rt_buf){0};
	return 0;
}

static int decode_step(const struct rt_tokenizer *t, const struct dec *x, struct plist *l)
{
	int r = 0;
	switch (x->kind) {
	case D_BYTELEVEL: {
		struct rt_buf raw = {0}, o = {0};
		for (size_t i = 0; i < l->n && r == 0; i++) {
			/* a token with any char outside the byte alphabet passes through as UTF-8 */
			struct rt_buf tb = {0};
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
					r = rt_buf_put(&tb, &byte, 1);
				}
				k += cl;
			}
			if (r == 0)
				r = ok ? rt_buf_put(&raw, tb.p ? tb.p : "", tb.len)
				       : rt_buf_put(&raw, l->v[i].s, l->v[i].n);
			free(tb.p);
		}
		if (r == 0)
			r = lossy(raw.p ? raw.p : "", raw.len, &o);
		free(raw.p);
		if (r == 0) {
			tok_plist_clear(l);
			r = tok_plist_add(l, o.p ? o.p : "", o.len, 0);
		}
		free(o.p);
		return r;
	}
	case D_REPLACE:
		for (size_t i = 0; i < l->n && r == 0; i++)
			r = tok_replace_in(&l->v[i], x->a, x->b);
		return r;
	case D_BYTEFALLBACK: {
		struct plist out = {0};
		struct rt_buf bytes = {0};
		size_t nb = 0;
		for (size_t i = 0; i <= l->n && r == 0; i++) {
			int b = i < l->n ? byte_token(l->v[i].s, l->v[i].n) : -1;
			if (b >= 0) {
				char c = (char)b;
				r = rt_buf_put(&bytes, &c, 1);
				nb++;
				continue;
			}
			if (nb) {
				if (tok_valid_utf8(bytes.p, bytes.len))
					r = tok_plist_add(&out, bytes.p, bytes.len, 0);
				else
					for (size_t k = 0; k < nb && r == 0; k++)
						r = tok_plist_add(&out, "\xEF\xBF\xBD", 3, 0);
				bytes.len = 0;
				nb = 0;
			}
			if (r == 0 && i < l->n)
				r = tok_plist_add(&out, l->v[i].s, l->v[i].n, 0);
		}
		free(bytes.p);
		if (r < 0) {
			tok_plist_clear(&out);
			return r;
		}
		tok_plist_clear(l);
		*l = out;
		return 0;
	}
	case D_FUSE: {
		struct rt_buf o = {0};
		for (size_t i = 0; i < l->n && r == 0; i++)
			r = rt_buf_put(&o, l->v[i].s, l->v[i].n);
		if (r == 0) {
			tok_plist_clear(l);
			r = tok_plist_add(l, o.p ? o.p : "", o.len, 0);
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
			struct rt_buf o = {0};
			for (size_t k = 0; k < p->n && r == 0;) {
				if (k + rn <= p->n && !memcmp(p->s + k, x->a, rn)) {
					/* tokenizers drops every replacement char of the first token */
					if (!(i == 0 && x->prepend != 0))
						r = rt_buf_put(&o, " ", 1);
					k += rn;
				} else {
					r = rt_buf_put(&o, p->s + k, 1);
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
	struct rt_buf o = {0};
	int r = 0;

	if (!t || (!ids && n) || !ret_text)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	for (size_t i = 0; i < n && r == 0; i++) {
		int32_t id = ids[i];
		if (id < 0 || id >= t->n_ids || !t->tok[id]) {
			tok_plist_clear(&l);
			return rt_fail(err, RT_ERR_USAGE, -EINVAL, "token id %d not in the tokenizer", id);
		}
		if (skip_special && t->is_special[id])
			continue;
		if (t->dtok[id])
			r = tok_plist_add(&l, t->dtok[id], strlen(t->dtok[id]), 0);
		else
			r = tok_plist_add(&l, t->tok[id], t->tok_len[id], 0);
	}
	for (int k = 0; k < t->n_decs && r == 0; k++)
		r = decode_step(t, &t->decs[k], &l);
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = rt_buf_put(&o, l.v[i].s, l.v[i].n);
	if (r == 0 && !o.p)
		r = rt_buf_put(&o, "", 0);
	tok_plist_clear(&l);
	if (r < 0) {
		free(o.p);
		return rt_fail(err, RT_ERR_INTERNAL, r, "detokenize: %s", strerror(-r));
	}
	*ret_text = o.p;
	if (ret_len)
		*ret_len = o.len;
	return 0;
}
