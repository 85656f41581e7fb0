/* SPDX-License-Identifier: Apache-2.0 */
/* bn_manifest_parse() on arbitrary bytes; what parses must round-trip through
 * bn_manifest_format() to the same text, and its lookups must stay in range. */
#include <string.h>

#include "bundle/manifest.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bn_manifest *m = NULL;
	struct bn_error err = {0};
	int r = bn_manifest_parse((const char *)data, size, &m, &err);
	if (r < 0) {
		FUZZ_ASSERT(m == NULL && err.code == r && err.msg[0]);
		return 0;
	}
	/* Invariants promised by manifest.h. */
	for (size_t i = 0; i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		FUZZ_ASSERT(bn_name_valid(a->name));
		FUZZ_ASSERT(a->chunk_first + a->n_chunks <= m->n_chunks);
		for (size_t j = 0; j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			FUZZ_ASSERT(bn_path_valid(e->path) && (e->mode & ~0777u) == 0);
			if (e->type == BN_ENTRY_SYMLINK)
				FUZZ_ASSERT(e->target && bn_symlink_inside(e->path, e->target));
			if (e->type == BN_ENTRY_FILE) {
				FUZZ_ASSERT(e->offset + e->size <= a->size);
				if (e->size > 0)
					FUZZ_ASSERT(bn_artifact_file_at(a, e->offset) == (ssize_t)j);
			}
		}
		FUZZ_ASSERT(bn_artifact_file_at(a, a->size) == -1);
	}
	for (size_t i = 0; i < m->n_chunks; i++) {
		const struct bn_chunk *c = &m->chunks[i];
		FUZZ_ASSERT(c->usize > 0 && c->usize <= m->chunk_size);
		if (bn_chunk_reused(c)) {
			/* Delta bundles (format 2.0): a base, and a valid base file. */
			FUZZ_ASSERT(m->base && m->format_major == BN_FORMAT_DELTA_MAJOR &&
			            c->artifact < m->n_artifacts);
			FUZZ_ASSERT(c->bref < m->n_brefs && bn_name_valid(m->brefs[c->bref].artifact) &&
			            bn_path_valid(m->brefs[c->bref].path));
			FUZZ_ASSERT(c->soffset + c->usize <= m->artifacts[c->artifact].size);
			continue;
		}
		FUZZ_ASSERT(c->artifact < m->n_artifacts && c->volume < m->n_volumes);
		FUZZ_ASSERT(c->voffset + c->csize <= m->volumes[c->volume].size);
		FUZZ_ASSERT(c->soffset + c->usize <= m->artifacts[c->artifact].size);
	}
	char *t1 = NULL, *t2 = NULL;
	size_t l1 = 0, l2 = 0;
	FUZZ_ASSERT(bn_manifest_format(m, &t1, &l1) == 0);
	struct bn_manifest *m2 = NULL;
	r = bn_manifest_parse(t1, l1, &m2, &err);
	if (r < 0)
		fprintf(stderr, "re-parse failed: %s\n", err.msg);
	FUZZ_ASSERT(r == 0);
	FUZZ_ASSERT(bn_manifest_format(m2, &t2, &l2) == 0);
	FUZZ_ASSERT(l1 == l2 && memcmp(t1, t2, l1) == 0);
	free(t1);
	free(t2);
	bn_manifest_free(m2);
	bn_manifest_free(m);
	return 0;
}
