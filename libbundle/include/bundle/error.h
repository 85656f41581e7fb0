/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Error reporting for agkit libraries.
 *
 * Functions return 0 (or a non-negative value) on success and a negative
 * errno on failure.  Where a human needs detail, they also take an optional
 * `struct bn_error *err` (may be NULL) that receives one line of text naming
 * the file and the problem.  `err` is written only on failure.  Libraries never
 * print and never exit; tools print `err->msg` and map the code to an exit
 * status with bn_exit_code().
 *
 * Error classes (by errno), relied on by every tool's exit status:
 *   -EBADMSG, -EKEYREJECTED, -ENOKEY, -EILSEQ, -EFBIG, -EPERM, -EOVERFLOW
 *                           verification / malformed or unsafe input  -> 3
 *   -ENOSPC, -EIO, -ENOENT, -EACCES, -EROFS, -EEXIST, -ENOTDIR, ...  -> 4
 *   -EINVAL                 bad arguments (usage)                     -> 2
 *   -ESTALE                 refused by policy (downgrade, expiry)     -> 5
 *   -EAGAIN                 another command holds the deployment lock -> 6
 *   anything else                                                     -> 1
 */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#define BN_ERROR_MAX 1024

struct bn_error {
	int code;               /* negative errno, same as the return value */
	char msg[BN_ERROR_MAX]; /* one line, no trailing newline */
};

#define BN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define BN_WUR __attribute__((warn_unused_result))

/* Sets err (if not NULL) and returns code, so callers can `return bn_fail(...)`. */
int bn_fail(struct bn_error *err, int code, const char *fmt, ...) BN_PRINTF(3, 4);
/* Prepends "prefix: " to an existing message (for context while propagating). */
void bn_error_prefix(struct bn_error *err, const char *fmt, ...) BN_PRINTF(2, 3);

/* Cancellation.  A tool points this at the flag its SIGINT/SIGTERM handler
 * sets; libbundle's long loops (hashing, copying, extracting, staging,
 * receiving) look at it and fail with -EINTR ("interrupted") when it is set.
 * NULL (the default): never cancelled. */
void bn_set_cancel_flag(volatile sig_atomic_t *flag);
bool bn_cancelled(void);
/* -EINTR with "interrupted" in err when cancelled, else 0. */
int bn_check_cancel(struct bn_error *err);

/* Documented tool exit codes: the one table for agpack, agimport, agctl,
 * agrun and agserve (README "Exit codes", every man page's EXIT STATUS; the
 * test exit-codes compares them with this enum). */
enum {
	BN_EXIT_OK = 0,      /* success */
	BN_EXIT_FAILURE = 1, /* internal or unclassified error */
	BN_EXIT_USAGE = 2,   /* bad command line */
	BN_EXIT_VERIFY = 3,  /* signature, hash, format or safety check failed */
	BN_EXIT_IO = 4,      /* could not read or write (missing file, disk full) */
	BN_EXIT_POLICY = 5,  /* refused by trust policy (downgrade, expiry) */
	BN_EXIT_BUSY = 6,    /* another agkit command holds the deployment lock */
	BN_EXIT_HEALTH = 7,  /* a health check failed (agctl health, agctl cycle acted on one) */
	BN_EXIT_DEVICE = 8,  /* a device unavailable: the CUDA device (agrun; was 5 before 0.x), agsync's mirror or registry */
};

int bn_exit_code(int negative_errno);
