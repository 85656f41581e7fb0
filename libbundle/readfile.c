/* SPDX-License-Identifier: Apache-2.0 */
/* One file of an artifact, read without extracting the bundle (agimport
 * inspect --sbom): only the chunks that cover it, each checked against the
 * signed manifest, and the whole file against its signed sha256. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "bundle/bundle.h"
#include "reader_internal.h"

int bn_bundle_read_file(struct bn_bundle *b, const char *artifact, const char *path, size_t max, char **ret,
                        size_t *ret_len, struct bn_error *err)
{
	const struct bn_manifest *m = b->m;
	const struct bn_artifact *a = NULL;
	for (size_t i = 0; i < m->n_artifacts && !a; i++)
		if (!strcmp(m->artifacts[i].name, artifact))
			a = &m->artifacts[i];
	if (!a)
		return bn_fail(err, -ENOENT, "%s: no artifact named %s", b->dir, artifact);
	const struct bn_entry *e = NULL;
	for (size_t i = 0; i < a->n_entries && !e; i++)
		if (a->entries[i].type == BN_ENTRY_FILE && !strcmp(a->entries[i].path, path))
			e = &a->entries[i];
	if (!e)
		return bn_fail(err, -ENOENT, "%s: artifact %s has no file %s", b->dir, artifact, path);
	if (e->size > max)
		return bn_fail(err, -EFBIG, "%s: %s/%s is %" PRIu64 " bytes, more than the %zu allowed", b->dir,
		               artifact, path, e->size, max);
	char *out = malloc(e->size + 1);
	uint8_t *ubuf = malloc(m->chunk_size), *scratch = NULL, *cbuf = NULL;
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	struct bn_chunk_reader cr;
	int r = bn_chunk_reader_init(&cr, b, err);
	if (r == 0 && (!out || !ubuf || !dctx))
		r = bn_fail(err, -ENOMEM, "out of memory");
	uint64_t end = e->offset + e->size;
	for (size_t ci = a->chunk_first; r == 0 && ci < a->chunk_first + a->n_chunks; ci++) {
		const struct bn_chunk *c = &m->chunks[ci];
		if (c->soffset + c->usize <= e->offset || c->soffset >= end)
			continue;
		/* each chunk's stored bytes against its signed hash (which is how
		 * every volume byte is checked, FORMAT.md section 5), then decoded */
		uint8_t *nb = realloc(cbuf, c->csize ? c->csize : 1);
		if (!nb) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			break;
		}
		cbuf = nb;
		r = bn_chunk_fetch(&cr, ci, cbuf, err);
		if (r == 0)
			r = bn_chunk_check(b, ci, cbuf, err);
		if (r == 0)
			r = bn_chunk_decode(b, ci, dctx, cbuf, ubuf, &scratch, err);
		if (r < 0)
			break;
		uint64_t from = c->soffset > e->offset ? c->soffset : e->offset;
		uint64_t to = c->soffset + c->usize < end ? c->soffset + c->usize : end;
		memcpy(out + (from - e->offset), ubuf + (from - c->soffset), (size_t)(to - from));
	}
	if (r == 0) {
		uint8_t h[BN_SHA256_LEN];
		bn_sha256(out, (size_t)e->size, h);
		if (memcmp(h, e->sha256, BN_SHA256_LEN) != 0)
			r = bn_fail(err, -EBADMSG, "%s: %s/%s: sha256 does not match the signed manifest", b->dir,
			            artifact, path);
	}
	bn_chunk_reader_release(&cr);
	ZSTD_freeDCtx(dctx);
	free(ubuf);
	free(cbuf);
	free(scratch);
	if (r < 0) {
		free(out);
		return r;
	}
	out[e->size] = '\0';
	*ret = out;
	*ret_len = (size_t)e->size;
	return 0;
}
