/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* SHA-256 through OpenSSL's libcrypto (uses the CPU's SHA instructions). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "bundle/error.h"

#define BN_SHA256_LEN 32
#define BN_SHA256_HEX 65 /* 64 hex digits and NUL */

struct bn_sha256; /* opaque streaming context */

/* Initialises OpenSSL and fetches SHA-256 once (bn_crypto_init() calls it). */
int bn_sha256_init(void) BN_WUR;

struct bn_sha256 *bn_sha256_new(void);          /* NULL on allocation failure */
void bn_sha256_free(struct bn_sha256 *s);        /* accepts NULL */
void bn_sha256_reset(struct bn_sha256 *s);
void bn_sha256_update(struct bn_sha256 *s, const void *data, size_t len);
void bn_sha256_final(struct bn_sha256 *s, uint8_t out[BN_SHA256_LEN]); /* then reset */

void bn_sha256(const void *data, size_t len, uint8_t out[BN_SHA256_LEN]);
/* Hashes a whole file; ret_size (optional) receives its length. */
int bn_sha256_file(const char *path, uint8_t out[BN_SHA256_LEN], uint64_t *ret_size,
                   struct bn_error *err) BN_WUR;

void bn_hex(const uint8_t *in, size_t len, char *out /* 2*len+1 */);
/* Parses exactly 2*len lowercase or uppercase hex digits; false on anything else. */
bool bn_unhex(const char *in, uint8_t *out, size_t len);
