/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The model owner.  One engine per loaded model: the rt_model, its
 * tokenizer and chat template, --parallel sessions (one KV cache of --ctx
 * positions each), a bounded queue of tasks and one scheduler thread.
 * Request threads never run the model: they submit a task and wait for its
 * tokens.  Each scheduler step admits queued tasks into free sessions and
 * runs one rt_forward_batch over every active sequence (its next token, or
 * a chunk of a new prompt), then samples each sequence.
 *
 * Ownership: engines are reference counted (the server's current engine
 * holds one reference, each request another); tasks are shared by the
 * engine and the request until both let go (task_put).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agrt/agrt.h"

struct engine_opts {
	const char *dir; /* model directory */
	int parallel;    /* sessions */
	int ctx;         /* positions per session (0: model maximum, at most 4096) */
	int queue;       /* queued tasks at most */
	int threads;
	int backend;          /* enum rt_backend_kind */
	bool device_fallback; /* CUDA: the CPU runs models the device path does not (--device auto) */
	int prefill_chunk;    /* prompt tokens per step, all sequences together */
	/* what /health and the audit name */
	const char *name; /* model name accepted in requests */
	const char *bundle, *channel, *slot;
	uint64_t version;
	bool has_version;
};

enum finish { FIN_NONE, FIN_EOS, FIN_LENGTH, FIN_CANCEL, FIN_ERROR };

struct gen_params {
	int max_tokens;
	float temperature, top_p;
	int top_k;
	uint64_t seed;
	int n_top; /* top alternatives recorded per token, -1: no logprobs */
	bool ignore_eos; /* an end-of-sequence id does not end the generation */
};

#define TASK_TOP_MAX 20

struct tok_out {
	int32_t id;
	float logprob;
	int n_top;
	struct rt_topk top[TASK_TOP_MAX];
};

struct task;
struct engine;

int engine_new(const struct engine_opts *o, struct engine **ret, char *err, size_t errlen);
struct engine *engine_ref(struct engine *e);
/* Drops a reference; the last one stops the scheduler (after the running
 * tasks) and frees everything. */
void engine_unref(struct engine *e);

/* An engine whose model directory has engine.json runs no model itself:
 * its requests go to the external engine (proxy.h) after agserve's own key
 * check.  Only engine_name, engine_opts and engine_load_stats apply to it. */
struct proxy *engine_proxy(const struct engine *e);
const char *engine_name(const struct engine *e);
const struct engine_opts *engine_opts(const struct engine *e); /* strings owned by the engine */
int engine_ctx(const struct engine *e);
const struct rt_model_info *engine_info(const struct engine *e);
/* What serves: the runtime's backend ("cpu/avx512", "cuda/...") or, for an
 * external engine (engine.json, no model here), "external engine". */
const char *engine_backend(const struct engine *e);
bool engine_has_template(const struct engine *e);
bool engine_template_mentions(const struct engine *e, const char *name);
/* The shape of tool calls the model's chat template asks for (toolcall.h). */
int engine_tool_format(const struct engine *e);
/* step_max: the most sequences one forward step has carried since load */
/* Queue depth, active sequences, the widest step so far, and the prompt
 * tokens taken from a sequence's cache (shared prefixes) instead of fed. */
void engine_load_stats(const struct engine *e, int *ret_queued, int *ret_active, int *ret_step_max,
                       unsigned long long *ret_cached);

/* Tokenizer and template access, serialized (the tokenizer is not shared
 * between threads). */
int engine_tokenize(struct engine *e, const char *text, size_t len, bool add_special, int32_t **ret_ids, size_t *ret_n,
                    char *err, size_t errlen);
int engine_detokenize(struct engine *e, const int32_t *ids, size_t n, char **ret_text, size_t *ret_len);
/* ctx: {"messages":..., "add_generation_prompt":..., "tools":...}.  A model
 * without a chat template gets ChatML.  -EINVAL with the template's message
 * when it refuses the conversation. */
int engine_render(struct engine *e, json_t *ctx, char **ret_text, size_t *ret_len, char *err, size_t errlen);
bool engine_is_eos(const struct engine *e, int32_t id);
/* Whether text starts with the BOS token's text (then the prompt is
 * tokenized without adding another). */
bool engine_starts_with_bos(struct engine *e, const char *text, size_t len);

/* Queues a generation; -EAGAIN when the queue is full, -ESHUTDOWN when the
 * engine is stopping.  The prompt is copied. */
int engine_submit(struct engine *e, const int32_t *ids, size_t n, const struct gen_params *p, struct task **ret);
/* Waits (at most timeout_ms) until the task has more than `have` tokens or
 * has finished; copies tokens have.. into out (at most cap) and returns
 * how many; *ret_finish is the finish reason once all are delivered. */
size_t task_wait(struct task *t, size_t have, int timeout_ms, struct tok_out *out, size_t cap, enum finish *ret_finish);
/* Teacher-forced scoring (completions with echo): out[i] gets the
 * log-probability of ids[i + 1] given ids[0..i], and the n_top (<=
 * TASK_TOP_MAX) best alternatives at that position, for i < n - 1; the same
 * values as one rt_session_forward over all ids (agrun check).  2 <= n <=
 * engine_ctx.  Runs in the caller's thread on the engine's one scoring
 * session (created on first use, one KV cache of ctx positions more), its
 * forward passes taking turns with the scheduler's.  -ENOMEM, -EIO (the
 * model failed; err says why). */
int engine_score(struct engine *e, const int32_t *ids, size_t n, int n_top, struct tok_out *out, char *err,
                 size_t errlen);
/* Asks the scheduler to drop the task at its next step. */
void task_cancel(struct task *t);
/* Times (CLOCK_MONOTONIC seconds) of submission, first token, end; 0 if not yet. */
void task_times(struct task *t, double *submitted, double *first, double *done);
void task_put(struct task *t);
double mono_now(void);
