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
		char *cur = NULL, *pre = NULL;
		size_t cl = 0, pl = 0;
		int r = engine_detokenize(to->e, to->ids + to->prefix, to->n - to->prefix, &cur, &cl);
		if (r == 0 && to->read > to->prefix)
			r = engine_detokenize(to->e, to->ids + to->prefix, to->read - to->prefix, &pre, &pl);
		if (r < 0) {
			free(cur);
			return r;
		}
		bool partial = cl >= 3 && !memcmp(cur + cl - 3, "\xef\xbf\xbd", 3);
		if ((!partial || final) && cl > pl) {
			char *nf = realloc(to->full, to->full_len + (cl - pl) + 1);
			if (!nf) {
				free(cur);
				free(pre);
				return -ENOMEM;
			}
			to->full = nf;
			memcpy(to->full + to->full_len, cur + pl, cl - pl);
			to->full_len += cl - pl;
			to->full[to->full_len] = 0;
			to->prefix = to->read;
			to->read = to->n;
		}
		free(cur);
		free(pre);
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
		while (limit >= to->emitted + 3 && !memcmp(to->full + limit - 3, "\xef\xbf\xbd", 3))
			limit -= 3;
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
