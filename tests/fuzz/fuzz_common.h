/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz-*.c).  Each
 * harness defines LLVMFuzzerTestOneInput(); with clang and -Dfuzzing=true it
 * links against libFuzzer, otherwise against regression_driver.c, which
 * replays the committed corpus as a plain test.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Splits inputs of the multi-part harnesses (bundle, minisig): a line of its
 * own that no JSON, key or signature file contains. */
#define FUZZ_SEP "\n#--agkit-fuzz-part--\n"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed invariant is a finding: print it and abort so that libFuzzer
 * (or the replay driver) records the input. */
#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                           \
		if (!(cond)) {                                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);       \
			abort();                                                                           \
		}                                                                                          \
	} while (0)

/* Creates a fresh private temporary directory; aborts on failure (the
 * environment, not the input, is broken then).  Returns a new string. */
char *fuzz_mkdtemp(void);
/* Removes a directory made by fuzz_mkdtemp() and asserts that it is gone. */
void fuzz_rmdir(char *dir);
/* Writes dir/name with exactly len bytes; aborts on failure. */
char *fuzz_write(const char *dir, const char *name, const void *buf, size_t len);
/* Splits data at FUZZ_SEP into at most max parts; returns the count (>= 1). */
size_t fuzz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *lens, size_t max);
/* Entries of dir other than "." and ".." that are not in the NULL-terminated
 * list allowed: asserts there are none (nothing strayed outside its place). */
void fuzz_assert_only(const char *dir, const char *const *allowed);
