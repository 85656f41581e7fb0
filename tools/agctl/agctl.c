/* SPDX-License-Identifier: Apache-2.0 */
/* agctl: clean-zone slot control.  No network code. */
#include <errno.h>
#include <stdarg.h>
#include <syslog.h>
#include <getopt.h>
#include <glob.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bundle/deploy.h"
#include "health.h"
#include "cli.h"
#include "report.h"
#include "toolutil.h"

const char *tool_name = "agctl";

#define MAX_KEYS 64

#define U_INIT "agctl [--root R] init --pubkey KEY.pub [--pubkey ...] [--threshold N] [--channel C] [--health-memory-mb N]\n"
#define U_CHANNEL "agctl [--root R] channel set C [--reason TEXT]\n"
#define U_STATUS "agctl [--root R] status [--json]\n"
#define U_PROMOTE "agctl [--root R] [--wait] promote\n"
#define U_ROLLBACK "agctl [--root R] [--wait] rollback [--reason TEXT]\n"
#define U_MARK_GOOD "agctl [--root R] mark-good\n"
#define U_MARK_BAD "agctl [--root R] mark-bad [SLOT] [--reason TEXT]\n"
#define U_TRUST "agctl [--root R] trust update FILE [--sig FILE.minisig ...]\n"
#define U_AUDIT "agctl [--root R] audit verify [--file FILE]   (FILE: any audit chain, e.g. agserve's query log; no lock)\n"
#define U_HEALTH "agctl [--root R] health [--slot SLOT] [--json]\n"
#define U_CYCLE "agctl [--root R] [--wait] cycle\n"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: agctl [--root R] [--wait] COMMAND ...   (--root and --wait may also follow the command)\n"
	        "  init --pubkey KEY.pub [--pubkey ...] [--threshold N] [--channel C] [--health-memory-mb N]\n"
	        "  channel set C [--reason TEXT]\n"
	        "  status [--json]\n"
	        "  promote [--json]\n"
	        "  rollback [--reason TEXT] [--json]\n"
	        "  mark-good\n"
	        "  mark-bad [SLOT] [--reason TEXT]\n"
	        "  trust update FILE [--sig FILE.minisig ...]\n"
	        "  audit verify [--file FILE]   (FILE: any audit chain, e.g. agserve's query log; no lock)\n"
	        "  health [--slot SLOT] [--json]\n"
	        "  cycle [--json]   (one timestamped summary line; with --json on stderr)\n"
	        "  help [COMMAND]   (also: COMMAND --help)\n"
	        "\n"
	        "R defaults to $AGKIT_ROOT or " BN_DEFAULT_ROOT ".\n"
	        "Exit status: 0 ok, 1 failure, 2 usage, 3 verification failed, 4 I/O or nothing to do,\n"
	        "             5 refused by policy, 6 another agkit command holds the lock,\n"
	        "             7 a health check failed (health: the slot is unhealthy; cycle: it acted on it).\n");
}

static void fmt_time(int64_t t, char out[32])
{
	if (!t) {
		snprintf(out, 32, "-");
		return;
	}
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_status(struct bn_deploy *d, int argc, char **argv)
{
	bool json = tool_json;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else {
			usage(stderr);
			return BN_EXIT_USAGE;
		}
	}
	json_t *so = bn_deploy_status(d);
	if (json) {
		tool_json_print(so);
		return 0;
	}
	const char *pending = json_string_value(json_object_get(so, "pending"));
	int a = bn_deploy_active(d);
	printf("root: %s\nactive: %s\n", bn_deploy_root(d), a >= 0 ? bn_slot_name(a) : "(none)");
	printf("channel: %s\n", bn_deploy_channel(d) ? bn_deploy_channel(d) : "(none yet: the first import's)");
	if (bn_deploy_in_window(d)) {
		char t[32];
		fmt_time(bn_deploy_window_until(d), t);
		int p = bn_deploy_previous(d);
		if (p >= 0)
			printf("validation window until %s (previous slot %s kept for rollback)\n", t, bn_slot_name(p));
		else
			printf("validation window until %s (no previous slot: nothing to roll back to)\n", t);
	}
	if (pending)
		printf("pending: %s (in progress, or interrupted: the next command that takes the lock finishes it)\n",
		       pending);
	json_decref(so);
	for (int i = 0; i < 2; i++) {
		const struct bn_slot *s = bn_deploy_slot(d, i);
		char st[32], pt[32];
		fmt_time(s->staged_at, st);
		fmt_time(s->promoted_at, pt);
		printf("  %-5s %-9s", bn_slot_name(i), bn_slot_state_name(s->state));
		if (s->has_bundle)
			printf(" %s %s v%" PRIu64 " staged %s promoted %s", s->bundle, s->channel, s->version, st, pt);
		if (s->reason[0])
			printf(" (%s)", s->reason);
		printf("\n");
	}
	return 0;
}

/* promote and rollback: a line, or with --json {"action", "active",
 * "previous", "bundle", "channel", "version"}. */
static void report_switch(struct bn_deploy *d, const char *action, const char *verb)
{
	int a = bn_deploy_active(d), p = bn_deploy_previous(d);
	if (tool_json) {
		const struct bn_slot *s = bn_deploy_slot(d, a);
		json_t *o = json_pack("{s:s, s:s, s:o}", "action", action, "active", bn_slot_name(a), "previous",
		                      p >= 0 ? json_string(bn_slot_name(p)) : json_null());
		json_object_set_new(o, "bundle", s->has_bundle ? json_string(s->bundle) : json_null());
		json_object_set_new(o, "channel", s->has_bundle ? json_string(s->channel) : json_null());
		json_object_set_new(o, "version", s->has_bundle ? json_integer((json_int_t)s->version) : json_null());
		tool_json_print(o);
	}
	tool_say("%s %s\n", verb, bn_slot_name(a));
	tool_log(LOG_NOTICE, "%s %s", verb, bn_slot_name(a));
}

static int run(struct bn_deploy *d, int argc, char **argv)
{
	const char *cmd = argv[0];
	struct bn_error err = {0};
	int r;
	if (!strcmp(cmd, "status"))
		return cmd_status(d, argc, argv);
	const char *reason = NULL;
	const char *pos = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reason") && i + 1 < argc)
			reason = argv[++i];
		else if (argv[i][0] != '-' && !pos)
			pos = argv[i];
		else {
			usage(stderr);
			return BN_EXIT_USAGE;
		}
	}
	if (!strcmp(cmd, "promote") && !pos) {
		r = bn_deploy_promote(d, &err);
		if (r == 0)
			report_switch(d, "promoted", "promoted");
	} else if (!strcmp(cmd, "rollback") && !pos) {
		r = bn_deploy_rollback(d, reason, &err);
		if (r == 0)
			report_switch(d, "rolled-back", "rolled back to");
	} else if (!strcmp(cmd, "mark-good") && !pos) {
		r = bn_deploy_mark_good(d, &err);
		if (r == 0)
			printf("%s marked good\n", bn_slot_name(bn_deploy_active(d)));
	} else if (!strcmp(cmd, "mark-bad")) {
		int slot = pos ? bn_slot_index(pos) : -1;
		if (pos && slot < 0) {
			tool_err("unknown slot '%s' (blue or green)", pos);
			return BN_EXIT_USAGE;
		}
		r = bn_deploy_mark_bad(d, slot, reason, &err);
		if (r == 0)
			printf("marked bad; active: %s\n",
			       bn_deploy_active(d) >= 0 ? bn_slot_name(bn_deploy_active(d)) : "(none)");
	} else if (!strcmp(cmd, "audit") && pos && !strcmp(pos, "verify")) {
		uint64_t lines = 0;
		r = bn_deploy_audit_verify(d, &lines, &err);
		if (r == 0)
			printf("audit log OK: %" PRIu64 " record(s), chain intact up to the recorded head\n", lines);
	} else {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	return r < 0 ? tool_fail(r, &err) : 0;
}

static void audit_health(struct bn_deploy *d, int slot, const struct health_result *h)
{
	const struct bn_slot *s = bn_deploy_slot(d, slot);
	struct bn_audit_event ev = {.action = "health", .slot = bn_slot_name(slot), .bundle = s->has_bundle ? s->bundle : NULL,
	                            .channel = s->has_bundle ? s->channel : NULL, .version = s->version,
	                            .has_version = s->has_bundle, .result = h->pass ? "ok" : "failed", .reason = h->reason};
	struct bn_error e = {0};
	if (bn_deploy_audit(d, &ev, &e) < 0)
		tool_warn("cannot audit the health check: %s", e.msg);
}

static int cmd_health(struct bn_deploy *d, int argc, char **argv)
{
	bool json = tool_json;
	int slot = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--slot") && i + 1 < argc && bn_slot_index(argv[i + 1]) >= 0)
			slot = bn_slot_index(argv[++i]);
		else {
			usage(stderr);
			return BN_EXIT_USAGE;
		}
	}
	if (slot < 0)
		slot = bn_deploy_staged(d) >= 0 ? bn_deploy_staged(d) : bn_deploy_active(d);
	if (slot < 0 || bn_deploy_slot(d, slot)->state == BN_SLOT_EMPTY) {
		tool_err("no slot to check");
		return BN_EXIT_IO;
	}
	struct health_config hc;
	health_config_load(bn_deploy_root(d), &hc);
	struct health_result h;
	health_check(d, slot, &hc, &h);
	audit_health(d, slot, &h);
	if (h.pass && slot == bn_deploy_active(d))
		health_save_baseline(d, slot, &h);
	if (json) {
		json_t *o = json_pack("{s:s, s:b, s:s, s:b}", "slot", bn_slot_name(slot), "pass", h.pass, "reason", h.reason,
		                      "offline_ready", h.offline_ready);
		if (h.has_figures) {
			json_object_set_new(o, "ttft_ms", json_real(h.ttft_ms));
			json_object_set_new(o, "decode_tok_s", json_real(h.decode_tok_s));
		}
		char *t = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", t ? t : "{}");
		free(t);
		json_decref(o);
	} else {
		printf("%s: %s: %s\n", bn_slot_name(slot), h.pass ? "healthy" : "UNHEALTHY", h.reason);
	}
	return h.pass ? 0 : 7;
}

/*
 * The one command cron runs.  A staged slot is checked, then promoted or
 * marked bad; an active slot inside its validation window is checked and
 * rolled back on failure; when the window has ended with checks passing it
 * is marked good.  One summary line per run.
 */
/* The cycle's one summary line, "TIME cycle: TEXT" (ISO 8601 UTC), on
 * stdout; with --json on stderr and one object on stdout: {"time", "action",
 * "slot", "bundle", "channel", "version", "reason", "exit", "summary"}. */
static int cycle_line(struct bn_deploy *d, const char *action, int slot, const char *reason, int code,
                      const char *fmt, ...) BN_PRINTF(6, 7);
static int cycle_line(struct bn_deploy *d, const char *action, int slot, const char *reason, int code,
                      const char *fmt, ...)
{
	char t[32], text[1400];
	tool_now_iso(t);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	tool_say("%s cycle: %s\n", t, text);
	tool_log(code == 0 ? LOG_NOTICE : LOG_ERR, "cycle: %s", text);
	if (tool_json) {
		const struct bn_slot *s = slot >= 0 ? bn_deploy_slot(d, slot) : NULL;
		bool b = s && s->has_bundle;
		json_t *o = json_pack("{s:s, s:s}", "time", t, "action", action);
		json_object_set_new(o, "slot", slot >= 0 ? json_string(bn_slot_name(slot)) : json_null());
		json_object_set_new(o, "bundle", b ? json_string(s->bundle) : json_null());
		json_object_set_new(o, "channel", b ? json_string(s->channel) : json_null());
		json_object_set_new(o, "version", b ? json_integer((json_int_t)s->version) : json_null());
		json_object_set_new(o, "reason", reason ? json_string(reason) : json_null());
		json_object_set_new(o, "exit", json_integer(code));
		json_object_set_new(o, "summary", json_string(text));
		tool_json_print(o);
	}
	return code;
}

static int cmd_cycle(struct bn_deploy *d)
{
	struct health_config hc;
	health_config_load(bn_deploy_root(d), &hc);
	struct bn_error err = {0};
	struct health_result h;
	int staged = bn_deploy_staged(d), active = bn_deploy_active(d);
	if (staged >= 0) {
		const struct bn_slot *s = bn_deploy_slot(d, staged);
		char what[300];
		snprintf(what, sizeof what, "%s (%s %s v%" PRIu64 ")", bn_slot_name(staged), s->bundle, s->channel, s->version);
		health_check(d, staged, &hc, &h);
		audit_health(d, staged, &h);
		if (!h.pass) {
			char reason[900];
			snprintf(reason, sizeof reason, "health check failed: %s", h.reason);
			int r = bn_deploy_mark_bad(d, staged, reason, &err);
			if (r < 0)
				return tool_fail(r, &err);
			return cycle_line(d, "marked-bad", staged, h.reason, 7, "staged %s refused: %s; marked bad", what,
			                  h.reason);
		}
		int r = bn_deploy_promote(d, &err);
		if (r < 0) {
			return cycle_line(d, "promote-failed", staged, err.msg, tool_fail(r, &err),
			                  "staged %s passed its check but the promote failed: %s", what, err.msg);
		}
		health_save_baseline(d, staged, &h);
		return cycle_line(d, "promoted", staged, h.reason, 0, "staged %s %s; promoted", what, h.reason);
	}
	if (active < 0) {
		return cycle_line(d, "none", -1, NULL, 0, "nothing to do (no active slot, nothing staged)");
	}
	int64_t until = bn_deploy_window_until(d);
	if (until == 0) {
		return cycle_line(d, "none", active, NULL, 0, "nothing to do (%s active and validated)",
		                  bn_slot_name(active));
	}
	const struct bn_slot *s = bn_deploy_slot(d, active);
	health_check(d, active, &hc, &h);
	audit_health(d, active, &h);
	if (!h.pass) {
		char reason[900];
		snprintf(reason, sizeof reason, "failed inside its validation window: %s", h.reason);
		if (bn_deploy_previous(d) < 0) {
			return cycle_line(d, "unhealthy", active, h.reason, 7,
			                  "active %s v%" PRIu64 " unhealthy (%s) and no previous slot to roll back to",
			                  bn_slot_name(active), s->version, h.reason);
		}
		int r = bn_deploy_rollback(d, reason, &err);
		if (r < 0)
			return tool_fail(r, &err);
		return cycle_line(d, "rolled-back", bn_deploy_active(d), h.reason, 7,
		                  "active slot unhealthy (%s); rolled back to %s", h.reason,
		                  bn_slot_name(bn_deploy_active(d)));
	}
	health_save_baseline(d, active, &h);
	if (!bn_deploy_in_window(d)) {
		int r = bn_deploy_mark_good(d, &err);
		if (r < 0)
			return tool_fail(r, &err);
		return cycle_line(d, "marked-good", active, NULL, 0,
		                  "%s v%" PRIu64 " healthy through its validation window; marked good",
		                  bn_slot_name(active), s->version);
	}
	return cycle_line(d, "healthy", active, h.reason, 0, "%s v%" PRIu64 " healthy inside its validation window (%s)",
	                  bn_slot_name(active), s->version, h.reason);
}

static int cmd_trust_update(struct bn_deploy *d, int argc, char **argv)
{
	/* argv: trust update FILE [--sig S]... */
	if (argc < 3) {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	const char *file = argv[2];
	const char *sigs[BN_MAX_SIGNATURES];
	size_t n = 0;
	glob_t g = {0};
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--sig") && i + 1 < argc && n < BN_MAX_SIGNATURES) {
			sigs[n++] = argv[++i];
		} else {
			usage(stderr);
			return BN_EXIT_USAGE;
		}
	}
	if (n == 0) {
		/* Default: FILE.minisig and FILE.*.minisig beside it. */
		char *pat = NULL;
		if (asprintf(&pat, "%s*.minisig", file) < 0)
			return BN_EXIT_FAILURE;
		if (glob(pat, 0, NULL, &g) == 0)
			for (size_t i = 0; i < g.gl_pathc && n < BN_MAX_SIGNATURES; i++)
				sigs[n++] = g.gl_pathv[i];
		free(pat);
	}
	struct bn_error err = {0};
	int r = bn_deploy_trust_update(d, file, sigs, n, &err);
	globfree(&g);
	if (r < 0)
		return tool_fail(r, &err);
	printf("trust policy updated from %s (%zu signature file(s) considered)\n", file, n);
	return 0;
}

/* argv: channel set C [--reason TEXT] */
static int cmd_channel(struct bn_deploy *d, int argc, char **argv)
{
	const char *reason = NULL, *ch = NULL;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--reason") && i + 1 < argc)
			reason = argv[++i];
		else if (argv[i][0] != '-' && !ch)
			ch = argv[i];
		else {
			usage(stderr);
			return BN_EXIT_USAGE;
		}
	}
	if (!ch) {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	const char *old = bn_deploy_channel(d);
	char was[BN_MAX_NAME + 1];
	snprintf(was, sizeof was, "%s", old ? old : "(none)");
	struct bn_error err = {0};
	int r = bn_deploy_channel_set(d, ch, reason, &err);
	if (r < 0)
		return tool_fail(r, &err);
	printf("channel %s -> %s (its floor: the last version promoted on %s)\n", was, ch, ch);
	return 0;
}

/* The default health_memory_limit_mb: 75% of this host's RAM (0 when unknown). */
static long default_health_memory_mb(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "MemTotal: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb > 0 ? kb / 1024 * 3 / 4 : 0;
}

static int cmd_init(const char *root, int argc, char **argv)
{
	static struct bn_pubkey keys[MAX_KEYS];
	size_t n = 0;
	unsigned threshold = 1;
	struct bn_error err = {0};
	struct bn_init_opts io = {.health_memory_limit_mb = default_health_memory_mb()};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--pubkey") && i + 1 < argc) {
			if (n == MAX_KEYS) {
				tool_err("too many keys");
				return BN_EXIT_USAGE;
			}
			if (bn_pubkey_load(argv[++i], &keys[n], &err) < 0) {
				tool_err("%s", err.msg);
				return BN_EXIT_USAGE;
			}
			n++;
		} else if (!strcmp(argv[i], "--threshold") && i + 1 < argc) {
			uint64_t t;
			if (cli_count("--threshold", argv[++i], 1, MAX_KEYS, &t) < 0)
				return BN_EXIT_USAGE;
			threshold = (unsigned)t;
		} else if (!strcmp(argv[i], "--channel") && i + 1 < argc) {
			io.channel = argv[++i];
			if (!bn_name_valid(io.channel)) {
				tool_err("--channel: '%s' is not a valid channel name", io.channel);
				return BN_EXIT_USAGE;
			}
		} else if (!strcmp(argv[i], "--health-memory-mb") && i + 1 < argc) {
			uint64_t v;
			if (cli_count("--health-memory-mb (MiB, 0: no limit)", argv[++i], 0, 1u << 30, &v) < 0)
				return BN_EXIT_USAGE;
			io.health_memory_limit_mb = (long)v;
		} else {
			usage(stderr);
			return BN_EXIT_USAGE;
		}
	}
	if (n == 0)
		return cli_missing("init", "--pubkey KEY.pub (a trusted release key; repeat for m-of-n)");
	int r = bn_deploy_init2(root, keys, n, threshold, &io, &err);
	if (r < 0)
		return tool_fail(r, &err);
	printf("initialised %s: %zu key(s), threshold %u", root, n, threshold);
	if (io.channel)
		printf(", channel %s", io.channel);
	if (io.health_memory_limit_mb > 0)
		printf(", health checks limited to %ld MiB", io.health_memory_limit_mb);
	printf("\n");
	return 0;
}

/* audit verify --file FILE: the chain of any audit log (agserve's query log,
 * a copy of R/audit.log), without the deployment's recorded head. */
static int cmd_audit_file(int argc, char **argv)
{
	struct bn_error err = {0};
	uint64_t lines = 0;
	if (argc != 4) {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	int r = bn_audit_verify(argv[3], NULL, NULL, &lines, &err);
	if (r < 0)
		return tool_fail(r, &err);
	printf("audit log OK: %" PRIu64 " record(s), chain intact\n", lines);
	return 0;
}

/* argv[0] is the command (known to the table). */
static int agctl_run(const char *root, bool wait, int argc, char **argv)
{
	if (tool_init() < 0)
		return BN_EXIT_FAILURE;
	tool_take_report_options(&argc, argv); /* --json, -q in any position after the command */
	if (!strcmp(argv[0], "init"))
		return cmd_init(root, argc, argv);
	if (argc >= 2 && !strcmp(argv[0], "audit") && !strcmp(argv[1], "verify") && argc >= 3 &&
	    !strcmp(argv[2], "--file"))
		return cmd_audit_file(argc, argv);
	struct bn_error err = {0};
	struct bn_deploy *d = NULL;
	/* Readers never wait for or fail on the lock: when it is free they take
	 * it (and so finish an interrupted operation, as every command does);
	 * when another command holds it, or this user may not take it (a
	 * monitoring user, docs/OPERATIONS.md), they read a consistent snapshot
	 * without it. */
	bool reader = !strcmp(argv[0], "status") || (argc >= 2 && !strcmp(argv[0], "audit") && !strcmp(argv[1], "verify"));
	int r = bn_deploy_open(root, reader ? false : wait, &d, &err);
	if (reader && (r == -EAGAIN || r == -EACCES || r == -EPERM || r == -EROFS)) {
		err = (struct bn_error){0};
		r = bn_deploy_open_ro(root, &d, &err);
	}
	if (r < 0)
		return tool_fail(r, &err);
	int q;
	if (argc >= 2 && !strcmp(argv[0], "trust") && !strcmp(argv[1], "update"))
		q = cmd_trust_update(d, argc, argv);
	else if (argc >= 2 && !strcmp(argv[0], "channel") && !strcmp(argv[1], "set"))
		q = cmd_channel(d, argc, argv);
	else if (!strcmp(argv[0], "health"))
		q = cmd_health(d, argc, argv);
	else if (!strcmp(argv[0], "cycle") && argc == 1) {
		tool_log_ident = "agkit-cycle";
		q = cmd_cycle(d);
	}
	else
		q = run(d, argc, argv);
	bn_deploy_close(d);
	return q;
}

static const struct cli_cmd commands[] = {
	{"init", U_INIT, NULL, false},
	{"channel", U_CHANNEL, NULL, true},
	{"status", U_STATUS, NULL, true},
	{"promote", U_PROMOTE, NULL, true},
	{"rollback", U_ROLLBACK, NULL, true},
	{"mark-good", U_MARK_GOOD, NULL, true},
	{"mark-bad", U_MARK_BAD, NULL, true},
	{"trust", U_TRUST, NULL, true},
	{"audit", U_AUDIT, NULL, true},
	{"health", U_HEALTH, NULL, true},
	{"cycle", U_CYCLE, NULL, true},
	{0},
};

/* Options of the commands that take a value: their value is never read as
 * a global option (rollback --reason --root stays a reason). */
static bool takes_value(const char *o)
{
	static const char *const v[] = {"--reason", "--sig", "--pubkey", "--threshold", "--channel",
	                                "--health-memory-mb", "--slot", "--file", NULL};
	for (size_t i = 0; v[i]; i++)
		if (!strcmp(o, v[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	const char *root = getenv("AGKIT_ROOT");
	if (!root || !*root)
		root = BN_DEFAULT_ROOT;
	bool wait = false;
	/* --root R (or --root=R, -r R) and --wait anywhere on the line, before
	 * or after the command; the rest, in order, is the command's. */
	char **rest = calloc((size_t)argc + 1, sizeof *rest);
	int n = 0, q = BN_EXIT_USAGE;
	if (!rest)
		return BN_EXIT_FAILURE;
	rest[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--root") || !strcmp(a, "-r")) {
			if (i + 1 == argc) {
				tool_err("%s needs a deployment root directory", a);
				goto out;
			}
			root = argv[++i];
		} else if (!strncmp(a, "--root=", 7)) {
			root = a + 7;
		} else if (!strcmp(a, "--wait") || !strcmp(a, "-w")) {
			wait = true;
		} else if (takes_value(a) && i + 1 < argc) {
			rest[n++] = argv[i++];
			rest[n++] = argv[i];
		} else {
			rest[n++] = argv[i];
		}
	}
	rest[n] = NULL;
	if (n < 2) {
		usage(stderr);
		goto out;
	}
	const char *w = rest[1], *name = !strcmp(w, "help") && n > 2 ? rest[2] : w;
	if (!strcmp(w, "--help") || !strcmp(w, "-h") || (!strcmp(w, "help") && n == 2)) {
		usage(stdout);
		q = 0;
		goto out;
	}
	if (!strcmp(w, "--version")) {
		printf("agctl %s\n", AGKIT_VERSION);
		q = 0;
		goto out;
	}
	const struct cli_cmd *cc = cli_find(commands, name);
	if (!cc) {
		/* before the root is opened: a typo outside a root is a typo */
		cli_unknown_command(commands, name);
		goto out;
	}
	if (name != w || cli_wants_help(n - 1, rest + 1)) {
		cli_usage(stdout, cc);
		q = 0;
		goto out;
	}
	q = agctl_run(root, wait, n - 1, rest + 1);
out:
	free(rest);
	return q;
}
