/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "report.h"
#include "toolutil.h"

bool tool_json, tool_quiet;
const char *tool_log_ident;

static bool syslog_wanted(void)
{
	static int want = -1;
	if (want < 0) {
		const char *e = getenv("AGKIT_SYSLOG");
		if (e && !strcmp(e, "0"))
			want = 0;
		else if (e && !strcmp(e, "1"))
			want = 1;
		else
			want = !isatty(STDERR_FILENO) && !getenv("JOURNAL_STREAM");
	}
	return want;
}

void tool_log(int priority, const char *fmt, ...)
{
	static bool opened;
	if (!syslog_wanted())
		return;
	if (!opened) {
		openlog(tool_log_ident ? tool_log_ident : tool_name, LOG_PID, LOG_DAEMON);
		opened = true;
	}
	va_list ap;
	va_start(ap, fmt);
	vsyslog(priority, fmt, ap);
	va_end(ap);
}

void tool_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(tool_json ? stderr : stdout, fmt, ap);
	va_end(ap);
}

void tool_json_print(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	printf("%s\n", s ? s : "{}");
	free(s);
	json_decref(o);
	fflush(stdout);
}

void tool_now_iso(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

double tool_progress_interval(void)
{
	const char *e = getenv("AGKIT_PROGRESS_INTERVAL");
	if (!e || !*e)
		return 10;
	char *end;
	double v = strtod(e, &end);
	return *end || v < 0 || v > 86400 ? 10 : v;
}

void tool_progress_lines(const char *label, uint64_t done, uint64_t total)
{
	static struct timespec start, last;
	static const char *cur;
	static bool at_end, shown;
	double every = tool_progress_interval();
	if (tool_quiet || every == 0)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (label != cur || (done < total / 2 && at_end)) {
		/* A new operation. */
		cur = label;
		start = last = now;
		at_end = shown = false;
	}
	double since = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
	/* The last line (100%) only after periodic ones: short work stays quiet. */
	bool end = done >= total;
	if (end ? at_end || (!shown && since < every) : since < every)
		return;
	last = now;
	at_end = end;
	shown = true;
	double el = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
	double rate = el > 0 ? (double)done / el : 0;
	char t[32];
	tool_now_iso(t);
	fprintf(stderr, "%s: %s %s: %.1f%% (%.1f of %.1f MiB, %.1f MiB/s)\n", tool_name, t, label,
	        total ? 100.0 * (double)done / (double)total : 100.0, (double)done / 1048576.0,
	        (double)total / 1048576.0, rate / 1048576.0);
	fflush(stderr);
}

static bool bytes_shown;

void tool_progress_bytes(void *label, uint64_t done, uint64_t total)
{
	(void)total;
	static struct timespec start, last;
	static bool started;
	if (tool_quiet)
		return;
	bool tty = isatty(STDERR_FILENO);
	double every = tty ? 0.2 : tool_progress_interval();
	if (every == 0)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!started) {
		start = last = now;
		started = true;
	}
	double since = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
	if (since < every)
		return;
	last = now;
	double el = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
	double rate = el > 0 ? (double)done / el : 0;
	if (tty) {
		fprintf(stderr, "\r%s: %s %10.1f MiB  %7.1f MiB/s ", tool_name, (const char *)label,
		        (double)done / 1048576.0, rate / 1048576.0);
		bytes_shown = true;
	} else {
		char t[32];
		tool_now_iso(t);
		fprintf(stderr, "%s: %s %s: %.1f MiB so far (%.1f MiB/s)\n", tool_name, t, (const char *)label,
		        (double)done / 1048576.0, rate / 1048576.0);
	}
	fflush(stderr);
}

void tool_progress_bytes_end(void)
{
	if (bytes_shown)
		fputc('\n', stderr);
	bytes_shown = false;
}

void tool_take_report_options(int *argc, char **argv)
{
	int o = 1;
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--json"))
			tool_json = true;
		else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
			tool_quiet = true;
		else
			argv[o++] = argv[i];
	}
	argv[o] = NULL;
	*argc = o;
}
