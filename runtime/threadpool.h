/* SPDX-License-Identifier: Apache-2.0 */
/* Fixed-size pthreads pool running "parallel for" jobs; the caller works too. */
#pragma once

struct rt_pool;

/* fn(ctx, task, thread) is called once for each task in [0, n_tasks);
 * thread is in [0, rt_pool_threads()) and indexes per-thread scratch. */
typedef void (*rt_task_fn)(void *ctx, int task, int thread);

int rt_pool_new(int n_threads, struct rt_pool **ret_pool);
void rt_pool_free(struct rt_pool *p);
int rt_pool_threads(const struct rt_pool *p);
void rt_pool_run(struct rt_pool *p, int n_tasks, rt_task_fn fn, void *ctx);
