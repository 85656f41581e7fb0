/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

#define MAX_SERIES 256

struct series {
	char endpoint[32];
	int status;
	uint64_t n;
};

struct hist {
	const double *bounds;
	int nb;
	uint64_t counts[16];
	uint64_t count;
	double sum;
};

static const double ttft_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double rate_bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};

struct metrics {
	pthread_mutex_t mu;
	struct series s[MAX_SERIES];
	int ns;
	uint64_t tok_in, tok_out, load_failures;
	struct hist ttft, rate;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->ttft.bounds = ttft_bounds;
	m->ttft.nb = (int)(sizeof(ttft_bounds) / sizeof(*ttft_bounds));
	m->rate.bounds = rate_bounds;
	m->rate.nb = (int)(sizeof(rate_bounds) / sizeof(*rate_bounds));
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m);
}

void metrics_request(struct metrics *m, const char *endpoint, int status)
{
	pthread_mutex_lock(&m->mu);
	int i;
	for (i = 0; i < m->ns; i++)
		if (m->s[i].status == status && !strcmp(m->s[i].endpoint, endpoint))
			break;
	if (i == m->ns && m->ns < MAX_SERIES) {
		snprintf(m->s[i].endpoint, sizeof(m->s[i].endpoint), "%s", endpoint);
		m->s[i].status = status;
		m->ns++;
	}
	if (i < m->ns)
		m->s[i].n++;
	pthread_mutex_unlock(&m->mu);
}

void metrics_tokens(struct metrics *m, uint64_t in, uint64_t out)
{
	pthread_mutex_lock(&m->mu);
	m->tok_in += in;
	m->tok_out += out;
	pthread_mutex_unlock(&m->mu);
}

static void observe(struct metrics *m, struct hist *h, double v)
{
	pthread_mutex_lock(&m->mu);
	for (int i = 0; i < h->nb; i++)
		if (v <= h->bounds[i])
			h->counts[i]++;
	h->count++;
	h->sum += v;
	pthread_mutex_unlock(&m->mu);
}

void metrics_ttft(struct metrics *m, double seconds)
{
	observe(m, &m->ttft, seconds);
}

void metrics_decode_rate(struct metrics *m, double tokens_per_s)
{
	observe(m, &m->rate, tokens_per_s);
}

void metrics_load_failure(struct metrics *m)
{
	pthread_mutex_lock(&m->mu);
	m->load_failures++;
	pthread_mutex_unlock(&m->mu);
}

uint64_t metrics_load_failures(struct metrics *m)
{
	pthread_mutex_lock(&m->mu);
	uint64_t n = m->load_failures;
	pthread_mutex_unlock(&m->mu);
	return n;
}

struct sbuf {
	char *p;
	size_t n, cap;
};

static void put(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (w < 0)
			return;
		if (b->p && b->n + (size_t)w < b->cap) {
			b->n += (size_t)w;
			return;
		}
		size_t nc = (b->cap + (size_t)w + 1) * 2;
		char *np = realloc(b->p, nc);
		if (!np)
			return;
		b->p = np;
		b->cap = nc;
	}
}

/* Label values: escape backslash, quote and newline. */
static void put_label(struct sbuf *b, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '\\' || *v == '"')
			put(b, "\\%c", *v);
		else if (*v == '\n')
			put(b, "\\n");
		else
			put(b, "%c", *v);
	}
}

static void put_hist(struct sbuf *b, const char *name, const char *help, const struct hist *h)
{
	put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < h->nb; i++)
		put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)h->counts[i]);
	put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->count, name,
	    h->sum, name, (unsigned long long)h->count);
}

char *metrics_render(struct metrics *m, int queue_depth, int active, int step_max, unsigned long long prompt_cached,
                     const char *bundle, const char *channel, const char *version, const char *slot)
{
	struct sbuf b = {0};
	pthread_mutex_lock(&m->mu);
	put(&b, "# HELP agserve_requests_total Requests by endpoint and HTTP status.\n"
	        "# TYPE agserve_requests_total counter\n");
	for (int i = 0; i < m->ns; i++)
		put(&b, "agserve_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->s[i].endpoint,
		    m->s[i].status, (unsigned long long)m->s[i].n);
	put(&b,
	    "# HELP agserve_tokens_in_total Prompt tokens processed.\n# TYPE agserve_tokens_in_total counter\n"
	    "agserve_tokens_in_total %llu\n",
	    (unsigned long long)m->tok_in);
	put(&b,
	    "# HELP agserve_tokens_out_total Tokens generated.\n# TYPE agserve_tokens_out_total counter\n"
	    "agserve_tokens_out_total %llu\n",
	    (unsigned long long)m->tok_out);
	put_hist(&b, "agserve_time_to_first_token_seconds", "Time from request to its first generated token.",
	         &m->ttft);
	put_hist(&b, "agserve_decode_tokens_per_second", "Decode rate of each request after its first token.",
	         &m->rate);
	put(&b,
	    "# HELP agserve_model_load_failures_total Models that failed to load after a slot switch.\n"
	    "# TYPE agserve_model_load_failures_total counter\nagserve_model_load_failures_total %llu\n",
	    (unsigned long long)m->load_failures);
	pthread_mutex_unlock(&m->mu);
	put(&b,
	    "# HELP agserve_queue_depth Requests waiting for a sequence slot.\n# TYPE agserve_queue_depth gauge\n"
	    "agserve_queue_depth %d\n",
	    queue_depth);
	put(&b,
	    "# HELP agserve_active_sequences Sequences decoding now.\n# TYPE agserve_active_sequences gauge\n"
	    "agserve_active_sequences %d\n",
	    active);
	put(&b,
	    "# HELP agserve_batch_sequences_max Most sequences one forward step has carried (continuous batching).\n"
	    "# TYPE agserve_batch_sequences_max gauge\nagserve_batch_sequences_max %d\n",
	    step_max);
	put(&b,
	    "# HELP agserve_prompt_tokens_cached_total Prompt tokens whose keys and values a sequence's cache already "
	    "held (a shared prefix), so they were not computed again.\n"
	    "# TYPE agserve_prompt_tokens_cached_total counter\nagserve_prompt_tokens_cached_total %llu\n",
	    prompt_cached);
	if (bundle) {
		put(&b, "# HELP agserve_model_info The model being served.\n# TYPE agserve_model_info gauge\n"
		        "agserve_model_info{bundle=\"");
		put_label(&b, bundle);
		put(&b, "\",channel=\"");
		put_label(&b, channel);
		put(&b, "\",version=\"");
		put_label(&b, version);
		put(&b, "\",slot=\"");
		put_label(&b, slot);
		put(&b, "\"} 1\n");
	}
	return b.p;
}
