/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Append-only, hash-chained audit log (R/audit.log): one JSON object per
 * line with seq, time, uid, action, slot, bundle, channel, version, result,
 * reason, and prev = SHA-256 (hex) of the previous line's bytes (without its
 * newline; 64 zeros for the first line).  The chain head (seq and hash of the
 * last line) is kept outside the log (in the deployment's state file), so a
 * deleted or rewritten last line is detected too.
 */
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "bundle/error.h"
#include "bundle/sha256.h"

#define BN_AUDIT_LINE_MAX 65536

struct bn_audit_head {
	uint64_t seq;                       /* 0: empty log */
	uint8_t hash[BN_SHA256_LEN];        /* of line seq */
	uint8_t prev[BN_SHA256_LEN];        /* that line's prev field */
};

struct bn_audit_event {
	const char *action;                 /* import, promote, rollback, mark-good, ... */
	const char *slot;                   /* may be NULL */
	const char *bundle, *channel;       /* may be NULL */
	uint64_t version;
	bool has_version;
	const char *result;                 /* ok | refused | failed */
	const char *reason;                 /* may be NULL */
};

/* Appends one event after head (fsync'd); *ret_head is the new head. */
int bn_audit_append(const char *path, const struct bn_audit_head *head, const struct bn_audit_event *ev,
                    struct bn_audit_head *ret_head, struct bn_error *err) BN_WUR;

/* Appends one record of any shape: seq, time, the members of fields (an
 * object; its keys must not be seq, time or prev; it should hold "action"
 * and "result" strings, which bn_audit_verify requires) and prev, in that
 * order, after head (fsync'd).  A new file is created with mode. */
int bn_audit_append_json(const char *path, const struct bn_audit_head *head, json_t *fields, unsigned mode,
                         struct bn_audit_head *ret_head, struct bn_error *err) BN_WUR;

/* Walks the whole chain.  With expected non-NULL, also requires the log to end
 * exactly at that head.  The error names the first bad line. *ret_tail (optional)
 * receives the head the log actually ends with, also on a head mismatch. */
int bn_audit_verify(const char *path, const struct bn_audit_head *expected, struct bn_audit_head *ret_tail,
                    uint64_t *ret_lines, struct bn_error *err) BN_WUR;
