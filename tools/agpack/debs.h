/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The `debs` artifact (issue 17): Debian packages for the clean zone, from
 * local .deb files ("path") and/or package names resolved by apt in the
 * dirty zone with their dependency closure ("packages", against a stated
 * base: a target's dpkg status file, or nothing).  The artifact holds the
 * .deb files under canonical names and a Packages index, so that the slot is
 * an apt flat repository: `deb [trusted=yes] file:/SLOT/NAME ./` (trusted
 * because agimport verified every byte).
 */
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "bundle/error.h"
#include "spec.h"

#define DEB_MAX_CONTROL (256u << 10) /* the control file of one package */
#define DEB_MAX_CTLTAR  (8u << 20)   /* its control.tar member */
#define DEB_MAX_FILES   20000        /* packages in one artifact */

/* The fields of one binary package's control file (deb-control(5)). */
struct deb_control {
	char *text; /* the stanza, normalised: no trailing blank lines, ends in "\n" */
	char package[128], version[128], arch[64];
};

/* Parses a control file: one stanza of "Field: value" lines (continuations
 * start with a space or tab), Package, Version and Architecture required and
 * well-formed.  -EBADMSG with a message naming `what` otherwise. */
int deb_control_parse(const char *buf, size_t len, const char *what, struct deb_control *ret,
                      struct bn_error *err) BN_WUR;
void deb_control_free(struct deb_control *c);
/* Lower-case letters, digits and allowed_extra; lead_alnum: starts with one. */
bool deb_name_valid(const char *v, const char *allowed_extra, bool lead_alnum);

/* Reads the control file out of a .deb (ar archive, control.tar.{gz,xz,zst,}). */
int deb_read_control(const char *path, struct deb_control *ret, struct bn_error *err) BN_WUR;

/* Builds the artifact in stage: *ret_path the directory to pack (type
 * "files"), *ret_source the provenance (every package's name, version,
 * architecture, file and SHA-256). */
int agpack_debs(const struct spec_artifact *a, const char *stage, char **ret_path, json_t **ret_source,
                struct bn_error *err) BN_WUR;

struct net_opts;
/* The same as artifact_types.c's fetch function of "debs": in a dry run it
 * lists what the artifact names without running apt or reading files. */
int agpack_fetch_debs(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                      json_t **ret_source, struct bn_error *err) BN_WUR;
