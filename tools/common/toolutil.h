/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Helpers shared by the agkit command-line tools (not a library API). */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bundle/error.h"
#include "bundle/minisign.h"

extern const char *tool_name;
extern volatile sig_atomic_t tool_interrupted;

/* The common start of a tool's main(): no arguments (usage, exit 2),
 * --help/-h/help (usage on stdout, exit 0), --version (version_line, exit 0),
 * then libsodium's initialisation.  Returns -1 when the tool should go on,
 * else its exit status. */
int tool_start(int argc, char **argv, void (*usage)(FILE *), const char *version_line);

/* Initialises the crypto libraries and jansson's allocator; -1 (after
 * printing why) on failure. tool_start() calls it. */
int tool_init(void);

/* Prints "tool: message" to stderr. */
void tool_err(const char *fmt, ...) BN_PRINTF(1, 2);
void tool_warn(const char *fmt, ...) BN_PRINTF(1, 2);
/* Prints err->msg and returns the documented exit code for r. */
int tool_fail(int r, const struct bn_error *err);
/* SIGINT/SIGTERM set tool_interrupted instead of killing (so partial output is removed). */
void tool_catch_signals(void);
/* Passphrase from $AGKIT_PASSPHRASE_FILE (first line) or the terminal; confirm asks twice. */
int tool_passphrase(const char *prompt, bool confirm, char **ret, struct bn_error *err);
void tool_passphrase_free(char *p);
/* Loads a minisign secret key file, asking for its passphrase when encrypted. */
int tool_load_seckey(const char *path, struct bn_seckey *ret, struct bn_error *err);
/* Path of another agkit program: $AGKIT_<NAME> (upper case; must be an
 * absolute path), else beside this executable, else ../NAME/NAME (the build
 * tree).  Never the working directory or PATH.  New string, or NULL with
 * errno EINVAL (a relative $AGKIT_<NAME>), ENOENT (not found) or ENOMEM. */
char *tool_find_program(const char *name);
/* A one-line reason for tool_find_program's NULL (uses errno). */
void tool_find_program_error(const char *name, char *out, size_t outlen);
/* Runs argv[0] (a path, never looked up in PATH) with stdout to out_path
 * (or inherited when NULL) through bn_proc_run(): its own process group,
 * killed whole when it exits or when the tool is interrupted.  Returns its
 * exit status (128 + signal), or -errno (-EINTR when interrupted).  Used for
 * helper runs such as agpack's health recording. */
int tool_run(char *const argv[], const char *out_path);

/* Progress on stderr when it is a terminal; otherwise silent. */
void tool_progress(void *label, uint64_t done, uint64_t total);
void tool_progress_end(void);
