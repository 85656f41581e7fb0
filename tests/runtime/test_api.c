/* Library API checks on a generated tiny model: batched prefill vs
 * incremental decode through the KV cache, teacher-forcing logits, greedy
 * generation's top-k, error paths.  TAP output.  usage: test_api MODEL_DIR */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agrt/agrt.h"

static int n_test, n_fail;

static void check(int ok, const char *what)
{
	n_test++;
	n_fail += !ok;
	printf("%s %d - %s\n", ok ? "ok" : "not ok", n_test, what);
}

static double rel_err(const float *a, const float *b, size_t n)
{
	double md = 0, mx = 0;
	for (size_t i = 0; i < n; i++) {
		md = fmax(md, fabs((double)a[i] - b[i]));
		mx = fmax(mx, fabs((double)b[i]));
	}
	return mx > 0 ? md / mx : md;
}

int main(int argc, char **argv)
{
	static const int32_t ids[] = {256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33};
	const size_t T = sizeof(ids) / sizeof(ids[0]);
	struct rt_error e = {0};
	struct rt_model *m = NULL;
	struct rt_session *s = NULL, *s2 = NULL;
	struct rt_gen_result *g = NULL;
	const struct rt_model_info *in;
	float *all, *one;
	double worst = 0;
	int r, V;

	if (argc != 2) {
		fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
		return 2;
	}
	printf("1..16\n");
	rt_model_free(NULL);
	rt_session_free(NULL);
	rt_gen_result_free(NULL);
	rt_tokenizer_free(NULL);
	r = rt_model_load(argv[1], &(struct rt_load_opts){.n_threads = 2}, &m, &e);
	check(r == 0, "rt_model_load");
	if (r < 0) {
		printf("# %s\n", e.msg);
		return 1;
	}
	in = rt_model_get_info(m);
	V = in->vocab;
	check(rt_session_new(m, 64, &s, &e) == 0 && rt_session_new(m, 64, &s2, &e) == 0, "two sessions on one model");
	all = malloc(sizeof(float) * T * V);
	one = malloc(sizeof(float) * V);
	check(rt_session_forward(s, ids, T, true, all, &e) == 0 && rt_session_pos(s) == (int)T,
	      "batched forward, all logits");
	/* the same positions through the KV cache: 5 tokens, then one at a time */
	r = rt_session_forward(s2, ids, 5, false, one, &e);
	worst = rel_err(one, all + 4 * (size_t)V, V);
	for (size_t i = 5; i < T && r == 0; i++) {
		r = rt_session_forward(s2, ids + i, 1, false, one, &e);
		worst = fmax(worst, rel_err(one, all + i * (size_t)V, V));
	}
	printf("# incremental vs batched max rel err %.3g\n", worst);
	check(r == 0 && worst < 1e-5, "incremental decode matches batched prefill (rel 1e-5)");
	rt_session_reset(s2);
	check(rt_session_pos(s2) == 0 && rt_session_forward(s2, ids, T, false, one, &e) == 0 &&
	          rel_err(one, all + (T - 1) * (size_t)V, V) < 1e-6,
	      "reset then last-position logits equal the batched row");
	r = rt_generate(s, ids, T, &(struct rt_gen_opts){.max_new = 6, .top_k = 5, .stop_at_eos = false}, &g, &e);
	check(r == 0 && g->n_out == 6 && g->top_k == 5, "rt_generate 6 tokens with top-5");
	if (r == 0) {
		struct rt_topk tk[5];
		int32_t best = rt_logits_topk(all + (T - 1) * (size_t)V, V, 5, tk);
		int sorted = 1;
		double sum = 0;
		for (int k = 0; k < 5; k++) {
			sorted &= k == 0 || g->topk[k].logprob <= g->topk[k - 1].logprob;
			sum += exp(g->topk[k].logprob);
		}
		check(g->ids[0] == best && g->topk[0].id == best,
		      "first generated id is the argmax of the prefill logits");
		check(fabsf(g->topk[0].logprob - tk[0].logprob) < 1e-4 && sorted && sum <= 1.0 + 1e-6,
		      "top-k logprobs sorted, consistent, sum <= 1");
		for (size_t i = 0; i < g->n_out; i++)
			if (g->topk[i * 5].id != g->ids[i])
				sorted = 0;
		check(sorted, "every step's top-1 is the emitted token");
	} else {
		printf("# %s\n", e.msg);
		check(0, "skipped top-k checks");
		check(0, "skipped top-k checks");
		check(0, "skipped top-k checks");
	}
	rt_gen_result_free(g);
	rt_session_reset(s);
	r = rt_session_forward(s, (const int32_t[]){1, V}, 2, false, one, &e);
	check(r == -EINVAL && e.code == RT_ERR_USAGE, "out-of-range id refused with -EINVAL, class usage");
	{
		int32_t *many = calloc(65, sizeof(int32_t));
		r = rt_session_forward(s, many, 65, false, NULL, &e);
		free(many);
	}
	check(r == -ENOSPC && rt_session_pos(s) == 0, "context overflow refused, cache untouched");
	r = rt_model_load("/nonexistent/agrt", NULL, &(struct rt_model *){NULL}, &e);
	check(r < 0 && e.code == RT_ERR_IO, "missing directory is an I/O error");
	r = rt_model_load(argv[1], &(struct rt_load_opts){.backend = 7}, &(struct rt_model *){NULL}, &e);
	check(r == -EOPNOTSUPP && e.code == RT_ERR_USAGE, "unknown backend refused, class usage");
	{
		/* the CUDA path through the API: refused cleanly without a
		 * GPU (or without CUDA in the build); with one, the same
		 * logits as the CPU within the bf16 bound of docs/RUNTIME.md */
		char why[256] = "";
		int nd = rt_cuda_device_count(why, sizeof(why));
		struct rt_model *cm = NULL;
		struct rt_session *cs = NULL;
		float *call = malloc(sizeof(float) * T * V);

		printf("# rt_cuda_device_count: %d (%s)\n", nd, why);
		r = rt_model_load(argv[1], &(struct rt_load_opts){.backend = RT_BACKEND_CUDA}, &cm, &e);
		if (nd <= 0) {
			check(r < 0 && e.code == RT_ERR_DEVICE && !cm && why[0],
			      "RT_BACKEND_CUDA without a usable GPU: class RT_ERR_DEVICE, reason given");
			if (r < 0)
				printf("# %s\n", e.msg);
			check(nd == 0 || nd == -EOPNOTSUPP, "rt_cuda_device_count is 0 or -EOPNOTSUPP");
			check(why[0] && !strchr(why, '\n'), "its reason is one line");
		} else {
			double ce = 1;
			check(r == 0 && !strncmp(rt_model_get_info(cm)->backend, "cuda/", 5), "CUDA model loads");
			if (r == 0 && rt_session_new(cm, 64, &cs, &e) == 0 &&
			    rt_session_forward(cs, ids, 5, true, call, &e) == 0 &&
			    rt_session_forward(cs, ids + 5, T - 5, true, call + 5 * (size_t)V, &e) == 0)
				ce = rel_err(call, all, T * (size_t)V);
			printf("# cuda vs cpu logits max rel err %.3g\n", ce);
			check(ce <= 2e-2, "CUDA logits (prefill 5, then 9 more as a batch) match the CPU (2e-2)");
			/* decode steps: the matvec path */
			ce = 1;
			if (cs) {
				rt_session_reset(cs);
				r = rt_session_forward(cs, ids, 5, false, one, &e);
				ce = rel_err(one, all + 4 * (size_t)V, V);
				for (size_t i = 5; i < T && r == 0; i++) {
					r = rt_session_forward(cs, ids + i, 1, false, one, &e);
					ce = fmax(ce, rel_err(one, all + i * (size_t)V, V));
				}
				if (r < 0)
					ce = 1;
			}
			printf("# cuda decode vs cpu max rel err %.3g\n", ce);
			check(ce <= 2e-2, "CUDA decode steps match the CPU's batched logits (2e-2)");
		}
		rt_session_free(cs);
		rt_model_free(cm);
		free(call);
	}
	free(all);
	free(one);
	rt_session_free(s);
	rt_session_free(s2);
	rt_model_free(m);
	return n_fail ? 1 : 0;
}
