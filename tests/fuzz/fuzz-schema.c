/* SPDX-License-Identifier: Apache-2.0 */
/* The strict-input parsers of issue 16: bn_parse_size() on the first line,
 * bn_schema_check() of the rest against a root's config.json schema (the
 * pack spec's and trust policy's run under fuzz-spec and fuzz-trust). */
#include <errno.h>
#include <string.h>

#include "bundle/fsutil.h"
#include "bundle/schema.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t l = nl ? (size_t)(nl - data) : size;
	char *line = malloc(l + 1);
	FUZZ_ASSERT(line);
	memcpy(line, data, l);
	line[l] = '\0';
	uint64_t v = 0;
	int r = bn_parse_size(line, &v);
	FUZZ_ASSERT(r == 0 || r == -EINVAL || r == -ERANGE);
	if (r == 0 && strlen(line) == l) {
		/* a size prints and parses back to itself */
		char back[32];
		uint64_t w = 0;
		snprintf(back, sizeof back, "%llu", (unsigned long long)v);
		FUZZ_ASSERT(bn_parse_size(back, &w) == 0 && w == v);
	}
	free(line);
	if (nl) {
		json_t *o = json_loadb((const char *)nl + 1, size - l - 1, JSON_REJECT_DUPLICATES, NULL);
		struct bn_error err = {0};
		if (o) {
			r = bn_schema_check(&bn_config_schema, o, "config.json", NULL, &err);
			FUZZ_ASSERT(r == 0 || (r == -EINVAL && err.msg[0]));
			if (r == 0 && json_is_object(o)) {
				const char *k;
				json_t *x;
				json_object_foreach(o, k, x) FUZZ_ASSERT(bn_schema_find(&bn_config_schema, k));
			}
			json_decref(o);
		}
	}
	/* the suggestion never crashes and is one of the candidates */
	static const char *const c[] = {"sha256", "status", "validation_window_s", NULL};
	char word[65];
	size_t wl = size < 64 ? size : 64;
	memcpy(word, data, wl);
	word[wl] = '\0';
	const char *m = bn_closest(word, c);
	FUZZ_ASSERT(!m || m == c[0] || m == c[1] || m == c[2]);
	return 0;
}
