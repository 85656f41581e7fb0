/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Process-wide tunables and test knobs of libbundle, set by the caller.
 * libbundle reads no environment variable for these: a tool that wants to
 * honour one (AGKIT_SKIP_SPACE_CHECK, SOURCE_DATE_EPOCH, AGKIT_REPAIR_DIR,
 * TMPDIR, and the test knobs AGKIT_CHECKPOINT_BYTES and AGKIT_CRASH_AT) reads
 * it and passes the value in here (tools/common/toolutil.c's
 * tool_init() does this for every agkit tool).  Unset: the defaults below.
 */
#include <stdbool.h>
#include <stdint.h>

struct bn_tunables {
	bool skip_space_check;  /* skip the free-space checks before receiving a stream (tests on tmpfs) */
	bool has_sign_time;     /* sign_time is set; else signatures carry the current time */
	int64_t sign_time;      /* signature timestamp, seconds since the epoch (reproducible builds) */
	const char *repair_dir; /* where parity repair writes rebuilt volumes; NULL or "": /var/tmp.  Borrowed: must
	                           outlive its use */
	uint64_t checkpoint_bytes; /* extraction's progress checkpoint interval; 0: 64 MiB (tests shrink it) */
	const char *crash_at;      /* test knob: bn_fault_point(NAME) kills the process (SIGKILL) when NAME is this;
	                              NULL: never.  Borrowed */
};

/* Copies t (NULL: the defaults).  Not thread-safe: call before starting work. */
void bn_set_tunables(const struct bn_tunables *t);
/* The current tunables; never NULL. */
const struct bn_tunables *bn_tunables(void);
