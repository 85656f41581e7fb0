/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The one process spawner of agkit: switch hooks (deploy.c), agctl's health
 * checks and the tools' helper runs (agpack's health recording) all go
 * through bn_proc_run().
 *
 * The child runs in its own process group, so everything it starts can be
 * killed with it: on timeout, on cancellation and, unless keep_group is set,
 * once the child itself has exited (nothing it started outlives it).  The
 * group is killed with SIGKILL, or with SIGTERM and SIGKILL term_grace_ms
 * later when term_grace_ms > 0.
 *
 * argv[0] is a path and is run as given: never looked up in PATH.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bundle/error.h"

/* The most a caller may ask to capture of one stream. */
#define BN_PROC_CAPTURE_MAX (64u << 20)

struct bn_proc_opts {
	int timeout_ms;          /* 0: no timeout */
	int term_grace_ms;       /* 0: SIGKILL at once; else SIGTERM, then SIGKILL after this */
	bool keep_group;         /* true: leave the group alone when the child exits by itself */
	bool cancellable;        /* true: bn_cancelled() kills the group and fails with -EINTR */
	const char *const *env;  /* "NAME=VALUE" entries set in the child's environment; NULL-terminated, or NULL */
	uint64_t rlimit_data;    /* RLIMIT_DATA in bytes (heap and private writable maps); 0: unchanged */
	bool no_core;            /* RLIMIT_CORE 0: no core dumps */
	int nice;                /* added to the child's niceness; 0: unchanged */
	int ioprio_be;           /* best-effort I/O priority level 1..7 (7 lowest); 0: unchanged */
	const char *stdout_path; /* stdout to this file (created or truncated, 0644); NULL: see capture */
	size_t stdout_max;       /* > 0: capture stdout, its first stdout_max bytes (the rest is read and dropped) */
	size_t stderr_max;       /* > 0: capture stderr, its last stderr_max bytes */
};

struct bn_proc_result {
	int status;     /* waitpid status of the child (WIFEXITED, WEXITSTATUS, WTERMSIG) */
	bool timed_out; /* killed because timeout_ms ran out */
	char *out;      /* captured stdout, NUL-terminated; never NULL after success */
	size_t out_len;
	bool out_truncated; /* stdout was longer than stdout_max */
	char *err;          /* captured stderr (the tail), NUL-terminated; never NULL after success */
	size_t err_len;
	double elapsed_s; /* from the start to the reaping of the child */
};

/*
 * Runs argv and waits for it (bounded by opts->timeout_ms).  0 when the child
 * ran, whatever its exit status: look at ret->status and ret->timed_out; a
 * child that could not exec exits 127 with "cannot run PATH: reason" on its
 * stderr.  A negative errno when it could not be started (pipe, fork,
 * stdout_path), -EINTR when cancelled; ret is then untouched.  opts may be
 * NULL (no timeout, nothing captured).  Release ret with bn_proc_result_release().
 */
int bn_proc_run(char *const argv[], const struct bn_proc_opts *opts, struct bn_proc_result *ret,
                struct bn_error *err) BN_WUR;
/* Frees the captured output; accepts a zeroed or released result. */
void bn_proc_result_release(struct bn_proc_result *r);
/* One phrase for a wait status: "exit 3", "signal 9". */
void bn_proc_status_text(int status, char *out, size_t outlen);
