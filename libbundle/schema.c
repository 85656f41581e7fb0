/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/schema.h"

#define DIST_MAX 64

size_t bn_edit_distance(const char *a, const char *b)
{
	size_t la = strnlen(a, DIST_MAX), lb = strnlen(b, DIST_MAX);
	size_t row[DIST_MAX + 1];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

const char *bn_closest(const char *word, const char *const *cands)
{
	size_t len = strlen(word), limit = len >= 10 ? 3 : len >= 5 ? 2 : 1;
	const char *best = NULL;
	size_t bd = limit + 1;
	for (size_t i = 0; cands && cands[i]; i++) {
		size_t d = bn_edit_distance(word, cands[i]);
		if (d < bd) {
			bd = d;
			best = cands[i];
		}
	}
	return best;
}

const struct bn_schema_key *bn_schema_find(const struct bn_schema *s, const char *key)
{
	for (size_t i = 0; i < s->n_keys; i++)
		if (!strcmp(s->keys[i].key, key))
			return &s->keys[i];
	return NULL;
}

static void type_names(unsigned t, char *out, size_t len)
{
	static const char *const names[] = {"a string", "an integer", "a number", "true or false",
	                                    "an array", "an object",  "null"};
	size_t k = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
		if (t & (1u << i)) {
			int n = snprintf(out + k, len - k, "%s%s", k ? " or " : "", names[i]);
			if (n < 0 || (size_t)n >= len - k)
				break;
			k += (size_t)n;
		}
}

static bool type_ok(unsigned t, const json_t *v)
{
	return ((t & BN_JT_STRING) && json_is_string(v)) || ((t & BN_JT_INT) && json_is_integer(v)) ||
	       ((t & BN_JT_NUMBER) && json_is_number(v)) || ((t & BN_JT_BOOL) && json_is_boolean(v)) ||
	       ((t & BN_JT_ARRAY) && json_is_array(v)) || ((t & BN_JT_OBJECT) && json_is_object(v)) ||
	       ((t & BN_JT_NULL) && json_is_null(v));
}

/* A short rendering of v for messages. */
static void show(const json_t *v, char *out, size_t len)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	snprintf(out, len, "%.60s%s", s ? s : "?", s && strlen(s) > 60 ? "..." : "");
	free(s);
}

int bn_schema_check(const struct bn_schema *s, const json_t *obj, const char *file, const char *where,
                    struct bn_error *err)
{
	char pre[600];
	snprintf(pre, sizeof pre, "%s: %s%s", file, where && *where ? where : "", where && *where ? ": " : "");
	if (!json_is_object(obj))
		return bn_fail(err, -EINVAL, "%smust be a JSON object (%s)", pre, s->what);
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)obj, k, v)
	{
		const struct bn_schema_key *e = bn_schema_find(s, k);
		if (!e) {
			const char *cands[64];
			size_t n = 0;
			for (size_t i = 0; i < s->n_keys && n < 63; i++)
				cands[n++] = s->keys[i].key;
			cands[n] = NULL;
			const char *m = bn_closest(k, cands);
			if (m)
				return bn_fail(err, -EINVAL, "%sunknown key \"%.100s\" (did you mean \"%s\"?)", pre, k,
				               m);
			return bn_fail(err, -EINVAL, "%sunknown key \"%.100s\"", pre, k);
		}
		char tn[128], val[80];
		if (!type_ok(e->types, v)) {
			type_names(e->types, tn, sizeof tn);
			show(v, val, sizeof val);
			return bn_fail(err, -EINVAL, "%s\"%s\" must be %s, not %s", pre, k, tn, val);
		}
		if (json_is_number(v) && (e->min != 0 || e->max != 0)) {
			double x = json_number_value(v);
			if (!(x >= e->min && x <= e->max)) {
				show(v, val, sizeof val);
				return bn_fail(err, -EINVAL, "%s\"%s\" must be from %.15g to %.15g, not %s", pre, k,
				               e->min, e->max, val);
			}
		}
	}
	return 0;
}

/* ---- the schemas libbundle reads --------------------------------------- */

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define U63  9.2233720368547748e18 /* the largest JSON integer jansson reads */

static const struct bn_schema_key trust_keys[] = {
    {"agkit_trust", BN_JT_INT, 1, 1, "format version of the policy, 1"},
    {"serial", BN_JT_INT, 0, U63, "policy serial; an update must carry a higher one"},
    {"threshold", BN_JT_INT, 1, U63, "how many distinct listed keys must sign a bundle"},
    {"keys", BN_JT_ARRAY, 0, 0, "trusted keys: [{\"id\": KEYID, \"public_key\": BASE64}]"},
    {"max_bundle_age_days", BN_JT_INT, 0, U63, "refuse bundles created longer ago (0: no limit)"},
    {"channels", BN_JT_OBJECT, 0, 0, "accepted channels: {\"NAME\": {\"min_version\": N}}"},
    {"max_version_jump", BN_JT_INT, 0, U63, "refuse versions more than this above the floor (0: no limit)"},
    {"bundles", BN_JT_ARRAY, 0, 0, "accepted bundle names (absent: any)"},
};
const struct bn_schema bn_trust_schema = {"trust policy", trust_keys, N(trust_keys)};

static const struct bn_schema_key trust_key_keys[] = {
    {"id", BN_JT_STRING, 0, 0, "key id (16 hex digits), informative"},
    {"public_key", BN_JT_STRING, 0, 0, "the minisign public key (base64 line of the .pub file)"},
};
const struct bn_schema bn_trust_key_schema = {"trust policy key", trust_key_keys, N(trust_key_keys)};

static const struct bn_schema_key trust_channel_keys[] = {
    {"min_version", BN_JT_INT, 0, U63, "lowest version accepted on the channel"},
};
const struct bn_schema bn_trust_channel_schema = {"trust policy channel", trust_channel_keys, N(trust_channel_keys)};

static const struct bn_schema_key config_keys[] = {
    {"validation_window_s", BN_JT_INT, 0, 10.0 * 366 * 86400, "seconds a promoted slot stays on probation"},
    {"switch_hook", BN_JT_STRING | BN_JT_NULL, 0, 0, "absolute path of an executable run after every switch"},
    {"hook_timeout_s", BN_JT_INT, 1, 86400, "seconds the switch hook may run"},
    {"max_clock_skew_s", BN_JT_INT, 0, 10.0 * 366 * 86400, "refuse bundles created further in the future"},
    {"health_memory_limit_mb", BN_JT_INT, 0, 1 << 30, "data size limit of a health check in MiB (0: none)"},
    {"health_timeout_s", BN_JT_INT, 1, 7 * 86400, "seconds a health check may run"},
    {"latency_regression", BN_JT_NUMBER, 0, 100, "allowed slowdown against the baseline (0.2: 20%)"},
    {"require_health_suite", BN_JT_BOOL, 0, 0, "a bundle without a health suite fails the check"},
    {"agrun_path", BN_JT_STRING, 0, 0, "absolute path of the agrun used for health checks"},
    {"agserve_path", BN_JT_STRING, 0, 0, "absolute path of the agserve used to check models behind an external engine"},
    {"cpu_kernels", BN_JT_STRING, 0, 0,
     "CPU kernels of health checks and agserve --root: amx, avx512, avx2 or generic (absent: the CPU's best; "
     "AGRT_SIMD overrides)"},
};
const struct bn_schema bn_config_schema = {"config.json", config_keys, N(config_keys)};

/* the kernel families of the CPU backend (its AGRT_SIMD values) */
static const char *const cpu_kernels[] = {"amx", "avx512", "avx2", "generic", NULL};

int bn_config_cpu_kernels(const json_t *config, const char *file, const char **ret, struct bn_error *err)
{
	const json_t *v = json_object_get(config, "cpu_kernels");
	*ret = NULL;
	if (!v)
		return 0;
	for (size_t i = 0; json_is_string(v) && cpu_kernels[i]; i++)
		if (!strcmp(cpu_kernels[i], json_string_value(v))) {
			*ret = cpu_kernels[i];
			return 0;
		}
	char val[80];
	show(v, val, sizeof val);
	return bn_fail(err, -EINVAL, "%s: \"cpu_kernels\" must be amx, avx512, avx2 or generic, not %s", file, val);
}
