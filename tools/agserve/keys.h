/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * API keys (--api-keys FILE): one key a line, "NAME SECRET" or
 * "NAME sha256:HEX", '#' comments and blank lines ignored.  Only the
 * SHA-256 of each secret is kept; a presented secret is hashed and compared
 * with every key's hash in constant time (sodium_memcmp), all keys always.
 */
#include <stddef.h>

struct keys;

#define KEYS_MAX      4096
#define KEYS_FILE_MAX (1 << 20)

/* Refuses a file that is group- or world-readable (-EPERM). */
int keys_load(const char *path, struct keys **ret, char *err, size_t errlen);
void keys_free(struct keys *k);
size_t keys_count(const struct keys *k);
/* The matching key's name, or NULL. */
const char *keys_check(const struct keys *k, const char *secret, size_t len);
