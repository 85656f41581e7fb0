/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The query audit log: one hash-chained JSON line per request (libbundle's
 * audit chain, bn_audit_append_json), "action":"query".  The head is kept in
 * memory, recovered at start by verifying the existing log; appends are
 * serialized.  A new log is created with mode 0600; an existing one that is
 * group- or world-writable is refused.
 */
#include <jansson.h>
#include <stddef.h>

struct qaudit;

int qaudit_open(const char *path, struct qaudit **ret, char *err, size_t errlen);
void qaudit_free(struct qaudit *q);
/* Appends rec (fields besides seq/time/prev); errors are returned, not printed. */
int qaudit_append(struct qaudit *q, json_t *rec, char *err, size_t errlen);
