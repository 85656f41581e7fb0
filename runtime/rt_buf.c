/* SPDX-License-Identifier: Apache-2.0 */
#include "rt_buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int rt_buf_put(struct rt_buf *b, const void *s, size_t n)
{
	if (n > (SIZE_MAX >> 2) - b->len)
		return -ENOMEM;
	if (b->max && b->len + n > b->max)
		return -E2BIG;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		char *np;
		while (nc < b->len + n + 1)
			nc *= 2;
		np = realloc(b->p, nc);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

int rt_buf_putc(struct rt_buf *b, char c)
{
	return rt_buf_put(b, &c, 1);
}

void rt_buf_release(struct rt_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
