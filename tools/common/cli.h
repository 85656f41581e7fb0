/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Command-line pieces shared by the agkit tools: a command table with each
 * command's own usage, "did you mean" for unknown commands and options, and
 * the one parser for sizes and counts (junk, signs and overflow refused).
 * Each function that prints writes one "tool: ..." line to stderr.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cli_cmd {
	const char *name;
	const char *usage;                 /* this command's usage lines, ending in '\n' */
	int (*run)(int argc, char **argv); /* argv[0] is the command name */
	bool needs_root;                   /* agctl: opens the deployment root */
};

/* The entry named name (aliases are separate entries), or NULL. */
const struct cli_cmd *cli_find(const struct cli_cmd *cmds, const char *name);
/* "unknown command 'x' (did you mean 'y'?)" on stderr, then the list of commands. */
void cli_unknown_command(const struct cli_cmd *cmds, const char *name);
/* Prints "usage: " and the command's usage to f. */
void cli_usage(FILE *f, const struct cli_cmd *c);
/* True when argv (after argv[0]) holds -h or --help before a "--". */
bool cli_wants_help(int argc, char **argv);

/*
 * A size option (--volume-size 700M): SIZE as bn_parse_size() reads it, from
 * min to max.  Returns 0 with *ret set, or prints why and returns -1.
 */
int cli_size(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *ret);
/* A count (--level 19, --threads 8): decimal digits only, from min to max. */
int cli_count(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *ret);
/* Both without printing: 0, -EINVAL (junk) or -ERANGE. */
int cli_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* "--pubkey or --root is required" style message for a missing option:
 * "tool: CMD: WHAT is required (see 'tool CMD --help')"; returns 2. */
int cli_missing(const char *cmd, const char *what);

/*
 * The main() of a tool with commands: no arguments (usage on stderr, 2);
 * --help, -h, help (usage on stdout, 0); help CMD and CMD ... --help (that
 * command's usage on stdout, 0); --version; an unknown command (2, with a
 * suggestion).  fallback (may be NULL) runs with the whole argv when argv[1]
 * is no command but an option or an existing path, or unlike any command
 * (agimport DIR).  Runs tool_init() before the command.
 */
int cli_main(int argc, char **argv, const struct cli_cmd *cmds, void (*usage)(FILE *), const char *version_line,
             int (*fallback)(int argc, char **argv));

struct option;
/* The default: case of a getopt_long() loop run with opterr = 0 (cli_main
 * sets it): "CMD: unknown option '--volum-size' (did you mean
 * '--volume-size'?)" or "CMD: --key needs a value"; returns 2. */
int cli_bad_option(const char *cmd, char **argv, const struct option *opts);
