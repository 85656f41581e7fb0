/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bundle/audit.h"
#include "bundle/fsutil.h"

static int append_line(const char *path, const struct bn_audit_head *head, json_t *o, unsigned mode,
                       struct bn_audit_head *ret_head, struct bn_error *err)
{
	char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!line)
		return bn_fail(err, -ENOMEM, "out of memory");
	size_t len = strlen(line);
	if (len > BN_AUDIT_LINE_MAX) {
		free(line);
		return bn_fail(err, -E2BIG, "%s: audit record longer than %d bytes", path, BN_AUDIT_LINE_MAX);
	}
	struct bn_audit_head nh = {.seq = head->seq + 1};
	bn_sha256(line, len, nh.hash);
	memcpy(nh.prev, head->hash, BN_SHA256_LEN);
	int r = 0;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, (mode_t)mode);
	if (fd < 0) {
		r = bn_fail(err, -errno, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	line[len] = '\n';
	r = bn_write_all(fd, line, len + 1);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	close(fd);
	if (r < 0) {
		r = bn_fail(err, r, "%s: cannot append: %s", path, strerror(-r));
		goto out;
	}
	*ret_head = nh;
out:
	free(line);
	return r;
}

static json_t *record_start(const struct bn_audit_head *head)
{
	char ts[32];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "seq", json_integer((json_int_t)(head->seq + 1)));
	json_object_set_new(o, "time", json_string(ts));
	return o;
}

static void record_end(json_t *o, const struct bn_audit_head *head)
{
	char prev[BN_SHA256_HEX];
	bn_hex(head->hash, BN_SHA256_LEN, prev);
	json_object_set_new(o, "prev", json_string(prev));
}

int bn_audit_append(const char *path, const struct bn_audit_head *head, const struct bn_audit_event *ev,
                    struct bn_audit_head *ret_head, struct bn_error *err)
{
	json_t *o = record_start(head);
	if (!o)
		return bn_fail(err, -ENOMEM, "out of memory");
	json_object_set_new(o, "uid", json_integer((json_int_t)getuid()));
	json_object_set_new(o, "action", json_string(ev->action));
	json_object_set_new(o, "slot", ev->slot ? json_string(ev->slot) : json_null());
	json_object_set_new(o, "bundle", ev->bundle ? json_string(ev->bundle) : json_null());
	json_object_set_new(o, "channel", ev->channel ? json_string(ev->channel) : json_null());
	json_object_set_new(o, "version", ev->has_version ? json_integer((json_int_t)ev->version) : json_null());
	json_object_set_new(o, "result", json_string(ev->result));
	/* jansson refuses invalid UTF-8; a reason quoting a hostile file name may hold some. */
	json_t *reason = ev->reason ? json_string(ev->reason) : json_null();
	json_object_set_new(o, "reason", reason ? reason : json_string("(reason not valid UTF-8)"));
	record_end(o, head);
	int r = append_line(path, head, o, 0640, ret_head, err);
	json_decref(o);
	return r;
}

int bn_audit_append_json(const char *path, const struct bn_audit_head *head, json_t *fields, unsigned mode,
                         struct bn_audit_head *ret_head, struct bn_error *err)
{
	const char *k;
	json_t *v;
	if (!json_is_object(fields) || json_object_get(fields, "seq") || json_object_get(fields, "time") ||
	    json_object_get(fields, "prev"))
		return bn_fail(err, -EINVAL, "audit record fields must be an object without seq, time or prev");
	json_t *o = record_start(head);
	if (!o)
		return bn_fail(err, -ENOMEM, "out of memory");
	json_object_foreach(fields, k, v)
		json_object_set(o, k, v);
	record_end(o, head);
	int r = append_line(path, head, o, mode, ret_head, err);
	json_decref(o);
	return r;
}

int bn_audit_verify(const char *path, const struct bn_audit_head *expected, struct bn_audit_head *ret_tail,
                    uint64_t *ret_lines, struct bn_error *err)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return bn_fail(err, -errno, "%s: cannot open: %s", path, strerror(errno));
	struct bn_audit_head cur = {0};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		uint64_t lineno = cur.seq + 1;
		if (n == 0 || line[n - 1] != '\n') {
			r = bn_fail(err, -EBADMSG, "%s: line %" PRIu64 " is incomplete (no newline)", path, lineno);
			break;
		}
		line[--n] = '\0';
		if ((size_t)n > BN_AUDIT_LINE_MAX) {
			r = bn_fail(err, -EBADMSG, "%s: line %" PRIu64 " is too long", path, lineno);
			break;
		}
		json_error_t je;
		json_t *o = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &je);
		json_t *seq = json_object_get(o, "seq");
		const char *prev = json_string_value(json_object_get(o, "prev"));
		uint8_t ph[BN_SHA256_LEN];
		if (!o || !json_is_integer(seq) || !prev || strlen(prev) != 64 || !bn_unhex(prev, ph, BN_SHA256_LEN) ||
		    !json_is_string(json_object_get(o, "action")) || !json_is_string(json_object_get(o, "result"))) {
			json_decref(o);
			r = bn_fail(err, -EBADMSG, "%s: line %" PRIu64 " is not a valid audit record", path, lineno);
			break;
		}
		json_int_t s = json_integer_value(seq);
		json_decref(o);
		if (s != (json_int_t)lineno) {
			r = bn_fail(err, -EBADMSG, "%s: line %" PRIu64 " has seq %" JSON_INTEGER_FORMAT
			            " (lines deleted, inserted or reordered)", path, lineno, s);
			break;
		}
		if (memcmp(ph, cur.hash, BN_SHA256_LEN) != 0) {
			r = bn_fail(err, -EBADMSG, "%s: line %" PRIu64 " does not chain to line %" PRIu64
			            " (line %" PRIu64 " was edited, or lines were removed or reordered)", path, lineno,
			            lineno - 1, lineno - 1);
			break;
		}
		memcpy(cur.prev, cur.hash, BN_SHA256_LEN);
		bn_sha256(line, (size_t)n, cur.hash);
		cur.seq = lineno;
	}
	free(line);
	fclose(f);
	if (ret_tail)
		*ret_tail = cur;
	if (ret_lines)
		*ret_lines = cur.seq;
	if (r < 0)
		return r;
	if (expected) {
		if (cur.seq < expected->seq)
			return bn_fail(err, -EBADMSG, "%s: ends at line %" PRIu64 " but the recorded head is line %" PRIu64
			               " (lines at the end were deleted)", path, cur.seq, expected->seq);
		if (cur.seq > expected->seq)
			return bn_fail(err, -EBADMSG, "%s: has %" PRIu64 " line(s) after the recorded head, line %" PRIu64
			               " (lines were appended outside agkit)", path, cur.seq - expected->seq, expected->seq);
		if (memcmp(cur.hash, expected->hash, BN_SHA256_LEN) != 0)
			return bn_fail(err, -EBADMSG, "%s: line %" PRIu64 " (the last) differs from the recorded head (edited)",
			               path, cur.seq);
	}
	return 0;
}
