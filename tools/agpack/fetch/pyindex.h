/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The parsers of the `python` artifact (issue 17), without network code so
 * that they can be fuzzed (tests/fuzz/fuzz-pyindex.c):
 *
 *   requirements  pip's requirements.txt, the hash-pinned subset pip accepts
 *                 with --require-hashes: `name==version --hash=sha256:HEX...`
 *   simple index  a project page of a PEP 503 simple repository (HTML
 *                 anchors, `#sha256=` fragments) or its PEP 691 JSON form
 *   wheel names   PEP 427 file names and their (python, abi, platform) tags,
 *                 matched against one target interpreter and platform
 *
 * Everything here is hostile input: sizes and counts are bounded, and
 * anything outside the subset is refused by name, never guessed.
 */
#include <stdbool.h>
#include <stddef.h>

#include "bundle/error.h"

#define PY_MAX_REQ_BYTES  (1u << 20) /* requirements file */
#define PY_MAX_REQS       1000
#define PY_MAX_HASHES     32          /* --hash options of one requirement */
#define PY_MAX_PAGE_BYTES (16u << 20) /* one project page */
#define PY_MAX_LINKS      20000       /* files listed on one project page */
#define PY_MAX_NAME       200

struct py_req {
	char name[PY_MAX_NAME + 1]; /* normalised (PEP 503): lower case, runs of -_. as one - */
	char version[PY_MAX_NAME + 1];
	char (*hashes)[65]; /* lower-case hex sha256 */
	size_t n_hashes;
	int line;
};

struct py_reqs {
	struct py_req *v;
	size_t n;
};

/* Parses a requirements file.  Each requirement must pin one version with
 * `==` and, unless allow_unpinned, carry at least one --hash=sha256:; options
 * other than --hash, URLs, editables, extras, environment markers and
 * includes are refused ("FILE:LINE: ..."). */
int py_reqs_parse(const char *buf, size_t len, const char *file, bool allow_unpinned, struct py_reqs *ret,
                  struct bn_error *err) BN_WUR;
void py_reqs_free(struct py_reqs *r);

/* PEP 503 name normalisation into out (at most PY_MAX_NAME bytes); -EINVAL
 * for an empty, too long or not [A-Za-z0-9._-] name. */
int py_normalize(const char *name, size_t n, char out[PY_MAX_NAME + 1]);

struct py_link {
	char *filename;  /* the last path segment of the url, unescaped */
	char *url;       /* href as given (relative or absolute; entities decoded) */
	char sha256[65]; /* from the #sha256= fragment or the JSON hashes; "" if none */
};

struct py_links {
	struct py_link *v;
	size_t n;
};

/* A project page: JSON when json is true (PEP 691), else HTML (PEP 503). */
int py_links_parse(const char *buf, size_t len, bool json, const char *page, struct py_links *ret,
                   struct bn_error *err) BN_WUR;
void py_links_free(struct py_links *l);

/* The target a wheel must run on: "3.11" and "manylinux_2_36_x86_64" (or
 * "linux_x86_64", "any", ...). */
struct py_target {
	int major, minor;
	char platform[64];
};

int py_target_parse(const char *python, const char *platform, struct py_target *ret, struct bn_error *err) BN_WUR;

/* Whether filename is a wheel of project name (normalised) at version for
 * target: returns a rank (higher is more specific: a platform wheel before a
 * pure one, a cp3X abi before abi3) or -1 when it is not. */
int py_wheel_match(const char *filename, const char *name, const char *version, const struct py_target *t);
