/* SPDX-License-Identifier: Apache-2.0 */
/* Jinja lexer: source -> tokens, with jinja2's whitespace rules for
 * trim_blocks=True and lstrip_blocks=True (transformers' settings):
 * - line endings are normalised to \n and one trailing newline is dropped
 *   (keep_trailing_newline=False);
 * - "{%-", "{{-", "{#-" strip all whitespace before the tag, "-%}", "-}}",
 *   "-#}" all whitespace after it;
 * - trim_blocks: a newline right after "%}" or "#}" is dropped ("+%}" keeps it);
 * - lstrip_blocks: spaces and tabs between a line start and "{%" or "{#"
 *   are dropped ("{%+" keeps them); not for "{{".
 * - inside brackets "}}" and "%}" are operators, as jinja2's balancing stack. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja.h"

static int push(struct jtoks *t, struct jtok tok)
{
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 256;
		struct jtok *nv;
		if (nc > (16u << 20))
			return -E2BIG;
		nv = realloc(t->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = nc;
	}
	t->v[t->n++] = tok;
	return 0;
}

void jinja_toks_release(struct jtoks *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].str);
	free(t->v);
	free(t->src);
	memset(t, 0, sizeof(*t));
}

static int fail(struct jerr *e, int line, const char *msg)
{
	snprintf(e->msg, sizeof(e->msg), "template line %d: %s", line, msg);
	return -EINVAL;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Python's "unicode-escape" decoding of a string literal's body. */
static int unescape(const char *s, size_t n, char **ret, size_t *ret_len)
{
	char *o = malloc(n + 1);
	size_t k = 0;

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c != '\\' || i + 1 >= n) {
			o[k++] = c;
			continue;
		}
		c = s[++i];
		switch (c) {
		case '\n': break; /* line continuation */
		case '\\': o[k++] = '\\'; break;
		case '\'': o[k++] = '\''; break;
		case '"': o[k++] = '"'; break;
		case 'a': o[k++] = '\a'; break;
		case 'b': o[k++] = '\b'; break;
		case 'f': o[k++] = '\f'; break;
		case 'n': o[k++] = '\n'; break;
		case 'r': o[k++] = '\r'; break;
		case 't': o[k++] = '\t'; break;
		case 'v': o[k++] = '\v'; break;
		case 'x':
		case 'u':
		case 'U': {
			int want = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			uint32_t cp = 0;
			char enc[4];
			if (i + want >= n + 0 && i + want > n - 1) {
				free(o);
				return -EINVAL;
			}
			for (int j = 1; j <= want; j++) {
				int h = hexval(s[i + j]);
				if (h < 0) {
					free(o);
					return -EINVAL;
				}
				cp = cp * 16 + (uint32_t)h;
			}
			if (cp > 0x10ffff) {
				free(o);
				return -EINVAL;
			}
			i += (size_t)want;
			size_t el = ju_encode(cp, enc);
			if (k + el > n) { /* escapes are longer than their encoding, but be sure */
				free(o);
				return -EINVAL;
			}
			memcpy(o + k, enc, el);
			k += el;
			break;
		}
		default:
			if (c >= '0' && c <= '7') {
				uint32_t cp = (uint32_t)(c - '0');
				char enc[4];
				for (int j = 0; j < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; j++)
					cp = cp * 8 + (uint32_t)(s[++i] - '0');
				size_t el = ju_encode(cp, enc);
				memcpy(o + k, enc, el);
				k += el;
			} else {
				o[k++] = '\\';
				o[k++] = c;
			}
		}
	}
	o[k] = 0;
	*ret = o;
	*ret_len = k;
	return 0;
}

static const char *const ops3[] = {NULL};
static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">=", NULL};
static const char ops1[] = "+-*/%~[](){}<>=.:|,;";

/* Lex the inside of a tag from *pos until its end delimiter ("%}" or "}}").
 * Sets *strip_after ('-', '+' or 0). */
static int lex_tag(struct jtoks *t, const char *s, size_t n, size_t *pos, int *line, char endc, int end_kind,
                   struct jerr *e)
{
	size_t i = *pos;
	int depth = 0;
	(void)ops3;

	for (;;) {
		while (i < n && is_ws(s[i])) {
			if (s[i] == '\n')
				(*line)++;
			i++;
		}
		if (i >= n)
			return fail(e, *line, "unexpected end of template inside a tag");
		if (depth == 0) {
			size_t j = i;
			bool minus = false, plus = false;
			if (s[j] == '-' && j + 2 < n + 0 && s[j + 1] == endc && s[j + 2] == '}')
				minus = true, j++;
			else if (s[j] == '+' && j + 2 < n && s[j + 1] == endc && s[j + 2] == '}')
				plus = true, j++;
			if (j + 1 < n && s[j] == endc && s[j + 1] == '}') {
				j += 2;
				if (minus) {
					while (j < n && is_ws(s[j])) {
						if (s[j] == '\n')
							(*line)++;
						j++;
					}
				} else if (!plus && end_kind == T_BLOCK_END && j < n && s[j] == '\n') {
					(*line)++;
					j++;
				}
				struct jtok tok = {.kind = (uint8_t)end_kind, .line = *line};
				int r = push(t, tok);
				if (r < 0)
					return r;
				*pos = j;
				return 0;
			}
		}
		struct jtok tok = {.line = *line, .p = s + i};
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
			size_t j = i;
			while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z') ||
			                 (s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
				j++;
			tok.kind = T_NAME;
			tok.len = j - i;
			i = j;
		} else if (c >= '0' && c <= '9') {
			size_t j = i;
			char num[64];
			size_t k = 0;
			bool isf = false;
			while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
				j++;
			if (j + 1 < n && s[j] == '.' && s[j + 1] >= '0' && s[j + 1] <= '9') {
				isf = true;
				j++;
				while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_'))
					j++;
			}
			if (j < n && (s[j] == 'e' || s[j] == 'E')) {
				size_t q = j + 1;
				if (q < n && (s[q] == '+' || s[q] == '-'))
					q++;
				if (q < n && s[q] >= '0' && s[q] <= '9') {
					isf = true;
					j = q;
					while (j < n && s[j] >= '0' && s[j] <= '9')
						j++;
				}
			}
			for (size_t q = i; q < j; q++) {
				if (s[q] == '_')
					continue;
				if (k + 1 >= sizeof(num))
					return fail(e, *line, "number literal too long");
				num[k++] = s[q];
			}
			num[k] = 0;
			if (isf) {
				tok.kind = T_FLOAT;
				tok.f = strtod(num, NULL);
			} else {
				char *end;
				errno = 0;
				tok.kind = T_INT;
				tok.i = strtoll(num, &end, 10);
				if (errno)
					return fail(e, *line, "integer literal out of range");
			}
			i = j;
		} else if (c == '\'' || c == '"') {
			size_t j = i + 1;
			int l0 = *line;
			while (j < n && s[j] != c) {
				if (s[j] == '\\' && j + 1 < n)
					j++;
				if (s[j] == '\n')
					(*line)++;
				j++;
			}
			if (j >= n)
				return fail(e, l0, "unterminated string literal");
			tok.kind = T_STRING;
			int r = unescape(s + i + 1, j - i - 1, &tok.str, &tok.len);
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				return fail(e, l0, "bad escape in string literal");
			i = j + 1;
		} else {
			size_t len = 0;
			for (int k = 0; ops2[k]; k++)
				if (i + 1 < n && s[i] == ops2[k][0] && s[i + 1] == ops2[k][1])
					len = 2;
			if (!len && strchr(ops1, c) && c)
				len = 1;
			if (!len)
				return fail(e, *line, "unexpected character in a tag");
			tok.kind = T_OP;
			tok.len = len;
			if (c == '(' || c == '[' || c == '{') {
				if (++depth > JINJA_MAX_NEST)
					return fail(e, *line, "brackets nested too deeply");
			} else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
				depth--;
			}
			i += len;
		}
		int r = push(t, tok);
		if (r < 0) {
			free(tok.str);
			return r;
		}
	}
}

/* Normalise newlines, drop one trailing newline. */
static char *normalise(const char *src, size_t len, size_t *ret_n)
{
	char *o = malloc(len + 1);
	size_t k = 0;

	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\r') {
			o[k++] = '\n';
			if (i + 1 < len && src[i + 1] == '\n')
				i++;
		} else {
			o[k++] = src[i];
		}
	}
	if (k > 0 && o[k - 1] == '\n')
		k--;
	o[k] = 0;
	*ret_n = k;
	return o;
}

/* {% raw %} ... {% endraw %}: match "{%[-+]?\s*raw\s*[-+]?%}" at s+i. */
static size_t match_rawtag(const char *s, size_t n, size_t i, const char *word, char *ret_l, char *ret_r)
{
	size_t j = i + 2, wl = strlen(word);
	*ret_l = *ret_r = 0;
	if (j < n && (s[j] == '-' || s[j] == '+'))
		*ret_l = s[j++];
	while (j < n && is_ws(s[j]))
		j++;
	if (j + wl > n || memcmp(s + j, word, wl))
		return 0;
	j += wl;
	while (j < n && is_ws(s[j]))
		j++;
	if (j < n && (s[j] == '-' || s[j] == '+'))
		*ret_r = s[j++];
	if (j + 1 < n && s[j] == '%' && s[j + 1] == '}')
		return j + 2 - i;
	return 0;
}

int jinja_lex(const char *src, size_t len, struct jtoks *ret, struct jerr *e)
{
	struct jtoks t = {0};
	size_t n, i = 0;
	int line = 1, r = 0;
	bool line_starting = true;
	char *s;

	if (len > JINJA_MAX_SOURCE) {
		snprintf(e->msg, sizeof(e->msg), "template is %zu bytes, limit %u", len, JINJA_MAX_SOURCE);
		return -E2BIG;
	}
	s = normalise(src, len, &n);
	if (!s)
		return -ENOMEM;
	t.src = s;
	while (i < n) {
		/* next tag start */
		size_t j = i;
		char kind = 0;
		while (j + 1 < n) {
			if (s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#')) {
				kind = s[j + 1];
				break;
			}
			j++;
		}
		if (!kind)
			j = n;
		size_t text_end = j;
		char sign = (kind && j + 2 < n && (s[j + 2] == '-' || s[j + 2] == '+')) ? s[j + 2] : 0;
		char raw_l = 0, raw_r = 0;
		size_t rawlen = kind == '%' ? match_rawtag(s, n, j, "raw", &raw_l, &raw_r) : 0;
		if (rawlen)
			sign = raw_l;
		if (kind && sign == '-') {
			while (text_end > i && is_ws(s[text_end - 1]))
				text_end--;
		} else if (kind && kind != '{' && sign != '+') {
			/* lstrip_blocks */
			size_t lp = text_end;
			while (lp > i && (s[lp - 1] == ' ' || s[lp - 1] == '\t' || s[lp - 1] == '\v' ||
			                  s[lp - 1] == '\f' || s[lp - 1] == '\r'))
				lp--;
			if ((lp > i && s[lp - 1] == '\n') || (lp == i && line_starting))
				text_end = lp;
		}
		if (text_end > i) {
			struct jtok tok = {.kind = T_TEXT, .line = line, .p = s + i, .len = text_end - i};
			if ((r = push(&t, tok)) < 0)
				goto out;
		}
		for (size_t q = i; q < j; q++)
			if (s[q] == '\n')
				line++;
		if (!kind)
			break;
		if (rawlen) {
			/* find {% endraw %} */
			size_t q = j + rawlen, endlen = 0, body_end;
			char el = 0, er = 0;
			while (q + 1 < n) {
				if (s[q] == '{' && s[q + 1] == '%' && (endlen = match_rawtag(s, n, q, "endraw", &el, &er)))
					break;
				q++;
			}
			if (!endlen) {
				r = fail(e, line, "unterminated {% raw %}");
				goto out;
			}
			size_t b0 = j + rawlen;
			if (raw_r == '-')
				while (b0 < q && is_ws(s[b0]))
					b0++;
			body_end = q;
			if (el == '-')
				while (body_end > b0 && is_ws(s[body_end - 1]))
					body_end--;
			if (body_end > b0) {
				struct jtok tok = {.kind = T_TEXT, .line = line, .p = s + b0, .len = body_end - b0};
				if ((r = push(&t, tok)) < 0)
					goto out;
			}
			for (size_t k = j; k < q; k++)
				if (s[k] == '\n')
					line++;
			i = q + endlen;
			if (er == '-')
				while (i < n && is_ws(s[i]))
					i++;
			else if (er != '+' && i < n && s[i] == '\n')
				i++, line++;
			line_starting = i > 0 && s[i - 1] == '\n';
			continue;
		}
		i = j + 2 + (sign ? 1 : 0);
		if (kind == '#') {
			size_t q = i;
			while (q + 1 < n && !(s[q] == '#' && s[q + 1] == '}'))
				q++;
			if (q + 1 >= n) {
				r = fail(e, line, "unterminated comment");
				goto out;
			}
			char esign = q > i && (s[q - 1] == '-' || s[q - 1] == '+') ? s[q - 1] : 0;
			for (size_t k = i; k < q; k++)
				if (s[k] == '\n')
					line++;
			i = q + 2;
			if (esign == '-') {
				while (i < n && is_ws(s[i])) {
					if (s[i] == '\n')
						line++;
					i++;
				}
			} else if (esign != '+' && i < n && s[i] == '\n') {
				i++;
				line++;
			}
		} else {
			struct jtok tok = {.kind = kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN, .line = line};
			if ((r = push(&t, tok)) < 0)
				goto out;
			r = lex_tag(&t, s, n, &i, &line, kind == '{' ? '}' : '%', kind == '{' ? T_VAR_END : T_BLOCK_END,
			            e);
			if (r < 0)
				goto out;
		}
		line_starting = i > 0 && s[i - 1] == '\n';
	}
	{
		struct jtok tok = {.kind = T_EOF, .line = line};
		r = push(&t, tok);
	}
out:
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(e->msg, sizeof(e->msg), "out of memory");
		else if (r == -E2BIG && !e->msg[0])
			snprintf(e->msg, sizeof(e->msg), "template has too many tokens");
		jinja_toks_release(&t);
		return r;
	}
	*ret = t;
	return 0;
}
