/* SPDX-License-Identifier: Apache-2.0 */
/* The python artifact's parsers (tools/agpack/fetch/pyindex.c): the first
 * byte picks requirements (strict or unpinned), a PEP 503 HTML page or a
 * PEP 691 JSON page; every listed file name then goes through the wheel-tag
 * matcher.  Accepted input must satisfy pyindex.h's bounds; a refusal must
 * say why. */
#include <string.h>

#include "fuzz_common.h"
#include "pyindex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bn_error err = {0};
	if (size < 1)
		return 0;
	int mode = data[0] % 4;
	const char *buf = (const char *)data + 1;
	size_t len = size - 1;
	if (mode < 2) {
		struct py_reqs r;
		if (py_reqs_parse(buf, len, "fuzz.txt", mode == 1, &r, &err) < 0) {
			FUZZ_ASSERT(err.msg[0]);
			return 0;
		}
		FUZZ_ASSERT(r.n >= 1 && r.n <= PY_MAX_REQS);
		for (size_t i = 0; i < r.n; i++) {
			FUZZ_ASSERT(r.v[i].name[0] && strlen(r.v[i].name) <= PY_MAX_NAME && r.v[i].version[0]);
			FUZZ_ASSERT(r.v[i].n_hashes <= PY_MAX_HASHES && (mode == 1 || r.v[i].n_hashes >= 1));
			for (size_t h = 0; h < r.v[i].n_hashes; h++)
				FUZZ_ASSERT(strlen(r.v[i].hashes[h]) == 64);
		}
		py_reqs_free(&r);
		return 0;
	}
	struct py_links l;
	if (py_links_parse(buf, len, mode == 3, "fuzz-page", &l, &err) < 0) {
		FUZZ_ASSERT(err.msg[0]);
		return 0;
	}
	FUZZ_ASSERT(l.n <= PY_MAX_LINKS);
	struct py_target t = {.major = 3, .minor = 11};
	strcpy(t.platform, "manylinux_2_36_x86_64");
	for (size_t i = 0; i < l.n; i++) {
		FUZZ_ASSERT(l.v[i].filename[0] && !strchr(l.v[i].filename, '/'));
		FUZZ_ASSERT(strcmp(l.v[i].filename, "..") && strcmp(l.v[i].filename, "."));
		FUZZ_ASSERT(l.v[i].sha256[0] == 0 || strlen(l.v[i].sha256) == 64);
		char norm[PY_MAX_NAME + 1];
		const char *dash = strchr(l.v[i].filename, '-');
		if (dash && py_normalize(l.v[i].filename, (size_t)(dash - l.v[i].filename), norm) == 0)
			(void)py_wheel_match(l.v[i].filename, norm, "1.0", &t);
	}
	py_links_free(&l);
	return 0;
}
