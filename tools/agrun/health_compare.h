/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The teacher-forced comparison of one step of a health suite (docs/HEALTH.md,
 * "Checking"): the one piece of arithmetic that decides whether a model still
 * answers like the reference.  agrun check feeds it log-probabilities computed
 * from full logits rows; agserve check feeds it the top-k log-probabilities an
 * engine returned over HTTP.  Both call this code, so both apply the same rule.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define HEALTH_STEP_MAX_TOPK 32 /* recorded alternatives per step, at most (agrun record --top-k) */

struct health_step {
	double margin;  /* the best log-probability now minus the recorded token's (>= 0 when exact) */
	double kl;      /* KL(recorded || now) over the recorded top-k ids, both renormalised */
	size_t k;       /* recorded ids compared */
	size_t bounded; /* of those, ids whose log-probability now was unknown (bounded, see below) */
};

/*
 * Compares one step.  rec: the suite's step, an array of 1..HEALTH_STEP_MAX_TOPK
 * [id, logprob] pairs with ids in [0, vocab).  best_lp and want_lp: the model's
 * largest log-probability at this step and that of the recorded token.  now(ctx,
 * id): the model's log-probability of id at this step, or NAN when it is not
 * known (an engine reports only its top-k); an unknown one counts as `floor`,
 * the smallest log-probability the engine did report, which is an upper bound
 * of the true value.  Returns 0, or -1 when rec is malformed.
 */
int health_step_compare(json_t *rec, int vocab, double best_lp, double want_lp, double (*now)(void *ctx, int32_t id),
                        void *ctx, double floor, struct health_step *ret);

/* Whether the step is outside the tolerances. */
bool health_step_fails(const struct health_step *st, double margin_tol, double kl_tol);

/* The failure line of a step (the same words in agrun check and agserve check). */
void health_step_describe(char *buf, size_t len, const char *prompt, size_t step, int32_t want,
                          const struct health_step *st, double margin_tol, double kl_tol);
