/* SPDX-License-Identifier: Apache-2.0 */
/* agpack's pack spec parser (tools/agpack/spec.c) on an arbitrary spec file. */
#include <string.h>

#include "bundle/manifest.h"
#include "fuzz_common.h"
#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *dir = fuzz_mkdtemp();
	char *path = fuzz_write(dir, "spec.json", data, size);
	struct spec s;
	struct bn_error err = {0};
	if (spec_load(path, &s, &err) == 0) {
		FUZZ_ASSERT(s.name && bn_name_valid(s.name) && s.channel && bn_name_valid(s.channel));
		FUZZ_ASSERT(s.n_artifacts > 0);
		for (size_t i = 0; i < s.n_artifacts; i++) {
			const struct spec_artifact *a = &s.artifacts[i];
			FUZZ_ASSERT(a->type && a->name && bn_name_valid(a->name));
			for (size_t j = 0; j < i; j++)
				FUZZ_ASSERT(strcmp(s.artifacts[j].name, a->name) != 0);
			if (!strcmp(a->type, "files") || !strcmp(a->type, "oci-archive"))
				FUZZ_ASSERT(a->path && a->path[0]);
		}
		spec_release(&s);
	} else {
		FUZZ_ASSERT(err.msg[0]);
	}
	free(path);
	fuzz_rmdir(dir);
	return 0;
}
