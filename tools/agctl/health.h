/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Health checks for agctl: run `agrun check` on a slot's model (`agserve
 * check` when the model artifact holds engine.json) in a child
 * process (own process group, optional address-space limit, timeout) and turn
 * every outcome (pass, wrong answers, crash, abort, out of memory, hang,
 * latency regression) into a verdict with a reason.  agctl itself never runs
 * model code.
 */
#include <stdbool.h>

#include <jansson.h>

#include "bundle/deploy.h"

struct health_config {
	int timeout_s;             /* whole check; default 600 */
	long memory_limit_mb;      /* RLIMIT_DATA for the child; 0 = none */
	double max_regression;     /* allowed latency regression vs this host's baseline; default 0.2 */
	bool require_suite;        /* a bundle without a health suite fails; default true */
	char agrun[4096];          /* config agrun_path (absolute) or "" */
	bool agrun_relative;       /* agrun_path was given but is not absolute */
	char agserve[4096];        /* config agserve_path (absolute) or "": checks through an external engine */
	bool agserve_relative;     /* agserve_path was given but is not absolute */
	const char *cpu_kernels;   /* config cpu_kernels (AGRT_SIMD of the check) or NULL */
};

struct health_result {
	bool pass;
	char reason[768];          /* why it failed, or a short summary when it passed */
	double ttft_ms, decode_tok_s;
	bool has_figures;
	bool latency;              /* failed on latency alone (measured again before it counts) */
	bool offline_ready;        /* the model directory passed agpack's offline-readiness check */
	bool remote_code_allowed;  /* ... with model code the bundle's provenance allows */
};

void health_config_load(const char *root, struct health_config *ret);
/* Checks slot; ret is always filled (a failure to run the check is a failed
 * check).  A latency failure is measured up to five times, a second apart. */
void health_check(struct bn_deploy *d, int slot, const struct health_config *c, struct health_result *ret);
/* Remembers the figures of a passing check of the active slot as this host's baseline. */
void health_save_baseline(struct bn_deploy *d, int slot, const struct health_result *h);
