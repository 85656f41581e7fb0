/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"

struct bn_pool {
	pthread_mutex_t mu;
	pthread_cond_t work;   /* a job was queued or stop was set */
	pthread_cond_t done;   /* a job finished */
	struct bn_job *head, *tail;
	bool stop;
	bn_pool_fn fn;
	void *ctx;
	unsigned n_threads;
	pthread_t *threads;
};

static void *worker(void *arg)
{
	struct bn_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		/* Drain before stopping: a queued job's owner may still wait on it. */
		if (!p->head)
			break;
		struct bn_job *j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		p->fn(j, p->ctx);
		pthread_mutex_lock(&p->mu);
		j->state = 2;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int bn_pool_new(unsigned threads, bn_pool_fn fn, void *ctx, struct bn_pool **ret)
{
	if (threads == 0)
		threads = 1;
	struct bn_pool *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->threads = calloc(threads, sizeof *p->threads);
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	p->fn = fn;
	p->ctx = ctx;
	for (unsigned i = 0; i < threads; i++) {
		int r = pthread_create(&p->threads[i], NULL, worker, p);
		if (r != 0) {
			bn_pool_free(p);
			/* EAGAIN here means no memory or thread slots, not a busy lock. */
			return r == EAGAIN ? -ENOMEM : -r;
		}
		p->n_threads = i + 1;
	}
	*ret = p;
	return 0;
}

void bn_pool_submit(struct bn_pool *p, struct bn_job *j)
{
	pthread_mutex_lock(&p->mu);
	j->next = NULL;
	j->state = 1;
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
}

void bn_pool_wait(struct bn_pool *p, struct bn_job *j)
{
	pthread_mutex_lock(&p->mu);
	while (j->state == 1)
		pthread_cond_wait(&p->done, &p->mu);
	j->state = 0;
	pthread_mutex_unlock(&p->mu);
}

void bn_pool_free(struct bn_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	free(p->threads);
	free(p);
}

unsigned bn_threads_resolve(unsigned n)
{
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (unsigned)c : 1;
	}
	return n > 256 ? 256 : n;
}

unsigned bn_ring_slots(unsigned threads, size_t slot_bytes, size_t budget)
{
	size_t n = (size_t)threads + 2;
	if (slot_bytes && n * slot_bytes > budget)
		n = budget / slot_bytes;
	return n < 2 ? 2 : (unsigned)n;
}
