/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* For C unit tests: a copy of text with the first `from` replaced by `to`
 * (aborts when text has no `from`: a bug in the test).  Free the result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline char *test_subst(const char *text, const char *from, const char *to)
{
	const char *p = strstr(text, from);
	if (!p) {
		fprintf(stderr, "test bug: '%s' not in the template\n", from);
		abort();
	}
	size_t a = (size_t)(p - text), fl = strlen(from), tl = strlen(to), gl = strlen(text);
	char *out = malloc(gl - fl + tl + 1);
	if (!out)
		abort();
	memcpy(out, text, a);
	memcpy(out + a, to, tl);
	memcpy(out + a + tl, p + fl, gl - a - fl + 1);
	return out;
}
