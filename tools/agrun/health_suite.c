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

/* agrun record's command line. */
struct record_opts {
	const char *out, *prompts_path, *dir;
	const struct tolerance_profile *prof;
	uint64_t max_memory;
	int n_new, top_k;
};

/* Returns -1 to go on, else the exit status. */
static int record_parse_args(int argc, char **argv, struct record_opts *o)
{
	static const struct option lo[] = {
		{"out", required_argument, NULL, 'o'}, {"prompts", required_argument, NULL, 'p'},
		{"top-k", required_argument, NULL, 'k'}, {"max-memory", required_argument, NULL, 'm'},
		{"tolerance-profile", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0},
	};
	*o = (struct record_opts){.prof = &profiles[0], .n_new = 16, .top_k = 8};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:p:k:n:h", lo, NULL)) != -1) {
		switch (c) {
		case 'o': o->out = optarg; break;
		case 'p': o->prompts_path = optarg; break;
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
				o->top_k = (int)v;
			else
				o->n_new = (int)v;
			break;
		}
		case 'm':
			if (parse_memory("record", optarg, &o->max_memory) < 0)
				return 2;
			break;
		case 't':
			if (!(o->prof = find_profile("record", optarg)))
				return 2;
			break;
		case 'h': printf("%s\n", RECORD_USAGE); return 0;
		default: return 2;
		}
	}
	if (!o->out || optind + 1 != argc || o->n_new < 1 || o->n_new > MAX_NEW || o->top_k < 1 || o->top_k > MAX_TOPK) {
		fprintf(stderr, "%s\n(-n 1..%d, --top-k 1..%d)\n", RECORD_USAGE, MAX_NEW, MAX_TOPK);
		return 2;
	}
	o->dir = argv[optind];
	return -1;
}

/* --prompts FILE (an array of {"name", "text"} or strings) or the default
 * prompts; NULL (reported) when the file is not such an array. */
static json_t *record_prompt_list(const char *prompts_path)
{
	json_t *plist = NULL;
	if (prompts_path) {
		json_error_t je;
		plist = json_load_file(prompts_path, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_array(plist) || json_array_size(plist) == 0 || json_array_size(plist) > MAX_PROMPTS) {
			fprintf(stderr, "agrun: %s: expected a JSON array of 1..%d prompts ({\"name\", \"text\"} or strings)\n",
			        prompts_path, MAX_PROMPTS);
			json_decref(plist);
			return NULL;
		}
		return plist;
	}
	plist = json_array();
	for (size_t i = 0; i < sizeof default_prompts / sizeof *default_prompts; i++)
		json_array_append_new(plist,
		                      json_pack("{s:s, s:s}", "name", default_prompts[i][0], "text", default_prompts[i][1]));
	return plist;
}

/* The first prompt's ids, for the latency measurement. */
struct record_first {
	int32_t ids[4096];
	size_t n;
};

/* Prompt i (p) of the list: tokenized (the end of an over-long one kept),
 * generated greedily with its top-k at each step, appended to prompts. */
static int record_prompt(const struct loaded *l, struct rt_session *s, int ctx, const struct record_opts *o, size_t i,
                         json_t *p, json_t *prompts, struct record_first *first, struct rt_error *e)
{
	const char *text = json_is_string(p) ? json_string_value(p) : json_string_value(json_object_get(p, "text"));
	const char *name = json_is_string(p) ? NULL : json_string_value(json_object_get(p, "name"));
	char defname[32];
	if (!name) {
		snprintf(defname, sizeof defname, "prompt-%zu", i + 1);
		name = defname;
	}
	if (!text) {
		fprintf(stderr, "agrun: prompt %zu has no text\n", i + 1);
		e->code = 2;
		return -EINVAL;
	}
	int32_t *ids = NULL;
	size_t n = 0;
	int r = rt_tokenize(l->t, text, strlen(text), true, &ids, &n, e);
	if (r < 0)
		return r;
	if (n + (size_t)o->n_new > (size_t)ctx) {
		/* Keep the end of an over-long prompt: the model's context decides. */
		size_t keep = (size_t)ctx > (size_t)o->n_new + 1 ? (size_t)ctx - (size_t)o->n_new : 1;
		memmove(ids, ids + (n - keep), keep * sizeof *ids);
		n = keep;
	}
	struct rt_gen_opts go = {.max_new = o->n_new, .top_k = o->top_k, .stop_at_eos = true};
	struct rt_gen_result *g = NULL;
	r = rt_generate(s, ids, n, &go, &g, e);
	if (r < 0) {
		free(ids);
		return r;
	}
	char *otext = NULL;
	size_t olen = 0;
	/* Models often pad their vocabulary past the tokenizer's: an output id
	 * without text leaves the decode check out for this prompt. */
	struct rt_error de = {0};
	if (rt_detokenize(l->t, g->ids, g->n_out, false, &otext, &olen, &de) < 0)
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
	if (i == 0) {
		first->n = n < 4096 ? n : 4096;
		memcpy(first->ids, ids, first->n * sizeof *ids);
	}
	free(otext);
	free(ids);
	rt_gen_result_free(g);
	return 0;
}

/* The suite file's object (docs/HEALTH.md); takes prompts. */
static json_t *record_suite(const struct loaded *l, const struct record_opts *o, double ttft, double tps,
                            bool streaming, json_t *prompts)
{
	return json_pack(
		"{s:i, s:{s:s, s:i, s:I, s:I}, s:{s:s, s:i}, s:{s:f, s:f, s:i}, s:{s:f, s:f}, s:{s:f, s:f}, s:o}",
		"agkit_health_suite", 1,
		"model", "arch", l->info->arch, "vocab", l->info->vocab, "n_params", (json_int_t)l->info->n_params,
		"weight_bytes", (json_int_t)l->info->weight_bytes,
		"recorded_on", "device", l->info->backend, "threads", l->info->n_threads,
		"tolerances", "logit_margin", o->prof->logit_margin, "kl_max", o->prof->kl_max, "top_k", o->top_k,
		"recorded", "ttft_ms", ttft, "decode_tok_s", tps,
		/* Generous absolute budgets: the clean-zone host may be slower than the
		 * recording host; this host's own history is compared by agctl. */
		"budgets", "ttft_ms", streaming ? 0.0 : ttft * 10 + 1000, "decode_tok_s", tps / 10,
		"prompts", prompts);
}

/* agrun record: the prompts, the model, each prompt generated, latency, the
 * suite file. */
static int cmd_record(int argc, char **argv)
{
	struct record_opts o;
	int ex = record_parse_args(argc, argv, &o);
	if (ex >= 0)
		return ex;
	json_t *plist = record_prompt_list(o.prompts_path);
	if (!plist)
		return 2;
	struct loaded l = {0};
	int r = load(o.dir, o.max_memory, &l);
	if (r) {
		json_decref(plist);
		return r;
	}
	struct rt_error e = {0};
	struct rt_session *s = NULL;
	int ctx = l.info->max_positions < 4096 ? l.info->max_positions : 4096;
	json_t *prompts = json_array();
	double ttft_best = 0, tps = 0;
	static struct record_first first;
	r = rt_session_new(l.m, ctx, &s, &e);
	size_t i;
	json_t *p;
	json_array_foreach(plist, i, p) {
		if (r < 0 || (r = record_prompt(&l, s, ctx, &o, i, p, prompts, &first, &e)) < 0)
			break;
	}
	struct rt_stream_info si;
	rt_model_stream_info(l.m, &si);
	/* streaming: no latency figures (every token reads the files), so no budgets */
	if (r == 0 && !si.streaming)
		r = measure(s, first.ids, first.n, ctx, 1.0, &ttft_best, &tps, &e);
	rt_session_free(s);
	if (r < 0) {
		fprintf(stderr, "agrun: %s\n", e.msg);
		json_decref(prompts);
		json_decref(plist);
		unload(&l);
		return e.code > 0 && e.code <= 4 ? e.code : 1;
	}
	json_t *suite = record_suite(&l, &o, ttft_best, tps, si.streaming, prompts);
	json_decref(plist);
	unload(&l);
	if (!suite || json_dump_file(suite, o.out, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0) {
		fprintf(stderr, "agrun: %s: cannot write the suite\n", o.out);
		json_decref(suite);
		return 4;
	}
	json_decref(suite);
	fprintf(stderr, "agrun: recorded %zu prompt(s) to %s (ttft %.1f ms, decode %.1f tok/s)\n", i, o.out, ttft_best,
	        tps);
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
 * rows), the matmul's copy of its input (256 rows of the widest input, at
 * most 6 bytes an element: split into three bf16 parts for the AMX tiles) and 8 MiB for
 * the program, its libraries, the tokenizer and the suite.  1 when nothing
 * is left: one prompt a batch. */
static uint64_t batch_budget(const struct rt_model_info *in, const struct rt_stream_info *si, uint64_t max_memory)
{
	uint64_t H = (uint64_t)in->hidden, qd = (uint64_t)in->n_heads * in->head_dim,
	         kvd = (uint64_t)in->n_kv_heads * in->head_dim, I = (uint64_t)in->intermediate;
	uint64_t wide = H > qd ? H : qd;
	wide = wide > I ? wide : I;
	uint64_t fixed = (si->streaming ? si->largest_stage : in->weight_bytes) + 256 * 4 * 2 * (H + qd + kvd + I) +
	                 256 * 6 * wide + (8u << 20);
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

/* agrun check's command line. */
struct check_opts {
	const char *suite_path, *dir;
	const struct tolerance_profile *prof;
	bool json_out;
	uint64_t max_memory;
};

/* Returns -1 to go on, else the exit status. */
static int check_parse_args(int argc, char **argv, struct check_opts *o)
{
	static const struct option lo[] = {
		{"suite", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"max-memory", required_argument, NULL, 'm'},
		{"tolerance-profile", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:jh", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->suite_path = optarg; break;
		case 'j': o->json_out = true; break;
		case 'm':
			if (parse_memory("check", optarg, &o->max_memory) < 0)
				return 2;
			break;
		case 't':
			if (!(o->prof = find_profile("check", optarg)))
				return 2;
			break;
		case 'h': printf("%s\n", CHECK_USAGE); return 0;
		default: return 2;
		}
	}
	if (!o->suite_path || optind + 1 != argc) {
		fprintf(stderr, "%s\n", CHECK_USAGE);
		return 2;
	}
	o->dir = argv[optind];
	return -1;
}

/* The suite file, parsed, and its tolerances (a profile loosens them, never
 * tightens them).  Returns -1 to go on, else the exit status. */
static int check_load_suite(const struct check_opts *o, struct health_suite *hs, double *ret_margin_tol,
                            double *ret_kl_tol)
{
	struct stat st;
	if (stat(o->suite_path, &st) < 0 || st.st_size > (off_t)HEALTH_SUITE_MAX_BYTES) {
		fprintf(stderr, "agrun: %s: missing or larger than %u bytes\n", o->suite_path, HEALTH_SUITE_MAX_BYTES);
		return 4;
	}
	char *sbuf = NULL;
	size_t slen = 0;
	int sr = read_suite(o->suite_path, &sbuf, &slen);
	if (sr == 0)
		sr = health_suite_parse(sbuf, slen, hs);
	free(sbuf);
	if (sr < 0) {
		fprintf(stderr, "agrun: %s: not a health suite\n", o->suite_path);
		return 3;
	}
	double margin_tol = hs->margin_tol, kl_tol = hs->kl_tol;
	if (o->prof) {
		margin_tol = o->prof->logit_margin > margin_tol ? o->prof->logit_margin : margin_tol;
		kl_tol = o->prof->kl_max > kl_tol ? o->prof->kl_max : kl_tol;
	}
	*ret_margin_tol = margin_tol;
	*ret_kl_tol = kl_tol;
	return -1;
}

/* The prompts of a check and their teacher-forced sequences: the prompts
 * with an output, nb of them, prompt bi[k]. */
struct check_set {
	size_t np, n_ok; /* prompts to check; those that parsed */
	bool malformed;  /* prompt n_ok does not parse */
	struct check_prompt *cps;
	struct rt_session **ss;
	const int32_t **seqs;
	size_t *lens, *bi, nb;
};

static void *check_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		fprintf(stderr, "agrun: out of memory\n");
		exit(4);
	}
	return p;
}

/* 1. The prompts that parse, up to the first that does not: their
 * tokenizer check and their teacher-forced sequence. */
static void check_prompts(struct check_set *cs, json_t *prompts, int vocab, int ctx, const struct rt_tokenizer *t)
{
	size_t np = cs->np;
	cs->cps = check_calloc(np, sizeof *cs->cps);
	cs->ss = check_calloc(np, sizeof *cs->ss);
	cs->seqs = check_calloc(np, sizeof *cs->seqs);
	cs->lens = check_calloc(np, sizeof *cs->lens);
	cs->bi = check_calloc(np, sizeof *cs->bi);
	for (; cs->n_ok < np; cs->n_ok++) {
		struct check_prompt *cp = &cs->cps[cs->n_ok];
		cp->fail = json_array();
		cp->bad_step = -1;
		if (health_prompt_parse(json_array_get(prompts, cs->n_ok), vocab, ctx, &cp->hp) < 0) {
			cs->malformed = true;
			break;
		}
		check_tokenizer(cp, t);
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
		cs->seqs[cs->nb] = seq;
		cs->lens[cs->nb] = cp->len = len;
		cs->bi[cs->nb++] = cs->n_ok;
	}
}

/* 2. Teacher-forced, the prompts in as few batches as the memory limit
 * leaves room for (one without a limit); a batch reads each layer once.  A
 * session per prompt, sized to it, for the time of its batch. */
static int check_teacher_forced(struct check_set *cs, const struct loaded *l, const struct rt_stream_info *si,
                                uint64_t max_memory, double margin_tol, double kl_tol, size_t *ret_batches,
                                struct rt_error *e)
{
	int vocab = l->info->vocab, r = 0;
	uint64_t budget = batch_budget(l->info, si, max_memory), per_tok = token_bytes(l->info);
	size_t n_batches = 0, nb = cs->nb, *lens = cs->lens;
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
			r = rt_session_new(l->m, (int)lens[g0 + k], &cs->ss[g0 + k], e);
		if (r == 0)
			r = rt_forward_batch_all(cs->ss + g0, cs->seqs + g0, lens + g0, gn, logits, e);
		for (size_t k = 0, row = 0; k < gn; row += lens[g0 + k], k++) {
			if (r == 0)
				compare_prompt(&cs->cps[cs->bi[g0 + k]], logits + row * (size_t)vocab, vocab, margin_tol, kl_tol);
			rt_session_free(cs->ss[g0 + k]);
			cs->ss[g0 + k] = NULL;
		}
		free(logits);
		g0 += gn;
	}
	*ret_batches = n_batches;
	return r;
}

/* Each prompt's failures and its entry of the report (HR_PROMPTS). */
static void check_collect(const struct check_set *cs, json_t *failures, json_t *rep_prompts)
{
	for (size_t i = 0; i < cs->n_ok; i++) {
		const struct check_prompt *cp = &cs->cps[i];
		json_array_extend(failures, cp->fail);
		json_array_append_new(rep_prompts, json_pack("{s:s, s:b, s:b, s:f, s:f}", HR_PROMPT_NAME, cp->hp.name,
		                                             HR_PROMPT_PASS, cp->tok_ok && cp->bad_step < 0,
		                                             HR_PROMPT_TOKENIZER_OK, cp->tok_ok, HR_PROMPT_MAX_MARGIN,
		                                             cp->max_margin, HR_PROMPT_MAX_KL, cp->max_kl));
	}
	if (cs->malformed) {
		char b[512];
		snprintf(b, sizeof b, "prompt %zu of the suite is malformed or does not fit this model", cs->n_ok + 1);
		json_array_append_new(failures, json_string(b));
	}
}

static void check_set_free(struct check_set *cs)
{
	for (size_t i = 0; i < cs->nb; i++)
		free((void *)cs->seqs[i]);
	for (size_t i = 0; i < cs->np; i++) {
		health_prompt_free(&cs->cps[i].hp);
		json_decref(cs->cps[i].fail);
	}
	free(cs->cps);
	free(cs->ss);
	free(cs->seqs);
	free(cs->lens);
	free(cs->bi);
}

/* What a check measured, for its report. */
struct check_figures {
	bool latency; /* measured (not when streaming) */
	double ttft, tps;
	size_t n_batches;
	uint64_t bytes_read, resident, mapped, max_memory;
	struct rt_stream_info si;
	char device[sizeof ((struct rt_model_info *)0)->backend];
};

void health_budget_failures(json_t *budgets, bool latency, double ttft, double tps, json_t *failures)
{
	char b[512];
	double bt = json_number_value(json_object_get(budgets, "ttft_ms")),
	       btps = json_number_value(json_object_get(budgets, "decode_tok_s"));
	if (latency && bt > 0 && ttft < 1e30 && ttft > bt) {
		snprintf(b, sizeof b, "time to first token %.1f ms is over the suite's budget of %.1f ms", ttft, bt);
		json_array_append_new(failures, json_string(b));
	}
	if (latency && btps > 0 && tps > 0 && tps < btps) {
		snprintf(b, sizeof b, "decode %.1f tok/s is under the suite's budget of %.1f tok/s", tps, btps);
		json_array_append_new(failures, json_string(b));
	}
}

/* The report (health_report.h; takes failures and rep_prompts) as JSON or
 * a line with the failures under it.  Returns the exit status. */
static int check_report(const struct check_opts *o, const struct check_figures *f, json_t *failures,
                        json_t *rep_prompts, size_t n_correctness)
{
	bool pass = json_array_size(failures) == 0;
	bool latency_only = !pass && n_correctness == 0;
	uint64_t hwm = peak_rss();
	const struct rt_stream_info *si = &f->si;
	json_t *rep = json_pack("{s:b, s:b, s:o, s:o, s:o, s:s, s:{s:I, s:I}, s:{s:s, s:I, s:I, s:I, s:I, s:I}, s:o}",
	                        HR_PASS, pass, HR_LATENCY_ONLY, latency_only, HR_FAILURES, failures, HR_TTFT_MS,
	                        f->latency ? json_real(f->ttft < 1e30 ? f->ttft : 0.0) : json_null(), HR_DECODE_TOK_S,
	                        f->latency ? json_real(f->tps) : json_null(), HR_DEVICE, f->device, HR_WEIGHTS,
	                        HR_WEIGHTS_RESIDENT, (json_int_t)f->resident, HR_WEIGHTS_MAPPED, (json_int_t)f->mapped,
	                        HR_MEMORY, HR_MEMORY_MODE, si->streaming ? HR_MODE_STREAMING : HR_MODE_MAPPED,
	                        HR_MEMORY_MAX, (json_int_t)f->max_memory, HR_MEMORY_BATCHES, (json_int_t)f->n_batches,
	                        HR_MEMORY_BYTES_READ, (json_int_t)f->bytes_read,
	                        HR_MEMORY_LARGEST_STAGE, (json_int_t)si->largest_stage, HR_MEMORY_PEAK_RSS,
	                        (json_int_t)hwm, HR_PROMPTS, rep_prompts);
	if (o->json_out) {
		char *t = json_dumps(rep, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		printf("%s\n", t ? t : "{}");
		free(t);
	} else if (si->streaming) {
		printf("%s (streaming: weights read %.1f of %.1f MB, peak RSS %.1f MB; latency not measured)\n",
		       pass ? "PASS" : "FAIL", f->bytes_read / 1e6, f->mapped / 1e6, hwm / 1e6);
	} else {
		printf("%s (ttft %.1f ms, decode %.1f tok/s, weights %.1f of %.1f MB resident)\n", pass ? "PASS" : "FAIL",
		       f->ttft < 1e30 ? f->ttft : 0.0, f->tps, f->resident / 1e6, f->mapped / 1e6);
	}
	if (!o->json_out) {
		size_t k;
		json_t *fl;
		json_array_foreach(json_object_get(rep, HR_FAILURES), k, fl) printf("  %s\n", json_string_value(fl));
	}
	json_decref(rep);
	return pass ? 0 : 1;
}

/* agrun check: the suite, the model, 1. tokenizer and 2. teacher-forced
 * comparison of each prompt, 3. latency, the budgets, the report. */
static int cmd_check(int argc, char **argv)
{
	struct check_opts o = {0};
	int ex = check_parse_args(argc, argv, &o);
	if (ex >= 0)
		return ex;
	double slow = fault_slowdown();
	struct health_suite hs;
	double margin_tol, kl_tol;
	if ((ex = check_load_suite(&o, &hs, &margin_tol, &kl_tol)) >= 0)
		return ex;
	json_t *suite = hs.root;
	struct loaded l = {0};
	int r = load(o.dir, o.max_memory, &l);
	if (r) {
		json_decref(suite);
		return r;
	}
	struct check_figures f = {.max_memory = o.max_memory};
	rt_model_stream_info(l.m, &f.si);
	json_t *failures = json_array(), *rep_prompts = json_array();
	int vocab = l.info->vocab;
	json_t *mv = json_object_get(json_object_get(suite, "model"), "vocab");
	if (json_is_integer(mv) && json_integer_value(mv) != vocab) {
		char b[512];
		snprintf(b, sizeof b, "vocabulary has %d entries, the suite was recorded with %" JSON_INTEGER_FORMAT, vocab,
		         json_integer_value(mv));
		json_array_append_new(failures, json_string(b));
	}
	struct rt_error e = {0};
	int ctx = l.info->max_positions < 4096 ? l.info->max_positions : 4096;
	struct check_set cs = {.np = json_array_size(failures) ? 0 : json_array_size(hs.prompts)};
	check_prompts(&cs, hs.prompts, vocab, ctx, l.t);
	r = check_teacher_forced(&cs, &l, &f.si, o.max_memory, margin_tol, kl_tol, &f.n_batches, &e);
	if (r == 0)
		check_collect(&cs, failures, rep_prompts);
	if (f.si.streaming) {
		rt_model_stream_info(l.m, &f.si);
		f.bytes_read = f.si.bytes_read;
	}
	/* 3. latency on the first prompt; not when streaming: every token would
	 * read the whole model from the files, which measures the disk */
	f.ttft = 1e30;
	f.latency = !f.si.streaming;
	if (f.latency && r == 0 && cs.n_ok > 0) {
		struct rt_session *s = NULL;
		r = rt_session_new(l.m, ctx, &s, &e);
		if (r == 0)
			r = measure(s, cs.cps[0].hp.ids, cs.cps[0].hp.n, ctx, slow, &f.ttft, &f.tps, &e);
		rt_session_free(s);
	}
	check_set_free(&cs);
	/* The model's info dies with it: keep the device name for the report. */
	snprintf(f.device, sizeof f.device, "%s", l.info->backend);
	/* after the prompts ran: how much of the mapped weights is in RAM
	 * (a mixture-of-experts model larger than RAM runs with part paged out) */
	if (rt_model_resident(l.m, &f.resident, &f.mapped) < 0)
		f.resident = f.mapped = 0;
	unload(&l);
	if (r < 0) {
		fprintf(stderr, "agrun: %s\n", e.msg);
		json_decref(failures);
		json_decref(rep_prompts);
		json_decref(suite);
		return e.code > 0 && e.code <= 4 ? e.code : 1;
	}
	size_t n_correctness = json_array_size(failures);
	health_budget_failures(hs.budgets, f.latency, f.ttft, f.tps, failures);
	ex = check_report(&o, &f, failures, rep_prompts, n_correctness);
	json_decref(suite);
	return ex;
}

int agrun_health_main(int argc, char **argv)
{
	if (!strcmp(argv[0], "record"))
		return cmd_record(argc, argv);
	return cmd_check(argc, argv);
}
