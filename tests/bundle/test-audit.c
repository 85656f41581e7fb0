/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the audit chain (libbundle/audit.c): a log of N records
 * verifies; an edit of any one line, a deleted, swapped or appended line, and
 * a truncated end are each detected, and the error names the line where the
 * chain breaks.  The chain is recomputed here from its definition (prev =
 * SHA-256 of the previous line's bytes) as an independent check.
 */
#include "unit.h"

#include "bundle/audit.h"
#include "bundle/sha256.h"

#define N 8

static char *log_text;
static size_t log_len;
static struct bn_audit_head head;

static void restore(void)
{
	ut_write(ut_path("audit.log"), log_text, log_len);
}

/* Line i (1-based) of the pristine log: start and length without the newline. */
static void line_span(int i, size_t *ret_off, size_t *ret_len)
{
	size_t off = 0;
	for (int k = 1; k < i; k++)
		off = (size_t)(strchr(log_text + off, '\n') - log_text) + 1;
	*ret_off = off;
	*ret_len = (size_t)(strchr(log_text + off, '\n') - (log_text + off));
}

/* Writes the pristine log with line i's bytes [a, b) replaced by rep. */
static void write_edited(size_t a, size_t b, const char *rep)
{
	size_t rl = strlen(rep);
	char *t = malloc(log_len - (b - a) + rl);
	memcpy(t, log_text, a);
	memcpy(t + a, rep, rl);
	memcpy(t + a + rl, log_text + b, log_len - b);
	ut_write(ut_path("audit.log"), t, log_len - (b - a) + rl);
	free(t);
}

static bool names_line(const struct bn_error *err, int line)
{
	char want[32];
	snprintf(want, sizeof want, "line %d ", line);
	return strstr(err->msg, want) != NULL;
}

static void append_all(void)
{
	struct bn_error err = {0};
	struct bn_audit_head h = {0};
	char reason[32];
	bool ok = true;
	for (int i = 1; i <= N; i++) {
		snprintf(reason, sizeof reason, "r%d", i);
		struct bn_audit_event ev = {.action = "import", .slot = "blue", .bundle = "b", .channel = "c",
		                            .version = (uint64_t)i, .has_version = true, .result = "ok", .reason = reason};
		struct bn_audit_head nh;
		ok &= bn_audit_append(ut_path("audit.log"), &h, &ev, &nh, &err) == 0 && nh.seq == (uint64_t)i;
		h = nh;
	}
	TAP_OK(ok, "%d records appended, each head one further (%s)", N, err.msg);
	head = h;
	if (bn_read_file(ut_path("audit.log"), 1 << 20, &log_text, &log_len, NULL) < 0)
		ut_die("read audit.log");

	/* Independent recomputation of the chain from the bytes. */
	uint8_t prev[BN_SHA256_LEN] = {0};
	bool chain = true;
	for (int i = 1; i <= N; i++) {
		size_t off, len;
		line_span(i, &off, &len);
		char line[2048];
		snprintf(line, sizeof line, "%.*s", (int)len, log_text + off);
		char hex[BN_SHA256_HEX], want[100], seq[32];
		bn_hex(prev, BN_SHA256_LEN, hex);
		snprintf(want, sizeof want, "\"prev\":\"%s\"", hex);
		snprintf(seq, sizeof seq, "\"seq\":%d,", i);
		chain &= strstr(line, want) != NULL && strstr(line, seq) != NULL;
		bn_sha256(log_text + off, len, prev);
	}
	TAP_OK(chain && !memcmp(prev, head.hash, BN_SHA256_LEN), "each line's prev is the SHA-256 of the line before");
	uint64_t lines = 0;
	struct bn_audit_head tail;
	TAP_OK(bn_audit_verify(ut_path("audit.log"), &head, &tail, &lines, &err) == 0 && lines == N &&
	               tail.seq == N && !memcmp(tail.hash, head.hash, BN_SHA256_LEN),
	       "the untouched log verifies against its head (%s)", err.msg);
}

static void test_edits(void)
{
	struct bn_error err = {0};
	for (int i = 1; i <= N; i++) {
		size_t off, len;
		line_span(i, &off, &len);
		char find[16];
		snprintf(find, sizeof find, "\"r%d\"", i);
		char *p = memmem(log_text + off, len, find, strlen(find));
		if (!p)
			ut_die("reason not in the line");
		size_t a = (size_t)(p - log_text) + 1;
		write_edited(a, a + 1, "x"); /* "r3" -> "x3": still a valid record */
		int r = bn_audit_verify(ut_path("audit.log"), &head, NULL, NULL, &err);
		/* The next line's prev no longer matches; the last line differs from the head. */
		TAP_OK(r == -EBADMSG && names_line(&err, i < N ? i + 1 : i), "an edit of line %d detected (%s)", i, err.msg);
	}
	for (int i = 1; i <= N; i++) {
		size_t off, len;
		line_span(i, &off, &len);
		write_edited(off, off + len + 1, "");
		int r = bn_audit_verify(ut_path("audit.log"), &head, NULL, NULL, &err);
		TAP_OK(r == -EBADMSG && names_line(&err, i < N ? i : i - 1), "deleting line %d detected (%s)", i, err.msg);
	}
	/* Swapping lines 3 and 4. */
	size_t o3, l3, o4, l4;
	line_span(3, &o3, &l3);
	line_span(4, &o4, &l4);
	char *sw = malloc(l3 + l4 + 3);
	snprintf(sw, l3 + l4 + 3, "%.*s\n%.*s\n", (int)l4, log_text + o4, (int)l3, log_text + o3);
	write_edited(o3, o4 + l4 + 1, sw);
	free(sw);
	TAP_OK(bn_audit_verify(ut_path("audit.log"), &head, NULL, NULL, &err) == -EBADMSG && names_line(&err, 3),
	       "swapped lines detected (%s)", err.msg);
	/* A line appended outside agkit (a valid record, chained). */
	restore();
	struct bn_audit_head nh;
	struct bn_audit_event ev = {.action = "promote", .result = "ok"};
	if (bn_audit_append(ut_path("audit.log"), &head, &ev, &nh, &err) < 0)
		ut_die(err.msg);
	TAP_OK(bn_audit_verify(ut_path("audit.log"), &head, NULL, NULL, &err) == -EBADMSG &&
	               strstr(err.msg, "after the recorded head"),
	       "a line appended past the recorded head detected (%s)", err.msg);
	TAP_OK(bn_audit_verify(ut_path("audit.log"), NULL, NULL, NULL, &err) == 0,
	       "without a head the longer chain is still well formed");
	/* A torn last line. */
	write_edited(log_len - 1, log_len, "");
	TAP_OK(bn_audit_verify(ut_path("audit.log"), &head, NULL, NULL, &err) == -EBADMSG && names_line(&err, N),
	       "a last line without its newline detected (%s)", err.msg);
	/* Junk instead of a record. */
	size_t o5, l5;
	line_span(5, &o5, &l5);
	write_edited(o5, o5 + l5, "not json");
	TAP_OK(bn_audit_verify(ut_path("audit.log"), &head, NULL, NULL, &err) == -EBADMSG && names_line(&err, 5),
	       "a line that is not a record detected (%s)", err.msg);
	restore();
	TAP_OK(bn_audit_verify(ut_path("audit.log"), &head, NULL, NULL, &err) == 0, "restored log verifies again");
}

static void test_append_json(void)
{
	struct bn_error err = {0};
	json_t *f = json_pack("{s:s, s:s, s:i}", "action", "health", "result", "ok", "seq", 5);
	struct bn_audit_head nh;
	TAP_OK(bn_audit_append_json(ut_path("audit.log"), &head, f, 0600, &nh, &err) == -EINVAL,
	       "a record that sets seq itself refused (%s)", err.msg);
	json_object_del(f, "seq");
	json_object_set_new(f, "tokens", json_integer(12));
	TAP_OK(bn_audit_append_json(ut_path("audit.log"), &head, f, 0600, &nh, &err) == 0 && nh.seq == N + 1,
	       "a record of another shape appended");
	TAP_OK(bn_audit_verify(ut_path("audit.log"), &nh, NULL, NULL, &err) == 0, "and the chain verifies (%s)",
	       err.msg);
	json_decref(f);
	char *big = malloc(BN_AUDIT_LINE_MAX + 10);
	memset(big, 'a', BN_AUDIT_LINE_MAX + 9);
	big[BN_AUDIT_LINE_MAX + 9] = '\0';
	struct bn_audit_event ev = {.action = "x", .result = "ok", .reason = big};
	struct bn_audit_head nh2;
	TAP_OK(bn_audit_append(ut_path("audit.log"), &nh, &ev, &nh2, &err) == -E2BIG, "an over-long record refused");
	free(big);
}

int main(void)
{
	ut_setup("audit", NULL, NULL);
	append_all();
	test_edits();
	test_append_json();
	free(log_text);
	bn_rm_rf(W);
	return tap_done();
}
