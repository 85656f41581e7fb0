/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Health suites: golden prompts recorded from a reference model in the dirty
 * zone (`agrun record`) and checked against a staged model in the clean zone
 * (`agrun check`), teacher-forced, with tolerances that allow legitimate
 * numeric differences (CPU/GPU, bf16) but catch damaged weights, swapped
 * tokenizers and slow runtimes.  Format: docs/HEALTH.md.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agrt/agrt.h"
#include "bundle/error.h"

#define HEALTH_SUITE_MAX_BYTES (16u << 20)
#define HEALTH_MAX_PROMPTS     64

/* agrun's exit status for an rt_error code: 1..4 as they are, RT_ERR_DEVICE
 * as BN_EXIT_DEVICE (8), anything else 1. */
static inline int agrun_exit_code(int rt_code)
{
	return rt_code == RT_ERR_DEVICE ? BN_EXIT_DEVICE : rt_code > 0 && rt_code < RT_ERR_DEVICE ? rt_code : BN_EXIT_FAILURE;
}

/* --max-memory SIZE: DIGITS[K|M|G|T] (binary units), > 0.  0 or -EINVAL. */
int agrun_parse_memory(const char *s, uint64_t *ret);

/* argv[0] is "record" or "check". Returns agrun's exit status. */
int agrun_health_main(int argc, char **argv);

/* A parsed suite (the suite file is hostile input: tests/fuzz/fuzz-health.c). */
struct health_suite {
	json_t *root;      /* owned */
	json_t *prompts;   /* in root: an array of 1..HEALTH_MAX_PROMPTS entries (each still unchecked) */
	json_t *budgets;   /* in root, NULL when absent (not checked: json_number_value() of its keys) */
	double margin_tol; /* tolerances, >= 0 (defaults 1.0 and 0.01 unless both are valid) */
	double kl_tol;
};

/* Parses a suite file's len bytes: at most HEALTH_SUITE_MAX_BYTES, JSON
 * without duplicate keys, an integer "agkit_health_suite", 1..64 prompts.
 * Returns 0 (free with health_suite_free()) or -1 ("not a health suite"). */
int health_suite_parse(const char *buf, size_t len, struct health_suite *ret);
void health_suite_free(struct health_suite *s);

/* The suite's latency budgets (its "budgets", may be NULL) against what a
 * check measured: a failure line each for a time to first token over its
 * budget and a decode rate under its budget, appended to failures.  ttft
 * 1e30 or tps 0: not measured; latency false: nothing measured. */
void health_budget_failures(json_t *budgets, bool latency, double ttft, double tps, json_t *failures);

/* One prompt of a suite, checked against a model's vocabulary and context. */
struct health_prompt {
	const char *name, *text;   /* in the suite's JSON */
	const char *output_text;   /* NULL when absent */
	json_t *steps;             /* "topk": an array of n_out entries (each still unchecked) */
	int32_t *ids, *out;        /* owned: n >= 1 prompt ids, n_out output ids, all in [0, vocab) */
	size_t n, n_out;           /* n + n_out <= ctx */
	bool add_special;
};

/* Returns 0 (free with health_prompt_free()) or -1 when p is malformed or
 * does not fit a model of vocab ids and ctx positions. */
int health_prompt_parse(json_t *p, int vocab, int ctx, struct health_prompt *ret);
void health_prompt_free(struct health_prompt *hp);
