/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Minimal TAP producer for C unit tests. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

/* The description, on the test line: line breaks in it (captured output)
 * are written as \n and \r, so it stays one TAP line. */
__attribute__((format(printf, 1, 2))) static inline void tap_desc(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (!s) {
		printf("(description lost: out of memory)");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	for (const char *p = s; *p; p++) {
		if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\r')
			fputs("\\r", stdout);
		else
			putchar(*p);
	}
	free(s);
}

#define TAP_OK(cond, ...)                                                                                              \
	do {                                                                                                           \
		tap_n++;                                                                                               \
		if (cond) {                                                                                            \
			printf("ok %d - ", tap_n);                                                                     \
		} else {                                                                                               \
			tap_failed++;                                                                                  \
			printf("not ok %d - ", tap_n);                                                                 \
		}                                                                                                      \
		tap_desc(__VA_ARGS__);                                                                                 \
		printf("\n");                                                                                          \
		fflush(stdout); /* before any child writes */                                                          \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
