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

int main(int argc, char **argv)
{
	/* Health suites (record in the dirty zone, check in the clean zone). */
	if (argc > 1 && (!strcmp(argv[1], "record") || !strcmp(argv[1], "check")))
		return agrun_health_main(argc - 1, argv + 1);
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("agrun %s\n", AGKIT_VERSION);
		return 0;
	}
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
	const char *prompt_file = NULL, *render_file = NULL, *template_name = NULL;
	char *prompt_buf = NULL;
	size_t prompt_len = 0;
	const char *prompt = NULL, *ids_s = NULL, *tok_s = NULL, *detok_s = NULL, *dump = NULL, *dir;
	int n_new = 32, top_k = 0, threads = 0, ctx = 0, c, r, ret = 1;
	bool json = false, special = true, skip_special = false, stop_eos = true, raw = false, warmup = false;
	struct rt_error e = {0};
	struct rt_tokenizer *tok = NULL;
	struct rt_model *m = NULL;
	struct rt_session *s = NULL;
	struct rt_gen_result *res = NULL;
	int32_t *ids = NULL;
	size_t n_ids = 0;
	char *text = NULL, tpath[PATH_MAX];
	float *logits = NULL;
	const char *device = "auto";
	char why[256] = "";
	int backend = RT_BACKEND_CPU, n_gpu = -1;
	uint64_t max_memory = 0;

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
				n_new = (int)v;
			else if (c == O_TOPK)
				top_k = (int)v;
			else if (c == O_THREADS)
				threads = (int)v;
			else
				ctx = (int)v;
			break;
		case O_PROMPT: prompt = optarg; break;
		case O_IDS: ids_s = optarg; break;
		case O_JSON: json = true; break;
		case O_TOK: tok_s = optarg; break;
		case O_DETOK: detok_s = optarg; break;
		case O_DUMP: dump = optarg; break;
		case O_NOSPECIAL: special = false; break;
		case O_SKIPSPECIAL: skip_special = true; break;
		case O_NOEOS: stop_eos = false; break;
		case O_RAW: raw = true; break;
		case O_PROMPTFILE: prompt_file = optarg; break;
		case O_WARMUP: warmup = true; break;
		case O_RENDER: render_file = optarg; break;
		case O_TEMPLATE: template_name = optarg; break;
		case O_MAXMEM:
			if (agrun_parse_memory(optarg, &max_memory) < 0) {
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
			device = optarg;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (render_file || template_name) {
		if (!render_file || optind + 1 != argc || prompt || prompt_file || ids_s || tok_s || detok_s || dump) {
			usage(stderr);
			return 2;
		}
		return render_chat(argv[optind], render_file, template_name);
	}
	if (prompt_file && !prompt) {
		r = read_prompt(prompt_file, &prompt_buf, &prompt_len);
		if (r < 0) {
			fprintf(stderr, "agrun: %s: %s\n", prompt_file,
			        r == -EFBIG ? "larger than 64 MiB" : strerror(-r));
			return r == -EFBIG ? 2 : 4;
		}
		prompt = prompt_buf;
	} else if (prompt) {
		prompt_len = strlen(prompt);
	}
	if (optind + 1 != argc || (!!prompt + !!ids_s + !!tok_s + !!detok_s) != 1 || top_k > 64 ||
	    (dump && !ids_s && !prompt) || threads > 1024) {
		usage(stderr);
		return 2;
	}
	dir = argv[optind];
	if (ids_s || detok_s) {
		r = parse_ids(ids_s ? ids_s : detok_s, &ids, &n_ids);
		if (r < 0) {
			fprintf(stderr, "agrun: bad id list (comma-separated non-negative integers)\n");
			return 2;
		}
	}
	snprintf(tpath, sizeof(tpath), "%s/tokenizer.json", dir);
	if (prompt || tok_s || detok_s || (!raw && access(tpath, F_OK) == 0)) {
		r = rt_tokenizer_load(tpath, &tok, &e);
		if (r < 0) {
			ret = fail(&e);
			goto out;
		}
	}
	if (tok_s) {
		r = rt_tokenize(tok, tok_s, strlen(tok_s), special, &ids, &n_ids, &e);
		if (r < 0) {
			ret = fail(&e);
			goto out;
		}
		for (size_t i = 0; i < n_ids; i++)
			printf(i ? " %d" : "%d", ids[i]);
		printf("\n");
		ret = 0;
		goto out;
	}
	if (detok_s) {
		size_t len;
		r = rt_detokenize(tok, ids, n_ids, skip_special, &text, &len, &e);
		if (r < 0) {
			ret = fail(&e);
			goto out;
		}
		fwrite(text, 1, len, stdout);
		printf("\n");
		ret = 0;
		goto out;
	}
	if (prompt) {
		r = rt_tokenize(tok, prompt, prompt_len, special, &ids, &n_ids, &e);
		if (r < 0) {
			ret = fail(&e);
			goto out;
		}
		if (n_ids == 0) {
			fprintf(stderr, "agrun: prompt encodes to zero tokens\n");
			ret = 2;
			goto out;
		}
	}
	if (!strcmp(device, "cuda")) {
		backend = RT_BACKEND_CUDA;
	} else if (!strcmp(device, "auto")) {
		/* the GPU when there is one; a CPU-only build has nothing to
		 * fall back from and says nothing */
		n_gpu = rt_cuda_device_count(why, sizeof(why));
		backend = n_gpu > 0 ? RT_BACKEND_CUDA : RT_BACKEND_CPU;
	}
	r = rt_model_load(dir,
	                  &(struct rt_load_opts){.n_threads = threads,
	                                         .backend = backend,
	                                         .simd = getenv("AGRT_SIMD"),
	                                         .device_fallback = !strcmp(device, "auto"),
	                                         .max_memory = max_memory},
	                  &m, &e);
	if (r < 0) {
		ret = fail(&e);
		goto out;
	}
	if (tok && rt_tokenizer_vocab_size(tok) > rt_model_get_info(m)->vocab) {
		/* ids past the embedding table would be refused later anyway;
		 * say which file disagrees up front */
		fprintf(stderr, "agrun: %s: tokenizer has %d ids but config.json vocab_size is %d\n", tpath,
		        rt_tokenizer_vocab_size(tok), rt_model_get_info(m)->vocab);
		ret = 3;
		goto out;
	}
	if (ctx == 0) {
		/* just what this run needs, so long prompts work and short ones stay small */
		size_t need = n_ids + (dump ? 0 : (size_t)n_new);
		int maxp = rt_model_get_info(m)->max_positions;
		ctx = need > (size_t)maxp ? maxp : (int)need;
	}
	r = rt_session_new(m, ctx, &s, &e);
	if (r < 0) {
		ret = fail(&e);
		goto out;
	}
	if (dump) {
		int V = rt_model_get_info(m)->vocab;
		FILE *f;
		logits = malloc(sizeof(float) * n_ids * V);
		if (!logits) {
			fprintf(stderr, "agrun: out of memory\n");
			goto out;
		}
		r = rt_session_forward(s, ids, n_ids, true, logits, &e);
		if (r < 0) {
			ret = fail(&e);
			goto out;
		}
		note_fallback(device, n_gpu, why);
		note_model_fallback(m);
		f = fopen(dump, "wb");
		if (!f || fwrite(logits, sizeof(float) * V, n_ids, f) != n_ids || fclose(f) != 0) {
			fprintf(stderr, "agrun: %s: write failed\n", dump);
			ret = 4;
			goto out;
		}
		ret = 0;
		goto out;
	}
	if (warmup) {
		/* one untimed short run first, so that lazy initialisation
		 * (CUDA module loading, cuBLAS heuristics, page faults) is
		 * not charged to the timed prefill and decode */
		r = rt_generate(s, ids, n_ids, &(struct rt_gen_opts){.max_new = n_new < 2 ? n_new : 2}, &res, &e);
		if (r < 0) {
			ret = fail(&e);
			goto out;
		}
		rt_gen_result_free(res);
		res = NULL;
	}
	r = rt_generate(s, ids, n_ids, &(struct rt_gen_opts){.max_new = n_new, .top_k = top_k, .stop_at_eos = stop_eos},
	                &res, &e);
	if (r < 0) {
		ret = fail(&e);
		goto out;
	}
	note_fallback(device, n_gpu, why);
	note_model_fallback(m);
	if (tok) {
		size_t len;
		r = rt_detokenize(tok, res->ids, res->n_out, skip_special, &text, &len, &e);
		if (r < 0) {
			ret = fail(&e);
			goto out;
		}
	}
	if (json) {
		json_t *o = json_object(), *pi = json_array(), *oi = json_array(), *steps = json_array();
		double dtps = res->n_out > 1 && res->decode_ms > 0 ? (res->n_out - 1) / (res->decode_ms / 1e3) : 0;
		for (size_t i = 0; i < n_ids; i++)
			json_array_append_new(pi, json_integer(ids[i]));
		for (size_t i = 0; i < res->n_out; i++) {
			json_t *st = json_array();
			json_array_append_new(oi, json_integer(res->ids[i]));
			for (int k = 0; k < res->top_k; k++) {
				const struct rt_topk *t = &res->topk[i * res->top_k + k];
				json_array_append_new(
				    st, json_pack("{s:i,s:f}", "id", (json_int_t)t->id, "logprob", (double)t->logprob));
			}
			json_array_append_new(steps, st);
		}
		json_object_set_new(o, "prompt_ids", pi);
		json_object_set_new(o, "output_ids", oi);
		json_object_set_new(o, "text", text ? json_stringn(text, strlen(text)) : json_null());
		json_object_set_new(o, "prefill_ms", json_real(res->prefill_ms));
		json_object_set_new(o, "prefill_tok_s",
		                    json_real(res->prefill_ms > 0 ? n_ids / (res->prefill_ms / 1e3) : 0));
		json_object_set_new(o, "decode_ms", json_real(res->decode_ms));
		json_object_set_new(o, "decode_tok_s", json_real(dtps));
		json_object_set_new(o, "hit_eos", json_boolean(res->hit_eos));
		json_object_set_new(o, "backend", json_string(rt_model_get_info(m)->backend));
		json_object_set_new(o, "threads", json_integer(rt_model_get_info(m)->n_threads));
		json_object_set_new(o, "load_ms", json_real(rt_model_get_info(m)->load_ms));
		json_object_set_new(o, "load_gbs", json_real(rt_model_get_info(m)->load_gbs));
		json_object_set_new(o, "top_k", steps);
		json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
		printf("\n");
		json_decref(o);
	} else if (text) {
		fputs(text, stdout);
		printf("\n");
	} else {
		for (size_t i = 0; i < res->n_out; i++)
			printf(i ? " %d" : "%d", res->ids[i]);
		printf("\n");
	}
	ret = fflush(stdout) == 0 ? 0 : 4;
out:
	free(logits);
	free(prompt_buf);
	free(text);
	free(ids);
	rt_gen_result_free(res);
	rt_session_free(s);
	rt_model_free(m);
	rt_tokenizer_free(tok);
	return ret;
}
