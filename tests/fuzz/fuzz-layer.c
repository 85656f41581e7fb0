/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agpack's SBOM image scan (tools/agpack/image.c: image_scan) on an
 * arbitrary layer: the input is the blob of the second layer of a fixed OCI
 * layout whose first layer holds a dpkg status, an apk database and a Python
 * METADATA (any compression libarchive reads, whiteouts, duplicates).  A
 * scan that succeeds lists only packages with names and versions.
 */
#include <string.h>
#include <sys/stat.h>

#include "bundle/sha256.h"
#include "fuzz_common.h"
#include "image.h"

/* A ustar member: name, content. */
static size_t ustar(uint8_t *out, const char *name, const char *data)
{
	size_t len = strlen(data);
	memset(out, 0, 512);
	snprintf((char *)out, 100, "%s", name);
	memcpy(out + 100, "0000644", 8);
	memcpy(out + 108, "0000000", 8);
	memcpy(out + 116, "0000000", 8);
	snprintf((char *)out + 124, 12, "%011o", (unsigned)len);
	memcpy(out + 136, "00000000000", 12);
	out[156] = '0';
	memcpy(out + 257, "ustar", 6);
	memcpy(out + 263, "00", 2);
	memset(out + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += out[i];
	snprintf((char *)out + 148, 8, "%06o", sum);
	memcpy(out + 512, data, len);
	size_t padded = (len + 511) / 512 * 512;
	memset(out + 512 + len, 0, padded - len);
	return 512 + padded;
}

static void digest_of(const void *buf, size_t len, char out[72])
{
	uint8_t h[BN_SHA256_LEN];
	char hex[BN_SHA256_HEX];
	bn_sha256(buf, len, h);
	bn_hex(h, BN_SHA256_LEN, hex);
	snprintf(out, 72, "sha256:%s", hex);
}

static void put_blob(const char *blobs, const void *buf, size_t len, char digest[72])
{
	digest_of(buf, len, digest);
	free(fuzz_write(blobs, digest + 7, buf, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (bn_sha256_init() < 0)
		abort();
	char *dir = fuzz_mkdtemp();
	char blobs[4200];
	snprintf(blobs, sizeof blobs, "%s/blobs", dir);
	mkdir(blobs, 0755);
	strcat(blobs, "/sha256");
	mkdir(blobs, 0755);
	static uint8_t l1[8192];
	size_t n = 0;
	n += ustar(l1 + n, "var/lib/dpkg/status", "Package: a\nStatus: install ok installed\nVersion: 1\n\n");
	n += ustar(l1 + n, "lib/apk/db/installed", "P:b\nV:2\n\n");
	n += ustar(l1 + n, "usr/lib/python3/x-1.dist-info/METADATA", "Name: x\nVersion: 1\n\n");
	n += ustar(l1 + n, "etc/os-release", "ID=debian\nVERSION_ID=12\n");
	memset(l1 + n, 0, 1024);
	n += 1024;
	char d1[72], d2[72], dc[72], dm[72];
	put_blob(blobs, l1, n, d1);
	put_blob(blobs, data, size, d2);
	const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"A=1\"]}}";
	put_blob(blobs, cfg, strlen(cfg), dc);
	char man[1024];
	snprintf(
	    man, sizeof man,
	    "{\"schemaVersion\":2,\"config\":{\"digest\":\"%s\"},\"layers\":[{\"digest\":\"%s\"},{\"digest\":\"%s\"}]}",
	    dc, d1, d2);
	put_blob(blobs, man, strlen(man), dm);
	char index[512];
	snprintf(index, sizeof index, "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"%s\"}]}", dm);
	free(fuzz_write(dir, "index.json", index, strlen(index)));
	free(fuzz_write(dir, "oci-layout", "{}", 2));
	struct image_info *imgs = NULL;
	size_t ni = 0;
	struct bn_error err = {0};
	if (image_scan(dir, &imgs, &ni, &err) == 0) {
		FUZZ_ASSERT(ni == 1 && imgs[0].digest && !strcmp(imgs[0].digest, dm));
		for (size_t i = 0; i < imgs[0].n_pkgs; i++) {
			const struct image_pkg *p = &imgs[0].pkgs[i];
			FUZZ_ASSERT(p->name && p->name[0] && p->version && p->version[0] && p->db && p->db[0]);
			FUZZ_ASSERT(p->db[0] != '/');
			if (i) { /* sorted and without duplicates */
				const struct image_pkg *q = &imgs[0].pkgs[i - 1];
				FUZZ_ASSERT(q->kind != p->kind || strcmp(q->name, p->name) ||
				            strcmp(q->version, p->version) || strcmp(q->db, p->db) ||
				            (q->arch == NULL) != (p->arch == NULL) ||
				            (q->arch && strcmp(q->arch, p->arch)) ||
				            (q->license == NULL) != (p->license == NULL) ||
				            (q->license && strcmp(q->license, p->license)));
				FUZZ_ASSERT(q->kind <= p->kind);
			}
		}
		image_free(imgs, ni);
	} else {
		FUZZ_ASSERT(err.msg[0]);
	}
	fuzz_rmdir(dir);
	return 0;
}
