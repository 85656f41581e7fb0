/* A job is published by bumping a generation counter; tasks are claimed from
 * an atomic counter so uneven tasks balance themselves.  Decode runs ~100
 * short jobs per token, so both sides spin briefly before sleeping on a
 * condition variable: a futex wake-up costs more than a typical job. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "threadpool.h"

#define SPIN_ROUNDS 200         /* short: on a loaded machine long spins steal the cores doing the work */

struct rt_pool {
        pthread_mutex_t mu;
        pthread_cond_t wake, done;
        pthread_t *tids;
        int n_workers;          /* threads besides the caller */
        int started;
        atomic_ulong gen;       /* bumped per job (under mu, read lock-free) */
        atomic_int busy;        /* workers still inside the job */
        atomic_bool quit;
        rt_task_fn fn;
        void *ctx;
        int n_tasks;
        atomic_int next;
};

struct worker_arg {
        struct rt_pool *p;
        int id;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
}

static void run_tasks(struct rt_pool *p, int thread) {
        for (;;) {
                int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
                if (t >= p->n_tasks)
                        break;
                p->fn(p->ctx, t, thread);
        }
}

static void *worker(void *arg) {
        struct rt_pool *p = ((struct worker_arg *)arg)->p;
        int id = ((struct worker_arg *)arg)->id;
        unsigned long seen = 0;

        free(arg);
        for (;;) {
                for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->gen) == seen && !atomic_load(&p->quit); i++)
                        cpu_relax();
                if (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) {
                        pthread_mutex_lock(&p->mu);
                        while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
                                pthread_cond_wait(&p->wake, &p->mu);
                        pthread_mutex_unlock(&p->mu);
                }
                if (atomic_load(&p->quit))
                        break;
                seen = atomic_load(&p->gen);
                run_tasks(p, id);
                if (atomic_fetch_sub(&p->busy, 1) == 1) {
                        pthread_mutex_lock(&p->mu);
                        pthread_cond_signal(&p->done);
                        pthread_mutex_unlock(&p->mu);
                }
        }
        return NULL;
}

void rt_pool_free(struct rt_pool *p) {
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
        pthread_cond_destroy(&p->done);
        free(p->tids);
        free(p);
}

int rt_pool_new(int n_threads, struct rt_pool **ret_pool) {
        struct rt_pool *p;

        if (n_threads < 1 || n_threads > 1024)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->wake, NULL);
        pthread_cond_init(&p->done, NULL);
        atomic_init(&p->gen, 0);
        atomic_init(&p->busy, 0);
        atomic_init(&p->quit, false);
        atomic_init(&p->next, 0);
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

int rt_pool_threads(const struct rt_pool *p) {
        return p->n_workers + 1;
}

void rt_pool_run(struct rt_pool *p, int n_tasks, rt_task_fn fn, void *ctx) {
        if (n_tasks <= 0)
                return;
        if (p->n_workers == 0 || n_tasks == 1) {
                for (int t = 0; t < n_tasks; t++)
                        fn(ctx, t, 0);
                return;
        }
        p->fn = fn;
        p->ctx = ctx;
        p->n_tasks = n_tasks;
        atomic_store(&p->next, 0);
        atomic_store(&p->busy, p->n_workers);
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->gen, 1);   /* publishes fn/ctx/n_tasks (seq_cst) */
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, 0);
        for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->busy) > 0; i++)
                cpu_relax();
        if (atomic_load(&p->busy) > 0) {
                pthread_mutex_lock(&p->mu);
                while (atomic_load(&p->busy) > 0)
                        pthread_cond_wait(&p->done, &p->mu);
                pthread_mutex_unlock(&p->mu);
        }
}
