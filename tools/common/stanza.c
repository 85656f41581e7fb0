/* SPDX-License-Identifier: Apache-2.0 */
/* "Field: value" stanzas (stanza.h). */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "stanza.h"

int stanza_init(struct stanza_reader *r, const char *buf, size_t len, bool strip_cr)
{
	if (len > STANZA_MAX_BYTES)
		return -EFBIG;
	*r = (struct stanza_reader){.buf = buf, .len = len, .strip_cr = strip_cr};
	return 0;
}

static void trim(const char **v, size_t *n)
{
	while (*n && (**v == ' ' || **v == '\t'))
		(*v)++, (*n)--;
	while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t' || (*v)[*n - 1] == '\r'))
		(*n)--;
}

int stanza_next(struct stanza_reader *r, struct stanza_line *l)
{
	if (r->pos >= r->len)
		return STANZA_EOF;
	const char *s = r->buf + r->pos;
	const char *nl = memchr(s, '\n', r->len - r->pos);
	size_t n = nl ? (size_t)(nl - s) : r->len - r->pos;
	r->pos += n + (nl ? 1 : 0);
	r->line++;
	if (r->strip_cr && n && s[n - 1] == '\r')
		n--;
	*l = (struct stanza_line){.line = r->line};
	if (n == 0)
		return STANZA_BLANK;
	if (s[0] == ' ' || s[0] == '\t') {
		l->value = s + 1;
		l->value_len = n - 1;
		trim(&l->value, &l->value_len);
		return STANZA_CONT;
	}
	const char *colon = memchr(s, ':', n);
	if (!colon || colon == s || (size_t)(colon - s) > STANZA_KEY_MAX)
		return STANZA_OTHER;
	l->key = s;
	l->key_len = (size_t)(colon - s);
	l->value = colon + 1;
	l->value_len = n - l->key_len - 1;
	trim(&l->value, &l->value_len);
	return STANZA_FIELD;
}

bool stanza_key_is(const struct stanza_line *l, const char *key)
{
	size_t k = strlen(key);
	return l->key && l->key_len == k && !strncasecmp(l->key, key, k); /* continuations have no key */
}
