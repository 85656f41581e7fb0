/* Batched decoding benchmark (not a test): aggregate decode tokens/s of k
 * concurrent sequences stepping together through rt_forward_batch, beside
 * single-sequence decode through rt_session_forward (agrun's path).
 *
 * usage: bench_batch MODEL_DIR [THREADS [PROMPT_TOKENS [STEPS [K,K,...]]]]
 * defaults: 2 threads, 32 prompt tokens per sequence, 32 decode steps,
 * k = 1,4,8,16; $AGRT_SIMD picks the kernels as for agrun.  Each sequence gets its own random prompt; decode feeds
 * each sequence its own argmax.  Every rate is the best of REPS runs, so
 * that other load on a shared machine distorts the ratios less. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agrt/agrt.h"

#define MAX_K 256
#define REPS  3 /* each figure is the best of 3 runs: the machine is shared */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int32_t argmax(const float *v, int n)
{
	int32_t b = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}

static uint32_t rs = 1;
static int32_t rnd_id(int lo, int hi)
{
	rs = rs * 1103515245u + 12345u;
	return lo + (int32_t)((rs >> 8) % (uint32_t)(hi - lo));
}

/* one run of k sequences: prefill (batched), 2 warm-up steps, then steps
 * timed; returns seconds per step or < 0 */
static double run_batch(struct rt_model *m, int k, int plen, int steps, struct rt_error *e)
{
	const struct rt_model_info *in = rt_model_get_info(m);
	struct rt_session *ss[MAX_K] = {0};
	int32_t *pr[MAX_K] = {0}, tok[MAX_K];
	const int32_t *ids[MAX_K];
	size_t n_ids[MAX_K];
	float *lg = malloc(sizeof(float) * in->vocab * k);
	double t0 = 0, t = -1;
	int V = in->vocab;

	if (!lg)
		return -1;
	for (int i = 0; i < k; i++) {
		pr[i] = malloc(sizeof(int32_t) * plen);
		if (!pr[i] || rt_session_new(m, plen + steps + 8, &ss[i], e) < 0)
			goto out;
		for (int j = 0; j < plen; j++)
			pr[i][j] = rnd_id(V > 300 ? 300 : 0, V);
		ids[i] = pr[i];
		n_ids[i] = plen;
	}
	if (rt_forward_batch(ss, ids, n_ids, k, lg, e) < 0)
		goto out;
	for (int i = 0; i < k; i++) {
		ids[i] = &tok[i];
		n_ids[i] = 1;
	}
	for (int s = -2; s < steps; s++) {
		if (s == 0)
			t0 = now_s();
		for (int i = 0; i < k; i++)
			tok[i] = argmax(lg + (size_t)i * V, V);
		if (rt_forward_batch(ss, ids, n_ids, k, lg, e) < 0)
			goto out;
	}
	t = (now_s() - t0) / steps;
out:
	for (int i = 0; i < k; i++) {
		rt_session_free(ss[i]);
		free(pr[i]);
	}
	free(lg);
	return t;
}

/* single sequence through rt_session_forward, as agrun decodes */
static double run_single(struct rt_model *m, int plen, int steps, struct rt_error *e)
{
	const struct rt_model_info *in = rt_model_get_info(m);
	struct rt_session *s = NULL;
	int32_t *pr = malloc(sizeof(int32_t) * plen), tok;
	float *lg = malloc(sizeof(float) * in->vocab);
	double t0 = 0, t = -1;

	if (!pr || !lg || rt_session_new(m, plen + steps + 8, &s, e) < 0)
		goto out;
	for (int j = 0; j < plen; j++)
		pr[j] = rnd_id(in->vocab > 300 ? 300 : 0, in->vocab);
	if (rt_session_forward(s, pr, plen, false, lg, e) < 0)
		goto out;
	for (int st = -2; st < steps; st++) {
		if (st == 0)
			t0 = now_s();
		tok = argmax(lg, in->vocab);
		if (rt_session_forward(s, &tok, 1, false, lg, e) < 0)
			goto out;
	}
	t = (now_s() - t0) / steps;
out:
	rt_session_free(s);
	free(pr);
	free(lg);
	return t;
}

int main(int argc, char **argv)
{
	struct rt_error e = {0};
	struct rt_model *m = NULL;
	int threads = argc > 2 ? atoi(argv[2]) : 2, plen = argc > 3 ? atoi(argv[3]) : 32,
	    steps = argc > 4 ? atoi(argv[4]) : 32, ks[32], nk = 0;
	const char *klist = argc > 5 ? argv[5] : "1,4,8,16";
	double single, t1 = 0;
	const struct rt_model_info *in;

	if (argc < 2 || threads < 1 || plen < 1 || steps < 1) {
		fprintf(stderr, "usage: %s MODEL_DIR [THREADS [PROMPT_TOKENS [STEPS [K,K,...]]]]\n", argv[0]);
		return 2;
	}
	for (const char *p = klist; *p && nk < 32;) {
		int k = atoi(p);
		if (k < 1 || k > MAX_K) {
			fprintf(stderr, "bench_batch: k must be in [1, %d]\n", MAX_K);
			return 2;
		}
		ks[nk++] = k;
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	if (rt_model_load(argv[1], &(struct rt_load_opts){.n_threads = threads, .simd = getenv("AGRT_SIMD")}, &m, &e) < 0) {
		fprintf(stderr, "bench_batch: %s\n", e.msg);
		return e.code ? e.code : 1;
	}
	in = rt_model_get_info(m);
	printf("model: %.1fM params, %.1f MB of weights, %s, %d threads; prompt %d tokens per sequence, %d decode "
	       "steps\n",
	       in->n_params / 1e6, in->weight_bytes / 1e6, in->backend, in->n_threads, plen, steps);
	/* warms the page cache for the mapped weights */
	single = run_single(m, plen, 4, &e);
	for (int rep = 0; rep < REPS && single >= 0; rep++) {
		double t = run_single(m, plen, steps, &e);
		single = t < 0 ? t : rep == 0 || t < single ? t : single;
	}
	if (single < 0) {
		fprintf(stderr, "bench_batch: %s\n", e.msg);
		rt_model_free(m);
		return 1;
	}
	printf("single sequence (rt_session_forward): %.2f tokens/s (best of %d runs, as every row)\n", 1 / single,
	       REPS);
	printf("%-6s %10s %14s %14s %12s %12s\n", "k", "step ms", "aggregate t/s", "per-seq t/s", "x single",
	       "x batch k=1");
	for (int i = 0; i < nk; i++) {
		double t = -1;
		for (int rep = 0; rep < REPS; rep++) {
			double tr = run_batch(m, ks[i], plen, steps, &e);
			if (tr < 0) {
				t = tr;
				break;
			}
			t = rep == 0 || tr < t ? tr : t;
		}
		if (t < 0) {
			fprintf(stderr, "bench_batch: k=%d: %s\n", ks[i], e.msg);
			rt_model_free(m);
			return 1;
		}
		if (ks[i] == 1)
			t1 = t;
		printf("%-6d %10.2f %14.2f %14.2f %12.2f ", ks[i], t * 1e3, ks[i] / t, 1 / t, ks[i] / t * single);
		if (t1 > 0)
			printf("%12.2f\n", ks[i] / t * t1);
		else
			printf("%12s\n", "-");
	}
	rt_model_free(m);
	return 0;
}
