/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * What an OCI image layout holds, for the SBOM and the offline check: per
 * image manifest, its digest, platform, config env, the os-release ID and the
 * OS and Python packages of the flattened file system (layers applied in
 * order, whiteouts honoured).  Layers are streamed through libarchive; only
 * package databases are read, each bounded (bundle/pkgdb.h limits).
 */
#include <stddef.h>

#include <jansson.h>

#include "bundle/error.h"

#define IMAGE_MAX_MANIFESTS 64
#define IMAGE_MAX_JSON      (4u << 20) /* index, manifest and config blobs */
#define IMAGE_MAX_PKGS      500000     /* packages per image */
#define IMAGE_MAX_RECORDS   200000     /* package database files per image */

enum image_pkg_kind { IMAGE_PKG_DEB, IMAGE_PKG_APK, IMAGE_PKG_PYPI };

struct image_pkg {
	enum image_pkg_kind kind;
	char *name, *version, *arch, *license; /* arch, license: NULL when unknown */
	char *db;                              /* the database file it came from, image-relative */
};

struct image_info {
	char *digest;             /* "sha256:..." of the image manifest */
	char *ref;                /* org.opencontainers.image.ref.name, or NULL */
	char *os, *arch;          /* from the config */
	json_t *env;              /* the config's Env array (owned), or NULL */
	char *os_id, *os_version; /* /etc/os-release ID and VERSION_ID, or NULL */
	bool has_rpmdb;           /* an rpm database is present (not covered) */
	size_t n_pkgs;
	struct image_pkg *pkgs;
};

/* Scans every image manifest of the layout dir (an index is followed one
 * level).  *ret_images is an array of *ret_n entries. */
int image_scan(const char *dir, struct image_info **ret_images, size_t *ret_n, struct bn_error *err) BN_WUR;
void image_free(struct image_info *images, size_t n);
