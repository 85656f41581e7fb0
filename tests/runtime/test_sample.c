/* rt_sample / rt_sample_with: greedy and ties, seeded determinism, and the
 * distribution that temperature, top-k and top-p leave (frequencies over
 * many draws with a fixed seed against the expected probabilities; tokens
 * outside the support never drawn).  TAP output, no arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agrt/agrt.h"
#include "../tap.h"

#define V     8
#define DRAWS 200000

/* probabilities of the crafted row, placed at permuted ids so that id order
 * and rank order differ */
static const double P[V] = {0.40, 0.20, 0.15, 0.10, 0.08, 0.04, 0.02, 0.01};
static const int ID[V] = {5, 2, 7, 0, 3, 6, 1, 4};

/* draws DRAWS ids and compares the frequencies with want[] (by rank):
 * within 5 sigma each, and never an id whose want is 0 */
static void distribution(const float *logits, const struct rt_sampler_opts *o, const double *want, bool with,
                         const char *what)
{
	struct rt_sample_cand scratch[V];
	long cnt[V] = {0};
	uint64_t rng = 42;
	double worst = 0;
	int ok = 1;

	for (int d = 0; d < DRAWS; d++) {
		int32_t id = with ? rt_sample_with(logits, V, o, &rng, scratch) : rt_sample(logits, V, o, &rng);
		if (id < 0 || id >= V) {
			ok = 0;
			break;
		}
		cnt[id]++;
	}
	for (int r = 0; r < V && ok; r++) {
		double f = (double)cnt[ID[r]] / DRAWS, sd = sqrt(want[r] * (1 - want[r]) / DRAWS);
		if (want[r] == 0) {
			ok &= cnt[ID[r]] == 0;
			continue;
		}
		worst = fmax(worst, fabs(f - want[r]) / sd);
		ok &= fabs(f - want[r]) <= 5 * sd;
	}
	TAP_OK(ok, "%s%s: frequencies match (worst %.1f sigma), excluded ids never drawn", what,
	      with ? " (rt_sample_with)" : "", worst);
}

/* want[r] proportional to P[r]^(1/temp) over ranks [0, keep) */
static void expect(double temp, int keep, double *want)
{
	double s = 0;
	for (int r = 0; r < V; r++) {
		want[r] = r < keep ? pow(P[r], 1.0 / temp) : 0;
		s += want[r];
	}
	for (int r = 0; r < V; r++)
		want[r] /= s;
}

int main(void)
{
	float lg[V], big[32000];
	double want[V];
	uint64_t a, b;
	int ok;

	for (int r = 0; r < V; r++)
		lg[ID[r]] = (float)log(P[r]) + 3.0f; /* shifted: softmax is shift-invariant */

	/* greedy */
	{
		float t[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 2.0f};
		uint64_t rng = 7, before = 7;
		ok = rt_sample(t, 6, &(struct rt_sampler_opts){0}, &rng) == 1;
		ok &= rt_sample(t, 6, NULL, &rng) == 1;
		ok &= rt_sample(t, 6, &(struct rt_sampler_opts){.temperature = -1, .top_k = 3}, &rng) == 1;
		ok &= rt_sample(t, 6, &(struct rt_sampler_opts){.temperature = NAN}, &rng) == 1;
		ok &= rt_sample(t, 6, &(struct rt_sampler_opts){.temperature = INFINITY}, &rng) == 1;
		ok &= rng == before;
		TAP_OK(
		    ok,
		    "temperature 0 (or NULL, negative, NaN, inf) is argmax with ties to the lowest id, rng untouched");
		ok = rt_sample(lg, V, &(struct rt_sampler_opts){.temperature = 1, .top_k = 1}, &rng) == ID[0];
		ok &= rt_sample(lg, V, &(struct rt_sampler_opts){.temperature = 1, .top_p = 0.1f}, &rng) == ID[0];
		TAP_OK(ok, "top_k 1 and a top_p below the best token's mass return the argmax");
		float one[1] = {3};
		ok = rt_sample(one, 1, &(struct rt_sampler_opts){.temperature = 1}, &rng) == 0;
		float ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
		ok &= rt_sample(ninf, 3, &(struct rt_sampler_opts){.temperature = 1}, &rng) == 0;
		TAP_OK(ok, "a one-token vocabulary and an all -inf row give id 0");
	}

	/* determinism */
	{
		struct rt_sampler_opts o[3] = {
		    {.temperature = 0.9f}, {.temperature = 1.3f, .top_k = 5}, {.temperature = 0.7f, .top_p = 0.9f}};
		for (int k = 0; k < 3; k++) {
			struct rt_sample_cand scratch[V];
			uint64_t c = 99, d = 99, e = 100;
			int same = 1, same_with = 1, differs = 0;
			a = b = 12345;
			for (int i = 0; i < 2000; i++) {
				int32_t x = rt_sample(lg, V, &o[k], &a), y = rt_sample(lg, V, &o[k], &b);
				int32_t z = rt_sample_with(lg, V, &o[k], &c, scratch), w = rt_sample(lg, V, &o[k], &d);
				same &= x == y;
				same_with &= z == w;
				differs |= rt_sample(lg, V, &o[k], &e) != w;
			}
			TAP_OK(same && same_with && differs && a == b,
			      "options %d: the same seed gives the same 2000 ids (rt_sample and rt_sample_with agree), "
			      "another seed other ids",
			      k);
		}
	}

	/* distributions */
	expect(1.0, V, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 1}, want, false, "temperature 1");
	expect(2.0, V, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 2}, want, false, "temperature 2");
	expect(0.5, V, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 0.5f}, want, false, "temperature 0.5");
	expect(1.0, 3, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 1, .top_k = 3}, want, false, "top_k 3");
	distribution(lg, &(struct rt_sampler_opts){.temperature = 1, .top_k = 3}, want, true, "top_k 3");
	/* 0.40 + 0.20 = 0.60 < 0.7 <= 0.75: three tokens */
	expect(1.0, 3, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 1, .top_p = 0.7f}, want, false, "top_p 0.7");
	distribution(lg, &(struct rt_sampler_opts){.temperature = 1, .top_p = 0.7f}, want, true, "top_p 0.7");
	/* 0.40 + 0.20 + 0.15 + 0.10 = 0.85 < 0.9 <= 0.93: five tokens */
	expect(1.0, 5, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 1, .top_p = 0.9f}, want, false, "top_p 0.9");
	/* top_k 5 (mass 0.93), then top_p 0.8 of it = 0.744: 0.40 + 0.20 < 0.744
	 * <= 0.75, three tokens */
	expect(1.0, 3, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 1, .top_k = 5, .top_p = 0.8f}, want, false,
	             "top_k 5 then top_p 0.8");
	/* temperature 2 flattens: p^(1/2) = .632 .447 .387 .316 .283 .2 .141 .1
	 * (sum 2.507); top_p 0.5 of it = 1.254: .632 + .447 = 1.079 < 1.254, three */
	expect(2.0, 3, want);
	distribution(lg, &(struct rt_sampler_opts){.temperature = 2, .top_p = 0.5f}, want, false,
	             "temperature 2 then top_p 0.5");

	/* a real-sized row: the support of top_k 40 and of top_p */
	{
		struct rt_sample_cand *scratch = malloc(sizeof(*scratch) * 32000);
		float th40;
		int in40 = 1, inp = 1, masked = 1, seen_other = 0;
		uint32_t s = 1;
		for (int i = 0; i < 32000; i++) {
			s = s * 1103515245u + 12345u;
			big[i] = (float)((s >> 8) % 100000) / 10000.0f; /* 0 .. 10 */
		}
		for (int i = 0; i < 32000; i += 7)
			big[i] = -INFINITY;
		{
			/* the 40th largest value */
			float *t = malloc(sizeof(float) * 32000);
			memcpy(t, big, sizeof(float) * 32000);
			for (int k = 0; k < 40; k++) {
				int bi = k;
				for (int i = k + 1; i < 32000; i++)
					if (t[i] > t[bi])
						bi = i;
				float x = t[k];
				t[k] = t[bi];
				t[bi] = x;
			}
			th40 = t[39];
			free(t);
		}
		a = 5;
		for (int d = 0; d < 3000; d++) {
			int32_t id = rt_sample_with(
			    big, 32000, &(struct rt_sampler_opts){.temperature = 1.5f, .top_k = 40}, &a, scratch);
			in40 &= big[id] >= th40;
			id = rt_sample(big, 32000, &(struct rt_sampler_opts){.temperature = 1, .top_p = 0.5f}, &a);
			/* p_i proportional to e^big: the nucleus of half the mass lies far above 5 */
			inp &= big[id] > 5.0f;
			id = rt_sample(big, 32000, &(struct rt_sampler_opts){.temperature = 1}, &a);
			masked &= id % 7 != 0;
			seen_other |= big[id] < th40;
		}
		TAP_OK(in40, "vocab 32000, top_k 40: every draw among the 40 best");
		TAP_OK(inp, "vocab 32000, top_p 0.5: every draw in the upper tail");
		TAP_OK(masked && seen_other, "vocab 32000, no filter: -inf logits never drawn, the tail is reached");
		free(scratch);
	}
	return tap_done();
}
