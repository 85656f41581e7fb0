/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* A growable byte string, always NUL-terminated once anything (even "") was
 * put: the tokenizer's pieces and the template engine's output share it. */
#include <stddef.h>

struct rt_buf {
	char *p;
	size_t len, cap;
	size_t max; /* 0: unbounded (up to SIZE_MAX / 4); else puts past it fail with -E2BIG */
};

/* Appends n bytes of s; 0, -E2BIG past b->max, -ENOMEM. */
__attribute__((warn_unused_result)) int rt_buf_put(struct rt_buf *b, const void *s, size_t n);
__attribute__((warn_unused_result)) int rt_buf_putc(struct rt_buf *b, char c);
/* Frees the bytes and empties b (its max stays). */
void rt_buf_release(struct rt_buf *b);
