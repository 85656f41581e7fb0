/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * One-way stream (stream.c, docs/FORMAT.md section 11): a bundle directory
 * as a byte stream of self-checking records for a data diode, read back
 * with no back channel.  A volume with any block missing at the end is
 * dropped, so that parity rebuilds it.
 */
#include <stdint.h>

#include "bundle/bundle.h"

/* Writes the bundle directory dir (not a media set) as records to fd. */
int bn_stream_write(const char *dir, int fd, struct bn_error *err) BN_WUR;
struct bn_stream_result {
	uint64_t records_ok, records_bad, bytes_skipped;
	size_t files_incomplete;
	char incomplete[512];  /* volumes dropped as incomplete (to be rebuilt from parity) */
};
/* Reads a stream from fd into the new directory dir (removed on error). */
int bn_stream_read(int fd, const char *dir, struct bn_stream_result *res, struct bn_error *err) BN_WUR;
/* The same, calling progress with the bytes read so far (total 0: unknown). */
int bn_stream_read_progress(int fd, const char *dir, bn_progress_fn progress, void *userdata,
                            struct bn_stream_result *res, struct bn_error *err) BN_WUR;
