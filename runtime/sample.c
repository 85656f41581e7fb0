/* SPDX-License-Identifier: Apache-2.0 */
/* Token sampling: greedy, temperature, top-k and nucleus (top-p).
 *
 * Order of the filters (as transformers' warpers): temperature, then top-k,
 * then top-p on the distribution renormalized over the top-k.  Candidates
 * are ranked by probability, ties to the lower id, so the result depends
 * only on the logits, the options and the rng state. */
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

/* uniform in [0, 1) with 53 random bits */
static double next_unit(uint64_t *s)
{
	return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* a before b: higher probability, then lower id */
static int better(const struct rt_sample_cand *a, const struct rt_sample_cand *b)
{
	return a->p > b->p || (a->p == b->p && a->id < b->id);
}

static int by_rank(const void *a, const void *b)
{
	const struct rt_sample_cand *x = a, *y = b;
	return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

static int32_t argmax(const float *logits, int vocab)
{
	int32_t best = 0;
	for (int i = 1; i < vocab; i++)
		if (logits[i] > logits[best])
			best = i;
	return best;
}

static bool greedy(const struct rt_sampler_opts *o, int vocab, float mx)
{
	/* NaN or infinite temperatures and an all -inf row fall back to argmax */
	return !o || !(o->temperature > 0) || !isfinite(o->temperature) || vocab <= 1 || !isfinite(mx);
}

static bool filtered(const struct rt_sampler_opts *o, int vocab)
{
	return (o->top_k > 0 && o->top_k < vocab) || (o->top_p > 0 && o->top_p < 1);
}

/* No filter: draw from the whole distribution walking ids in order; two
 * passes so that it needs no memory. */
static int32_t sample_all(const float *logits, int vocab, float mx, float temp, uint64_t *rng, int32_t best)
{
	double sum = 0, u, acc = 0;

	for (int i = 0; i < vocab; i++)
		sum += expf((logits[i] - mx) / temp);
	u = next_unit(rng) * sum;
	for (int i = 0; i < vocab; i++) {
		float p = expf((logits[i] - mx) / temp);
		acc += p;
		if (u < acc && p > 0)
			return i;
	}
	return best; /* rounding: u at the very top */
}

/* min-heap on rank (the worst candidate at the root) */
static void sift_down(struct rt_sample_cand *h, int n, int i)
{
	for (;;) {
		int l = 2 * i + 1, r = l + 1, w = i;
		struct rt_sample_cand t;
		if (l < n && better(&h[w], &h[l]))
			w = l;
		if (r < n && better(&h[w], &h[r]))
			w = r;
		if (w == i)
			return;
		t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

int32_t rt_sample_with(const float *logits, int vocab, const struct rt_sampler_opts *o, uint64_t *rng,
                       struct rt_sample_cand *c)
{
	int32_t best = argmax(logits, vocab);
	float mx = logits[best];
	double sum = 0, u, acc = 0;
	int n = 0;

	if (greedy(o, vocab, mx))
		return best;
	if (!filtered(o, vocab))
		return sample_all(logits, vocab, mx, o->temperature, rng, best);
	if (o->top_k > 0 && o->top_k < vocab) {
		/* the top_k best in a heap: O(vocab log k) */
		int k = o->top_k;
		for (int i = 0; i < vocab; i++) {
			struct rt_sample_cand x = {i, expf((logits[i] - mx) / o->temperature)};
			if (n < k) {
				c[n++] = x;
				if (n == k)
					for (int j = k / 2 - 1; j >= 0; j--)
						sift_down(c, k, j);
			} else if (better(&x, &c[0])) {
				c[0] = x;
				sift_down(c, k, 0);
			}
		}
		for (int i = 0; i < n; i++)
			sum += c[i].p;
	} else {
		double cut;
		for (int i = 0; i < vocab; i++)
			sum += expf((logits[i] - mx) / o->temperature);
		/* a token below (1 - top_p) / (vocab - 1) of the mass cannot be in
		 * the nucleus: the tokens above it already hold top_p
		 * (llama2.c's trick); sorting only the rest keeps this cheap */
		cut = (1.0 - o->top_p) / (vocab - 1) * sum;
		for (int i = 0; i < vocab; i++) {
			float p = expf((logits[i] - mx) / o->temperature);
			if (p >= cut)
				c[n++] = (struct rt_sample_cand){i, p};
		}
	}
	/* sum: the mass of the whole distribution, or of the top-k */
	qsort(c, (size_t)n, sizeof(*c), by_rank);
	if (o->top_p > 0 && o->top_p < 1) {
		/* the smallest prefix holding top_p of the (top-k) mass */
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
	u = next_unit(rng) * sum;
	for (int i = 0; i < n; i++) {
		acc += c[i].p;
		if (u < acc && c[i].p > 0)
			return c[i].id;
	}
	return c[0].id; /* rounding: u at the very top */
}

int32_t rt_sample(const float *logits, int vocab, const struct rt_sampler_opts *o, uint64_t *rng)
{
	int32_t best = argmax(logits, vocab), id;
	struct rt_sample_cand *c;

	if (greedy(o, vocab, logits[best]))
		return best;
	if (!filtered(o, vocab))
		return sample_all(logits, vocab, logits[best], o->temperature, rng, best);
	c = malloc((size_t)vocab * sizeof(*c));
	if (!c)
		return best;
	id = rt_sample_with(logits, vocab, o, rng, c);
	free(c);
	return id;
}
