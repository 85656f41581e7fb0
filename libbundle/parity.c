/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parity volumes: encoding (docs/FORMAT.md section 9); their manifest record
 * is manifest_ext.c's.
 * The Galois-field arithmetic is ISA-L's; nothing here multiplies in GF(2^8)
 * by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <isa-l/erasure_code.h>

#include "bundle/fsutil.h"
#include "bundle/parity.h"
#include "bundle/sha256.h"
#include "parity_internal.h"

void bn_parity_volume_name(size_t i, char out[32])
{
	snprintf(out, 32, "par-%05zu.agp", i + 1);
}

size_t bn_parity_block(uint32_t shards)
{
	/* A few MiB of stripe buffers in all, whatever k + p is; 4 KiB multiples
	 * keep reads page-aligned. */
	size_t b = BN_PARITY_BUF_BUDGET / (shards ? shards : 1);
	if (b > (1u << 20))
		b = 1u << 20;
	b &= ~(size_t)4095;
	return b < 4096 ? 4096 : b;
}

uint8_t *bn_parity_matrix(uint32_t k, uint32_t p)
{
	/* Rows 0..k-1 identity, rows k..k+p-1 Cauchy: 1 / (row XOR column). */
	uint8_t *a = malloc((size_t)(k + p) * k);
	if (a)
		gf_gen_cauchy1_matrix(a, (int)(k + p), (int)k);
	return a;
}

/* ---- encoding -------------------------------------------------------- */

static int encode_group(const char *dir, const struct bn_manifest *m, struct bn_parity_group *g,
                        struct bn_volume *pvols, struct bn_error *err)
{
	uint32_t k = g->k, p = g->p;
	size_t B = bn_parity_block(k + p);
	uint8_t *a = bn_parity_matrix(k, p), *tbl = malloc((size_t)32 * k * p);
	uint8_t **bufs = calloc(k + p, sizeof *bufs);
	int *fds = calloc(k + p, sizeof *fds);
	for (uint32_t i = 0; fds && i < k + p; i++)
		fds[i] = -1; /* before any goto out: only opened fds are closed */
	struct bn_sha256 **sha = calloc(p, sizeof *sha);
	int r = 0;
	if (!a || !tbl || !bufs || !fds || !sha) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < k + p; i++) {
		if (posix_memalign((void **)&bufs[i], 64, B) != 0) {
			bufs[i] = NULL;
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	for (uint32_t j = 0; j < p; j++)
		if (!(sha[j] = bn_sha256_new())) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
	ec_init_tables((int)k, (int)p, a + (size_t)k * k, tbl);
	for (uint32_t i = 0; i < k + p; i++) {
		const char *name = i < k ? m->volumes[g->data[i]].name : pvols[g->par[i - k]].name;
		char *path = bn_path_join(dir, name);
		if (!path) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		fds[i] = i < k ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
		               : open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fds[i] < 0) {
			r = bn_fail(err, -errno, "%s: %s", path, strerror(errno));
			free(path);
			goto out;
		}
		if (i < k)
			posix_fadvise(fds[i], 0, 0, POSIX_FADV_SEQUENTIAL);
		free(path);
	}
	for (uint64_t off = 0; off < g->len; off += B) {
		size_t l = g->len - off < B ? (size_t)(g->len - off) : B;
		for (uint32_t i = 0; i < k; i++) {
			uint64_t vs = m->volumes[g->data[i]].size;
			size_t have = off >= vs ? 0 : (vs - off < l ? (size_t)(vs - off) : l);
			/* Shorter volumes count as zero-padded to the shard length. */
			if (have && (r = bn_pread_all(fds[i], bufs[i], have, off)) < 0) {
				r = bn_fail(err, r, "%s/%s: read error: %s", dir, m->volumes[g->data[i]].name, strerror(-r));
				goto out;
			}
			memset(bufs[i] + have, 0, l - have);
		}
		ec_encode_data((int)l, (int)k, (int)p, tbl, bufs, bufs + k);
		for (uint32_t j = 0; j < p; j++) {
			bn_sha256_update(sha[j], bufs[k + j], l);
			if ((r = bn_write_all(fds[k + j], bufs[k + j], l)) < 0) {
				r = bn_fail(err, r, "%s/%s: write failed: %s", dir, pvols[g->par[j]].name, strerror(-r));
				goto out;
			}
		}
	}
	for (uint32_t j = 0; j < p; j++) {
		struct bn_volume *pv = &pvols[g->par[j]];
		pv->size = g->len;
		bn_sha256_final(sha[j], pv->sha256);
		if (fsync(fds[k + j]) < 0) {
			r = bn_fail(err, -errno, "%s/%s: %s", dir, pv->name, strerror(errno));
			goto out;
		}
	}
out:
	for (uint32_t i = 0; fds && i < k + p; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (uint32_t i = 0; bufs && i < k + p; i++)
		free(bufs[i]);
	for (uint32_t j = 0; sha && j < p; j++)
		bn_sha256_free(sha[j]);
	free(sha);
	free(fds);
	free(bufs);
	free(tbl);
	free(a);
	return r;
}

int bn_parity_build(const char *dir, struct bn_manifest *m, unsigned p, size_t groups, struct bn_error *err)
{
	size_t n = m->n_volumes;
	if (p == 0 || p > BN_PARITY_MAX)
		return bn_fail(err, -EINVAL, "--parity must be between 1 and %u", BN_PARITY_MAX);
	if (n == 0)
		return bn_fail(err, -EINVAL, "no data volumes to protect");
	size_t maxk = BN_PARITY_MAX_SHARDS - p;
	size_t need = (n + maxk - 1) / maxk;
	if (groups < need)
		groups = need;
	if (groups > n)
		groups = n;
	if (groups * p > BN_MAX_VOLUMES)
		return bn_fail(err, -EFBIG, "more than %u parity volumes; use a larger --volume-size", BN_MAX_VOLUMES);
	struct bn_parity *pa = calloc(1, sizeof *pa);
	if (!pa)
		return bn_fail(err, -ENOMEM, "out of memory");
	pa->n_groups = groups;
	pa->n_volumes = groups * p;
	pa->groups = calloc(groups, sizeof *pa->groups);
	pa->volumes = calloc(pa->n_volumes, sizeof *pa->volumes);
	int r = 0;
	if (!pa->groups || !pa->volumes) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t g = 0; g < groups; g++) {
		struct bn_parity_group *gr = &pa->groups[g];
		gr->k = (uint32_t)((n - g + groups - 1) / groups);
		gr->p = p;
		gr->data = calloc(gr->k, sizeof *gr->data);
		gr->par = calloc(p, sizeof *gr->par);
		if (!gr->data || !gr->par) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
		/* Data volume i joins group i mod groups: with media laid out in
		 * columns, a lost medium costs each group one volume. */
		for (uint32_t i = 0; i < gr->k; i++) {
			gr->data[i] = (uint32_t)(g + (size_t)i * groups);
			if (m->volumes[gr->data[i]].size > gr->len)
				gr->len = m->volumes[gr->data[i]].size;
		}
		for (uint32_t j = 0; j < p; j++) {
			gr->par[j] = (uint32_t)(g * p + j);
			bn_parity_volume_name(g * p + j, pa->volumes[g * p + j].name);
		}
	}
	for (size_t g = 0; g < groups && r == 0; g++)
		r = encode_group(dir, m, &pa->groups[g], pa->volumes, err);
	if (r < 0)
		goto fail;
	/* Re-parse the record to fill the derived indices exactly as a reader would. */
	{
		json_t *root = json_object();
		struct bn_manifest tmp = *m;
		tmp.parity = pa;
		tmp.media = NULL;
		bn_parity_free(m->parity);
		m->parity = NULL;
		if (!root || bn_manifest_format_ext(&tmp, root) < 0) {
			json_decref(root);
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto fail;
		}
		r = bn_manifest_parse_ext(m, root, err); /* root holds the parity record only */
		json_decref(root);
		bn_parity_free(pa);
		return r;
	}
fail:
	bn_parity_free(pa);
	return r;
}
