/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/proc.h"
#include "bundle/schema.h"
#include "health.h"
#include "offline_model.h"
#include "health_report.h"
#include "toolutil.h"

#define REPORT_MAX (4u << 20)
#define STDERR_KEEP 4096

/* config.json's keys are one table, bn_config_schema (bundle/schema.h):
 * bn_deploy_open() has refused unknown keys, wrong types and values out of
 * range before this runs, so what is read here is valid. */
void health_config_load(const char *root, struct health_config *c)
{
	*c = (struct health_config){.timeout_s = 600, .max_regression = 0.2, .require_suite = true};
	char *p = bn_path_join(root, "config.json"), *buf = NULL;
	size_t len = 0;
	if (p && bn_read_file(p, 1 << 16, &buf, &len, NULL) == 0) {
		json_t *o = json_loadb(buf, len, 0, NULL);
		json_t *t = json_object_get(o, "health_timeout_s"), *m = json_object_get(o, "health_memory_limit_mb"),
		       *g = json_object_get(o, "latency_regression"), *rq = json_object_get(o, "require_health_suite"),
		       *ap = json_object_get(o, "agrun_path"), *sp = json_object_get(o, "agserve_path");
		if (json_is_string(ap) && json_string_value(ap)[0]) {
			const char *a = json_string_value(ap);
			if (a[0] == '/')
				snprintf(c->agrun, sizeof c->agrun, "%s", a);
			else
				c->agrun_relative = true;
		}
		if (json_is_string(sp) && json_string_value(sp)[0]) {
			const char *a = json_string_value(sp);
			if (a[0] == '/')
				snprintf(c->agserve, sizeof c->agserve, "%s", a);
			else
				c->agserve_relative = true;
		}
		if (json_is_integer(t) && json_integer_value(t) > 0)
			c->timeout_s = (int)json_integer_value(t);
		if (json_is_integer(m) && json_integer_value(m) >= 0)
			c->memory_limit_mb = (long)json_integer_value(m);
		if (json_is_number(g) && json_number_value(g) >= 0)
			c->max_regression = json_number_value(g);
		if (json_is_boolean(rq))
			c->require_suite = json_is_true(rq);
		struct bn_error ce = {0};
		if (bn_config_cpu_kernels(o, p, &c->cpu_kernels, &ce) < 0)
			c->cpu_kernels = NULL;
		json_decref(o);
	}
	free(buf);
	free(p);
}

/* Finds the model artifact that names a health suite in the slot's manifest copy. */
static int find_suite(const char *slot_path, char **ret_model, char **ret_suite, bool *ret_allow_code, char *why,
                      size_t whylen)
{
	char *mp = bn_path_join(slot_path, BN_SLOT_MANIFEST), *buf = NULL;
	size_t len = 0;
	struct bn_error e = {0};
	int r = mp ? bn_read_file(mp, BN_MANIFEST_MAX, &buf, &len, &e) : -ENOMEM;
	free(mp);
	if (r < 0) {
		snprintf(why, whylen, "slot has no manifest copy (%.400s)", e.msg);
		return r;
	}
	json_t *m = json_loadb(buf, len, 0, NULL);
	free(buf);
	size_t i;
	json_t *a;
	r = -ENOENT;
	snprintf(why, whylen, "bundle has no health suite");
	json_array_foreach(json_object_get(m, "artifacts"), i, a) {
		const char *h = json_string_value(json_object_get(a, "health"));
		const char *name = json_string_value(json_object_get(a, "name"));
		if (!h || !name || !bn_name_valid(name) || !bn_path_valid(h))
			continue;
		*ret_model = bn_path_join(slot_path, name);
		*ret_suite = bn_path_join(slot_path, h);
		/* agpack records "allow_remote_code" in the signed provenance (docs/SBOM.md) */
		*ret_allow_code = json_is_true(json_object_get(json_object_get(a, "source"), "allow_remote_code"));
		r = *ret_model && *ret_suite ? 0 : -ENOMEM;
		break;
	}
	json_decref(m);
	return r;
}

static char *baseline_path(struct bn_deploy *d)
{
	return bn_path_join(bn_deploy_root(d), "health-baseline.json");
}

/*
 * This host's baseline: the figures of the last few passing checks of the
 * active slot (the same bundle version), and the best of them.  One check
 * that ran while the host was busy must not lower the bar for the next.
 */
#define BASELINE_KEEP 8

static json_t *baseline_load(struct bn_deploy *d)
{
	char *p = baseline_path(d), *buf = NULL;
	size_t len = 0;
	json_t *o = NULL;
	if (p && bn_read_file(p, 1 << 16, &buf, &len, NULL) == 0)
		o = json_loadb(buf, len, 0, NULL);
	free(buf);
	free(p);
	return o;
}

void health_save_baseline(struct bn_deploy *d, int slot, const struct health_result *h)
{
	if (!h->has_figures)
		return;
	const struct bn_slot *s = bn_deploy_slot(d, slot);
	json_t *old = baseline_load(d), *hist = json_array();
	/* Keep the history only while it is about the same bundle version. */
	if (json_is_object(old) && !strcmp(json_string_value(json_object_get(old, "slot")) ?: "", bn_slot_name(slot)) &&
	    json_integer_value(json_object_get(old, "version")) == (json_int_t)s->version) {
		size_t i, n = json_array_size(json_object_get(old, "history"));
		json_t *e;
		json_array_foreach(json_object_get(old, "history"), i, e) if (n - i < BASELINE_KEEP)
			json_array_append(hist, e);
	}
	json_array_append_new(hist, json_pack("{s:f, s:f, s:I}", "ttft_ms", h->ttft_ms, "decode_tok_s", h->decode_tok_s,
	                                      "time", (json_int_t)time(NULL)));
	json_t *o = json_pack("{s:s, s:s, s:I, s:o}", "slot", bn_slot_name(slot), "bundle", s->bundle, "version",
	                      (json_int_t)s->version, "history", hist);
	char *text = o ? json_dumps(o, JSON_INDENT(1)) : NULL, *p = baseline_path(d);
	/* A lost baseline only weakens the next latency comparison: warn, go on. */
	if (text && p && bn_write_file_atomic(p, text, strlen(text), 0644, NULL) < 0)
		tool_warn("%s: cannot save the latency baseline", p);
	free(text);
	free(p);
	json_decref(o);
	json_decref(old);
}

static bool load_baseline(struct bn_deploy *d, double *ttft, double *tps)
{
	json_t *o = baseline_load(d), *e;
	size_t i;
	*ttft = 0;
	*tps = 0;
	json_array_foreach(json_object_get(o, "history"), i, e) {
		json_t *a = json_object_get(e, "ttft_ms"), *b = json_object_get(e, "decode_tok_s");
		if (!json_is_number(a) || !json_is_number(b))
			continue;
		if (*ttft == 0 || json_number_value(a) < *ttft)
			*ttft = json_number_value(a);
		if (json_number_value(b) > *tps)
			*tps = json_number_value(b);
	}
	json_decref(o);
	return *tps > 0;
}

/* Last non-empty line of text, trimmed, into out. */
static void last_line(const char *text, char *out, size_t outlen)
{
	out[0] = '\0';
	if (!text)
		return;
	const char *end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	const char *start = end;
	while (start > text && start[-1] != '\n')
		start--;
	snprintf(out, outlen, "%.*s", (int)(end - start), start);
}

/* Whether the model artifact holds engine.json: an external engine serves
 * it, and the check goes through that engine (agserve check). */
static bool has_engine(const char *model)
{
	char *p = bn_path_join(model, "engine.json");
	bool r = p && access(p, F_OK) == 0;
	free(p);
	return r;
}

/* Offline readiness, as agpack checked it (docs/SBOM.md): a model that
 * would run code at load time passes only when the signed provenance says
 * the bundle allowed it; a tokenizer file its config needs must be there.
 * Hub pointers are findings, not failures.  false with res->reason set. */
static bool check_offline(const char *model, bool allow_code, struct health_result *res)
{
	if (!offline_is_model(model))
		return true;
	json_t *findings = json_array();
	struct bn_error oe = {0};
	int orr = findings ? offline_check_model("model", model, allow_code, findings, &oe) : -ENOMEM;
	json_decref(findings);
	if (orr < 0) {
		snprintf(res->reason, sizeof res->reason, "model directory not offline-ready: %.700s",
		         orr == -ENOMEM ? "out of memory" : oe.msg);
		return false;
	}
	res->offline_ready = true;
	res->remote_code_allowed = allow_code;
	return true;
}

/* The checker: agrun, or agserve for an external engine; $AGKIT_AGRUN
 * ($AGKIT_AGSERVE), config agrun_path (agserve_path) or beside agctl,
 * absolute paths only: never the working directory or PATH.  NULL with
 * res->reason set. */
static char *find_checker(const struct health_config *c, bool engine, struct health_result *res)
{
	const char *prog = engine ? "agserve" : "agrun", *env = getenv(engine ? "AGKIT_AGSERVE" : "AGKIT_AGRUN");
	const char *cfg = engine ? c->agserve : c->agrun;
	if (!(env && *env) && (engine ? c->agserve_relative : c->agrun_relative)) {
		snprintf(res->reason, sizeof res->reason,
		         "config.json %s_path is not an absolute path; refusing to look %s up in the working directory",
		         prog, prog);
		return NULL;
	}
	char *path = !(env && *env) && cfg[0] ? strdup(cfg) : tool_find_program(prog);
	if (!path) {
		char why[512];
		tool_find_program_error(prog, why, sizeof why);
		snprintf(res->reason, sizeof res->reason, "%s", why);
	}
	return path;
}

/* Runs `CHECKER check` on the slot's model and suite; false with
 * res->reason set when it cannot start. */
static bool run_checker(char *checker, bool engine, char *model, char *suite, char *name,
                        const struct health_config *c, struct bn_proc_result *pr, struct health_result *res)
{
	/* the memory limit goes down to agrun too: a model larger than it streams its layers */
	char memarg[32];
	snprintf(memarg, sizeof memarg, "%ldM", c->memory_limit_mb);
	char *const argv_agrun[] = {checker, "check", model, "--suite", suite, "--json",
	                            c->memory_limit_mb > 0 ? "--max-memory" : NULL, memarg, NULL};
	char *const argv_agserve[] = {checker, "check",  "--model", model, "--suite",
	                              suite,   "--json", "--name",  name,  NULL};
	char *const *argv = engine ? argv_agserve : argv_agrun;
	/* config cpu_kernels: the kernels agserve --root serves with, unless
	 * this agctl runs with its own AGRT_SIMD (which the check inherits) */
	char simd[64];
	const char *env[2] = {NULL, NULL};
	const char *own = getenv("AGRT_SIMD");
	if (c->cpu_kernels && !(own && *own)) {
		snprintf(simd, sizeof simd, "AGRT_SIMD=%s", c->cpu_kernels);
		env[0] = simd;
	}
	/* Own process group, killed whole (SIGKILL) on timeout and once the
	 * check has exited: nothing of the check outlives it.  The check must
	 * not starve the host it guards: lower CPU and I/O priority (best-effort
	 * class, lowest level; the idle class could starve the check itself into
	 * its timeout on a busy host).  RLIMIT_DATA, not RLIMIT_AS: it bounds what
	 * the check allocates (heap, anonymous and private writable maps) without
	 * counting the read-only weight maps or the huge virtual reservations of
	 * the CUDA libraries, which would make any address-space limit fail before
	 * the model even loads.  No core dumps of a crashing model run into the
	 * deployment root. */
	struct bn_proc_opts po = {
		.timeout_ms = c->timeout_s > INT_MAX / 1000 ? INT_MAX : c->timeout_s * 1000,
		.rlimit_data = c->memory_limit_mb > 0 ? (uint64_t)c->memory_limit_mb << 20 : 0,
		.no_core = true,
		.nice = 10,
		.ioprio_be = 7,
		.stdout_max = REPORT_MAX,
		.stderr_max = STDERR_KEEP,
		.env = env,
	};
	struct bn_error pe = {0};
	int pr_r = bn_proc_run(argv, &po, pr, &pe);
	if (pr_r < 0) {
		snprintf(res->reason, sizeof res->reason, "cannot start the check: %s", strerror(-pr_r));
		return false;
	}
	return true;
}

/* A report that says pass: it still fails on latency against this host's
 * baseline; else the reason names the figures. */
static void verdict_passed(struct bn_deploy *d, const struct health_config *c, json_t *rep,
                           struct health_result *res)
{
	res->pass = true;
	double bt = 0, btps = 0;
	if (res->has_figures && load_baseline(d, &bt, &btps) && res->decode_tok_s < btps * (1.0 - c->max_regression)) {
		res->pass = false;
		res->latency = true;
		snprintf(res->reason, sizeof res->reason,
		         "degraded latency: decode %.1f tok/s against %.1f tok/s on this host (more than %.0f%% slower)",
		         res->decode_tok_s, btps, c->max_regression * 100);
	} else if (res->has_figures && bt > 0 && res->ttft_ms > bt * (1.0 + c->max_regression) + 5.0) {
		res->pass = false;
		res->latency = true;
		snprintf(res->reason, sizeof res->reason,
		         "degraded latency: time to first token %.1f ms against %.1f ms on this host", res->ttft_ms, bt);
	} else {
		json_t *mem = json_object_get(rep, HR_MEMORY);
		json_t *mode = json_object_get(mem, HR_MEMORY_MODE);
		char fig[160];
		if (!strcmp(json_is_string(mode) ? json_string_value(mode) : "", HR_MODE_STREAMING))
			snprintf(fig, sizeof fig, "streaming: %.1f MB of weights read, latency not measured",
			         json_number_value(json_object_get(mem, HR_MEMORY_BYTES_READ)) / 1e6);
		else
			snprintf(fig, sizeof fig, "ttft %.1f ms, decode %.1f tok/s", res->ttft_ms, res->decode_tok_s);
		snprintf(res->reason, sizeof res->reason, "passed (%s%s)", fig,
		         !res->offline_ready         ? ""
		         : res->remote_code_allowed ? "; offline-ready, remote code allowed by the bundle"
		                                    : "; model directory offline-ready");
	}
}

/* The verdict from how the check ended and, when it ran to the end, from its
 * JSON report (health_report.h). */
static void verdict(struct bn_deploy *d, const struct health_config *c, const struct bn_proc_result *pr,
                    struct health_result *res)
{
	/* stdout beyond REPORT_MAX is dropped (the report is then malformed). */
	int st = pr->status;
	char tail[300];
	last_line(pr->err, tail, sizeof tail);
	if (pr->timed_out) {
		snprintf(res->reason, sizeof res->reason, "hung: no verdict within %d s (killed)", c->timeout_s);
		return;
	}
	if (WIFSIGNALED(st)) {
		int sig = WTERMSIG(st);
		snprintf(res->reason, sizeof res->reason, "%s (signal %d%s%s)%s%s",
		         sig == SIGKILL ? "killed, probably out of memory" : sig == SIGABRT ? "aborted" : "crashed", sig,
		         sig == SIGSEGV ? ", segmentation fault" : "", sig == SIGBUS ? ", bus error" : "", tail[0] ? ": " : "",
		         tail);
		return;
	}
	if (WEXITSTATUS(st) != 0 && (strstr(tail, "out of memory") || strstr(tail, "Cannot allocate"))) {
		snprintf(res->reason, sizeof res->reason, "out of memory: %s", tail);
		return;
	}
	json_t *rep = pr->out ? json_loads(pr->out, 0, NULL) : NULL;
	json_t *pass = json_object_get(rep, HR_PASS), *tt = json_object_get(rep, HR_TTFT_MS),
	       *tps = json_object_get(rep, HR_DECODE_TOK_S);
	if (!json_is_boolean(pass)) {
		snprintf(res->reason, sizeof res->reason, "check failed to run (exit %d)%s%s", WEXITSTATUS(st),
		         tail[0] ? ": " : "", tail);
	} else {
		if (json_is_number(tt) && json_is_number(tps)) {
			res->has_figures = true;
			res->ttft_ms = json_number_value(tt);
			res->decode_tok_s = json_number_value(tps);
		}
		if (!json_is_true(pass) || WEXITSTATUS(st) != 0) {
			json_t *f = json_array_get(json_object_get(rep, HR_FAILURES), 0);
			res->latency = json_is_true(json_object_get(rep, HR_LATENCY_ONLY));
			snprintf(res->reason, sizeof res->reason, "wrong answers: %s",
			         json_is_string(f) ? json_string_value(f) : "check reported failure");
		} else {
			verdict_passed(d, c, rep, res);
		}
	}
	json_decref(rep);
}

/* One check of the slot: its suite, offline readiness, the checker, its run
 * and the verdict, into res. */
static void check_once(struct bn_deploy *d, int slot, const struct health_config *c, struct health_result *res)
{
	memset(res, 0, sizeof *res);
	char *sp = bn_deploy_slot_path(d, slot), *model = NULL, *suite = NULL, *checker = NULL;
	char why[512];
	if (!sp) {
		snprintf(res->reason, sizeof res->reason, "out of memory");
		goto out;
	}
	bool allow_code = false;
	if (find_suite(sp, &model, &suite, &allow_code, why, sizeof why) < 0) {
		res->pass = !c->require_suite && strstr(why, "no health suite");
		snprintf(res->reason, sizeof res->reason, "%s", why);
		goto out;
	}
	if (!check_offline(model, allow_code, res))
		goto out;
	bool engine = has_engine(model);
	if (!(checker = find_checker(c, engine, res)))
		goto out;
	/* agserve check serves the model the way agserve will: the model name is the bundle's */
	char *name = (char *)(bn_deploy_slot(d, slot)->bundle[0] ? bn_deploy_slot(d, slot)->bundle : "model");
	struct bn_proc_result pr = {0};
	if (run_checker(checker, engine, model, suite, name, c, &pr, res)) {
		verdict(d, c, &pr, res);
		bn_proc_result_release(&pr);
	}
out:
	free(sp);
	free(model);
	free(suite);
	free(checker);
}

void health_check(struct bn_deploy *d, int slot, const struct health_config *c, struct health_result *res)
{
	/* A busy host can make one measurement slow; a slow model stays slow.
	 * Latency verdicts (and only those) are measured again before they count. */
	for (int attempt = 0; attempt < 5; attempt++) {
		if (attempt)
			sleep(1); /* let a burst of other work pass */
		check_once(d, slot, c, res);
		if (res->pass || !res->latency)
			return;
	}
}
