/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agrt/agrt.h"
#include "../common/health_report.h" /* header only: agrun links no tool library */
#include "health_compare.h"
#include "health_suite.h"

#define MAX_PROMPTS HEALTH_MAX_PROMPTS
#define MAX_NEW 256
#define MAX_TOPK 32

/* Built-in prompts: facts, arithmetic, code, a multilingual line, a long context. */
static const char *default_prompts[][2] = {
	{"facts", "The capital of France is"},
	{"arithmetic", "Question: What is 12 plus 30?\nAnswer:"},
	{"code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
	{"multilingual", "Traduire en anglais : « Le chat dort sur la table. » ->"},
	{"long-context",
	 "The following is a maintenance log from an offline data centre. Day 1: the operators received two sealed "
	 "drives, verified the signatures, and staged the new model into the idle slot. Day 2: the health check ran "
	 "the golden prompts and compared every token with the values recorded before the transfer. Day 3: latency "
	 "stayed within budget, the validation window closed, and the previous slot was released. Day 4: a second "
	 "bundle arrived with a higher version number. Day 5: the same checks were repeated on the new weights, "
	 "and the team wrote down what they saw. Summary of the log in one sentence:"},
};

/* Test-only fault injection ($AGKIT_HEALTH_FAULT): the supervisor's tests
 * need a runtime that crashes, aborts, hangs, runs out of memory or is slow. */
static double fault_slowdown(void)
{
	const char *f = getenv("AGKIT_HEALTH_FAULT");
	if (!f)
		return 1.0;
	if (!strcmp(f, "segv"))
		raise(SIGSEGV);
	if (!strcmp(f, "abort"))
		abort();
	if (!strcmp(f, "hang"))
		for (;;)
			pause();
	if (!strcmp(f, "oom")) {
		for (size_t total = 0;; total += 64u << 20) {
			char *p = malloc(64u << 20);
			if (!p) {
				fprintf(stderr, "agrun: out of memory after %zu MiB\n", total >> 20);
				exit(4);
			}
			memset(p, 1, 64u << 20);
		}
	}
	if (!strncmp(f, "slow:", 5) && atof(f + 5) >= 1.0)
		return atof(f + 5);
	return 1.0;
}

#define RECORD_USAGE                                                                                                   \
	"usage: agrun record MODEL_DIR --out SUITE.json [--prompts FILE] [-n N] [--top-k K] [--max-memory SIZE]\n"      \
	"                    [--tolerance-profile default|quantized]"
#define CHECK_USAGE                                                                                                    \
	"usage: agrun check MODEL_DIR --suite SUITE.json [--json] [--max-memory SIZE]\n"                                 \
	"                   [--tolerance-profile default|quantized]"

/* Tolerances of the teacher-forced comparison.  "quantized": a quantized
 * variant checked against a suite recorded from the full-precision model;
 * the values come from the measurements in docs/HEALTH.md ("Quantized
 * variants"). */
struct tolerance_profile {
	const char *name;
	double logit_margin, kl_max;
};
static const struct tolerance_profile profiles[] = {
	{"default", 1.0, 0.01},
	{"quantized", 3.0, 0.5},
};

static const struct tolerance_profile *find_profile(const char *cmd, const char *name)
{
	for (size_t i = 0; i < sizeof profiles / sizeof *profiles; i++)
		if (!strcmp(profiles[i].name, name))
			return &profiles[i];
	fprintf(stderr, "agrun: %s: --tolerance-profile must be default or quantized, not '%s'\n", cmd, name);
	return NULL;
}

int agrun_parse_memory(const char *s, uint64_t *ret)
{
	/* DIGITS[K|M|G|T], binary units: the memory limits agctl passes are MiB */
	char *end;
	errno = 0;
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (errno || *end || v == 0 || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*ret = (uint64_t)v << shift;
	return 0;
}

static int parse_memory(const char *cmd, const char *s, uint64_t *ret)
{
	if (agrun_parse_memory(s, ret) < 0) {
		fprintf(stderr, "agrun: %s: --max-memory: '%s' is not a size (bytes, or a number with K, M, G or T)\n", cmd,
		        s);
		return -1;
	}
	return 0;
}

/* The process's peak resident set (VmHWM, file-backed pages included), bytes; 0 when unknown. */
static uint64_t peak_rss(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kb = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb << 10;
}

struct loaded {
	struct rt_model *m;
	struct rt_tokenizer *t;
	const struct rt_model_info *info;
};

/* The device the suite runs on: $AGKIT_DEVICE (cpu, cuda, auto; default
 * auto: the GPU when there is one), as the model will serve there. */
static int pick_backend(void)
{
	const char *dev = getenv("AGKIT_DEVICE");
	if (dev && !strcmp(dev, "cpu"))
		return RT_BACKEND_CPU;
	if (dev && !strcmp(dev, "cuda"))
		return RT_BACKEND_CUDA;
	char why[256];
	return rt_cuda_device_count(why, sizeof why) > 0 ? RT_BACKEND_CUDA : RT_BACKEND_CPU;
}

static int load(const char *dir, uint64_t max_memory, struct loaded *l)
{
	struct rt_error e = {0};
	char tp[PATH_MAX];
	snprintf(tp, sizeof tp, "%s/tokenizer.json", dir);
	const char *dev = getenv("AGKIT_DEVICE");
	/* auto: a model the CUDA path does not run is checked on the CPU, where it will serve */
	struct rt_load_opts lo = {
	    .backend = pick_backend(),
	    .simd = getenv("AGRT_SIMD"),
	    .device_fallback = !dev || !strcmp(dev, "auto"),
	    .max_memory = max_memory};
	if (rt_model_load(dir, &lo, &l->m, &e) < 0 || rt_tokenizer_load(tp, &l->t, &e) < 0) {
		fprintf(stderr, "agrun: %s\n", e.msg);
		return agrun_exit_code(e.code);
	}
	l->info = rt_model_get_info(l->m);
	return 0;
}

static void unload(struct loaded *l)
{
	rt_tokenizer_free(l->t);
	rt_model_free(l->m);
}

/* log-softmax normaliser of one logits row */
static double log_z(const float *row, int vocab)
{
	float mx = row[0];
	for (int i = 1; i < vocab; i++)
		if (row[i] > mx)
			mx = row[i];
	double s = 0;
	for (int i = 0; i < vocab; i++)
		s += exp((double)row[i] - mx);
	return mx + log(s);
}

/* A row's log-probabilities, for health_step_compare(). */
struct lp_row {
	const float *row;
	double lz;
};

static double row_lp(void *ctx, int32_t id)
{
	const struct lp_row *r = ctx;
	return (double)r->row[id] - r->lz;
}

static json_t *ids_json(const int32_t *ids, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(ids[i]));
	return a;
}

/*
 * Latency: best of repeated greedy runs of one prompt (at least 100 ms of
 * decoding, at most 20 runs), so that a busy host or a tiny model does not
 * turn scheduling noise into a verdict.  `slow` is the injected test slowdown.
 */
static int measure(struct rt_session *s, const int32_t *ids, size_t n, int ctx, double slow, double *ret_ttft,
                   double *ret_tps, struct rt_error *e)
{
	int n_new = 32;
	if ((size_t)n_new + n > (size_t)ctx)
		n_new = ctx - (int)n > 2 ? ctx - (int)n : 2;
	double best_ttft = 1e30, best_tps = 0, spent = 0;
	for (int rep = 0; rep < 20 && (rep < 3 || spent < 100.0); rep++) {
		struct rt_gen_opts go = {.max_new = n_new, .top_k = 0, .stop_at_eos = false};
		struct rt_gen_result *g = NULL;
		int r = rt_generate(s, ids, n, &go, &g, e);
		if (r < 0)
			return r;
		if (slow > 1.0) {
			/* Injected: decoding takes `slow` times as long. */
			double extra = g->decode_ms * (slow - 1.0);
			struct timespec ts = {(time_t)(extra / 1000), (long)(fmod(extra, 1000.0) * 1e6)};
			nanosleep(&ts, NULL);
			g->decode_ms *= slow;
		}
		double tps = g->decode_ms > 0 && g->n_out > 1 ? (double)(g->n_out - 1) * 1000.0 / g->decode_ms : 0;
		best_ttft = g->prefill_ms < best_ttft ? g->prefill_ms : best_ttft;
		best_tps = tps > best_tps ? tps : best_tps;
		spent += g->decode_ms + g->prefill_ms;
		rt_gen_result_free(g);
	}
	*ret_ttft = best_ttft;
	*ret_tps = best_tps;
	return 0;
}

/* ---- record ------------------------------------------------------------ */

static int cmd_record(int argc, char **argv)
{
	static const struct option lo[] = {
		{"out", required_argument, NULL, 'o'}, {"prompts", required_argument, NULL, 'p'},
		{"top-k", required_argument, NULL, 'k'}, {"max-memory", required_argument, NULL, 'm'},
		{"tolerance-profile", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	const char *out = NULL, *prompts_path = NULL;
	const struct tolerance_profile *prof = &profiles[0];
	uint64_t max_memory = 0;
	int n_new = 16, top_k = 8, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:p:k:n:h", lo, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'p': prompts_path = optarg; break;
		case 'k':
		case 'n': {
			/* decimal digits only: "5x" and "x" are refused, not read as 5 and 0 */
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > (c == 'k' ? MAX_TOPK : MAX_NEW)) {
				fprintf(stderr, "agrun: record: %s: '%s' is not a number from 1 to %d\n", c == 'k' ? "--top-k" : "-n",
				        optarg, c == 'k' ? MAX_TOPK : MAX_NEW);
				return 2;
			}
			if (c == 'k')
				top_k = (int)v;
			else
				n_new = (int)v;
			break;
		}
		case 'm':
			if (parse_memory("record", optarg, &max_memory) < 0)
				return 2;
			break;
		case 't':
			if (!(prof = find_profile("record", optarg)))
				return 2;
			break;
		case 'h': printf("%s\n", RECORD_USAGE); return 0;
		default: return 2;
		}
	}
	if (!out || optind + 1 != argc || n_new < 1 || n_new > MAX_NEW || top_k < 1 || top_k > MAX_TOPK) {
		fprintf(stderr, "%s\n(-n 1..%d, --top-k 1..%d)\n", RECORD_USAGE, MAX_NEW, MAX_TOPK);
		return 2;
	}
	const char *dir = argv[optind];
	json_t *plist = NULL;
	if (prompts_path) {
		json_error_t je;
		plist = json_load_file(prompts_path, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_array(plist) || json_array_size(plist) == 0 || json_array_size(plist) > MAX_PROMPTS) {
			fprintf(stderr, "agrun: %s: expected a JSON array of 1..%d prompts ({\"name\", \"text\"} or strings)\n",
			        prompts_path, MAX_PROMPTS);
			json_decref(plist);
			return 2;
		}
	} else {
		plist = json_array();
		for (size_t i = 0; i < sizeof default_prompts / sizeof *default_prompts; i++)
			json_array_append_new(plist, json_pack("{s:s, s:s}", "name", default_prompts[i][0], "text",
			                                       default_prompts[i][1]));
	}
	struct loaded l = {0};
	int r = load(dir, max_memory, &l);
	if (r) {
		json_decref(plist);
		return r;
	}
	struct rt_error e = {0};
	struct rt_session *s = NULL;
	int ctx = l.info->max_positions < 4096 ? l.info->max_positions : 4096;
	json_t *prompts = json_array();
	double ttft_best = 0, tps = 0;
	static int32_t first[4096];
	size_t n_first = 0;
	r = rt_session_new(l.m, ctx, &s, &e);
	size_t i;
	json_t *p;
	json_array_foreach(plist, i, p) {
		if (r < 0)
			break;
		const char *text = json_is_string(p) ? json_string_value(p) : json_string_value(json_object_get(p, "text"));
		const char *name = json_is_string(p) ? NULL : json_string_value(json_object_get(p, "name"));
		char defname[32];
		if (!name) {
			snprintf(defname, sizeof defname, "prompt-%zu", i + 1);
			name = defname;
		}
		if (!text) {
			fprintf(stderr, "agrun: prompt %zu has no text\n", i + 1);
			r = -EINVAL;
			e.code = 2;
			break;
		}
		int32_t *ids = NULL;
		size_t n = 0;
		r = rt_tokenize(l.t, text, strlen(text), true, &ids, &n, &e);
		if (r < 0)
			break;
		if (n + (size_t)n_new > (size_t)ctx) {
			/* Keep the end of an over-long prompt: the model's context decides. */
			size_t keep = (size_t)ctx > (size_t)n_new + 1 ? (size_t)ctx - (size_t)n_new : 1;
			memmove(ids, ids + (n - keep), keep * sizeof *ids);
			n = keep;
		}
		struct rt_gen_opts go = {.max_new = n_new, .top_k = top_k, .stop_at_eos = true};
		struct rt_gen_result *g = NULL;
		r = rt_generate(s, ids, n, &go, &g, &e);
		if (r < 0) {
			free(ids);
			break;
		}
		char *otext = NULL;
		size_t olen = 0;
		/* Models often pad their vocabulary past the tokenizer's: an output id
		 * without text leaves the decode check out for this prompt. */
		struct rt_error de = {0};
		if (rt_detokenize(l.t, g->ids, g->n_out, false, &otext, &olen, &de) < 0)
			otext = NULL;
		json_t *steps = json_array();
		for (size_t k = 0; k < g->n_out; k++) {
			json_t *tk = json_array();
			for (int j = 0; j < g->top_k; j++) {
				const struct rt_topk *t = &g->topk[k * (size_t)g->top_k + (size_t)j];
				json_array_append_new(tk, json_pack("[i, f]", t->id, (double)t->logprob));
			}
			json_array_append_new(steps, tk);
		}
		json_array_append_new(prompts, json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:o}", "name", name, "text", text,
		                                         "add_special", 1, "ids", ids_json(ids, n), "output_ids",
		                                         ids_json(g->ids, g->n_out), "output_text",
		                                         otext ? json_string(otext) : json_null(), "topk", steps));
		if (i == 0)
			memcpy(first, ids, (n < 4096 ? n : 4096) * sizeof *ids), n_first = n < 4096 ? n : 4096;
		free(otext);
		free(ids);
		rt_gen_result_free(g);
	}
	struct rt_stream_info si;
	rt_model_stream_info(l.m, &si);
	/* streaming: no latency figures (every token reads the files), so no budgets */
	if (r == 0 && !si.streaming)
		r = measure(s, first, n_first, ctx, 1.0, &ttft_best, &tps, &e);
	rt_session_free(s);
	if (r < 0) {
		fprintf(stderr, "agrun: %s\n", e.msg);
		json_decref(prompts);
		json_decref(plist);
		unload(&l);
		return e.code > 0 && e.code <= 4 ? e.code : 1;
	}
	json_t *suite = json_pack(
		"{s:i, s:{s:s, s:i, s:I, s:I}, s:{s:s, s:i}, s:{s:f, s:f, s:i}, s:{s:f, s:f}, s:{s:f, s:f}, s:o}",
		"agkit_health_suite", 1,
		"model", "arch", l.info->arch, "vocab", l.info->vocab, "n_params", (json_int_t)l.info->n_params,
		"weight_bytes", (json_int_t)l.info->weight_bytes,
		"recorded_on", "device", l.info->backend, "threads", l.info->n_threads,
		"tolerances", "logit_margin", prof->logit_margin, "kl_max", prof->kl_max, "top_k", top_k,
		"recorded", "ttft_ms", ttft_best, "decode_tok_s", tps,
		/* Generous absolute budgets: the clean-zone host may be slower than the
		 * recording host; this host's own history is compared by agctl. */
		"budgets", "ttft_ms", si.streaming ? 0.0 : ttft_best * 10 + 1000, "decode_tok_s", tps / 10,
		"prompts", prompts);
	json_decref(plist);
	unload(&l);
	if (!suite || json_dump_file(suite, out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0) {
		fprintf(stderr, "agrun: %s: cannot write the suite\n", out);
		json_decref(suite);
		return 4;
	}
	json_decref(suite);
	fprintf(stderr, "agrun: recorded %zu prompt(s) to %s (ttft %.1f ms, decode %.1f tok/s)\n", i, out, ttft_best, tps);
	return 0;
}

/* ---- check ------------------------------------------------------------- */

static bool ids_from_json(json_t *a, int vocab, int32_t **ret, size_t *ret_n)
{
	size_t n = json_array_size(a);
	if (!json_is_array(a) || n > 65536)
		return false;
	int32_t *v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return false;
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(a, i);
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= vocab) {
			free(v);
			return false;
		}
		v[i] = (int32_t)json_integer_value(x);
	}
	*ret = v;
	*ret_n = n;
	return true;
}

int health_suite_parse(const char *buf, size_t len, struct health_suite *ret)
{
	json_error_t je;
	if (!buf || len > HEALTH_SUITE_MAX_BYTES)
		return -1;
	json_t *suite = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	json_t *prompts = json_object_get(suite, "prompts"), *tol = json_object_get(suite, "tolerances");
	if (!json_is_integer(json_object_get(suite, "agkit_health_suite")) || !json_is_array(prompts) ||
	    json_array_size(prompts) == 0 || json_array_size(prompts) > MAX_PROMPTS) {
		json_decref(suite);
		return -1;
	}
	double margin_tol = json_number_value(json_object_get(tol, "logit_margin"));
	double kl_tol = json_number_value(json_object_get(tol, "kl_max"));
	if (!(margin_tol >= 0) || !(kl_tol >= 0))
		margin_tol = 1.0, kl_tol = 0.01;
	*ret = (struct health_suite){.root = suite,
	                             .prompts = prompts,
	                             .budgets = json_object_get(suite, "budgets"),
	                             .margin_tol = margin_tol,
	                             .kl_tol = kl_tol};
	return 0;
}

void health_suite_free(struct health_suite *s)
{
	if (!s)
		return;
	json_decref(s->root);
	s->root = s->prompts = s->budgets = NULL;
}

int health_prompt_parse(json_t *p, int vocab, int ctx, struct health_prompt *ret)
{
	const char *name = json_string_value(json_object_get(p, "name")),
	           *text = json_string_value(json_object_get(p, "text")),
	           *otext = json_string_value(json_object_get(p, "output_text"));
	json_t *steps = json_object_get(p, "topk");
	int32_t *ids = NULL, *out = NULL;
	size_t n = 0, n_out = 0;
	if (!name || !text || !ids_from_json(json_object_get(p, "ids"), vocab, &ids, &n) ||
	    !ids_from_json(json_object_get(p, "output_ids"), vocab, &out, &n_out) || n == 0 ||
	    json_array_size(steps) != n_out || ctx < 0 || n + n_out > (size_t)ctx) {
		free(ids);
		free(out);
		return -1;
	}
	*ret = (struct health_prompt){.name = name,
	                              .text = text,
	                              .output_text = otext,
	                              .steps = steps,
	                              .ids = ids,
	                              .out = out,
	                              .n = n,
	                              .n_out = n_out,
	                              .add_special = !json_is_false(json_object_get(p, "add_special"))};
	return 0;
}

void health_prompt_free(struct health_prompt *hp)
{
	if (!hp)
		return;
	free(hp->ids);
	free(hp->out);
	hp->ids = hp->out = NULL;
}

/* The suite file's bytes (stat() already capped its size). */
static int read_suite(const char *path, char **ret, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	size_t cap = 0, len = 0;
	char *buf = NULL;
	for (;;) {
		if (len == cap) {
			if (cap > HEALTH_SUITE_MAX_BYTES)
				break; /* grew since stat(): health_suite_parse() refuses it */
			cap = cap ? cap * 2 : 65536;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return -1;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* The per-prompt state of a check. */
struct check_prompt {
	struct health_prompt hp;
	size_t len; /* teacher-forced tokens: prompt + output - 1, 0 without output */
	bool tok_ok;
	json_t *fail; /* this prompt's failure lines, in order */
	double max_margin, max_kl;
	int bad_step;
};

/* 2. Teacher-forced comparison of prompt cp, whose logits rows (one per
 * token of prompt + recorded output but the last) start at logits. */
static void compare_prompt(struct check_prompt *cp, const float *logits, int vocab, double margin_tol, double kl_tol)
{
	const struct health_prompt *hp = &cp->hp;
	char b[512];

	for (size_t k = 0; k < hp->n_out; k++) {
		const float *row = logits + (hp->n - 1 + k) * (size_t)vocab;
		float mx = row[0];
		for (int v = 1; v < vocab; v++)
			mx = row[v] > mx ? row[v] : mx;
		double lz = log_z(row, vocab);
		struct lp_row lr = {row, lz};
		struct health_step hst;
		if (health_step_compare(json_array_get(hp->steps, k), vocab, (double)mx - lz, (double)row[hp->out[k]] - lz,
		                        row_lp, &lr, 0, &hst) < 0) {
			snprintf(b, sizeof b, "prompt '%s': step %zu of the suite is malformed", hp->name, k);
			json_array_append_new(cp->fail, json_string(b));
			if (cp->bad_step < 0)
				cp->bad_step = (int)k;
			break;
		}
		cp->max_margin = hst.margin > cp->max_margin ? hst.margin : cp->max_margin;
		cp->max_kl = hst.kl > cp->max_kl ? hst.kl : cp->max_kl;
		if (health_step_fails(&hst, margin_tol, kl_tol) && cp->bad_step < 0) {
			cp->bad_step = (int)k;
			health_step_describe(b, sizeof b, hp->name, k, hp->out[k], &hst, margin_tol, kl_tol);
			json_array_append_new(cp->fail, json_string(b));
		}
	}
}

/* Memory of one teacher-forced token in a batch: its KV cache rows (f32,
 * every layer), hidden state, rope tables and logits row. */
static uint64_t token_bytes(const struct rt_model_info *in)
{
	uint64_t kv = (uint64_t)in->n_layers * 2 * (uint64_t)in->n_kv_heads * (uint64_t)in->head_dim;
	return 4 * (kv + (uint64_t)in->hidden + (uint64_t)in->head_dim + (uint64_t)in->vocab);
}

/* The bytes a batch of teacher-forced tokens may take under max_memory
 * (0: no limit, one batch): what is left beside the weights mapped at a
 * time (one streamed layer, or all of them), the model's step buffers (256
 * rows) and 8 MiB for the program, its libraries, the tokenizer and the
 * suite.  1 when nothing is left: one prompt a batch. */
static uint64_t batch_budget(const struct rt_model_info *in, const struct rt_stream_info *si, uint64_t max_memory)
{
	uint64_t H = (uint64_t)in->hidden, qd = (uint64_t)in->n_heads * in->head_dim,
	         kvd = (uint64_t)in->n_kv_heads * in->head_dim, I = (uint64_t)in->intermediate;
	uint64_t fixed = (si->streaming ? si->largest_stage : in->weight_bytes) + 256 * 4 * 2 * (H + qd + kvd + I) +
	                 (8u << 20);
	if (!max_memory)
		return 0;
	return fixed < max_memory ? max_memory - fixed : 1;
}

/* 1. Tokenizer: the text encodes to the recorded ids, the output decodes to the recorded text. */
static void check_tokenizer(struct check_prompt *cp, const struct rt_tokenizer *t)
{
	const struct health_prompt *hp = &cp->hp;
	struct rt_error e = {0};
	int32_t *enc = NULL;
	size_t ne = 0, n = hp->n, dl = 0;
	char *dec = NULL, b[512];

	cp->tok_ok = true;
	if (rt_tokenize(t, hp->text, strlen(hp->text), hp->add_special, &enc, &ne, &e) < 0 || ne < n ||
	    memcmp(enc + (ne - n), hp->ids, n * sizeof *hp->ids) != 0) {
		cp->tok_ok = false;
		snprintf(b, sizeof b, "prompt '%s': the tokenizer encodes the text to other ids than recorded", hp->name);
		json_array_append_new(cp->fail, json_string(b));
	} else if (hp->output_text && (rt_detokenize(t, hp->out, hp->n_out, false, &dec, &dl, &e) < 0 ||
	                               strcmp(dec, hp->output_text) != 0)) {
		cp->tok_ok = false;
		snprintf(b, sizeof b, "prompt '%s': the tokenizer decodes the output to other text than recorded", hp->name);
		json_array_append_new(cp->fail, json_string(b));
	}
	free(enc);
	free(dec);
}

static int cmd_check(int argc, char **argv)
{
	static const struct option lo[] = {
		{"suite", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"max-memory", required_argument, NULL, 'm'},
		{"tolerance-profile", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *suite_path = NULL;
	const struct tolerance_profile *prof = NULL;
	bool json_out = false;
	uint64_t max_memory = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:jh", lo, NULL)) != -1) {
		switch (c) {
		case 's': suite_path = optarg; break;
		case 'j': json_out = true; break;
		case 'm':
			if (parse_memory("check", optarg, &max_memory) < 0)
				return 2;
			break;
		case 't':
			if (!(prof = find_profile("check", optarg)))
				return 2;
			break;
		case 'h': printf("%s\n", CHECK_USAGE); return 0;
		default: return 2;
		}
	}
	if (!suite_path || optind + 1 != argc) {
		fprintf(stderr, "%s\n", CHECK_USAGE);
		return 2;
	}
	double slow = fault_slowdown();
	const char *dir = argv[optind];
	struct stat st;
	if (stat(suite_path, &st) < 0 || st.st_size > (off_t)HEALTH_SUITE_MAX_BYTES) {
		fprintf(stderr, "agrun: %s: missing or larger than %u bytes\n", suite_path, HEALTH_SUITE_MAX_BYTES);
		return 4;
	}
	struct health_suite hs;
	char *sbuf = NULL;
	size_t slen = 0;
	int sr = read_suite(suite_path, &sbuf, &slen);
	if (sr == 0)
		sr = health_suite_parse(sbuf, slen, &hs);
	free(sbuf);
	if (sr < 0) {
		fprintf(stderr, "agrun: %s: not a health suite\n", suite_path);
		return 3;
	}
	json_t *suite = hs.root, *prompts = hs.prompts, *bud = hs.budgets;
	double margin_tol = hs.margin_tol, kl_tol = hs.kl_tol;
	if (prof) {
		/* a profile loosens the suite's tolerances, never tightens them */
		margin_tol = prof->logit_margin > margin_tol ? prof->logit_margin : margin_tol;
		kl_tol = prof->kl_max > kl_tol ? prof->kl_max : kl_tol;
	}
	struct loaded l = {0};
	int r = load(dir, max_memory, &l);
	if (r) {
		json_decref(suite);
		return r;
	}
	struct rt_stream_info si;
	rt_model_stream_info(l.m, &si);
	json_t *failures = json_array(), *rep_prompts = json_array();
	int vocab = l.info->vocab;
	json_t *mv = json_object_get(json_object_get(suite, "model"), "vocab");
	char b[512];
	if (json_is_integer(mv) && json_integer_value(mv) != vocab) {
		snprintf(b, sizeof b, "vocabulary has %d entries, the suite was recorded with %" JSON_INTEGER_FORMAT, vocab,
		         json_integer_value(mv));
		json_array_append_new(failures, json_string(b));
	}
	struct rt_error e = {0};
	int ctx = l.info->max_positions < 4096 ? l.info->max_positions : 4096;
	size_t np = json_array_size(failures) ? 0 : json_array_size(prompts), n_ok = 0;
	struct check_prompt *cps = calloc(np ? np : 1, sizeof *cps);
	/* the teacher-forced sequences: the prompts with an output, nb of them, prompt bi[k] */
	struct rt_session **ss = calloc(np ? np : 1, sizeof *ss);
	const int32_t **seqs = calloc(np ? np : 1, sizeof *seqs);
	size_t *lens = calloc(np ? np : 1, sizeof *lens), *bi = calloc(np ? np : 1, sizeof *bi), nb = 0;
	bool malformed = false;
	if (!cps || !ss || !seqs || !lens || !bi) {
		fprintf(stderr, "agrun: out of memory\n");
		exit(4);
	}
	/* the prompts that parse, up to the first that does not */
	r = 0;
	for (; n_ok < np && r == 0; n_ok++) {
		struct check_prompt *cp = &cps[n_ok];
		cp->fail = json_array();
		cp->bad_step = -1;
		if (health_prompt_parse(json_array_get(prompts, n_ok), vocab, ctx, &cp->hp) < 0) {
			malformed = true;
			break;
		}
		check_tokenizer(cp, l.t);
		if (cp->hp.n_out == 0)
			continue;
		/* the prompt plus the recorded output but its last token */
		size_t len = cp->hp.n + cp->hp.n_out - 1;
		int32_t *seq = malloc(len * sizeof *seq);
		if (!seq) {
			fprintf(stderr, "agrun: out of memory\n");
			exit(4);
		}
		memcpy(seq, cp->hp.ids, cp->hp.n * sizeof *seq);
		memcpy(seq + cp->hp.n, cp->hp.out, (cp->hp.n_out - 1) * sizeof *seq);
		seqs[nb] = seq;
		lens[nb] = cp->len = len;
		bi[nb++] = n_ok;
	}
	/* 2. teacher-forced, the prompts in as few batches as the memory limit
	 * leaves room for (one without a limit); a batch reads each layer once.
	 * A session per prompt, sized to it, for the time of its batch. */
	uint64_t budget = batch_budget(l.info, &si, max_memory), per_tok = token_bytes(l.info);
	size_t n_batches = 0;
	for (size_t g0 = 0; r == 0 && g0 < nb; n_batches++) {
		size_t gn = 0, rows = 0;
		while (g0 + gn < nb && (gn == 0 || !budget || (rows + lens[g0 + gn]) * per_tok <= budget))
			rows += lens[g0 + gn++];
		float *logits = malloc(rows * (size_t)vocab * sizeof *logits);
		if (!logits) {
			fprintf(stderr, "agrun: out of memory for the logits of %zu tokens\n", rows);
			exit(4);
		}
		for (size_t k = 0; r == 0 && k < gn; k++)
			r = rt_session_new(l.m, (int)lens[g0 + k], &ss[g0 + k], &e);
		if (r == 0)
			r = rt_forward_batch_all(ss + g0, seqs + g0, lens + g0, gn, logits, &e);
		for (size_t k = 0, row = 0; k < gn; row += lens[g0 + k], k++) {
			if (r == 0)
				compare_prompt(&cps[bi[g0 + k]], logits + row * (size_t)vocab, vocab, margin_tol, kl_tol);
			rt_session_free(ss[g0 + k]);
			ss[g0 + k] = NULL;
		}
		free(logits);
		g0 += gn;
	}
	for (size_t i = 0; r == 0 && i < n_ok; i++) {
		struct check_prompt *cp = &cps[i];
		json_array_extend(failures, cp->fail);
		json_array_append_new(rep_prompts, json_pack("{s:s, s:b, s:b, s:f, s:f}", HR_PROMPT_NAME, cp->hp.name,
		                                             HR_PROMPT_PASS, cp->tok_ok && cp->bad_step < 0,
		                                             HR_PROMPT_TOKENIZER_OK, cp->tok_ok, HR_PROMPT_MAX_MARGIN,
		                                             cp->max_margin, HR_PROMPT_MAX_KL, cp->max_kl));
	}
	if (r == 0 && malformed) {
		snprintf(b, sizeof b, "prompt %zu of the suite is malformed or does not fit this model", n_ok + 1);
		json_array_append_new(failures, json_string(b));
	}
	uint64_t bytes_check = 0;
	if (si.streaming) {
		rt_model_stream_info(l.m, &si);
		bytes_check = si.bytes_read;
	}
	/* 3. latency on the first prompt; not when streaming: every token would
	 * read the whole model from the files, which measures the disk */
	double ttft = 1e30, tps = 0;
	bool latency = !si.streaming;
	if (latency && r == 0 && n_ok > 0) {
		struct rt_session *s = NULL;
		r = rt_session_new(l.m, ctx, &s, &e);
		if (r == 0)
			r = measure(s, cps[0].hp.ids, cps[0].hp.n, ctx, slow, &ttft, &tps, &e);
		rt_session_free(s);
	}
	for (size_t i = 0; i < nb; i++)
		free((void *)seqs[i]);
	for (size_t i = 0; i < np; i++) {
		health_prompt_free(&cps[i].hp);
		json_decref(cps[i].fail);
	}
	free(cps);
	free(ss);
	free(seqs);
	free(lens);
	free(bi);
	/* The model's info dies with it: keep the device name for the report. */
	char device[sizeof l.info->backend];
	snprintf(device, sizeof device, "%s", l.info->backend);
	/* after the prompts ran: how much of the mapped weights is in RAM
	 * (a mixture-of-experts model larger than RAM runs with part paged out) */
	uint64_t resident = 0, mapped = 0;
	if (rt_model_resident(l.m, &resident, &mapped) < 0)
		resident = mapped = 0;
	unload(&l);
	if (r < 0) {
		fprintf(stderr, "agrun: %s\n", e.msg);
		json_decref(failures);
		json_decref(rep_prompts);
		json_decref(suite);
		return e.code > 0 && e.code <= 4 ? e.code : 1;
	}
	size_t n_correctness = json_array_size(failures);
	double bt = json_number_value(json_object_get(bud, "ttft_ms")), btps = json_number_value(json_object_get(bud, "decode_tok_s"));
	if (latency && bt > 0 && ttft < 1e30 && ttft > bt) {
		snprintf(b, sizeof b, "time to first token %.1f ms is over the suite's budget of %.1f ms", ttft, bt);
		json_array_append_new(failures, json_string(b));
	}
	if (latency && btps > 0 && tps > 0 && tps < btps) {
		snprintf(b, sizeof b, "decode %.1f tok/s is under the suite's budget of %.1f tok/s", tps, btps);
		json_array_append_new(failures, json_string(b));
	}
	bool pass = json_array_size(failures) == 0;
	bool latency_only = !pass && n_correctness == 0;
	uint64_t hwm = peak_rss();
	json_t *rep = json_pack("{s:b, s:b, s:o, s:o, s:o, s:s, s:{s:I, s:I}, s:{s:s, s:I, s:I, s:I, s:I, s:I}, s:o}",
	                        HR_PASS, pass, HR_LATENCY_ONLY, latency_only, HR_FAILURES, failures, HR_TTFT_MS,
	                        latency ? json_real(ttft < 1e30 ? ttft : 0.0) : json_null(), HR_DECODE_TOK_S,
	                        latency ? json_real(tps) : json_null(), HR_DEVICE, device, HR_WEIGHTS,
	                        HR_WEIGHTS_RESIDENT, (json_int_t)resident, HR_WEIGHTS_MAPPED, (json_int_t)mapped,
	                        HR_MEMORY, HR_MEMORY_MODE, si.streaming ? HR_MODE_STREAMING : HR_MODE_MAPPED,
	                        HR_MEMORY_MAX, (json_int_t)max_memory, HR_MEMORY_BATCHES, (json_int_t)n_batches,
	                        HR_MEMORY_BYTES_READ, (json_int_t)bytes_check,
	                        HR_MEMORY_LARGEST_STAGE, (json_int_t)si.largest_stage, HR_MEMORY_PEAK_RSS,
	                        (json_int_t)hwm, HR_PROMPTS, rep_prompts);
	json_decref(suite);
	if (json_out) {
		char *t = json_dumps(rep, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		printf("%s\n", t ? t : "{}");
		free(t);
	} else if (si.streaming) {
		printf("%s (streaming: weights read %.1f of %.1f MB, peak RSS %.1f MB; latency not measured)\n",
		       pass ? "PASS" : "FAIL", bytes_check / 1e6, mapped / 1e6, hwm / 1e6);
	} else {
		printf("%s (ttft %.1f ms, decode %.1f tok/s, weights %.1f of %.1f MB resident)\n", pass ? "PASS" : "FAIL",
		       ttft < 1e30 ? ttft : 0.0, tps, resident / 1e6, mapped / 1e6);
	}
	if (!json_out) {
		size_t k;
		json_t *f;
		json_array_foreach(json_object_get(rep, HR_FAILURES), k, f) printf("  %s\n", json_string_value(f));
	}
	json_decref(rep);
	return pass ? 0 : 1;
}

int agrun_health_main(int argc, char **argv)
{
	if (!strcmp(argv[0], "record"))
		return cmd_record(argc, argv);
	return cmd_check(argc, argv);
}
