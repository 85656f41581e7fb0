/* rt_forward_batch against each session's own rt_session_forward, on tiny
 * generated models (GQA, sliding window, qk-norm, biases with tied
 * embeddings): a prompt of 17 tokens prefilling while three sequences decode
 * one token each at different positions, decode steps, a skipped session,
 * a long prompt split across steps, and the error paths (no session moves).
 * rt_forward_batch_all (every row's logits, layer-outer over the steps)
 * against rt_session_forward with all logits, mapped and streamed
 * (rt_load_opts.max_memory), and the streamed model reading its weights
 * once per call.
 * TAP output.  usage: test_batch PYTHON3 GEN_TINY_PY */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agrt/agrt.h"
#include "../tap.h"

extern char **environ;

#define NSEQ 4
#define MAXT 300

static int argmax(const float *v, int n)
{
	int b = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}

/* max |a - b| / max |b| <= 1e-5 and the same argmax */
static int same_logits(const float *a, const float *b, int V, double *ret_rel)
{
	double md = 0, mx = 0;
	for (int i = 0; i < V; i++) {
		md = fmax(md, fabs((double)a[i] - b[i]));
		mx = fmax(mx, fabs((double)b[i]));
	}
	*ret_rel = mx > 0 ? md / mx : md;
	return *ret_rel <= 1e-5 && argmax(a, V) == argmax(b, V);
}

static int gen_model(const char *py, const char *gen, const char *variant, const char *dtype, const char *out)
{
	char *argv[] = {(char *)py, (char *)gen, (char *)variant, (char *)dtype, (char *)out, NULL};
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, py, NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb;
	(void)type;
	(void)f;
	return remove(p);
}

static uint32_t lcg = 12345;
static int32_t rnd_id(int V)
{
	lcg = lcg * 1103515245u + 12345u;
	return (int32_t)((lcg >> 8) % (uint32_t)V);
}

struct pair {
	struct rt_session *b, *r; /* batched, reference */
};

/* one batched step; then each reference session runs its own tokens and the
 * logits rows are compared.  n_ids[i] == 0 entries are skipped. */
static int step_and_compare(struct pair *p, int n, int32_t *const *ids, const size_t *n_ids, int V, float *lb,
                            float *lr, const char *what)
{
	struct rt_error e = {0};
	double worst = 0, rel;
	int r, ok = 1;

	for (size_t i = 0; i < (size_t)n * V; i++)
		lb[i] = NAN;
	{
		struct rt_session *ss[16];
		for (int i = 0; i < n; i++)
			ss[i] = p[i].b;
		r = rt_forward_batch(ss, (const int32_t *const *)ids, n_ids, (size_t)n, lb, &e);
	}
	if (r < 0) {
		TAP_OK(0, "%s: rt_forward_batch: %s", what, e.msg);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (!n_ids[i]) {
			/* a skipped session's row is left untouched */
			ok &= isnan(lb[(size_t)i * V]) && isnan(lb[(size_t)i * V + V - 1]);
			continue;
		}
		r = rt_session_forward(p[i].r, ids[i], n_ids[i], false, lr, &e);
		if (r < 0) {
			TAP_OK(0, "%s: rt_session_forward: %s", what, e.msg);
			return -1;
		}
		ok &= same_logits(lb + (size_t)i * V, lr, V, &rel);
		worst = fmax(worst, rel);
		ok &= rt_session_pos(p[i].b) == rt_session_pos(p[i].r);
	}
	TAP_OK(ok, "%s: logits equal the sequential path (max rel diff %.2g), same argmax and positions", what, worst);
	return ok ? 0 : -1;
}

static void test_model(const char *dir, const char *name)
{
	struct rt_error e = {0};
	struct rt_model *m = NULL, *m2 = NULL;
	struct pair p[NSEQ + 1] = {0};
	int32_t *ids[NSEQ + 1], bad = -1;
	size_t n_ids[NSEQ + 1];
	float *lb = NULL, *lr = NULL;
	int V, r, pos[NSEQ + 1];
	char what[128];
	static const int pre[NSEQ] = {0, 12, 21, 9}; /* positions before the mixed step */

	r = rt_model_load(dir, &(struct rt_load_opts){.n_threads = 2, .simd = getenv("AGRT_SIMD")}, &m, &e);
	TAP_OK(r == 0, "%s: load", name);
	if (r < 0) {
		printf("# %s\n", e.msg);
		return;
	}
	const char *simd = getenv("AGRT_SIMD"), *be = rt_model_get_info(m)->backend;
	if (simd && !strcmp(simd, "generic"))
		TAP_OK(!strcmp(be, "cpu/generic"), "%s: AGRT_SIMD=generic runs the generic kernels (%s)", name, be);
	else if (simd && !strcmp(simd, "avx2"))
		TAP_OK(!strcmp(be, "cpu/avx2") || !strcmp(be, "cpu/generic"), "%s: AGRT_SIMD=avx2 does not run AVX-512 (%s)",
		       name, be);
	else if (simd && !strcmp(simd, "avx512"))
		TAP_OK(strcmp(be, "cpu/amx") != 0, "%s: AGRT_SIMD=avx512 does not run the AMX tiles (%s)", name, be);
	else if (!simd)
		TAP_OK(strcmp(be, "cpu/amx") != 0, "%s: by default the AMX tiles are off (%s)", name, be);
	V = rt_model_get_info(m)->vocab;
	lb = malloc(sizeof(float) * V * (NSEQ + 1));
	lr = malloc(sizeof(float) * V);
	for (int i = 0; i <= NSEQ; i++) {
		ids[i] = malloc(sizeof(int32_t) * MAXT);
		if (rt_session_new(m, 0, &p[i].b, &e) < 0 || rt_session_new(m, 0, &p[i].r, &e) < 0) {
			TAP_OK(0, "%s: sessions: %s", name, e.msg);
			goto out;
		}
	}
	/* different positions: sequences 1..3 hold 12, 21 and 9 tokens */
	for (int i = 1; i < NSEQ; i++) {
		for (int t = 0; t < pre[i]; t++)
			ids[i][t] = rnd_id(V);
		if (rt_session_forward(p[i].b, ids[i], pre[i], false, NULL, &e) < 0 ||
		    rt_session_forward(p[i].r, ids[i], pre[i], false, NULL, &e) < 0) {
			TAP_OK(0, "%s: prefill: %s", name, e.msg);
			goto out;
		}
	}
	/* sequence 0 prefills 17 tokens while 1..3 decode one each */
	for (int t = 0; t < 17; t++)
		ids[0][t] = rnd_id(V);
	n_ids[0] = 17;
	for (int i = 1; i < NSEQ; i++) {
		ids[i][0] = rnd_id(V);
		n_ids[i] = 1;
	}
	snprintf(what, sizeof(what), "%s: prefill 17 + three decodes at positions 12, 21, 9", name);
	if (step_and_compare(p, NSEQ, ids, n_ids, V, lb, lr, what) < 0)
		goto out;
	/* greedy decode steps of all four, each feeding its own argmax */
	{
		int ok = 1;
		for (int st = 0; st < 6 && ok; st++) {
			for (int i = 0; i < NSEQ; i++) {
				ids[i][0] = argmax(lb + (size_t)i * V, V);
				n_ids[i] = 1;
			}
			snprintf(what, sizeof(what), "%s: decode step %d of four sequences", name, st + 1);
			ok = step_and_compare(p, NSEQ, ids, n_ids, V, lb, lr, what) == 0;
		}
		if (!ok)
			goto out;
	}
	/* a skipped session in the middle (the caller's rows are not contiguous) */
	for (int i = 0; i < NSEQ; i++) {
		ids[i][0] = rnd_id(V);
		ids[i][1] = rnd_id(V);
		n_ids[i] = i == 1 ? 0 : i == 2 ? 2 : 1;
	}
	snprintf(what, sizeof(what), "%s: one session skipped, one with 2 tokens", name);
	if (step_and_compare(p, NSEQ, ids, n_ids, V, lb, lr, what) < 0)
		goto out;
	/* a 300-token prompt (more than one step's worth) beside three decodes */
	for (int t = 0; t < MAXT; t++)
		ids[NSEQ][t] = rnd_id(V);
	n_ids[NSEQ] = MAXT;
	for (int i = 0; i < NSEQ; i++) {
		ids[i][0] = rnd_id(V);
		n_ids[i] = i == 0 ? 0 : 1;
	}
	/* order: seq 1, 2, the long prompt, 3 (seq 0 skipped) */
	{
		struct pair q[4] = {p[1], p[2], p[NSEQ], p[3]};
		int32_t *qi[4] = {ids[1], ids[2], ids[NSEQ], ids[3]};
		size_t qn[4] = {1, 1, MAXT, 1};
		snprintf(what, sizeof(what), "%s: a 300-token prompt split across steps beside three decodes", name);
		if (step_and_compare(q, 4, qi, qn, V, lb, lr, what) < 0)
			goto out;
	}
	/* logits NULL only moves the caches; the next step still agrees */
	{
		struct rt_session *ss[NSEQ];
		int ok;
		for (int i = 0; i < NSEQ; i++) {
			ss[i] = p[i].b;
			ids[i][0] = rnd_id(V);
			n_ids[i] = 1;
		}
		r = rt_forward_batch(ss, (const int32_t *const *)ids, n_ids, NSEQ, NULL, &e);
		ok = r == 0;
		for (int i = 0; i < NSEQ && ok; i++)
			ok = rt_session_forward(p[i].r, ids[i], 1, false, NULL, &e) == 0 &&
			     rt_session_pos(p[i].b) == rt_session_pos(p[i].r);
		TAP_OK(ok, "%s: logits NULL advances every session", name);
		for (int i = 0; i < NSEQ; i++)
			ids[i][0] = rnd_id(V);
		snprintf(what, sizeof(what), "%s: step after a logits-less step", name);
		if (step_and_compare(p, NSEQ, ids, n_ids, V, lb, lr, what) < 0)
			goto out;
	}
	/* truncate and redo: the same logits again */
	{
		int ok = 1;
		double rel;
		for (int i = 0; i < NSEQ; i++)
			ok &= rt_session_truncate(p[i].b, rt_session_pos(p[i].b) - 1) == 0;
		ok &= rt_session_truncate(p[0].b, rt_session_pos(p[0].b) + 1) == -EINVAL;
		ok &= rt_session_truncate(p[0].b, -1) == -EINVAL;
		ok &= rt_session_max_ctx(p[0].b) == 512;
		{
			struct rt_session *ss[NSEQ];
			for (int i = 0; i < NSEQ; i++)
				ss[i] = p[i].b;
			ok &= rt_forward_batch(ss, (const int32_t *const *)ids, n_ids, NSEQ, lb, &e) == 0;
		}
		for (int i = 0; i < NSEQ; i++) {
			ok &= rt_session_truncate(p[i].r, rt_session_pos(p[i].r) - 1) == 0;
			ok &= rt_session_forward(p[i].r, ids[i], 1, false, lr, &e) == 0;
			ok &= same_logits(lb + (size_t)i * V, lr, V, &rel);
		}
		TAP_OK(ok, "%s: rt_session_truncate then the same step again gives the same logits", name);
	}
	/* error paths: nothing moves */
	{
		struct rt_session *ss[NSEQ + 1];
		const int32_t *ci[NSEQ + 1];
		size_t cn[NSEQ + 1];
		int ok;

		for (int i = 0; i < NSEQ; i++) {
			ss[i] = p[i].b;
			pos[i] = rt_session_pos(p[i].b);
			ci[i] = ids[i];
			cn[i] = 1;
		}
		ci[2] = &bad;
		r = rt_forward_batch(ss, ci, cn, NSEQ, lb, &e);
		ok = r == -EINVAL && e.code == RT_ERR_USAGE;
		ci[2] = ids[2];
		bad = V;
		ci[3] = &bad;
		ok &= rt_forward_batch(ss, ci, cn, NSEQ, lb, &e) == -EINVAL;
		ci[3] = ids[3];
		for (int i = 0; i < NSEQ; i++)
			ok &= rt_session_pos(p[i].b) == pos[i];
		TAP_OK(ok, "%s: a token id out of range in one entry fails and no session moves", name);

		cn[3] = (size_t)(512 - pos[3] + 1);
		ci[3] = ids[NSEQ];
		ok = rt_forward_batch(ss, ci, cn, NSEQ, lb, &e) == -ENOSPC;
		cn[3] = 1;
		ci[3] = ids[3];
		for (int i = 0; i < NSEQ; i++)
			ok &= rt_session_pos(p[i].b) == pos[i];
		TAP_OK(ok, "%s: an entry past its context fails with -ENOSPC and no session moves", name);

		ss[NSEQ] = p[1].b;
		ci[NSEQ] = ids[1];
		cn[NSEQ] = 1;
		ok = rt_forward_batch(ss, ci, cn, NSEQ + 1, lb, &e) == -EINVAL;
		for (int i = 0; i < NSEQ; i++)
			ok &= rt_session_pos(p[i].b) == pos[i];
		/* the duplicate marks are cleared: a good batch runs afterwards */
		ok &= rt_forward_batch(ss, ci, cn, NSEQ, NULL, &e) == 0;
		for (int i = 0; i < NSEQ; i++)
			ok &= rt_session_pos(p[i].b) == pos[i] + 1 && rt_session_truncate(p[i].b, pos[i]) == 0;
		TAP_OK(ok, "%s: a session twice in one batch fails and no session moves", name);

		ok = rt_forward_batch(ss, ci, cn, 0, lb, &e) == 0;
		ok &= rt_forward_batch(NULL, ci, cn, 1, lb, &e) == -EINVAL;
		ss[1] = NULL;
		ok &= rt_forward_batch(ss, ci, cn, NSEQ, lb, &e) == -EINVAL;
		ss[1] = p[1].b;
		ci[1] = NULL;
		ok &= rt_forward_batch(ss, ci, cn, NSEQ, lb, &e) == -EINVAL;
		ci[1] = ids[1];
		if (rt_model_load(dir, &(struct rt_load_opts){.n_threads = 1, .simd = getenv("AGRT_SIMD")}, &m2, &e) == 0) {
			struct rt_session *o = NULL;
			if (rt_session_new(m2, 64, &o, &e) == 0) {
				ss[1] = o;
				ok &= rt_forward_batch(ss, ci, cn, NSEQ, lb, &e) == -EINVAL;
				ss[1] = p[1].b;
				ok &= rt_session_pos(o) == 0;
			} else {
				ok = 0;
			}
			rt_session_free(o);
		} else {
			ok = 0;
		}
		for (int i = 0; i < NSEQ; i++)
			ok &= rt_session_pos(p[i].b) == pos[i];
		TAP_OK(ok, "%s: empty batch, NULL arguments and a session of another model", name);
	}
out:
	for (int i = 0; i <= NSEQ; i++) {
		rt_session_free(p[i].b);
		rt_session_free(p[i].r);
		free(ids[i]);
	}
	free(lb);
	free(lr);
	rt_model_free(m2);
	rt_model_free(m);
}

/* rt_forward_batch_all: three sequences (one of 300 tokens, more than a
 * step, one starting at position 5) against their own all-logits forward. */
static void test_all(const char *dir, const char *name)
{
	static const size_t len[3] = {300, 17, 40};
	struct rt_error e = {0};
	struct rt_model *m = NULL, *ms = NULL;
	struct rt_session *ss[3] = {0}, *st[3] = {0}, *ref = NULL;
	int32_t *ids[3] = {0}, pre[5] = {3, 1, 4, 1, 5};
	float *la = NULL, *lr = NULL, *ls = NULL;
	size_t total = 0;
	int V, ok = 1;
	double rel, worst = 0;

	if (rt_model_load(dir, &(struct rt_load_opts){.n_threads = 2, .simd = getenv("AGRT_SIMD")}, &m, &e) < 0) {
		TAP_OK(0, "%s: batch_all: load: %s", name, e.msg);
		return;
	}
	V = rt_model_get_info(m)->vocab;
	for (int i = 0; i < 3; i++) {
		total += len[i];
		ids[i] = malloc(len[i] * sizeof(int32_t));
		for (size_t t = 0; ids[i] && t < len[i]; t++)
			ids[i][t] = rnd_id(V);
		ok &= ids[i] && rt_session_new(m, 400, &ss[i], &e) == 0;
	}
	la = malloc(total * (size_t)V * sizeof(float));
	lr = malloc(len[0] * (size_t)V * sizeof(float));
	ls = malloc(total * (size_t)V * sizeof(float));
	ok &= la && lr && ls && rt_session_new(m, 400, &ref, &e) == 0;
	if (!ok) {
		TAP_OK(0, "%s: batch_all: setup: %s", name, e.msg);
		goto out;
	}
	ok &= rt_session_forward(ss[2], pre, 5, false, NULL, &e) == 0;
	ok &= rt_forward_batch_all(ss, (const int32_t *const *)ids, len, 3, la, &e) == 0;
	for (int i = 0; ok && i < 3; i++)
		ok &= rt_session_pos(ss[i]) == (int)len[i] + (i == 2 ? 5 : 0);
	for (size_t i = 0, row = 0; ok && i < 3; row += len[i], i++) {
		rt_session_reset(ref);
		if (i == 2)
			ok &= rt_session_forward(ref, pre, 5, false, NULL, &e) == 0;
		ok &= rt_session_forward(ref, ids[i], len[i], true, lr, &e) == 0;
		for (size_t t = 0; ok && t < len[i]; t++) {
			ok &= same_logits(la + (row + t) * V, lr + t * V, V, &rel);
			worst = fmax(worst, rel);
		}
	}
	TAP_OK(ok, "%s: batch_all: 300 + 17 + 40 tokens (one at position 5) give each row's own logits (worst %.2g)", name,
	       worst);
	/* streamed: the same bytes, and the weights read once for the call */
	{
		uint64_t w = rt_model_get_info(m)->weight_bytes;
		struct rt_stream_info si;
		int r = rt_model_load(dir, &(struct rt_load_opts){.n_threads = 2, .simd = getenv("AGRT_SIMD"), .max_memory = w},
		                      &ms, &e);
		if (r == -E2BIG) {
			TAP_OK(1, "%s: batch_all streamed # SKIP a layer is more than half of the model", name);
			goto out;
		}
		ok = r == 0;
		for (int i = 0; ok && i < 3; i++)
			ok &= rt_session_new(ms, 400, &st[i], &e) == 0;
		ok &= ok && rt_session_forward(st[2], pre, 5, false, NULL, &e) == 0;
		rt_model_stream_info(ms, &si);
		uint64_t before = si.bytes_read;
		ok &= ok && rt_forward_batch_all(st, (const int32_t *const *)ids, len, 3, ls, &e) == 0;
		rt_model_stream_info(ms, &si);
		TAP_OK(ok && si.streaming && !memcmp(la, ls, total * (size_t)V * sizeof(float)),
		       "%s: batch_all streamed (max_memory = the weights' size) gives the same bytes", name);
		TAP_OK(ok && si.bytes_read - before <= w && si.bytes_read - before >= w / 2,
		       "%s: ... reading the weights once (%llu of %llu bytes)", name,
		       (unsigned long long)(si.bytes_read - before), (unsigned long long)w);
	}
out:
	for (int i = 0; i < 3; i++) {
		rt_session_free(ss[i]);
		rt_session_free(st[i]);
		free(ids[i]);
	}
	rt_session_free(ref);
	free(la);
	free(lr);
	free(ls);
	rt_model_free(ms);
	rt_model_free(m);
}

int main(int argc, char **argv)
{
	/* GQA everywhere (4 heads, 2 KV heads); sliding window 8 (mistral);
	 * qk-norm and head_dim != hidden/heads (qwen3); biases and tied
	 * embeddings (qwen2); yarn with its attention factor (llama_yarn);
	 * mixture of experts with a shared expert and dense layers between (mixtral, qwen2_moe, qwen3_moe);
	 * latent attention with its compressed cache and group-limited sigmoid routing (deepseek_v3*);
	 * partial rotary embedding (glm4_moe); q/k norms over all heads (minimax_m2) */
	static const char *const models[][2] = {
	    {"llama", "bf16"}, {"mistral", "f32"}, {"qwen3", "f16"}, {"qwen2", "mixed"}, {"llama_yarn", "f32"},
	    {"mixtral", "bf16"}, {"qwen2_moe", "f32"}, {"qwen3_moe", "f16"}, {"deepseek_v3", "bf16"},
	    {"deepseek_v3_plain", "f32"}, {"glm4_moe", "bf16"}, {"minimax_m2", "f16"}};
	char tmpl[] = "/tmp/agrt-batch.XXXXXX", dir[512];
	const char *tmp;

	if (argc != 3) {
		fprintf(stderr, "usage: %s PYTHON3 GEN_TINY_PY\n", argv[0]);
		return 2;
	}
	tmp = mkdtemp(tmpl);
	if (!tmp) {
		perror("mkdtemp");
		return 1;
	}
	for (size_t k = 0; k < sizeof(models) / sizeof(models[0]); k++) {
		snprintf(dir, sizeof(dir), "%s/%s-%s", tmp, models[k][0], models[k][1]);
		if (gen_model(argv[1], argv[2], models[k][0], models[k][1], dir) < 0) {
			printf("1..0 # SKIP cannot generate models (python3 with numpy needed)\n");
			nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
			return 77;
		}
		snprintf(dir, sizeof(dir), "%s/%s-%s", tmp, models[k][0], models[k][1]);
		{
			char name[64];
			snprintf(name, sizeof(name), "%s/%s", models[k][0], models[k][1]);
			test_model(dir, name);
			test_all(dir, name);
		}
	}
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
