/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "textout.h"

void textout_init(struct textout *to, struct engine *e, char *const *stop, size_t n_stop)
{
	memset(to, 0, sizeof(*to));
	to->e = e;
	to->stop = stop;
	to->n_stop = n_stop;
}

void textout_release(struct textout *to)
{
	free(to->ids);
	free(to->full);
	to->ids = NULL;
	to->full = NULL;
}

static bool ends_replacement(const char *t, size_t n)
{
	return n >= 3 && !memcmp(t + n - 3, "\xef\xbf\xbd", 3);
}

/* Window text ids[prefix..k] that later tokens can no longer change, for
 * the largest k in (read, n).  k qualifies when decoding splits there:
 * text(prefix..k) + text(k..n) == text(prefix..n) (cur), i.e. the bytes
 * before k did not combine with those after (a valid continuation would
 * have: one character or one U+FFFD instead of two pieces); or, for
 * decoders whose pieces do not concatenate (a leading-space rule), when k
 * is 3 tokens back (a UTF-8 sequence is at most 4 bytes) and text(prefix..k)
 * is a prefix of cur.  Returns 1 with *ret_text (malloc'd), *ret_len and
 * *ret_k, 0 if no k qualifies (hold everything), or a negative errno. */
static int settled(struct textout *to, const char *cur, size_t cl, char **ret_text, size_t *ret_len, size_t *ret_k)
{
	size_t lo = to->read + 1, n = to->n;
	for (size_t k = n - 1; k >= lo && k + 3 >= n; k--) {
		char *a = NULL, *b = NULL;
		size_t al = 0, bl = 0;
		int r = engine_detokenize(to->e, to->ids + to->prefix, k - to->prefix, &a, &al);
		if (r == 0)
			r = engine_detokenize(to->e, to->ids + k, n - k, &b, &bl);
		if (r < 0) {
			free(a);
			free(b);
			return r;
		}
		bool split = al + bl == cl && !memcmp(a, cur, al) && !memcmp(b, cur + al, bl);
		bool old = k + 3 == n && al <= cl && !memcmp(a, cur, al);
		free(b);
		if (split || old) {
			*ret_text = a;
			*ret_len = al;
			*ret_k = k;
			return 1;
		}
		free(a);
	}
	return 0;
}

int textout_push(struct textout *to, const int32_t *ids, size_t n, bool final, const char **ret_text, size_t *ret_len)
{
	*ret_text = "";
	*ret_len = 0;
	if (to->stopped)
		return 0;
	if (to->n + n > to->cap) {
		size_t nc = (to->n + n) * 2 + 16;
		int32_t *ni = realloc(to->ids, nc * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		to->ids = ni;
		to->cap = nc;
	}
	if (n) /* to->ids is still NULL before the first token */
		memcpy(to->ids + to->n, ids, n * sizeof(*ids));
	to->n += n;
	if (!to->full && !(to->full = calloc(1, 1)))
		return -ENOMEM;
	if (to->n > to->read) {
		/* Decode a window, not the whole sequence (vLLM's incremental
		 * detokenization): the text of ids[prefix..n] past the text of
		 * ids[prefix..read].  The window starts at a token that was
		 * already decoded in context, so leading-space and byte-fallback
		 * rules give what decoding everything would. */
		char *cur = NULL, *pre = NULL, *kt = NULL;
		size_t cl = 0, pl = 0, kl = 0, upto = to->n;
		int r = engine_detokenize(to->e, to->ids + to->prefix, to->n - to->prefix, &cur, &cl);
		if (r == 0 && to->read > to->prefix)
			r = engine_detokenize(to->e, to->ids + to->prefix, to->read - to->prefix, &pre, &pl);
		if (r < 0) {
			free(cur);
			return r;
		}
		const char *use = cur;
		size_t ul = cl;
		if (!final && ends_replacement(cur, cl)) {
			/* The text ends in U+FFFD: an incomplete UTF-8 sequence
			 * the next token may complete, or bytes that are invalid
			 * for good (a model emitting stray byte tokens).  Hold
			 * back only the tokens whose bytes can still change. */
			r = settled(to, cur, cl, &kt, &kl, &upto);
			if (r < 0) {
				free(cur);
				free(pre);
				return r;
			}
			use = kt;
			ul = r > 0 ? kl : 0;
		}
		if (ul > pl) {
			char *nf = realloc(to->full, to->full_len + (ul - pl) + 1);
			if (!nf) {
				free(cur);
				free(pre);
				free(kt);
				return -ENOMEM;
			}
			to->full = nf;
			memcpy(to->full + to->full_len, use + pl, ul - pl);
			to->full_len += ul - pl;
			to->full[to->full_len] = 0;
			to->prefix = to->read;
			to->read = upto;
		}
		free(cur);
		free(pre);
		free(kt);
	}
	size_t limit = to->full_len, maxstop = 0;
	for (size_t i = 0; i < to->n_stop; i++)
		if (strlen(to->stop[i]) > maxstop)
			maxstop = strlen(to->stop[i]);
	if (maxstop) {
		size_t from = to->emitted > maxstop ? to->emitted - maxstop : 0, best = (size_t)-1;
		const char *hit = NULL;
		for (size_t i = 0; i < to->n_stop; i++) {
			const char *p = memmem(to->full + from, to->full_len - from, to->stop[i], strlen(to->stop[i]));
			if (p && (size_t)(p - to->full) < best) {
				best = (size_t)(p - to->full);
				hit = to->stop[i];
			}
		}
		if (best != (size_t)-1) {
			to->stopped = true;
			to->stop_hit = hit;
			limit = best;
		}
	}
	if (!final && !to->stopped) {
		size_t hold = 0;
		for (size_t i = 0; i < to->n_stop; i++) {
			size_t sl = strlen(to->stop[i]);
			for (size_t k = sl - 1; k > hold; k--)
				if (k <= limit - to->emitted && !memcmp(to->full + limit - k, to->stop[i], k)) {
					hold = k;
					break;
				}
		}
		limit -= hold;
	}
	if (limit <= to->emitted)
		return 0;
	*ret_text = to->full + to->emitted;
	*ret_len = limit - to->emitted;
	to->emitted = limit;
	return 0;
}
