/* SPDX-License-Identifier: Apache-2.0 */
/* One teacher-forced step against the recorded one (see health_compare.h). */
#include <math.h>
#include <stdio.h>

#include "health_compare.h"

int health_step_compare(json_t *rec, int vocab, double best_lp, double want_lp, double (*now)(void *ctx, int32_t id),
                        void *ctx, double floor, struct health_step *ret)
{
	size_t kk = json_array_size(rec), bounded = 0;
	double pr[HEALTH_STEP_MAX_TOPK], qr[HEALTH_STEP_MAX_TOPK], ps = 0, qs = 0, kl = 0;
	if (kk == 0 || kk > HEALTH_STEP_MAX_TOPK)
		return -1;
	for (size_t j = 0; j < kk; j++) {
		json_t *pair = json_array_get(rec, j);
		json_t *jid = json_array_get(pair, 0), *jlp = json_array_get(pair, 1);
		if (!json_is_integer(jid) || !json_is_number(jlp))
			return -1;
		json_int_t id = json_integer_value(jid);
		if (id < 0 || id >= vocab)
			return -1;
		double q = now(ctx, (int32_t)id);
		if (isnan(q)) {
			q = floor;
			bounded++;
		}
		pr[j] = exp(json_number_value(jlp));
		qr[j] = exp(q);
		ps += pr[j];
		qs += qr[j];
	}
	/* KL(recorded || now) over the recorded top-k, each renormalised. */
	for (size_t j = 0; j < kk; j++) {
		double pj = pr[j] / ps, qj = qr[j] / qs;
		if (pj > 0)
			kl += pj * log(pj / (qj > 1e-30 ? qj : 1e-30));
	}
	*ret = (struct health_step){.margin = best_lp - want_lp, .kl = kl, .k = kk, .bounded = bounded};
	return 0;
}

bool health_step_fails(const struct health_step *st, double margin_tol, double kl_tol)
{
	return st->margin > margin_tol || st->kl > kl_tol;
}

void health_step_describe(char *buf, size_t len, const char *prompt, size_t step, int32_t want,
                          const struct health_step *st, double margin_tol, double kl_tol)
{
	snprintf(buf, len,
	         "prompt '%s': step %zu expects token %d, %.3f below the argmax (tolerance %.3f), "
	         "top-%zu divergence %.4f (tolerance %.4f)",
	         prompt, step, want, st->margin, margin_tol, st->k, st->kl, kl_tol);
}
