/* SPDX-License-Identifier: Apache-2.0 */
/* The SBOM's package database parsers (tools/agpack/pkgdb.c): dpkg status,
 * apk installed and Python core metadata, each on the same input. */
#include <string.h>

#include "fuzz_common.h"
#include "pkgdb.h"

static int check_pkg(void *ud, const struct pkgdb_pkg *p)
{
	size_t *n = ud;
	FUZZ_ASSERT(p->name && p->version && p->arch && p->license);
	FUZZ_ASSERT(p->name[0] && p->version[0]);
	FUZZ_ASSERT(strlen(p->name) <= PKGDB_FIELD_MAX && strlen(p->version) <= PKGDB_FIELD_MAX);
	FUZZ_ASSERT(strlen(p->arch) <= PKGDB_FIELD_MAX && strlen(p->license) <= PKGDB_FIELD_MAX);
	(*n)++;
	return *n > 100000 ? -1 : 0;
}

static int stop_at_once(void *ud, const struct pkgdb_pkg *p)
{
	(void)ud;
	(void)p;
	return -7;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t n = 0;
	int r = pkgdb_parse_dpkg(buf, size, check_pkg, &n);
	FUZZ_ASSERT(r == 0 || r == -1);
	size_t dpkg = n;
	n = 0;
	r = pkgdb_parse_apk(buf, size, check_pkg, &n);
	FUZZ_ASSERT(r == 0 || r == -1);
	n = 0;
	r = pkgdb_parse_pymeta(buf, size, check_pkg, &n);
	FUZZ_ASSERT(r == 0 && n <= 1);
	/* A callback's error stops the parse and is returned as is. */
	r = pkgdb_parse_dpkg(buf, size, stop_at_once, NULL);
	FUZZ_ASSERT(dpkg ? r == -7 : r == 0);
	return 0;
}
