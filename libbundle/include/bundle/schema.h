/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Strict JSON schemas for the files people write by hand: pack specs, trust
 * policies and a deployment root's config.json.  Each file's keys are listed
 * once, in a table of key, accepted types, range and a one-line doc; the
 * checker refuses unknown keys (with the closest known key as a suggestion),
 * wrong types and values out of range, and a test compares the tables with
 * the documentation.
 */
#include <stddef.h>

#include <jansson.h>

#include "bundle/error.h"

enum {
	BN_JT_STRING = 1 << 0,
	BN_JT_INT = 1 << 1,    /* JSON integer */
	BN_JT_NUMBER = 1 << 2, /* integer or real */
	BN_JT_BOOL = 1 << 3,
	BN_JT_ARRAY = 1 << 4,
	BN_JT_OBJECT = 1 << 5,
	BN_JT_NULL = 1 << 6,
};

struct bn_schema_key {
	const char *key;
	unsigned types;  /* BN_JT_* */
	double min, max; /* for numbers; both 0: any value */
	const char *doc; /* one line */
};

struct bn_schema {
	const char *what; /* "pack spec", "trust policy", ... */
	const struct bn_schema_key *keys;
	size_t n_keys;
};

/* Levenshtein distance of two strings (each at most 64 bytes counted). */
size_t bn_edit_distance(const char *a, const char *b);
/* The candidate closest to word when it is close enough to be a likely typo
 * (distance at most 1 for short words, 2 from 5 bytes, 3 from 10), else NULL.
 * cands is NULL-terminated. */
const char *bn_closest(const char *word, const char *const *cands);

/*
 * Checks obj against s: obj must be an object; every key must be in the
 * table, of one of its types and, for numbers with a range, within it.
 * Errors are -EINVAL with "FILE: WHERE: unknown key "k" (did you mean "key"?)"
 * (where may be NULL or "").  Missing keys are the caller's business.
 */
int bn_schema_check(const struct bn_schema *s, const json_t *obj, const char *file, const char *where,
                    struct bn_error *err);
/* The schema's entry for key, or NULL. */
const struct bn_schema_key *bn_schema_find(const struct bn_schema *s, const char *key);

/* The schemas libbundle reads (the pack spec's are agpack's, in tools/agpack/spec.c). */
extern const struct bn_schema bn_trust_schema, bn_trust_key_schema, bn_trust_channel_schema;
extern const struct bn_schema bn_config_schema;

/* *ret: config.json's cpu_kernels (a static string: amx, avx512, avx2 or
 * generic, the CPU backend's AGRT_SIMD values), or NULL when it has none;
 * -EINVAL naming file and the value when it is another. */
int bn_config_cpu_kernels(const json_t *config, const char *file, const char **ret, struct bn_error *err) BN_WUR;
