/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "bundle/error.h"
#include "bundle/fsutil.h"
#include "bundle/schema.h"
#include "cli.h"
#include "toolutil.h"

const struct cli_cmd *cli_find(const struct cli_cmd *cmds, const char *name)
{
	for (size_t i = 0; cmds[i].name; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

void cli_unknown_command(const struct cli_cmd *cmds, const char *name)
{
	const char *cands[64];
	size_t n = 0;
	for (size_t i = 0; cmds[i].name && n < 63; i++)
		cands[n++] = cmds[i].name;
	cands[n] = NULL;
	const char *m = name[0] == '-' ? NULL : bn_closest(name, cands);
	if (m)
		tool_err("unknown command '%s' (did you mean '%s'?)", name, m);
	else if (name[0] == '-')
		tool_err("unknown option '%s' before the command", name);
	else
		tool_err("unknown command '%s'", name);
	fprintf(stderr, "commands:");
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %s", cands[i]);
	fprintf(stderr, "\n'%s help COMMAND' or '%s COMMAND --help' shows a command's usage.\n", tool_name, tool_name);
}

void cli_usage(FILE *f, const struct cli_cmd *c)
{
	fprintf(f, "usage: %s", c->usage);
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	}
	return false;
}

static const char size_forms[] = "4096, 700M, 1.5G, 4GiB, 4GB; K M G T and KiB MiB GiB TiB are binary, "
                                 "KB MB GB TB decimal";

int cli_size(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v;
	int r = bn_parse_size(s, &v);
	if (r == -EINVAL) {
		tool_err("%s: '%s' is not a size (%s)", opt, s, size_forms);
		return -1;
	}
	if (r < 0 || v < min || v > max) {
		tool_err("%s: %s is out of range (%" PRIu64 " to %" PRIu64 " bytes)", opt, s, min, max);
		return -1;
	}
	*ret = v;
	return 0;
}

int cli_parse_count(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;
	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int cli_count(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	int r = cli_parse_count(s, min, max, ret);
	if (r == -EINVAL)
		tool_err("%s: '%s' is not a number (decimal digits, %" PRIu64 " to %" PRIu64 ")", opt, s, min, max);
	else if (r < 0)
		tool_err("%s: %s is out of range (%" PRIu64 " to %" PRIu64 ")", opt, s, min, max);
	return r < 0 ? -1 : 0;
}

int cli_missing(const char *cmd, const char *what)
{
	/* the hint names the command word only ("verify DIR" -> "verify") */
	tool_err("%s: %s is required (see '%s %.*s --help')", cmd, what, tool_name, (int)strcspn(cmd, " "), cmd);
	return BN_EXIT_USAGE;
}

int cli_main(int argc, char **argv, const struct cli_cmd *cmds, void (*usage)(FILE *), const char *version_line,
             int (*fallback)(int argc, char **argv))
{
	if (argc < 2) {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	const char *w = argv[1];
	if (!strcmp(w, "--help") || !strcmp(w, "-h") || (!strcmp(w, "help") && argc == 2)) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(w, "--version")) {
		printf("%s\n", version_line);
		return 0;
	}
	if (!strcmp(w, "help")) {
		const struct cli_cmd *c = cli_find(cmds, argv[2]);
		if (!c) {
			cli_unknown_command(cmds, argv[2]);
			return BN_EXIT_USAGE;
		}
		cli_usage(stdout, c);
		return 0;
	}
	const struct cli_cmd *c = cli_find(cmds, w);
	if (!c) {
		const char *cands[64];
		size_t n = 0;
		for (size_t i = 0; cmds[i].name && n < 63; i++)
			cands[n++] = cmds[i].name;
		cands[n] = NULL;
		bool typo = w[0] != '-' && access(w, F_OK) < 0 && bn_closest(w, cands);
		if (!fallback || typo) {
			cli_unknown_command(cmds, w);
			return BN_EXIT_USAGE;
		}
		if (cli_wants_help(argc, argv)) {
			usage(stdout);
			return 0;
		}
		opterr = 0;
		return tool_init() < 0 ? BN_EXIT_FAILURE : fallback(argc, argv);
	}
	if (cli_wants_help(argc - 1, argv + 1)) {
		cli_usage(stdout, c);
		return 0;
	}
	opterr = 0; /* the commands' getopt loops report with cli_bad_option() */
	return tool_init() < 0 ? BN_EXIT_FAILURE : c->run(argc - 1, argv + 1);
}

int cli_bad_option(const char *cmd, char **argv, const struct option *opts)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	if (optopt) {
		/* a known option without its value, or an unknown short one */
		for (size_t i = 0; opts[i].name; i++)
			if (opts[i].val == optopt && opts[i].has_arg == required_argument) {
				tool_err("%s: --%s needs a value (see '%s %s --help')", cmd, opts[i].name, tool_name, cmd);
				return BN_EXIT_USAGE;
			}
		tool_err("%s: unknown option '-%c' (see '%s %s --help')", cmd, optopt, tool_name, cmd);
		return BN_EXIT_USAGE;
	}
	char word[128];
	snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
	const char *cands[96], *m = NULL;
	char names[96][64];
	size_t n = 0;
	for (size_t i = 0; opts[i].name && n < 95; i++) {
		snprintf(names[n], sizeof names[n], "--%s", opts[i].name);
		cands[n] = names[n];
		n++;
	}
	cands[n] = NULL;
	m = bn_closest(word, cands);
	if (m)
		tool_err("%s: unknown option '%s' (did you mean '%s'?)", cmd, word, m);
	else
		tool_err("%s: unknown option '%s' (see '%s %s --help')", cmd, word, tool_name, cmd);
	return BN_EXIT_USAGE;
}
