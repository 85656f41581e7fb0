/* SPDX-License-Identifier: Apache-2.0 */
/* Pre-tokenizers: ByteLevel (with the GPT-2 split), Split, Metaspace. */

#include "tok.h"

static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

void tok_init_bytelevel(struct rt_tokenizer *t)
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

static int pre_step(struct rt_tokenizer *t, json_t *n, const char *type, struct rt_error *err)
{
	struct pre *x = &t->pres[t->n_pres];
	int r;
	memset(x, 0, sizeof(*x));
	if (!strcmp(type, "ByteLevel")) {
		x->kind = P_BYTELEVEL;
		x->add_prefix_space = json_is_true(json_object_get(n, "add_prefix_space"));
		if (!json_is_false(json_object_get(n, "use_regex")) &&
		    (r = tok_compile_re(t, GPT2_PATTERN, strlen(GPT2_PATTERN), &x->re, err)) < 0)
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
		if ((r = tok_get_pattern(t, json_object_get(n, "pattern"), &rx, &p, &pn, err)) < 0)
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
		r = tok_compile_re(t, p, pn, &x->re, err);
		free(lit);
		if (r < 0)
			return r;
	} else if (!strcmp(type, "Metaspace")) {
		x->kind = P_METASPACE;
		x->repl = tok_dup_str(json_object_get(n, "replacement"));
		x->prepend = tok_prepend_scheme(n);
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

static int n_pre_steps(const struct rt_tokenizer *t)
{
	return t->n_pres;
}

const struct tok_stage tok_pre_tokenizers = {"pre_tokenizer", "pretokenizers", "pre-tokenizers", n_pre_steps, pre_step};

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
					r = tok_plist_add(&out, s + pend, ms - pend, off + pend);
				if (r == 0)
					r = tok_plist_add(&out, s + ms, me - ms, off + ms);
				pend = me;
				break;
			case B_REMOVED:
				if (ms > pend)
					r = tok_plist_add(&out, s + pend, ms - pend, off + pend);
				pend = me;
				break;
			case B_MERGED_PREV:
				r = tok_plist_add(&out, s + pend, me - pend, off + pend);
				pend = me;
				break;
			case B_MERGED_NEXT:
				if (ms > pend)
					r = tok_plist_add(&out, s + pend, ms - pend, off + pend);
				pend = ms;
				break;
			}
			at = me;
		}
		if (r == 0 && pend < n)
			r = tok_plist_add(&out, s + pend, n - pend, off + pend);
	}
	pcre2_match_data_free(md);
	if (r < 0) {
		tok_plist_clear(&out);
		return r;
	}
	tok_plist_clear(l);
	*l = out;
	return 0;
}

static int bytelevel_map(const struct rt_tokenizer *t, struct plist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct rt_buf o = {0};
		for (size_t k = 0; k < l->v[i].n; k++) {
			const char *m = t->b2u[(unsigned char)l->v[i].s[k]];
			if (rt_buf_put(&o, m, strlen(m)) < 0) {
				free(o.p);
				return -ENOMEM;
			}
		}
		if (!o.p && rt_buf_put(&o, "", 0) < 0)
			return -ENOMEM;
		free(l->v[i].s);
		l->v[i].s = o.p;
		l->v[i].n = o.len;
	}
	return 0;
}

int tok_pretokenize(const struct rt_tokenizer *t, struct plist *l)
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
				r = tok_replace_in(p, " ", x->repl);
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
							r = tok_plist_add(&out, s + st, j - st, l->v[k].off + st);
							st = j;
						}
					if (r == 0 && n > st)
						r = tok_plist_add(&out, s + st, n - st, l->v[k].off + st);
				}
				if (r < 0) {
					tok_plist_clear(&out);
					return r;
				}
				tok_plist_clear(l);
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
