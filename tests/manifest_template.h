/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* For the manifest unit tests: a valid manifest text as a template, edited
 * one substitution at a time, and the refusals of the edited text.  Include
 * after tap.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/manifest.h"

/* A copy of text with the first `from` replaced by `to` (aborts when text
 * has no `from`: a bug in the test).  Free the result. */
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

static inline int test_manifest_parse(const char *text, struct bn_error *err)
{
	struct bn_manifest *m = NULL;
	int r = bn_manifest_parse(text, strlen(text), &m, err);
	bn_manifest_free(m);
	return r;
}

/* One TAP line: the template with from -> to is refused with want. */
static inline void test_manifest_refuse(const char *text, const char *from, const char *to, int want, const char *what)
{
	char *t = test_subst(text, from, to);
	struct bn_error err = {0};
	int r = test_manifest_parse(t, &err);
	TAP_OK(r == want, "refused: %s (%d: %s)", what, r, err.msg);
	free(t);
}
