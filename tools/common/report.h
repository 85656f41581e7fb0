/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Reports of the agkit tools: --json objects, human lines, timestamps and
 * progress off a terminal (not a library API; docs/OPERATIONS.md "Machine-
 * readable output" and "Progress and logging"). */
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "bundle/error.h"

/* --json: the one JSON object goes to stdout, human lines to stderr. */
extern bool tool_json;
/* -q/--quiet: no progress at all. */
extern bool tool_quiet;

/* A human report line: stdout, or stderr under --json. */
void tool_say(const char *fmt, ...) BN_PRINTF(1, 2);
/* Prints o (one object, stable field names) on stdout and frees it. */
void tool_json_print(json_t *o);
/* The current time as ISO 8601 UTC, "2026-12-01T13:45:00Z". */
void tool_now_iso(char out[32]);
/* Seconds between progress lines off a terminal: $AGKIT_PROGRESS_INTERVAL
 * (0 turns them off), default 10. */
double tool_progress_interval(void);
/* One progress line on stderr (not a terminal) when the interval has passed
 * since the last, and at 100% when an earlier line was printed. */
void tool_progress_lines(const char *label, uint64_t done, uint64_t total);
/* Syslog off a terminal: when stderr is not a terminal and the process does
 * not already log to the journal ($JOURNAL_STREAM unset, as under cron),
 * tool_log() also sends the line to syslog(3) with the identity
 * tool_log_ident (default tool_name; "agkit-cycle" for agctl cycle).
 * AGKIT_SYSLOG=0 turns it off, AGKIT_SYSLOG=1 on even under systemd. */
extern const char *tool_log_ident;
void tool_log(int priority, const char *fmt, ...) BN_PRINTF(2, 3);

/* Progress of work of unknown length (a stream being received): bytes so
 * far, a counter on a terminal, periodic lines off it; total is ignored.
 * tool_progress_bytes_end() ends the counter's line. */
void tool_progress_bytes(void *label, uint64_t done, uint64_t total);
void tool_progress_bytes_end(void);

/* Removes every "--json", "-q" and "--quiet" argument after argv[0] from
 * argv (a command's own parser never sees them) and sets the flags. */
void tool_take_report_options(int *argc, char **argv);
