/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The two texts agsync pull reads from a mirror before any signature is
 * checked (tests/fuzz/fuzz-sync.c): a bundle's SHA256SUMS and the mirror's
 * index.json (which publish reads too, to update it).  Neither is trusted;
 * both are size-capped by the caller.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bundle/error.h"
#include "bundle/sha256.h"

/* Lines "HEX64  PATH" (PATH: a file of a bundle directory, "NAME" or
 * "signatures/NAME", not SHA256SUMS itself).  buf[len] must be NUL; buf is
 * changed in place and the names point into it.  At most max lines; -EBADMSG naming the line otherwise. */
int sync_sums_parse(char *buf, size_t len, char **names, uint8_t (*hashes)[BN_SHA256_LEN], size_t max, size_t *ret_n,
                    struct bn_error *err) BN_WUR;
/* Parses an index.json (duplicate keys refused) that is an object with a
 * "bundles" array: the one reader of the index, for pull and publish.
 * -EBADMSG "not an agsync index (...)" otherwise (the caller prefixes the
 * file). */
int sync_index_load(const char *buf, size_t len, json_t **ret, struct bn_error *err) BN_WUR;
/* The newest version of name in channel that an index lists; -ENOENT when
 * none, -EBADMSG when buf is not an index. */
int sync_index_newest(const char *buf, size_t len, const char *name, const char *channel, uint64_t *ret_version,
                      struct bn_error *err) BN_WUR;
