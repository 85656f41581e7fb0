/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agserve check (see check.h).  For each prompt of the suite, three
 * completions requests (OpenAI semantics with vLLM's extensions):
 *
 *  1. tokenizer: the text with echo, max_tokens 0, logprobs 0 and
 *     return_tokens_as_token_ids: the engine's ids must be the recorded ids;
 *     the recorded output ids with echo: their text must be the recorded text;
 *  2. teacher-forced: the recorded prompt and output ids with echo,
 *     max_tokens 0 and logprobs CHECK_TOPK: each output position is compared
 *     with the recorded step by health_step_compare(), agrun check's code;
 *  3. latency (first prompt): streamed greedy runs, best of several.
 *
 * An engine reports only its top CHECK_TOPK alternatives: a recorded id
 * outside them counts with the smallest log-probability the engine reported
 * (an upper bound), so such a step's divergence is a lower bound: a failure
 * is certain, and the count of bounded ids is in the report.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bundle/fsutil.h"
#include "check.h"
#include "health_compare.h"
#include "health_suite.h"
#include "proxy.h"
#include "server.h"

#define CHECK_TOPK      20          /* alternatives asked per position (vLLM's default max_logprobs) */
#define CHECK_BODY_MAX  (64u << 20) /* bytes of one answer */
#define CHECK_TIMEOUT_S 600L        /* one request */
#define CHECK_NEW       32          /* tokens per latency run */

struct client {
	char base[64]; /* http://127.0.0.1:PORT */
	const char *name;
	char err[512];
};

struct body {
	char *p;
	size_t n;
	bool too_big;
	/* streaming: SSE lines and their arrival times */
	bool sse;
	char line[65536];
	size_t ln;
	double t_first, t_last;
	size_t n_first, n_later;
};

static void sse_line(struct body *b)
{
	b->line[b->ln] = 0;
	b->ln = 0;
	if (strncmp(b->line, "data: ", 6) || !strcmp(b->line + 6, "[DONE]"))
		return;
	json_t *o = json_loads(b->line + 6, 0, NULL), *c = json_array_get(json_object_get(o, "choices"), 0);
	json_t *toks = json_object_get(json_object_get(c, "logprobs"), "tokens");
	const char *text = json_string_value(json_object_get(c, "text"));
	size_t n = json_is_array(toks) ? json_array_size(toks) : text && *text ? 1 : 0;
	json_decref(o);
	if (!n)
		return;
	double t = mono_now();
	if (!b->t_first) {
		b->t_first = t;
		b->n_first = n;
	} else {
		b->t_last = t;
		b->n_later += n;
	}
}

static size_t on_data(char *d, size_t sz, size_t nm, void *u)
{
	struct body *b = u;
	size_t len = sz * nm;
	if (b->sse) {
		for (size_t i = 0; i < len; i++) {
			if (d[i] == '\n')
				sse_line(b);
			else if (b->ln < sizeof(b->line) - 1)
				b->line[b->ln++] = d[i];
		}
		return len;
	}
	if (b->n + len > CHECK_BODY_MAX) {
		b->too_big = true;
		return 0;
	}
	char *np = realloc(b->p, b->n + len + 1);
	if (!np)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, d, len);
	b->n += len;
	b->p[b->n] = 0;
	return len;
}

/* POSTs o (consumed) to /v1/completions.  Returns the answer's JSON, or
 * NULL with c->err set (transport failure, a status other than 200, not
 * JSON).  With b->sse the events go to b and the result is json_null(). */
static json_t *post(struct client *c, json_t *o, struct body *b)
{
	char url[128], *text;
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	long code = 0;
	json_t *r = NULL;
	if (c->name)
		json_object_set_new(o, "model", json_string(c->name));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	CURL *h = curl_easy_init();
	if (!text || !h || !hdr) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "%s/v1/completions", c->base);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, CHECK_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	CURLcode cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (cr != CURLE_OK && !(b->too_big || code != 200)) {
		snprintf(c->err, sizeof(c->err), "%s: %s", url, curl_easy_strerror(cr));
	} else if (b->too_big) {
		snprintf(c->err, sizeof(c->err), "%s: the answer is larger than %u bytes", url, CHECK_BODY_MAX);
	} else if (code != 200) {
		const char *m = NULL;
		json_t *e = b->p ? json_loads(b->p, 0, NULL) : NULL;
		m = json_string_value(json_object_get(json_object_get(e, "error"), "message"));
		snprintf(c->err, sizeof(c->err), "%s: HTTP %ld: %.300s", url, code, m ? m : b->p ? b->p : "");
		json_decref(e);
	} else if (b->sse) {
		r = json_null();
	} else if (!(r = b->p ? json_loads(b->p, 0, NULL) : NULL)) {
		snprintf(c->err, sizeof(c->err), "%s: the answer is not JSON", url);
	}
out:
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	free(text);
	return r;
}

static json_t *ids_json(const int32_t *ids, size_t n, const int32_t *more, size_t n_more)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer(ids[i]));
	for (size_t i = 0; i < n_more; i++)
		json_array_append_new(a, json_integer(more[i]));
	return a;
}

/* An echo request (max_tokens 0); prompt is consumed.  Returns choices[0]. */
static json_t *echo(struct client *c, json_t *prompt, int logprobs, json_t **ret_root)
{
	struct body b = {0};
	json_t *o = json_pack("{s:o, s:b, s:i, s:i}", "prompt", prompt, "echo", 1, "max_tokens", 0, "temperature", 0);
	if (logprobs >= 0) {
		json_object_set_new(o, "logprobs", json_integer(logprobs));
		json_object_set_new(o, "return_tokens_as_token_ids", json_true());
	}
	json_t *r = post(c, o, &b);
	free(b.p);
	json_t *ch = json_array_get(json_object_get(r, "choices"), 0);
	if (r && !json_is_object(ch)) {
		snprintf(c->err, sizeof(c->err), "%s/v1/completions: the answer has no choices", c->base);
		json_decref(r);
		return NULL;
	}
	*ret_root = r;
	return ch;
}

/* "token_id:N" -> N, or -1 */
static long token_id(const char *s)
{
	char *end;
	if (!s || strncmp(s, "token_id:", 9))
		return -1;
	errno = 0;
	long v = strtol(s + 9, &end, 10);
	return errno || *end || end == s + 9 || v < 0 || v > INT32_MAX ? -1 : v;
}

/* One position of an echo's logprobs: what health_step_compare() asks. */
struct pos {
	json_t *top; /* {"token_id:N": logprob} */
	int32_t want;
	double want_lp;
};

static double pos_lp(void *ctx, int32_t id)
{
	const struct pos *p = ctx;
	char k[32];
	if (id == p->want)
		return p->want_lp;
	snprintf(k, sizeof(k), "token_id:%d", id);
	json_t *v = json_object_get(p->top, k);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* Latency: best of streamed greedy runs of one prompt (at least three, and
 * 100 ms of decoding, at most 20), as agrun check measures it. */
static int measure(struct client *c, const int32_t *ids, size_t n, double *ret_ttft, double *ret_tps)
{
	double best_ttft = 1e30, best_tps = 0, spent = 0;
	for (int rep = 0; rep < 20 && (rep < 3 || spent < 100.0); rep++) {
		struct body b = {.sse = true};
		json_t *o =
		    json_pack("{s:o, s:i, s:i, s:b, s:i, s:b}", "prompt", ids_json(ids, n, NULL, 0), "max_tokens",
		              CHECK_NEW, "temperature", 0, "stream", 1, "logprobs", 0, "ignore_eos", 1);
		double t0 = mono_now();
		json_t *r = post(c, o, &b);
		if (!r)
			return -EIO;
		json_decref(r);
		if (!b.t_first) {
			snprintf(c->err, sizeof(c->err), "%s/v1/completions: the stream carried no tokens", c->base);
			return -EIO;
		}
		double ttft = (b.t_first - t0) * 1000, dec = b.t_last > b.t_first ? (b.t_last - b.t_first) * 1000 : 0;
		double tps = dec > 0 && b.n_later ? (double)b.n_later * 1000.0 / dec : 0;
		best_ttft = ttft < best_ttft ? ttft : best_ttft;
		best_tps = tps > best_tps ? tps : best_tps;
		spent += ttft + dec;
	}
	*ret_ttft = best_ttft;
	*ret_tps = best_tps;
	return 0;
}

/* The suite file's bytes, at most HEALTH_SUITE_MAX_BYTES (+1: then refused). */
static int read_suite(const char *path, struct health_suite *ret)
{
	char *buf = NULL;
	size_t len = 0;
	struct bn_error e = {0};
	if (bn_read_file(path, HEALTH_SUITE_MAX_BYTES, &buf, &len, &e) < 0)
		return -EIO;
	int r = health_suite_parse(buf, len, ret);
	free(buf);
	return r < 0 ? -EINVAL : 0;
}

/* A loopback listening socket on a free port. */
static int listen_loopback(int *ret_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	*ret_port = ntohs(a.sin_port);
	return fd;
}

static void usage(FILE *f)
{
	fputs("usage: agserve check --model DIR --suite SUITE.json [--json] [--name NAME] [--threads N] "
	      "[--device cpu|cuda|auto]\n",
	      f);
}

/* Checks one prompt; appends failures and the prompt's report entry.
 * Returns 0, or -EIO when a request failed (c->err). */
static int check_prompt(struct client *c, const struct health_suite *hs, struct health_prompt *hp, json_t *failures,
                        json_t *rep_prompts)
{
	char b[768];
	json_t *root = NULL, *ch;
	const char *name = hp->name;
	/* 1. Tokenizer: the engine's ids for the text, and the text of the output ids. */
	bool tok_ok = true;
	if (!(ch = echo(c, json_string(hp->text), 0, &root)))
		return -EIO;
	json_t *toks = json_object_get(json_object_get(ch, "logprobs"), "tokens");
	size_t ne = json_array_size(toks);
	bool ids_ok = json_is_array(toks);
	for (size_t i = 0; ids_ok && i < ne; i++)
		ids_ok = token_id(json_string_value(json_array_get(toks, i))) >= 0;
	if (!ids_ok) {
		json_decref(root);
		snprintf(c->err, sizeof(c->err),
		         "%s/v1/completions: the engine does not name tokens by id (return_tokens_as_token_ids)",
		         c->base);
		return -EIO;
	}
	/* the engine may add a BOS the recording did not (add_special false): as agrun, a longer
	 * encoding must end with the recorded ids */
	bool same = ne >= hp->n;
	for (size_t i = 0; same && i < hp->n; i++)
		same = token_id(json_string_value(json_array_get(toks, ne - hp->n + i))) == hp->ids[i];
	json_decref(root);
	if (!same) {
		tok_ok = false;
		snprintf(b, sizeof(b), "prompt '%s': the tokenizer encodes the text to other ids than recorded", name);
		json_array_append_new(failures, json_string(b));
	} else if (hp->output_text && hp->n_out) {
		if (!(ch = echo(c, ids_json(hp->out, hp->n_out, NULL, 0), -1, &root)))
			return -EIO;
		const char *t = json_string_value(json_object_get(ch, "text"));
		if (!t || strcmp(t, hp->output_text)) {
			tok_ok = false;
			snprintf(b, sizeof(b),
			         "prompt '%s': the tokenizer decodes the output to other text than recorded", name);
			json_array_append_new(failures, json_string(b));
		}
		json_decref(root);
	}
	/* 2. Teacher-forced: the prompt and the recorded output, scored by the engine. */
	double max_margin = 0, max_kl = 0;
	size_t bounded = 0;
	int bad_step = -1;
	if (hp->n_out) {
		if (!(ch = echo(c, ids_json(hp->ids, hp->n, hp->out, hp->n_out), CHECK_TOPK, &root)))
			return -EIO;
		json_t *lp = json_object_get(ch, "logprobs"), *tlp = json_object_get(lp, "token_logprobs"),
		       *tops = json_object_get(lp, "top_logprobs");
		if (json_array_size(tlp) != hp->n + hp->n_out || json_array_size(tops) != hp->n + hp->n_out) {
			json_decref(root);
			snprintf(c->err, sizeof(c->err),
			         "%s/v1/completions: the echo has log-probabilities for %zu tokens, %zu were sent",
			         c->base, json_array_size(tlp), hp->n + hp->n_out);
			return -EIO;
		}
		for (size_t k = 0; k < hp->n_out; k++) {
			struct pos p = {.top = json_array_get(tops, hp->n + k), .want = hp->out[k]};
			json_t *w = json_array_get(tlp, hp->n + k);
			if (!json_is_number(w) || !json_is_object(p.top)) {
				json_decref(root);
				snprintf(c->err, sizeof(c->err),
				         "%s/v1/completions: no log-probabilities for position %zu", c->base,
				         hp->n + k);
				return -EIO;
			}
			p.want_lp = json_number_value(w);
			double best = p.want_lp, floor = p.want_lp;
			const char *key;
			json_t *v;
			json_object_foreach(p.top, key, v) {
				double x = json_number_value(v);
				best = x > best ? x : best;
				floor = x < floor ? x : floor;
			}
			struct health_step st;
			if (health_step_compare(json_array_get(hp->steps, k), INT32_MAX, best, p.want_lp, pos_lp, &p,
			                        floor, &st) < 0) {
				snprintf(b, sizeof(b), "prompt '%s': step %zu of the suite is malformed", name, k);
				json_array_append_new(failures, json_string(b));
				bad_step = (int)k;
				break;
			}
			bounded += st.bounded;
			max_margin = st.margin > max_margin ? st.margin : max_margin;
			max_kl = st.kl > max_kl ? st.kl : max_kl;
			if (health_step_fails(&st, hs->margin_tol, hs->kl_tol) && bad_step < 0) {
				bad_step = (int)k;
				health_step_describe(b, sizeof(b), name, k, hp->out[k], &st, hs->margin_tol,
				                     hs->kl_tol);
				json_array_append_new(failures, json_string(b));
			}
		}
		json_decref(root);
	}
	json_array_append_new(rep_prompts, json_pack("{s:s, s:b, s:b, s:f, s:f, s:I}", "name", name, "pass",
	                                             tok_ok && bad_step < 0, "tokenizer_ok", tok_ok, "max_margin",
	                                             max_margin, "max_kl", max_kl, "bounded_ids", (json_int_t)bounded));
	return 0;
}

/* agserve check's command line. */
struct check_args {
	const char *dir, *suite_path, *name, *device;
	bool json_out;
	long threads;
};

/* Returns -1 to go on, else the exit status. */
static int check_parse_args(int argc, char **argv, struct check_args *a)
{
	static const struct option lo[] = {
	    {"model", required_argument, NULL, 'm'},   {"suite", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},          {"name", required_argument, NULL, 'n'},
	    {"threads", required_argument, NULL, 't'}, {"device", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},          {0},
	};
	*a = (struct check_args){.device = getenv("AGKIT_DEVICE")};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		char *end;
		switch (ch) {
		case 'm': a->dir = optarg; break;
		case 's': a->suite_path = optarg; break;
		case 'j': a->json_out = true; break;
		case 'n': a->name = optarg; break;
		case 'd': a->device = optarg; break;
		case 't':
			a->threads = strtol(optarg, &end, 10);
			if (*end || end == optarg || a->threads < 0 || a->threads > 1024) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	const char *device = a->device;
	if (!a->dir || !a->suite_path || optind != argc || (a->name && (!*a->name || strlen(a->name) > 255)) ||
	    (device && *device && strcmp(device, "cpu") && strcmp(device, "cuda") && strcmp(device, "auto"))) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* The engine: engine.json's command (proxy_open, as agserve --model does),
 * else this model served here (s) on a private port; c->base its endpoint,
 * device_name what runs it.  Returns -1 to go on, else the exit status. */
static int check_start(const struct check_args *a, const char *name, struct server *s, struct client *c,
                       struct engine **ret, char *device_name, size_t device_len)
{
	int backend = RT_BACKEND_CPU;
	const char *device = a->device;
	if (device && !strcmp(device, "cuda")) {
		backend = RT_BACKEND_CUDA;
	} else if (!device || !*device || !strcmp(device, "auto")) {
		char why[256];
		backend = rt_cuda_device_count(why, sizeof(why)) > 0 ? RT_BACKEND_CUDA : RT_BACKEND_CPU;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct engine_opts eo = {.dir = a->dir,
	                         .parallel = 1,
	                         .ctx = 0,
	                         .queue = 4,
	                         .threads = (int)a->threads,
	                         .backend = backend,
	                         .prefill_chunk = 256,
	                         .name = name};
	struct engine *e = NULL;
	char err[1024];
	if (engine_new(&eo, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "agserve: %s\n", err);
		return 3;
	}
	if (engine_proxy(e)) {
		snprintf(c->base, sizeof(c->base), "http://127.0.0.1:%d", proxy_port(engine_proxy(e)));
		snprintf(device_name, device_len, "external engine");
	} else {
		int port = 0, fd = listen_loopback(&port);
		s->o = (struct server_opts){
		    .max_body = 64u << 20, .connections = 8, .conn_timeout = 600, .max_tokens = 4096, .drain_s = 5};
		req_limits_default(&s->lim);
		if (fd < 0 || !(s->metrics = metrics_new()) || server_start(s, fd, err, sizeof(err)) < 0) {
			fprintf(stderr, "agserve: cannot serve the model on 127.0.0.1: %s\n",
			        fd < 0      ? strerror(-fd)
			        : s->metrics ? err
			                     : "out of memory");
			if (fd >= 0)
				close(fd);
			metrics_free(s->metrics);
			engine_unref(e);
			return 4;
		}
		snprintf(c->base, sizeof(c->base), "http://127.0.0.1:%d", port);
		snprintf(device_name, device_len, "%s", engine_backend(e));
		server_set_engine(s, engine_ref(e));
	}
	*ret = e;
	return -1;
}

/* Stops the engine: the last reference ends the external engine's process group. */
static void check_stop(struct engine *e, struct server *s)
{
	if (!engine_proxy(e)) {
		server_stop(s);
		server_set_engine(s, NULL);
		metrics_free(s->metrics);
	}
	engine_unref(e);
	curl_global_cleanup();
}

/* Each prompt through the API up to the first failing one (as agrun check:
 * the first failing prompt is the verdict), latency on the first. */
static int check_prompts(struct client *c, const struct health_suite *hs, json_t *failures, json_t *rep_prompts,
                         double *ttft, double *tps)
{
	size_t i;
	json_t *p;
	int r = 0;
	json_array_foreach(hs->prompts, i, p) {
		if (json_array_size(failures))
			break;
		struct health_prompt hp;
		if (health_prompt_parse(p, INT32_MAX, INT_MAX, &hp) < 0) {
			char b[128];
			snprintf(b, sizeof(b), "prompt %zu of the suite is malformed", i + 1);
			json_array_append_new(failures, json_string(b));
			break;
		}
		r = check_prompt(c, hs, &hp, failures, rep_prompts);
		if (r == 0 && i == 0)
			r = measure(c, hp.ids, hp.n, ttft, tps);
		health_prompt_free(&hp);
		if (r < 0)
			break;
	}
	return r;
}

/* The report (takes failures and rep_prompts), as JSON or a line with the
 * failures under it.  Returns the exit status. */
static int check_report(bool json_out, json_t *failures, json_t *rep_prompts, size_t n_correctness, double ttft,
                        double tps, const char *device_name, const char *endpoint)
{
	bool pass = json_array_size(failures) == 0, latency_only = !pass && n_correctness == 0;
	json_t *rep = json_pack("{s:b, s:b, s:o, s:f, s:f, s:s, s:s, s:o}", "pass", pass, "latency_only", latency_only,
	                        "failures", failures, "ttft_ms", ttft < 1e30 ? ttft : 0.0, "decode_tok_s", tps,
	                        "device", device_name, "endpoint", endpoint, "prompts", rep_prompts);
	if (json_out) {
		char *t = json_dumps(rep, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		printf("%s\n", t ? t : "{}");
		free(t);
	} else {
		printf("%s (ttft %.1f ms, decode %.1f tok/s)\n", pass ? "PASS" : "FAIL", ttft < 1e30 ? ttft : 0.0, tps);
		size_t k;
		json_t *f;
		json_array_foreach(json_object_get(rep, "failures"), k, f) printf("  %s\n", json_string_value(f));
	}
	json_decref(rep);
	return pass ? 0 : 1;
}

/* agserve check: the suite, the engine, the prompts through the API, the
 * budgets, the report. */
int agserve_check_main(int argc, char **argv)
{
	struct check_args a;
	int ex = check_parse_args(argc, argv, &a);
	if (ex >= 0)
		return ex;
	struct health_suite hs;
	int r = read_suite(a.suite_path, &hs);
	if (r < 0) {
		fprintf(stderr, "agserve: %s: %s\n", a.suite_path,
		        r == -EIO ? "cannot read it (missing, or larger than 16 MiB)" : "not a health suite");
		return r == -EIO ? 4 : 3;
	}
	char defname[256];
	const char *name = a.name;
	if (!name) {
		char *cp = strdup(a.dir);
		snprintf(defname, sizeof(defname), "%s", cp ? basename(cp) : "model");
		free(cp);
		name = defname;
	}
	static struct server s;
	struct client c = {.name = name};
	struct engine *e = NULL;
	char device_name[64];
	if ((ex = check_start(&a, name, &s, &c, &e, device_name, sizeof(device_name))) >= 0) {
		health_suite_free(&hs);
		return ex;
	}
	json_t *failures = json_array(), *rep_prompts = json_array();
	double ttft = 1e30, tps = 0;
	r = check_prompts(&c, &hs, failures, rep_prompts, &ttft, &tps);
	check_stop(e, &s);
	if (r < 0) {
		fprintf(stderr, "agserve: %s\n", c.err);
		json_decref(failures);
		json_decref(rep_prompts);
		health_suite_free(&hs);
		return 1;
	}
	size_t n_correctness = json_array_size(failures);
	health_budget_failures(hs.budgets, true, ttft, tps, failures);
	health_suite_free(&hs);
	return check_report(a.json_out, failures, rep_prompts, n_correctness, ttft, tps, device_name, c.base);
}
