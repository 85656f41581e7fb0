/* SPDX-License-Identifier: Apache-2.0 */
/* agsync's mirror texts (tools/agsync/sync.h): SHA256SUMS and index.json. */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum { MAX = 64 };
	char *buf = malloc(size + 1);
	char **names = calloc(MAX, sizeof *names);
	uint8_t(*hashes)[BN_SHA256_LEN] = calloc(MAX, BN_SHA256_LEN);
	FUZZ_ASSERT(buf && names && hashes);
	memcpy(buf, data, size);
	buf[size] = 0;
	struct bn_error err = {0};
	size_t n = 0;
	if (sync_sums_parse(buf, size, names, hashes, MAX, &n, &err) == 0) {
		FUZZ_ASSERT(n >= 1 && n <= MAX);
		for (size_t i = 0; i < n; i++) {
			/* Every name stays inside the bundle directory. */
			FUZZ_ASSERT(names[i] >= buf && names[i] < buf + size);
			/* Every component is a plain name ("x..y" is one; ".." is not). */
			FUZZ_ASSERT(*names[i] && names[i][0] != '.' && names[i][0] != '/');
			FUZZ_ASSERT(strcmp(names[i], "SHA256SUMS") != 0);
			const char *s = strchr(names[i], '/');
			FUZZ_ASSERT(!s || (!strncmp(names[i], "signatures/", 11) && s[1] && s[1] != '.' &&
			                   !strchr(s + 1, '/')));
		}
	} else {
		FUZZ_ASSERT(err.code == -EBADMSG && err.msg[0]);
	}
	uint64_t v = 0;
	memset(&err, 0, sizeof err);
	int r = sync_index_newest((const char *)data, size, "llm", "stable", &v, &err);
	FUZZ_ASSERT(r == 0 ? v >= 1 : (r == -ENOENT || r == -EBADMSG));
	/* The one index reader (pull and publish): an object with a "bundles" array, or -EBADMSG. */
	json_t *idx = NULL;
	r = sync_index_load((const char *)data, size, &idx, &err);
	FUZZ_ASSERT(r == 0 ? json_is_array(json_object_get(idx, "bundles")) : r == -EBADMSG && !idx);
	json_decref(idx);
	free(buf);
	free(names);
	free(hashes);
	return 0;
}
