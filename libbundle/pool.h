/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internal to libbundle: a fixed pool of worker threads fed by one thread
 * through a FIFO of jobs.  The feeding thread owns ordering: it submits jobs
 * in stream order and waits for them in the same order, so results are
 * consumed (written, hashed into a volume) exactly as a sequential loop would.
 * Memory is bounded by the caller's ring of job slots, not by the pool.
 */
#include <stdbool.h>

struct bn_job {
	struct bn_job *next;  /* queue link, owned by the pool */
	int state;            /* 0 idle, 1 queued or running, 2 done */
};

typedef void (*bn_pool_fn)(struct bn_job *job, void *ctx);

struct bn_pool;

/* Starts `threads` workers (at least 1) that run fn(job, ctx). */
int bn_pool_new(unsigned threads, bn_pool_fn fn, void *ctx, struct bn_pool **ret);
/* Queues a job; it must stay valid until bn_pool_wait() returns for it. */
void bn_pool_submit(struct bn_pool *p, struct bn_job *j);
/* Blocks until the job has run; an idle job returns at once. */
void bn_pool_wait(struct bn_pool *p, struct bn_job *j);
/* Lets queued jobs finish, joins the workers, frees.  Accepts NULL. */
void bn_pool_free(struct bn_pool *p);

/* Worker threads to use: n when non-zero, else the online CPUs (1..256). */
unsigned bn_threads_resolve(unsigned n);
/* Job slots in flight for `threads` workers when each slot holds
 * `slot_bytes`: threads + 2 (one being filled, one being drained), capped so
 * the ring stays under budget bytes, never fewer than 2. */
unsigned bn_ring_slots(unsigned threads, size_t slot_bytes, size_t budget);
