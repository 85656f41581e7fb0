/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Minimal TAP producer for C unit tests. */
#include <stdio.h>

static int tap_n, tap_failed;

#define TAP_OK(cond, ...)                                                                                              \
	do {                                                                                                           \
		tap_n++;                                                                                               \
		if (cond) {                                                                                            \
			printf("ok %d - ", tap_n);                                                                     \
		} else {                                                                                               \
			tap_failed++;                                                                                  \
			printf("not ok %d - ", tap_n);                                                                 \
		}                                                                                                      \
		printf(__VA_ARGS__);                                                                                   \
		printf("\n");                                                                                          \
		fflush(stdout); /* before any child writes */                                                          \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
