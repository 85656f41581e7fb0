/* SPDX-License-Identifier: Apache-2.0 */
/* Token sampling: greedy, temperature, top-k and nucleus (top-p). */
#include <math.h>
#include <stdlib.h>

#include "agrt/agrt.h"

static uint64_t next_u64(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

struct cand {
	int32_t id;
	float p;
};

static int by_p_desc(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->p != y->p)
		return x->p < y->p ? 1 : -1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int32_t rt_sample(const float *logits, int vocab, const struct rt_sampler_opts *o, uint64_t *rng)
{
	int32_t best = 0;
	struct cand *c;
	double sum = 0, u, acc = 0;
	float mx;
	int n;

	for (int i = 1; i < vocab; i++)
		if (logits[i] > logits[best])
			best = i;
	if (!o || o->temperature <= 0 || vocab <= 1)
		return best;
	c = malloc((size_t)vocab * sizeof(*c));
	if (!c)
		return best;
	mx = logits[best];
	for (int i = 0; i < vocab; i++) {
		c[i].id = i;
		c[i].p = expf((logits[i] - mx) / o->temperature);
	}
	qsort(c, (size_t)vocab, sizeof(*c), by_p_desc);
	n = vocab;
	if (o->top_k > 0 && o->top_k < n)
		n = o->top_k;
	for (int i = 0; i < n; i++)
		sum += c[i].p;
	if (o->top_p > 0 && o->top_p < 1) {
		double keep = 0;
		int m = 0;
		while (m < n) {
			keep += c[m++].p;
			if (keep >= o->top_p * sum)
				break;
		}
		n = m;
		sum = keep;
	}
	u = (double)(next_u64(rng) >> 11) * (1.0 / 9007199254740992.0) * sum;
	best = c[n - 1].id;
	for (int i = 0; i < n; i++) {
		acc += c[i].p;
		if (u < acc) {
			best = c[i].id;
			break;
		}
	}
	free(c);
	return best;
}
