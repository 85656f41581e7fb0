/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Package databases found in container image layers, for the SBOM
 * (docs/SBOM.md): dpkg's status file (and distroless status.d/ entries), apk's
 * installed database and Python core metadata (*.dist-info/METADATA,
 * *.egg-info/PKG-INFO).  The parsers read a buffer the caller has already
 * bounded (PKGDB_MAX_BYTES) and call fn once per package; they never fail on
 * malformed text (such stanzas are skipped), only when fn fails (or with
 * -EFBIG on more than PKGDB_MAX_BYTES).  Lines are cut by the one stanza
 * reader, tools/common/stanza.h.
 */
#include <stddef.h>

#define PKGDB_MAX_BYTES (64u << 20)  /* a dpkg status or apk installed file larger than this is refused */
#define PKGDB_META_MAX  (256u << 10) /* Python metadata: only the first 256 KiB (the headers) are read */
#define PKGDB_FIELD_MAX 512          /* a package whose name, version, arch or license is longer is skipped */

struct pkgdb_pkg {
	const char *name, *version, *arch, *license; /* arch and license may be "" */
};

typedef int (*pkgdb_fn)(void *ud, const struct pkgdb_pkg *p);

/* dpkg status / status.d: stanzas of "Field: value" lines; only packages
 * whose Status ends in "installed" (or that have no Status, as in status.d). */
int pkgdb_parse_dpkg(const char *buf, size_t len, pkgdb_fn fn, void *ud);
/* apk lib/apk/db/installed: "P:name", "V:version", "A:arch", "L:license". */
int pkgdb_parse_apk(const char *buf, size_t len, pkgdb_fn fn, void *ud);
/* Python core metadata headers (RFC 822 style up to the first blank line):
 * Name, Version, License.  At most one package. */
int pkgdb_parse_pymeta(const char *buf, size_t len, pkgdb_fn fn, void *ud);
