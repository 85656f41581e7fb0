/* SPDX-License-Identifier: Apache-2.0 */
/* Thread pool for "parallel for" jobs.  The caller always works too, and it
 * waits only for tasks, never for threads: a job is done when every task has
 * run, whoever ran it.  On a busy machine a worker that is woken late simply
 * finds nothing left to claim, instead of holding up the caller (decode runs
 * ~100 short jobs per token, so that matters).
 *
 * Tasks are claimed from one 64-bit word: generation (24 bits) | task count
 * (20 bits) | next index (20 bits).  A claim is a compare-and-swap that
 * checks the generation, so a late worker can never take a task of a newer
 * job with the function pointer of an older one: a claim for generation g
 * succeeds only while job g is unfinished, and the caller does not touch
 * fn/ctx for the next job before job g is finished. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "threadpool.h"

#define SPIN_ROUNDS 200 /* short: on a loaded machine long spins steal the cores doing the work */
#define IDX_BITS    20
#define MAX_TASKS   ((1 << IDX_BITS) - 1)
#define GEN_SHIFT   (2 * IDX_BITS)

struct rt_pool {
	pthread_mutex_t mu;
	pthread_cond_t wake, done_cv;
	pthread_t *tids;
	int n_workers; /* threads besides the caller */
	int started;
	atomic_uint_fast64_t claim; /* gen | n_tasks | next */
	_Atomic(rt_task_fn) fn;
	_Atomic(void *) ctx;
	atomic_int done; /* tasks finished in the current job */
	atomic_bool quit;
	uint64_t gen; /* caller side only */
};

struct worker_arg {
	struct rt_pool *p;
	int id;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static inline uint64_t gen_of(uint64_t w)
{
	return w >> GEN_SHIFT;
}

/* Run tasks of generation g until none is left; returns tasks run. */
static int run_tasks(struct rt_pool *p, uint64_t g, rt_task_fn fn, void *ctx, int thread)
{
	int ran = 0;
	for (;;) {
		uint64_t w = atomic_load(&p->claim);
		uint64_t n = (w >> IDX_BITS) & MAX_TASKS, i = w & MAX_TASKS;
		if (gen_of(w) != g || i >= n)
			return ran;
		if (!atomic_compare_exchange_weak(&p->claim, &w, w + 1))
			continue;
		fn(ctx, (int)i, thread);
		ran++;
		/* the last task of the job wakes a sleeping caller */
		if (atomic_fetch_add(&p->done, 1) + 1 == (int)n) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done_cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

static void *worker(void *arg)
{
	struct rt_pool *p = ((struct worker_arg *)arg)->p;
	int id = ((struct worker_arg *)arg)->id;
	uint64_t seen = 0;

	free(arg);
	for (;;) {
		uint64_t g;
		rt_task_fn fn;
		void *ctx;
		for (int i = 0; i < SPIN_ROUNDS && gen_of(atomic_load(&p->claim)) == seen && !atomic_load(&p->quit);
		     i++)
			cpu_relax();
		if (gen_of(atomic_load(&p->claim)) == seen && !atomic_load(&p->quit)) {
			pthread_mutex_lock(&p->mu);
			while (gen_of(atomic_load(&p->claim)) == seen && !atomic_load(&p->quit))
				pthread_cond_wait(&p->wake, &p->mu);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->quit))
			break;
		g = gen_of(atomic_load(&p->claim));
		fn = atomic_load(&p->fn);
		ctx = atomic_load(&p->ctx);
		seen = g;
		run_tasks(p, g, fn, ctx, id);
	}
	return NULL;
}

void rt_pool_free(struct rt_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->quit, true);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->started; i++)
		pthread_join(p->tids[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done_cv);
	free(p->tids);
	free(p);
}

int rt_pool_new(int n_threads, struct rt_pool **ret_pool)
{
	struct rt_pool *p;

	if (n_threads < 1 || n_threads > 1024)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	atomic_init(&p->claim, 0);
	atomic_init(&p->fn, NULL);
	atomic_init(&p->ctx, NULL);
	atomic_init(&p->done, 0);
	atomic_init(&p->quit, false);
	p->n_workers = n_threads - 1;
	p->tids = calloc(n_threads, sizeof(*p->tids));
	if (!p->tids) {
		rt_pool_free(p);
		return -ENOMEM;
	}
	for (int i = 0; i < p->n_workers; i++) {
		struct worker_arg *a = malloc(sizeof(*a));
		int r;
		if (!a) {
			rt_pool_free(p);
			return -ENOMEM;
		}
		a->p = p;
		a->id = i + 1;
		r = pthread_create(&p->tids[i], NULL, worker, a);
		if (r) {
			free(a);
			rt_pool_free(p);
			return -r;
		}
		p->started++;
	}
	*ret_pool = p;
	return 0;
}

int rt_pool_threads(const struct rt_pool *p)
{
	return p->n_workers + 1;
}

void rt_pool_run(struct rt_pool *p, int n_tasks, rt_task_fn fn, void *ctx)
{
	uint64_t g;

	if (n_tasks <= 0)
		return;
	if (p->n_workers == 0 || n_tasks == 1) {
		for (int t = 0; t < n_tasks; t++)
			fn(ctx, t, 0);
		return;
	}
	/* callers split work into far fewer tasks; run any excess inline */
	while (n_tasks > MAX_TASKS) {
		fn(ctx, --n_tasks, 0);
	}
	g = ++p->gen & ((1ull << (64 - GEN_SHIFT)) - 1);
	if (g == 0)
		g = ++p->gen & ((1ull << (64 - GEN_SHIFT)) - 1); /* 0 means "no job yet" to workers */
	atomic_store(&p->fn, fn);
	atomic_store(&p->ctx, ctx);
	atomic_store(&p->done, 0);
	atomic_store(&p->claim, g << GEN_SHIFT | (uint64_t)n_tasks << IDX_BITS);
	pthread_mutex_lock(&p->mu);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	run_tasks(p, g, fn, ctx, 0);
	for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->done) < n_tasks; i++)
		cpu_relax();
	if (atomic_load(&p->done) < n_tasks) {
		pthread_mutex_lock(&p->mu);
		while (atomic_load(&p->done) < n_tasks)
			pthread_cond_wait(&p->done_cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
}
