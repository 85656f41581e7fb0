/* agrun: run a local model directory with the agrt runtime (CPU or CUDA).
 * Exit codes (bundle/error.h, shared by all tools): 0 ok, 1 internal, 2 usage,
 * 3 invalid/hostile model files, 4 I/O, 8 CUDA device unavailable or failed
 * (RT_ERR_DEVICE; exit 5 is "refused by policy" in the other tools). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agrt/agrt.h"
#include "bundle/error.h"
#include "health_suite.h"

#define MAX_IDS (1 << 20)

static void usage(FILE *f)
{
	fputs("usage: agrun MODEL_DIR (--prompt TEXT | --ids 1,2,3) [-n N] [--json] [--top-k K]\n"
	      "       agrun record MODEL_DIR --out SUITE.json [--prompts FILE] [-n N] [--top-k K] [--max-memory SIZE]\n"
	      "         [--tolerance-profile default|quantized]\n"
	      "       agrun check MODEL_DIR --suite SUITE.json [--json] [--max-memory SIZE]\n"
	      "         [--tolerance-profile default|quantized]\n"
	      "       agrun --version\n"
	      "       agrun MODEL_DIR --tokenize TEXT\n"
	      "       agrun MODEL_DIR --detokenize 1,2,3\n"
	      "       agrun MODEL_DIR --render-chat FILE [--template NAME]   (FILE: JSON with messages,\n"
	      "         add_generation_prompt, tools...; prints exactly the chat template's prompt; - for stdin)\n"
	      "       agrun MODEL_DIR --ids 1,2,3 --dump-logits FILE   (raw f32 [n][vocab], teacher forcing)\n"
	      "         --prompt-file FILE (or - for stdin) instead of --prompt\n"
	      "       agrun --version\n"
	      "options: --threads T  --ctx C  --no-special (no BOS/template on --prompt/--tokenize)\n"
	      "         --skip-special (drop special tokens when decoding)  --no-eos (ignore EOS)\n"
	      "         --raw (with --ids: do not load tokenizer.json, print ids)\n"
	      "         --device cpu|cuda|auto (default auto: CUDA when a GPU is present)\n"
	      "         --warmup (an untimed short run before the timed one, for benchmarks)\n"
	      "         --max-memory SIZE (K, M, G, T: stream the layers from the files when the weights\n"
	      "           take more than 3/4 of SIZE, keeping the process's peak RSS under it)\n"
	      "exit codes: 0 ok, 1 internal (check: failed), 2 usage, 3 invalid model files, 4 I/O error,\n"
	      "            8 CUDA device unavailable or failed\n",
	      f);
}

static int parse_ids(const char *s, int32_t **ret, size_t *ret_n)
{
	size_t n = 0, cap = 16;
	int32_t *v = malloc(cap * sizeof(*v));
	const char *p = s;

	if (!v)
		return -ENOMEM;
	while (*p) {
		char *end;
		long x;
		errno = 0;
		x = strtol(p, &end, 10);
		if (end == p || errno || x < 0 || x > INT32_MAX || (*end && *end != ',') || n >= MAX_IDS) {
			free(v);
			return -EINVAL;
		}
		if (n == cap) {
			int32_t *nv = realloc(v, 2 * cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap *= 2;
		}
		v[n++] = (int32_t)x;
		p = *end ? end + 1 : end;
	}
	if (n == 0) {
		free(v);
		return -EINVAL;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Whole file (or stdin for "-") into memory, at most 64 MiB. */
static int read_prompt(const char *path, char **ret, size_t *ret_len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *p = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t got;
		if (n + 65536 + 1 > cap) {
			char *np;
			cap = cap ? cap * 2 : 131072;
			if (cap > (64u << 20) + 1) {
				r = -EFBIG;
				break;
			}
			np = realloc(p, cap);
			if (!np) {
				r = -ENOMEM;
				break;
			}
			p = np;
		}
		got = fread(p + n, 1, 65536, f);
		n += got;
		if (got < 65536) {
			if (ferror(f))
				r = -EIO;
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	if (r < 0) {
		free(p);
		return r;
	}
	if (!p && !(p = malloc(1)))
		return -ENOMEM;
	p[n] = 0;
	*ret = p;
	*ret_len = n;
	return 0;
}

static int fail(const struct rt_error *e)
{
	fprintf(stderr, "agrun: %s\n", e->msg);
	return agrun_exit_code(e->code);
}

/* --device auto found no GPU in a CUDA build: say so once the run has
 * worked, so that a failing run still prints exactly one error line. */
static void note_fallback(const char *device, int n_gpu, const char *why)
{
	if (!strcmp(device, "auto") && n_gpu == 0)
		fprintf(stderr, "agrun: no usable CUDA device (%s); ran on the CPU\n", why);
}

/* --device auto with a GPU and a model the CUDA path does not run */
static void note_model_fallback(const struct rt_model *m)
{
	if (rt_model_get_info(m)->fallback[0])
		fprintf(stderr, "agrun: %s; ran on the CPU\n", rt_model_get_info(m)->fallback);
}

/* --render-chat: the model's chat template applied to FILE's context,
 * printed as is (no newline added). */
static int render_chat(const char *dir, const char *file, const char *name)
{
	struct rt_chat_template *t = NULL;
	struct rt_error e = {0};
	char *ctx = NULL, *text = NULL;
	size_t ctx_len = 0, len = 0;
	int r = read_prompt(file, &ctx, &ctx_len);

	if (r < 0) {
		fprintf(stderr, "agrun: %s: %s\n", file, r == -EFBIG ? "larger than 64 MiB" : strerror(-r));
		return r == -EFBIG ? 2 : 4;
	}
	if (rt_chat_template_load(dir, name, &t, &e) < 0 ||
	    rt_chat_template_render(t, ctx, ctx_len, &text, &len, &e) < 0) {
		free(ctx);
		rt_chat_template_free(t);
		return fail(&e);
	}
	free(ctx);
	rt_chat_template_free(t);
	r = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : 4;
	if (r)
		fprintf(stderr, "agrun: writing the prompt: %s\n", strerror(errno));
	free(text);
	return r;
}

/* The command line of a run (not record/check: health_suite.c). */
struct run_opts {
	const char *prompt_file, *render_file, *template_name;
	const char *prompt, *ids_s, *tok_s, *detok_s, *dump, *dir;
	int n_new, top_k, threads, ctx;
	bool json, special, skip_special, stop_eos, raw, warmup;
	const char *device;
	uint64_t max_memory;
};

/* One run's state, released by run_release(). */
struct run {
	struct run_opts o;
	char *prompt_buf;
	size_t prompt_len;
	struct rt_error e;
	struct rt_tokenizer *tok;
	struct rt_model *m;
	struct rt_session *s;
	struct rt_gen_result *res;
	int32_t *ids;
	size_t n_ids;
	char *text, tpath[PATH_MAX];
	float *logits;
	char why[256]; /* why --device auto found no GPU */
	int n_gpu;
};

/* Options into o; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct run_opts *o)
{
	enum {
		O_PROMPT = 256,
		O_IDS,
		O_JSON,
		O_TOPK,
		O_TOK,
		O_DETOK,
		O_DUMP,
		O_THREADS,
		O_CTX,
		O_NOSPECIAL,
		O_SKIPSPECIAL,
		O_NOEOS,
		O_RAW,
		O_PROMPTFILE,
		O_DEVICE,
		O_WARMUP,
		O_RENDER,
		O_TEMPLATE,
		O_MAXMEM
	};
	static const struct option lo[] = {
	    {"prompt", required_argument, NULL, O_PROMPT},
	    {"ids", required_argument, NULL, O_IDS},
	    {"json", no_argument, NULL, O_JSON},
	    {"top-k", required_argument, NULL, O_TOPK},
	    {"tokenize", required_argument, NULL, O_TOK},
	    {"detokenize", required_argument, NULL, O_DETOK},
	    {"dump-logits", required_argument, NULL, O_DUMP},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"ctx", required_argument, NULL, O_CTX},
	    {"no-special", no_argument, NULL, O_NOSPECIAL},
	    {"skip-special", no_argument, NULL, O_SKIPSPECIAL},
	    {"no-eos", no_argument, NULL, O_NOEOS},
	    {"raw", no_argument, NULL, O_RAW},
	    {"prompt-file", required_argument, NULL, O_PROMPTFILE},
	    {"device", required_argument, NULL, O_DEVICE},
	    {"warmup", no_argument, NULL, O_WARMUP},
	    {"render-chat", required_argument, NULL, O_RENDER},
	    {"template", required_argument, NULL, O_TEMPLATE},
	    {"max-memory", required_argument, NULL, O_MAXMEM},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	*o = (struct run_opts){.n_new = 32, .special = true, .stop_eos = true, .device = "auto"};
	int c;
	while ((c = getopt_long(argc, argv, "n:h", lo, NULL)) != -1) {
		char *end;
		long v;
		switch (c) {
		case 'n':
		case O_TOPK:
		case O_THREADS:
		case O_CTX:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 0 || v > (1 << 24)) {
				fprintf(stderr, "agrun: bad number '%s'\n", optarg);
				return 2;
			}
			if (c == 'n')
				o->n_new = (int)v;
			else if (c == O_TOPK)
				o->top_k = (int)v;
			else if (c == O_THREADS)
				o->threads = (int)v;
			else
				o->ctx = (int)v;
			break;
		case O_PROMPT: o->prompt = optarg; break;
		case O_IDS: o->ids_s = optarg; break;
		case O_JSON: o->json = true; break;
		case O_TOK: o->tok_s = optarg; break;
		case O_DETOK: o->detok_s = optarg; break;
		case O_DUMP: o->dump = optarg; break;
		case O_NOSPECIAL: o->special = false; break;
		case O_SKIPSPECIAL: o->skip_special = true; break;
		case O_NOEOS: o->stop_eos = false; break;
		case O_RAW: o->raw = true; break;
		case O_PROMPTFILE: o->prompt_file = optarg; break;
		case O_WARMUP: o->warmup = true; break;
		case O_RENDER: o->render_file = optarg; break;
		case O_TEMPLATE: o->template_name = optarg; break;
		case O_MAXMEM:
			if (agrun_parse_memory(optarg, &o->max_memory) < 0) {
				fprintf(stderr, "agrun: --max-memory: '%s' is not a size (bytes, or a number with K, M, G or T)\n",
				        optarg);
				return 2;
			}
			break;
		case O_DEVICE:
			if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda") && strcmp(optarg, "auto")) {
				fprintf(stderr, "agrun: --device must be cpu, cuda or auto, not '%s'\n", optarg);
				return 2;
			}
			o->device = optarg;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	return -1;
}

/* The prompt (--prompt or --prompt-file), one mode, the model directory and
 * the id list; returns -1 to go on, else the exit status. */
static int check_args(int argc, char **argv, struct run *R)
{
	struct run_opts *o = &R->o;
	if (o->prompt_file && !o->prompt) {
		int r = read_prompt(o->prompt_file, &R->prompt_buf, &R->prompt_len);
		if (r < 0) {
			fprintf(stderr, "agrun: %s: %s\n", o->prompt_file, r == -EFBIG ? "larger than 64 MiB" : strerror(-r));
			return r == -EFBIG ? 2 : 4;
		}
		o->prompt = R->prompt_buf;
	} else if (o->prompt) {
		R->prompt_len = strlen(o->prompt);
	}
	if (optind + 1 != argc || (!!o->prompt + !!o->ids_s + !!o->tok_s + !!o->detok_s) != 1 || o->top_k > 64 ||
	    (o->dump && !o->ids_s && !o->prompt) || o->threads > 1024) {
		usage(stderr);
		return 2;
	}
	o->dir = argv[optind];
	if (o->ids_s || o->detok_s) {
		if (parse_ids(o->ids_s ? o->ids_s : o->detok_s, &R->ids, &R->n_ids) < 0) {
			fprintf(stderr, "agrun: bad id list (comma-separated non-negative integers)\n");
			return 2;
		}
	}
	return -1;
}

/* DIR/tokenizer.json, when the mode needs text or the model has one (and
 * not --raw); returns -1 to go on, else the exit status. */
static int load_tokenizer(struct run *R)
{
	const struct run_opts *o = &R->o;
	snprintf(R->tpath, sizeof(R->tpath), "%s/tokenizer.json", o->dir);
	if (o->prompt || o->tok_s || o->detok_s || (!o->raw && access(R->tpath, F_OK) == 0))
		if (rt_tokenizer_load(R->tpath, &R->tok, &R->e) < 0)
			return fail(&R->e);
	return -1;
}

/* --tokenize TEXT: the ids, space-separated. */
static int run_tokenize(struct run *R)
{
	if (rt_tokenize(R->tok, R->o.tok_s, strlen(R->o.tok_s), R->o.special, &R->ids, &R->n_ids, &R->e) < 0)
		return fail(&R->e);
	for (size_t i = 0; i < R->n_ids; i++)
		printf(i ? " %d" : "%d", R->ids[i]);
	printf("\n");
	return 0;
}

/* --detokenize IDS: the text. */
static int run_detokenize(struct run *R)
{
	size_t len;
	if (rt_detokenize(R->tok, R->ids, R->n_ids, R->o.skip_special, &R->text, &len, &R->e) < 0)
		return fail(&R->e);
	fwrite(R->text, 1, len, stdout);
	printf("\n");
	return 0;
}

/* The prompt's ids; returns -1 to go on, else the exit status. */
static int encode_prompt(struct run *R)
{
	if (rt_tokenize(R->tok, R->o.prompt, R->prompt_len, R->o.special, &R->ids, &R->n_ids, &R->e) < 0)
		return fail(&R->e);
	if (R->n_ids == 0) {
		fprintf(stderr, "agrun: prompt encodes to zero tokens\n");
		return 2;
	}
	return -1;
}

/* The model on its device (--device), checked against the tokenizer, and a
 * session of --ctx positions; returns -1 to go on, else the exit status. */
static int load_model(struct run *R)
{
	struct run_opts *o = &R->o;
	int backend = RT_BACKEND_CPU;
	if (!strcmp(o->device, "cuda")) {
		backend = RT_BACKEND_CUDA;
	} else if (!strcmp(o->device, "auto")) {
		/* the GPU when there is one; a CPU-only build has nothing to
		 * fall back from and says nothing */
		R->n_gpu = rt_cuda_device_count(R->why, sizeof(R->why));
		backend = R->n_gpu > 0 ? RT_BACKEND_CUDA : RT_BACKEND_CPU;
	}
	int r = rt_model_load(o->dir,
	                      &(struct rt_load_opts){.n_threads = o->threads,
	                                             .backend = backend,
	                                             .simd = getenv("AGRT_SIMD"),
	                                             .device_fallback = !strcmp(o->device, "auto"),
	                                             .max_memory = o->max_memory,
	                                             .int4_columns = getenv("AGRT_INT4_COLUMNS") != NULL},
	                      &R->m, &R->e);
	if (r < 0)
		return fail(&R->e);
	if (R->tok && rt_tokenizer_vocab_size(R->tok) > rt_model_get_info(R->m)->vocab) {
		/* ids past the embedding table would be refused later anyway;
		 * say which file disagrees up front */
		fprintf(stderr, "agrun: %s: tokenizer has %d ids but config.json vocab_size is %d\n", R->tpath,
		        rt_tokenizer_vocab_size(R->tok), rt_model_get_info(R->m)->vocab);
		return 3;
	}
	if (o->ctx == 0) {
		/* just what this run needs, so long prompts work and short ones stay small */
		size_t need = R->n_ids + (o->dump ? 0 : (size_t)o->n_new);
		int maxp = rt_model_get_info(R->m)->max_positions;
		o->ctx = need > (size_t)maxp ? maxp : (int)need;
	}
	if (rt_session_new(R->m, o->ctx, &R->s, &R->e) < 0)
		return fail(&R->e);
	return -1;
}

/* --dump-logits FILE: the float32 logits of every prompt position. */
static int run_dump_logits(struct run *R)
{
	int V = rt_model_get_info(R->m)->vocab;
	R->logits = malloc(sizeof(float) * R->n_ids * V);
	if (!R->logits) {
		fprintf(stderr, "agrun: out of memory\n");
		return 1;
	}
	if (rt_session_forward(R->s, R->ids, R->n_ids, true, R->logits, &R->e) < 0)
		return fail(&R->e);
	note_fallback(R->o.device, R->n_gpu, R->why);
	note_model_fallback(R->m);
	FILE *f = fopen(R->o.dump, "wb");
	if (!f || fwrite(R->logits, sizeof(float) * V, R->n_ids, f) != R->n_ids || fclose(f) != 0) {
		fprintf(stderr, "agrun: %s: write failed\n", R->o.dump);
		return 4;
	}
	return 0;
}

/* --json: ids, text, timings, backend and the top-k of each step. */
static void print_json(const struct run *R)
{
	const struct rt_gen_result *res = R->res;
	const struct rt_model_info *info = rt_model_get_info(R->m);
	json_t *o = json_object(), *pi = json_array(), *oi = json_array(), *steps = json_array();
	double dtps = res->n_out > 1 && res->decode_ms > 0 ? (res->n_out - 1) / (res->decode_ms / 1e3) : 0;
	for (size_t i = 0; i < R->n_ids; i++)
		json_array_append_new(pi, json_integer(R->ids[i]));
	for (size_t i = 0; i < res->n_out; i++) {
		json_t *st = json_array();
		json_array_append_new(oi, json_integer(res->ids[i]));
		for (int k = 0; k < res->top_k; k++) {
			const struct rt_topk *t = &res->topk[i * res->top_k + k];
			json_array_append_new(st,
			                      json_pack("{s:i,s:f}", "id", (json_int_t)t->id, "logprob", (double)t->logprob));
		}
		json_array_append_new(steps, st);
	}
	json_object_set_new(o, "prompt_ids", pi);
	json_object_set_new(o, "output_ids", oi);
	json_object_set_new(o, "text", R->text ? json_stringn(R->text, strlen(R->text)) : json_null());
	json_object_set_new(o, "prefill_ms", json_real(res->prefill_ms));
	json_object_set_new(o, "prefill_tok_s", json_real(res->prefill_ms > 0 ? R->n_ids / (res->prefill_ms / 1e3) : 0));
	json_object_set_new(o, "decode_ms", json_real(res->decode_ms));
	json_object_set_new(o, "decode_tok_s", json_real(dtps));
	json_object_set_new(o, "hit_eos", json_boolean(res->hit_eos));
	json_object_set_new(o, "backend", json_string(info->backend));
	json_object_set_new(o, "threads", json_integer(info->n_threads));
	json_object_set_new(o, "load_ms", json_real(info->load_ms));
	json_object_set_new(o, "load_gbs", json_real(info->load_gbs));
	json_object_set_new(o, "repacked_bytes", json_integer((json_int_t)info->repacked_bytes));
	json_object_set_new(o, "pair_bytes", json_integer((json_int_t)info->pair_bytes));
	json_object_set_new(o, "top_k", steps);
	json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	printf("\n");
	json_decref(o);
}

/* --prompt / --ids: generate (after an untimed warm-up with --warmup) and
 * print the text, the ids or the --json object. */
static int run_generate(struct run *R)
{
	const struct run_opts *o = &R->o;
	if (o->warmup) {
		/* one untimed short run first, so that lazy initialisation
		 * (CUDA module loading, cuBLAS heuristics, page faults) is
		 * not charged to the timed prefill and decode */
		if (rt_generate(R->s, R->ids, R->n_ids, &(struct rt_gen_opts){.max_new = o->n_new < 2 ? o->n_new : 2},
		                &R->res, &R->e) < 0)
			return fail(&R->e);
		rt_gen_result_free(R->res);
		R->res = NULL;
	}
	if (rt_generate(R->s, R->ids, R->n_ids,
	                &(struct rt_gen_opts){.max_new = o->n_new, .top_k = o->top_k, .stop_at_eos = o->stop_eos},
	                &R->res, &R->e) < 0)
		return fail(&R->e);
	note_fallback(o->device, R->n_gpu, R->why);
	note_model_fallback(R->m);
	if (R->tok) {
		size_t len;
		if (rt_detokenize(R->tok, R->res->ids, R->res->n_out, o->skip_special, &R->text, &len, &R->e) < 0)
			return fail(&R->e);
	}
	if (o->json) {
		print_json(R);
	} else if (R->text) {
		fputs(R->text, stdout);
		printf("\n");
	} else {
		for (size_t i = 0; i < R->res->n_out; i++)
			printf(i ? " %d" : "%d", R->res->ids[i]);
		printf("\n");
	}
	return fflush(stdout) == 0 ? 0 : 4;
}

static void run_release(struct run *R)
{
	free(R->logits);
	free(R->prompt_buf);
	free(R->text);
	free(R->ids);
	rt_gen_result_free(R->res);
	rt_session_free(R->s);
	rt_model_free(R->m);
	rt_tokenizer_free(R->tok);
}

/* The steps of a run up to its mode; returns the exit status. */
static int run(int argc, char **argv, struct run *R)
{
	int ret = check_args(argc, argv, R);
	if (ret < 0)
		ret = load_tokenizer(R);
	if (ret >= 0)
		return ret;
	if (R->o.tok_s)
		return run_tokenize(R);
	if (R->o.detok_s)
		return run_detokenize(R);
	if (R->o.prompt && (ret = encode_prompt(R)) >= 0)
		return ret;
	if ((ret = load_model(R)) >= 0)
		return ret;
	return R->o.dump ? run_dump_logits(R) : run_generate(R);
}

int main(int argc, char **argv)
{
	/* Health suites (record in the dirty zone, check in the clean zone). */
	if (argc > 1 && (!strcmp(argv[1], "record") || !strcmp(argv[1], "check")))
		return agrun_health_main(argc - 1, argv + 1);
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("agrun %s\n", AGKIT_VERSION);
		return 0;
	}
	struct run R = {.n_gpu = -1};
	int ret = parse_args(argc, argv, &R.o);
	if (ret >= 0)
		return ret;
	const struct run_opts *o = &R.o;
	if (o->render_file || o->template_name) {
		if (!o->render_file || optind + 1 != argc || o->prompt || o->prompt_file || o->ids_s || o->tok_s ||
		    o->detok_s || o->dump) {
			usage(stderr);
			return 2;
		}
		return render_chat(argv[optind], o->render_file, o->template_name);
	}
	ret = run(argc, argv, &R);
	run_release(&R);
	return ret;
}
