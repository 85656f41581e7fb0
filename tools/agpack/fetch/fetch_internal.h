/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Internals shared by the fetch sources: HTTP client, cache, progress. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bundle/error.h"
#include "bundle/fsutil.h" /* bn_rm_rf, bn_mkdir_p, bn_mktemp_sibling */
#include "bundle/sha256.h"
#include "fetch.h"

/* Caps on everything the remote side controls. */
#define FH_MAX_MANIFEST   (4u << 20)   /* manifest or index body */
#define FH_MAX_TOKEN      (64u << 10)  /* token endpoint response */
#define FH_MAX_JSON       (32u << 20)  /* hub API listing */
#define FH_MAX_ERRBODY    (4u << 10)   /* error body kept for the message */
#define FH_MAX_HEADER     (16u << 10)  /* one response header line */
#define FH_MAX_HEADERS    (64u << 10)  /* all headers of one response */
#define FH_MAX_REDIRS     8
#define FH_MAX_ATTEMPTS   6
#define FH_MAX_RETRY_AFTER 60          /* seconds; a larger Retry-After is clamped */
#define FH_MAX_FILES      100000       /* files in one hub repository */

struct fh_ctx {
	const struct ag_fetch_opts *o;
	CURL *curl;                    /* reused so connections stay alive */
	bool tty;                      /* o->log is a terminal */
	uint64_t downloaded;           /* content bytes received this run */
};

struct fh_req {
	const char *url;
	const char *shown;             /* the url as logs and messages show it (NULL: url) */
	const char *accept;            /* Accept header value or NULL */
	const char *bearer;            /* Authorization: Bearer ... */
	const char *user, *pass;       /* HTTP Basic (curl keeps it off redirects to other hosts) */
	bool head;
	bool allow_http;               /* plain http:// permitted (else https only) */
	bool follow;                   /* follow redirects (bounded) */
};

struct fh_resp {
	long status;
	char *body;                    /* NUL-terminated; memory requests and error bodies */
	size_t len;
	char *content_type, *www_auth, *digest, *content_range, *location;
	long retry_after;              /* seconds, -1 if none */
	int64_t content_length;        /* -1 if none */
	size_t header_bytes;
};

int fh_init(struct fh_ctx *c, const struct ag_fetch_opts *o, struct bn_error *err);
void fh_fini(struct fh_ctx *c);
void fh_resp_free(struct fh_resp *r);

/* One GET/HEAD into memory (body capped at cap; over it: -EFBIG), retried on
 * transport errors, 429 and 5xx.  Any HTTP status is returned in r->status;
 * the return value is negative only when no usable response arrived. */
int fh_get_mem(struct fh_ctx *c, const struct fh_req *q, size_t cap, struct fh_resp *r, struct bn_error *err) BN_WUR;

/* Expected identity of a download; any field may be unset. */
struct fh_expect {
	const char *sha256;            /* 64 hex */
	const char *git_sha1;          /* 40 hex git blob id (needs size) */
	int64_t size;                  /* -1 unknown */
};

/* Downloads q->url into the partial file `part` (resuming from its current
 * length with Range), retrying with backoff.  Verifies size/digests when given.
 * ret_sha256 receives the hex SHA-256 of the complete file. 2xx only. */
int fh_get_file(struct fh_ctx *c, const struct fh_req *q, const char *part, const struct fh_expect *ex,
                const char *label, char ret_sha256[BN_SHA256_HEX], uint64_t *ret_size, struct bn_error *err) BN_WUR;

/* HTTP status -> negative errno, with a message naming what and where. */
int fh_status_error(const struct fh_resp *r, const char *what, const char *url, struct bn_error *err);

/* Progress lines on o->log. */
void fh_log(const struct fh_ctx *c, const char *fmt, ...) BN_PRINTF(2, 3);
#define FH_SHOWN(q) ((q)->shown ? (q)->shown : (q)->url)
/*
 * The url without credentials, for provenance and logs (new string; NULL when
 * out of memory): the userinfo (user:password@) is removed, and so is every
 * query parameter whose name (case-insensitive) is a credential: token,
 * access_token, refresh_token, id_token, auth, auth_token, authorization,
 * api_key, apikey, api-key, key, password, passwd, pass, pwd, secret,
 * client_secret, sig, signature, credential, credentials, session, sessionid,
 * jwt, policy, key-pair-id, code, or one starting with x-amz- or x-goog-.
 * *ret_changed tells whether anything was removed.
 */
char *fh_redact_url(const char *url, bool *ret_changed);

/* ---- cache (fetch_cache.c) ---- */
/* Path of a verified cache entry: <cache>/blobs/<algo>/<hex>. */
int fc_path(const struct fh_ctx *c, const char *algo, const char *hex, char **ret, struct bn_error *err) BN_WUR;
int fc_part_path(const struct fh_ctx *c, const char *key, char **ret, struct bn_error *err) BN_WUR;
int fc_prepare(const struct fh_ctx *c, struct bn_error *err) BN_WUR;
/* 1 if the entry exists and still matches (size, digest), 0 if absent (a
 * corrupt entry is removed and reported absent). */
int fc_lookup(const struct fh_ctx *c, const char *algo, const char *hex, const struct fh_expect *ex,
              struct bn_error *err) BN_WUR;
/* Moves a verified partial file into the cache under sha256 (and git-sha1). */
int fc_commit(const struct fh_ctx *c, const char *part, const char *sha256, const char *git_sha1,
              struct bn_error *err) BN_WUR;
/* Stores a small verified buffer (a manifest) under its sha256. */
int fc_put_mem(const struct fh_ctx *c, const void *buf, size_t len, const char *sha256, struct bn_error *err) BN_WUR;
int fc_read_mem(const struct fh_ctx *c, const char *sha256, size_t cap, char **ret, size_t *ret_len, struct bn_error *err) BN_WUR;

/* Fetches one content-addressed item into the cache unless present.
 * algo/hex name the cache key (sha256 or gitsha1); dry_run is not consulted. */
int fc_fetch(struct fh_ctx *c, const struct fh_req *q, const struct fh_expect *ex, const char *label,
             char ret_sha256[BN_SHA256_HEX], uint64_t *ret_size, struct bn_error *err) BN_WUR;

/* Hard-links (or copies) a cache entry to dst, which must not exist. */
int fc_materialise(const struct fh_ctx *c, const char *algo, const char *hex, const char *dst, struct bn_error *err) BN_WUR;

/* ---- output staging (fetch_cache.c) ---- */
/* Creates "<out>.agtmp-XXXXXX" next to out (bn_mktemp_sibling), refusing an out that exists. */
int fo_stage_dir(const char *out, char **ret_tmp, struct bn_error *err) BN_WUR;
/* Renames tmp to out without replacing anything. */
int fo_publish(const char *tmp, const char *out, struct bn_error *err) BN_WUR;
/* bn_mkdir_p (mode 0755) with a message naming path. */
static inline int fo_mkdirs(const char *path, struct bn_error *err)
{
	int r = bn_mkdir_p(path, 0755);
	return r < 0 ? bn_fail(err, r, "%s: %s", path, strerror(-r)) : 0;
}
int fo_write_file(const char *path, const void *buf, size_t len, struct bn_error *err) BN_WUR;

/* ---- small helpers ---- */
char *fs_printf(const char *fmt, ...) BN_PRINTF(1, 2);
bool fs_is_hex(const char *s, size_t n);
