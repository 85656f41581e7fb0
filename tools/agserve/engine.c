/* SPDX-License-Identifier: Apache-2.0 */
/* agserve's model owner: sessions, task queue and the batching scheduler. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "toolcall.h"
#include "proxy.h"

#ifndef AGSERVE_PROXY
/* Built without libcurl: no external engines (a model directory with
 * engine.json fails to load with that reason). */
bool proxy_wanted(const char *model_dir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", model_dir, PROXY_ENGINE_FILE);
	return access(p, F_OK) == 0;
}
int proxy_open(const char *model_dir, const char *name, struct proxy **ret_proxy, char *err, size_t errlen)
{
	(void)name;
	(void)ret_proxy;
	snprintf(err, errlen, "%s/%s: this agserve was built without libcurl (no external engines)", model_dir,
	         PROXY_ENGINE_FILE);
	return -EOPNOTSUPP;
}
void proxy_unref(struct proxy *p)
{
	(void)p;
}
enum MHD_Result proxy_handle(struct proxy *p, struct MHD_Connection *conn, const char *method, const char *url,
                             const char *content_type, const char *body, size_t len, proxy_done_fn done, void *arg)
{
	(void)p;
	(void)conn;
	(void)method;
	(void)url;
	(void)content_type;
	(void)body;
	(void)len;
	(void)done;
	(void)arg;
	return MHD_NO; /* not reached: proxy_open() always fails */
}
#endif

struct task {
	struct engine *e;
	int refs; /* under e->mu: the request's and the engine's */
	int32_t *prompt;
	size_t n_prompt;
	struct gen_params p;
	struct tok_out *out; /* cap_out entries, grown by the scheduler (under e->mu) */
	size_t n_out, cap_out;
	enum finish fin;
	bool cancel;
	bool queued; /* in e's queue (under e->mu) */
	double t_sub, t_first, t_done;
	pthread_cond_t cv;
	struct task *next;
};

struct seq {
	struct task *t; /* NULL: free */
	struct rt_session *s;
	size_t fed;   /* prompt tokens in the cache */
	int32_t next; /* last sampled id, fed at the next step */
	uint64_t rng;
	/* the ids whose keys and values the session's cache holds, positions
	 * 0..n_hist-1: kept after the task ends, so that the next prompt that
	 * starts the same way (a chat's next turn, a repeated system prompt)
	 * is fed only from where it differs */
	int32_t *hist;
	size_t n_hist, cap_hist;
	uint64_t last_used;
};

struct engine {
	struct engine_opts o;
	char *dir, *name, *bundle, *channel, *slot;
	struct proxy *proxy; /* an external engine (engine.json): no model, no scheduler */
	struct rt_model *m;
	struct rt_tokenizer *tok;
	struct rt_chat_template *tmpl;
	char bos_text[64];
	size_t bos_len;
	int vocab, ctx;
	pthread_mutex_t tok_mu; /* tokenizer and template */
	pthread_mutex_t mu;     /* everything below, and every task's state */
	pthread_cond_t cv;      /* work for the scheduler */
	struct task *qhead, *qtail;
	int n_queued, n_active;
	int step_max; /* most sequences one forward step has carried */
	uint64_t steps;          /* forward steps run (the sessions' recency clock) */
	uint64_t prompt_cached;  /* prompt tokens taken from a session's cache instead of fed */
	struct seq *seqs;
	bool stopping;
	int refs;
	pthread_t thr;
	bool thr_started;
	pthread_mutex_t score_mu;       /* the scoring session (engine_score) */
	struct rt_session *score;       /* NULL until first used */
	float *logits;                  /* parallel x vocab */
	struct rt_sample_cand *scratch; /* vocab, the scheduler's sampling scratch */
};

double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void task_free(struct task *t)
{
	pthread_cond_destroy(&t->cv);
	free(t->prompt);
	free(t->out);
	free(t);
}

/* under e->mu */
static void task_unref_locked(struct task *t)
{
	if (--t->refs == 0)
		task_free(t);
}

static void task_finish(struct task *t, enum finish f)
{
	t->fin = f;
	t->t_done = mono_now();
	pthread_cond_broadcast(&t->cv);
	task_unref_locked(t);
}

static float log_sum_exp(const float *x, int n)
{
	float mx = x[0];
	double s = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > mx)
			mx = x[i];
	for (int i = 0; i < n; i++)
		s += exp((double)(x[i] - mx));
	return mx + (float)log(s);
}

/* Samples sequence q's next token from its logits row and records it. */
static void emit(struct engine *e, struct seq *q, const float *row)
{
	struct task *t = q->t;
	struct rt_sampler_opts so = {.temperature = t->p.temperature, .top_p = t->p.top_p, .top_k = t->p.top_k};
	int32_t id = rt_sample_with(row, e->vocab, &so, &q->rng, e->scratch);
	bool eos = !t->p.ignore_eos && engine_is_eos(e, id);

	if (!t->t_first)
		t->t_first = mono_now();
	if (!eos && t->n_out == t->cap_out) {
		size_t nc = t->cap_out * 2;
		struct tok_out *no = realloc(t->out, nc * sizeof(*no));
		if (!no) {
			task_finish(t, FIN_ERROR);
			q->t = NULL;
			e->n_active--;
			return;
		}
		t->out = no;
		t->cap_out = nc;
	}
	if (!eos) {
		struct tok_out *o = &t->out[t->n_out];
		o->id = id;
		o->n_top = 0;
		o->logprob = 0;
		if (t->p.n_top >= 0) {
			o->logprob = row[id] - log_sum_exp(row, e->vocab);
			if (t->p.n_top > 0) {
				rt_logits_topk(row, e->vocab, t->p.n_top, o->top);
				o->n_top = t->p.n_top;
			}
		}
		t->n_out++;
		pthread_cond_broadcast(&t->cv);
	}
	q->next = id;
	if (eos || t->n_out >= (size_t)t->p.max_tokens || rt_session_pos(q->s) >= e->ctx) {
		task_finish(t, eos ? FIN_EOS : FIN_LENGTH);
		q->t = NULL;
		e->n_active--;
	}
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
	size_t k = 0;
	while (k < na && k < nb && a[k] == b[k])
		k++;
	return k;
}

/* The free sequence for a prompt, or -1 when none is free. */
static int pick_seq(const struct engine *e, const int32_t *prompt, size_t n)
{
	int best = -1;
	size_t bk = 0;
	for (int i = 0; i < e->o.parallel; i++) {
		const struct seq *q = &e->seqs[i];
		if (q->t)
			continue;
		size_t k = common_prefix(q->hist, q->n_hist, prompt, n);
		if (best < 0 || k > bk || (k == bk && q->last_used < e->seqs[best].last_used)) {
			best = i;
			bk = k;
		}
	}
	return best;
}

/* Records ids as fed into q's cache (after the forward step that fed them). */
static int hist_add(struct seq *q, const int32_t *ids, size_t n)
{
	if (q->n_hist + n > q->cap_hist) {
		size_t nc = q->cap_hist ? q->cap_hist : 256;
		while (nc < q->n_hist + n)
			nc *= 2;
		int32_t *nh = realloc(q->hist, nc * sizeof(*nh));
		if (!nh)
			return -ENOMEM;
		q->hist = nh;
		q->cap_hist = nc;
	}
	memcpy(q->hist + q->n_hist, ids, n * sizeof(*ids));
	q->n_hist += n;
	return 0;
}

static void *scheduler(void *arg)
{
	struct engine *e = arg;
	int P = e->o.parallel;
	struct rt_session **ss = calloc((size_t)P, sizeof(*ss));
	const int32_t **ids = calloc((size_t)P, sizeof(*ids));
	size_t *n_ids = calloc((size_t)P, sizeof(*n_ids));
	int *which = calloc((size_t)P, sizeof(*which));
	struct rt_error err;

	pthread_mutex_lock(&e->mu);
	for (;;) {
		/* admit queued tasks into free sessions: the one whose cache
		 * shares the longest prefix with the prompt, else the one used
		 * least recently */
		for (;;) {
			if (!e->qhead)
				break;
			struct task *t = e->qhead;
			int i = pick_seq(e, t->prompt, t->n_prompt);
			if (i < 0)
				break;
			struct seq *q = &e->seqs[i];
			e->qhead = t->next;
			if (!e->qhead)
				e->qtail = NULL;
			e->n_queued--;
			t->queued = false;
			if (t->cancel) {
				task_finish(t, FIN_CANCEL);
				continue;
			}
			/* keep the shared prefix, but feed at least the prompt's last
			 * token: its logits give the first output token */
			size_t k = common_prefix(q->hist, q->n_hist, t->prompt, t->n_prompt);
			if (k >= t->n_prompt)
				k = t->n_prompt - 1;
			if (rt_session_truncate(q->s, (int)k) < 0)
				k = 0, rt_session_reset(q->s);
			q->n_hist = k;
			e->prompt_cached += k;
			q->t = t;
			q->fed = k;
			q->rng = t->p.seed;
			e->n_active++;
		}
		/* a request that went away frees its sequence here */
		for (int i = 0; i < P; i++) {
			struct seq *q = &e->seqs[i];
			if (q->t && q->t->cancel) {
				task_finish(q->t, FIN_CANCEL);
				q->t = NULL;
				e->n_active--;
			}
		}
		if (e->n_active == 0) {
			if (e->qhead)
				continue; /* a cancelled sequence just made room */
			if (e->stopping)
				break;
			pthread_cond_wait(&e->cv, &e->mu);
			continue;
		}
		/* one step: every decoding sequence's next token, and prompt
		 * chunks within the per-step budget so decoding is not starved */
		size_t nb = 0, budget = (size_t)e->o.prefill_chunk;
		for (int i = 0; i < P; i++) {
			struct seq *q = &e->seqs[i];
			if (!q->t)
				continue;
			if (q->fed < q->t->n_prompt) {
				size_t n = q->t->n_prompt - q->fed;
				if (n > budget)
					n = budget;
				if (!n)
					continue;
				budget -= n;
				ids[nb] = q->t->prompt + q->fed;
				n_ids[nb] = n;
			} else {
				ids[nb] = &q->next;
				n_ids[nb] = 1;
			}
			ss[nb] = q->s;
			which[nb++] = i;
		}
		if ((int)nb > e->step_max)
			e->step_max = (int)nb;
		pthread_mutex_unlock(&e->mu);
		int r = rt_forward_batch(ss, ids, n_ids, nb, e->logits, &err);
		pthread_mutex_lock(&e->mu);
		e->steps++;
		for (size_t b = 0; b < nb; b++) {
			struct seq *q = &e->seqs[which[b]];
			q->last_used = e->steps;
			if (r < 0 || hist_add(q, ids[b], n_ids[b]) < 0) {
				/* the cache no longer matches what is known of it */
				q->n_hist = 0;
				rt_session_reset(q->s);
			}
			if (r < 0) {
				task_finish(q->t, FIN_ERROR);
				q->t = NULL;
				e->n_active--;
				continue;
			}
			if (q->fed < q->t->n_prompt) {
				q->fed += n_ids[b];
				if (q->fed < q->t->n_prompt)
					continue;
			}
			emit(e, q, e->logits + b * (size_t)e->vocab);
		}
	}
	pthread_mutex_unlock(&e->mu);
	free(ss);
	free(ids);
	free(n_ids);
	free(which);
	return NULL;
}

static void engine_destroy(struct engine *e)
{
	if (!e)
		return;
	if (e->thr_started) {
		pthread_mutex_lock(&e->mu);
		e->stopping = true;
		pthread_cond_broadcast(&e->cv);
		pthread_mutex_unlock(&e->mu);
		pthread_join(e->thr, NULL);
	}
	for (int i = 0; e->seqs && i < e->o.parallel; i++) {
		rt_session_free(e->seqs[i].s);
		free(e->seqs[i].hist);
	}
	free(e->seqs);
	rt_session_free(e->score);
	pthread_mutex_destroy(&e->score_mu);
	free(e->logits);
	free(e->scratch);
	rt_chat_template_free(e->tmpl);
	rt_tokenizer_free(e->tok);
	rt_model_free(e->m);
	proxy_unref(e->proxy); /* the last reference stops the engine's process group */
	pthread_mutex_destroy(&e->mu);
	pthread_mutex_destroy(&e->tok_mu);
	pthread_cond_destroy(&e->cv);
	free(e->dir);
	free(e->name);
	free(e->bundle);
	free(e->channel);
	free(e->slot);
	free(e);
}

int engine_new(const struct engine_opts *o, struct engine **ret, char *errbuf, size_t errlen)
{
	struct engine *e = calloc(1, sizeof(*e));
	struct rt_error err = {0};
	char path[PATH_MAX];
	int r;

	if (!e)
		return -ENOMEM;
	e->o = *o;
	e->refs = 1;
	pthread_mutex_init(&e->mu, NULL);
	pthread_mutex_init(&e->tok_mu, NULL);
	pthread_mutex_init(&e->score_mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->dir = xstrdup(o->dir);
	e->name = xstrdup(o->name);
	e->bundle = xstrdup(o->bundle);
	e->channel = xstrdup(o->channel);
	e->slot = xstrdup(o->slot);
	e->o.dir = e->dir;
	e->o.name = e->name;
	e->o.bundle = e->bundle;
	e->o.channel = e->channel;
	e->o.slot = e->slot;
	if (!e->dir || !e->name) {
		r = -ENOMEM;
		snprintf(errbuf, errlen, "out of memory");
		goto fail;
	}
	if (proxy_wanted(o->dir)) {
		if ((r = proxy_open(o->dir, o->name, &e->proxy, errbuf, errlen)) < 0)
			goto fail;
		*ret = e;
		return 0;
	}
	snprintf(path, sizeof(path), "%s/tokenizer.json", o->dir);
	r = rt_tokenizer_load(path, &e->tok, &err);
	if (r < 0)
		goto fail_rt;
	r = rt_model_load(o->dir,
	                  &(struct rt_load_opts){.n_threads = o->threads,
	                                         .backend = o->backend,
	                                         .simd = getenv("AGRT_SIMD"),
	                                         .device_fallback = o->device_fallback},
	                  &e->m, &err);
	if (r < 0)
		goto fail_rt;
	e->vocab = rt_model_get_info(e->m)->vocab;
	if (rt_tokenizer_vocab_size(e->tok) > e->vocab) {
		snprintf(errbuf, errlen, "%s: tokenizer has %d ids but config.json vocab_size is %d", path,
		         rt_tokenizer_vocab_size(e->tok), e->vocab);
		r = -EINVAL;
		goto fail;
	}
	r = rt_chat_template_load(o->dir, NULL, &e->tmpl, &err);
	if (r < 0 && r != -ENOENT && r != -ENOSYS)
		goto fail_rt;
	e->tmpl = r < 0 ? NULL : e->tmpl;
	if (rt_model_get_info(e->m)->bos_id >= 0) {
		char *t = NULL;
		size_t n = 0;
		int32_t b = rt_model_get_info(e->m)->bos_id;
		if (rt_detokenize(e->tok, &b, 1, false, &t, &n, &err) == 0 && n < sizeof(e->bos_text)) {
			memcpy(e->bos_text, t, n);
			e->bos_len = n;
		}
		free(t);
	}
	e->ctx = o->ctx;
	if (e->ctx <= 0)
		e->ctx = 4096;
	if (e->ctx > rt_model_get_info(e->m)->max_positions)
		e->ctx = rt_model_get_info(e->m)->max_positions;
	e->seqs = calloc((size_t)o->parallel, sizeof(*e->seqs));
	e->logits = malloc(sizeof(float) * (size_t)o->parallel * (size_t)e->vocab);
	e->scratch = malloc(sizeof(*e->scratch) * (size_t)e->vocab);
	if (!e->seqs || !e->logits || !e->scratch) {
		r = -ENOMEM;
		snprintf(errbuf, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < o->parallel; i++) {
		r = rt_session_new(e->m, e->ctx, &e->seqs[i].s, &err);
		if (r < 0)
			goto fail_rt;
	}
	if ((r = -pthread_create(&e->thr, NULL, scheduler, e)) < 0) {
		snprintf(errbuf, errlen, "cannot start the scheduler thread: %s", strerror(-r));
		goto fail;
	}
	e->thr_started = true;
	*ret = e;
	return 0;
fail_rt:
	snprintf(errbuf, errlen, "%s", err.msg);
fail:
	engine_destroy(e);
	return r;
}

struct engine *engine_ref(struct engine *e)
{
	pthread_mutex_lock(&e->mu);
	e->refs++;
	pthread_mutex_unlock(&e->mu);
	return e;
}

void engine_unref(struct engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	int left = --e->refs;
	pthread_mutex_unlock(&e->mu);
	if (left == 0)
		engine_destroy(e);
}

struct proxy *engine_proxy(const struct engine *e)
{
	return e->proxy;
}

const char *engine_name(const struct engine *e)
{
	return e->name;
}

const struct engine_opts *engine_opts(const struct engine *e)
{
	return &e->o;
}

int engine_ctx(const struct engine *e)
{
	return e->ctx;
}

const struct rt_model_info *engine_info(const struct engine *e)
{
	return rt_model_get_info(e->m);
}

const char *engine_backend(const struct engine *e)
{
	return e->m ? rt_model_get_info(e->m)->backend : "external engine";
}

bool engine_has_template(const struct engine *e)
{
	return e->tmpl != NULL;
}

bool engine_template_mentions(const struct engine *e, const char *name)
{
	return e->tmpl && rt_chat_template_mentions(e->tmpl, name);
}

static bool tmpl_has_text(const void *ctx, const char *s)
{
	return rt_chat_template_has_text(ctx, s);
}

int engine_tool_format(const struct engine *e)
{
	return e->tmpl ? (int)tc_detect(tmpl_has_text, e->tmpl) : TC_NONE;
}

void engine_load_stats(const struct engine *e, int *ret_queued, int *ret_active, int *ret_step_max,
                       unsigned long long *ret_cached)
{
	if (e->proxy) {
		/* the external engine's own business */
		*ret_queued = *ret_active = *ret_step_max = 0;
		*ret_cached = 0;
		return;
	}
	pthread_mutex_lock((pthread_mutex_t *)&e->mu);
	*ret_queued = e->n_queued;
	*ret_active = e->n_active;
	*ret_step_max = e->step_max;
	*ret_cached = e->prompt_cached;
	pthread_mutex_unlock((pthread_mutex_t *)&e->mu);
}

bool engine_is_eos(const struct engine *e, int32_t id)
{
	const struct rt_model_info *mi = rt_model_get_info(e->m);
	for (int i = 0; i < mi->n_eos; i++)
		if (mi->eos_ids[i] == id)
			return true;
	return false;
}

bool engine_starts_with_bos(struct engine *e, const char *text, size_t len)
{
	return e->bos_len && len >= e->bos_len && !memcmp(text, e->bos_text, e->bos_len);
}

int engine_tokenize(struct engine *e, const char *text, size_t len, bool add_special, int32_t **ret_ids, size_t *ret_n,
                    char *errbuf, size_t errlen)
{
	struct rt_error err = {0};
	pthread_mutex_lock(&e->tok_mu);
	int r = rt_tokenize(e->tok, text, len, add_special, ret_ids, ret_n, &err);
	pthread_mutex_unlock(&e->tok_mu);
	if (r < 0)
		snprintf(errbuf, errlen, "%s", err.msg);
	return r;
}

int engine_detokenize(struct engine *e, const int32_t *ids, size_t n, char **ret_text, size_t *ret_len)
{
	struct rt_error err;
	pthread_mutex_lock(&e->tok_mu);
	int r = rt_detokenize(e->tok, ids, n, false, ret_text, ret_len, &err);
	pthread_mutex_unlock(&e->tok_mu);
	return r;
}

/* ChatML, for models that carry no template of their own. */
static int render_chatml(json_t *ctx, char **ret_text, size_t *ret_len)
{
	json_t *msgs = json_object_get(ctx, "messages"), *m;
	size_t i, cap = 64, n = 0;
	char *buf;

	json_array_foreach(msgs, i, m) {
		cap += 32 + strlen(json_string_value(json_object_get(m, "role"))) +
		       json_string_length(json_object_get(m, "content"));
	}
	if (!(buf = malloc(cap)))
		return -ENOMEM;
	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");
		n += (size_t)snprintf(buf + n, cap - n, "<|im_start|>%s\n", role);
		memcpy(buf + n, json_string_value(c), json_string_length(c));
		n += json_string_length(c);
		n += (size_t)snprintf(buf + n, cap - n, "<|im_end|>\n");
	}
	if (json_is_true(json_object_get(ctx, "add_generation_prompt")))
		n += (size_t)snprintf(buf + n, cap - n, "<|im_start|>assistant\n");
	buf[n] = 0;
	*ret_text = buf;
	*ret_len = n;
	return 0;
}

int engine_render(struct engine *e, json_t *ctx, char **ret_text, size_t *ret_len, char *errbuf, size_t errlen)
{
	struct rt_error err = {0};
	int r;
	if (!e->tmpl)
		return render_chatml(ctx, ret_text, ret_len);
	char *js = json_dumps(ctx, JSON_COMPACT);
	if (!js)
		return -ENOMEM;
	pthread_mutex_lock(&e->tok_mu);
	r = rt_chat_template_render(e->tmpl, js, strlen(js), ret_text, ret_len, &err);
	pthread_mutex_unlock(&e->tok_mu);
	free(js);
	if (r < 0) {
		snprintf(errbuf, errlen, "%s", err.msg);
		return err.code == RT_ERR_USAGE ? -EINVAL : r;
	}
	return 0;
}

int engine_submit(struct engine *e, const int32_t *ids, size_t n, const struct gen_params *p, struct task **ret)
{
	struct task *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->prompt = malloc(n * sizeof(*ids));
	t->cap_out = p->max_tokens < 64 ? (size_t)p->max_tokens : 64;
	t->out = calloc(t->cap_out, sizeof(*t->out));
	if (!t->prompt || !t->out) {
		free(t->prompt);
		free(t->out);
		free(t);
		return -ENOMEM;
	}
	memcpy(t->prompt, ids, n * sizeof(*ids));
	t->n_prompt = n;
	t->p = *p;
	if (t->p.n_top > TASK_TOP_MAX)
		t->p.n_top = TASK_TOP_MAX;
	t->e = e;
	t->refs = 2;
	t->t_sub = mono_now();
	pthread_cond_init(&t->cv, NULL);
	pthread_mutex_lock(&e->mu);
	if (e->stopping || e->n_queued >= e->o.queue) {
		int r = e->stopping ? -ESHUTDOWN : -EAGAIN;
		pthread_mutex_unlock(&e->mu);
		task_free(t);
		return r;
	}
	if (e->qtail)
		e->qtail->next = t;
	else
		e->qhead = t;
	e->qtail = t;
	e->n_queued++;
	t->queued = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	*ret = t;
	return 0;
}

size_t task_wait(struct task *t, size_t have, int timeout_ms, struct tok_out *out, size_t cap, enum finish *ret_finish)
{
	struct engine *e = t->e;
	struct timespec dl;
	size_t n = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&e->mu);
	while (t->n_out <= have && t->fin == FIN_NONE)
		if (pthread_cond_timedwait(&t->cv, &e->mu, &dl) == ETIMEDOUT)
			break;
	while (have + n < t->n_out && n < cap) {
		out[n] = t->out[have + n];
		n++;
	}
	*ret_finish = have + n == t->n_out ? t->fin : FIN_NONE;
	pthread_mutex_unlock(&e->mu);
	return n;
}

/* Rows of logits per forward pass while scoring: a bounded buffer (32 MiB
 * at most, up to 256 rows, the runtime's own step) for any vocabulary. */
#define SCORE_BUF_BYTES (32u << 20)

int engine_score(struct engine *e, const int32_t *ids, size_t n, int n_top, struct tok_out *out, char *errbuf,
                 size_t errlen)
{
	struct rt_error err = {0};
	size_t rows = SCORE_BUF_BYTES / ((size_t)e->vocab * sizeof(float));
	int r = 0;
	if (n < 2 || n > (size_t)e->ctx) {
		snprintf(errbuf, errlen, "cannot score %zu tokens (2..%d)", n, e->ctx);
		return -EINVAL;
	}
	if (n_top > TASK_TOP_MAX)
		n_top = TASK_TOP_MAX;
	rows = rows < 1 ? 1 : rows > 256 ? 256 : rows;
	float *logits = malloc(rows * (size_t)e->vocab * sizeof(float));
	if (!logits)
		return -ENOMEM;
	pthread_mutex_lock(&e->score_mu);
	if (!e->score && rt_session_new(e->m, e->ctx, &e->score, &err) < 0) {
		e->score = NULL;
		r = -EIO;
		goto out;
	}
	rt_session_reset(e->score);
	/* row j of the chunk at `at` predicts ids[at + j + 1] */
	for (size_t at = 0; at < n - 1; at += rows) {
		size_t c = n - 1 - at < rows ? n - 1 - at : rows;
		if (rt_session_forward(e->score, ids + at, c, true, logits, &err) < 0) {
			r = -EIO;
			goto out;
		}
		for (size_t j = 0; j < c; j++) {
			const float *row = logits + j * (size_t)e->vocab;
			struct tok_out *o = &out[at + j];
			o->id = ids[at + j + 1];
			o->logprob = row[o->id] - log_sum_exp(row, e->vocab);
			o->n_top = n_top > 0 ? n_top : 0;
			if (n_top > 0)
				rt_logits_topk(row, e->vocab, n_top, o->top);
		}
	}
out:
	if (r < 0)
		snprintf(errbuf, errlen, "%s", err.msg);
	pthread_mutex_unlock(&e->score_mu);
	free(logits);
	return r;
}

void task_cancel(struct task *t)
{
	struct engine *e = t->e;
	pthread_mutex_lock(&e->mu);
	if (t->queued) {
		/* out of the queue now: a request that went away does not hold
		 * a queue place (nor count in agserve_queue_depth) */
		struct task **pp = &e->qhead, *prev = NULL;
		while (*pp && *pp != t) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = t->next;
			if (e->qtail == t)
				e->qtail = prev;
			e->n_queued--;
			t->queued = false;
			t->cancel = true;
			task_finish(t, FIN_CANCEL); /* drops the engine's reference; the caller still holds its own */
			pthread_mutex_unlock(&e->mu);
			return;
		}
	}
	t->cancel = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

void task_times(struct task *t, double *submitted, double *first, double *done)
{
	pthread_mutex_lock(&t->e->mu);
	*submitted = t->t_sub;
	*first = t->t_first;
	*done = t->t_done;
	pthread_mutex_unlock(&t->e->mu);
}

void task_put(struct task *t)
{
	if (!t)
		return;
	struct engine *e = t->e;
	pthread_mutex_lock(&e->mu);
	task_unref_locked(t);
	pthread_mutex_unlock(&e->mu);
}
