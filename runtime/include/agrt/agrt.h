/* SPDX-License-Identifier: Apache-2.0 */
/* agrt: CPU inference runtime for Llama-family decoder-only models.
 *
 * Conventions:
 *  - Every function that can fail returns 0 (or a count) on success and a
 *    negative errno on failure.  When `err` is non-NULL it receives an error
 *    class (enum rt_err_class) and a one-line message naming the file and
 *    the problem.  Library code never prints and never exits.
 *  - Output parameters `ret_*` are written only on success.
 *  - Destructors accept NULL.
 *  - A session or tokenizer must not be used by two threads at once.  A
 *    model may be shared by several sessions in different threads; their
 *    forward passes take turns (each already uses all cores).  Free the
 *    sessions before the model.
 */
#pragma once

/* Results that say whether a call worked must be looked at. */
#define AGRT_WUR __attribute__((warn_unused_result))

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error classes; they double as agrun's exit codes. */
enum rt_err_class {
	RT_ERR_OK = 0,
	RT_ERR_INTERNAL = 1, /* out of memory, bug, thread creation failure */
	RT_ERR_USAGE = 2,    /* caller passed bad arguments */
	RT_ERR_MODEL = 3,    /* invalid, unsupported or hostile model files */
	RT_ERR_IO = 4,       /* file missing, unreadable, mmap failure */
	RT_ERR_DEVICE = 5,   /* CUDA: no usable device, not built in, device error, out of device memory */
};

/* rt_load_opts.backend */
enum rt_backend_kind {
	RT_BACKEND_CPU = 0,
	RT_BACKEND_CUDA = 1, /* whole forward pass on CUDA device 0 (docs/RUNTIME.md) */
};

struct rt_error {
	int code; /* enum rt_err_class */
	char msg[1024];
};

struct rt_model;
struct rt_tokenizer;
struct rt_session;

/* Architecture facts read from config.json; sizes after validation. */
struct rt_model_info {
	char arch[64]; /* e.g. "LlamaForCausalLM" */
	int n_layers;
	int hidden;
	int intermediate;
	int n_heads;
	int n_kv_heads;
	int head_dim;
	int vocab;
	int max_positions;
	bool tied_embeddings;
	int n_eos;
	int32_t eos_ids[8];    /* from config.json and generation_config.json */
	int32_t bos_id;        /* -1 when absent */
	uint64_t weight_bytes; /* bytes of tensor data mapped */
	uint64_t n_params;
	char backend[32]; /* e.g. "cpu/avx2", "cpu/generic", "cuda/NVIDIA H200" */
	int n_threads;
	/* CUDA only (0 on the CPU): weight upload from the files to the device */
	double load_ms;
	double load_gbs;       /* uploaded bytes / load_ms, GB/s (1e9) */
	uint64_t device_bytes; /* device memory held by the model (weights) */
	/* CPU only: bytes of GPTQ/AWQ matrices (codes, scales, zero points)
	 * repacked into rows at load and held in memory; their mapped pages
	 * are released (rt_load_opts.int4_columns) */
	uint64_t repacked_bytes;
	/* CPU only: bytes of f32 (scale, zero * scale) pairs made at load for
	 * asymmetric int4 matrices in rows (F16/BF16 scales), which the AVX-512
	 * kernels build their group tables from */
	uint64_t pair_bytes;
	char fallback[128];    /* non-empty: CUDA was asked for with device_fallback and the CPU runs it, why */
};

struct rt_load_opts {
	int n_threads;    /* 0: all online CPUs */
	int backend;      /* enum rt_backend_kind */
	const char *simd; /* CPU kernels: NULL (or anything else) the best this CPU has without AMX,
	                   * "generic", "avx2" (not AVX-512), "avx512", or "amx" (bf16 matrices on the AMX
	                   * tiles where the CPU has them: faster batches and prefill, slower single-token
	                   * decode); the library reads no environment: agrun and agserve pass $AGRT_SIMD */
	/* RT_BACKEND_CUDA only: when the device path does not run this model
	 * (mixture of experts, yarn's attention factor, dynamic rope), load it
	 * on the CPU instead of failing; info->backend says where it runs and
	 * info->fallback why */
	bool device_fallback;
	/* CPU: the most memory the process may use, bytes (0: no limit).  When
	 * the weights take more than three quarters of it, the model streams
	 * its layers from the mapped files (docs/RUNTIME.md, "Models larger
	 * than memory"): only the layer being computed stays mapped in the
	 * process, so its peak RSS stays under max_memory.  A layer (or the
	 * output head) larger than half of max_memory fails the load with
	 * -E2BIG (RT_ERR_USAGE).  Ignored by the CUDA path, which uploads the
	 * weights with pread. */
	uint64_t max_memory;
	/* CPU: keep GPTQ and AWQ matrices in their own column layout and run
	 * the column kernels on them.  By default a matrix whose groups the row
	 * kernels take (no act-order; a multiple of 128 columns, or one group a
	 * row) is repacked at load into compressed-tensors' rows, which decode
	 * faster (docs/RUNTIME.md); streamed models (max_memory) never are.
	 * For benchmarks and tests (agrun: $AGRT_INT4_COLUMNS). */
	bool int4_columns;
};

/* Number of usable CUDA devices; 0 when there is none (no GPU, or the CUDA
 * plugin libagrt-cuda.so is not installed or cannot be loaded, e.g. without
 * libcudart on this host), -EOPNOTSUPP when the library was built without
 * CUDA.  Unless positive, why (may be NULL) receives the reason as one line. */
int rt_cuda_device_count(char *why, size_t len);

/* Load config.json, generation_config.json (optional) and the safetensors
 * weights (single file or sharded index) of a model directory.  Weights are
 * memory-mapped and used in their stored dtype (F32, F16, BF16). */
AGRT_WUR int rt_model_load(const char *dir, const struct rt_load_opts *opts, struct rt_model **ret_model, struct rt_error *err);
void rt_model_free(struct rt_model *m);
const struct rt_model_info *rt_model_get_info(const struct rt_model *m);
/* How much of the memory-mapped weight files is in RAM now (mincore; the
 * kernel pages experts of a model larger than RAM in and out), and the
 * files' total size.  Negative errno on failure. */
AGRT_WUR int rt_model_resident(const struct rt_model *m, uint64_t *ret_resident, uint64_t *ret_mapped);
/* Out-of-core mode (rt_load_opts.max_memory). */
struct rt_stream_info {
	bool streaming;         /* the layers are streamed from the files */
	uint64_t max_memory;    /* rt_load_opts.max_memory */
	uint64_t bytes_read;    /* streaming: weight bytes the forward passes have read so far */
	uint64_t largest_stage; /* streaming: bytes of the largest layer (or of the output head) */
};
void rt_model_stream_info(const struct rt_model *m, struct rt_stream_info *ret);

/* Tokenizer from the path of a tokenizer.json (Hugging Face tokenizers
 * format), usually MODEL_DIR/tokenizer.json. */
AGRT_WUR int rt_tokenizer_load(const char *path, struct rt_tokenizer **ret_tok, struct rt_error *err);
void rt_tokenizer_free(struct rt_tokenizer *t);
/* Encode UTF-8 text.  add_special applies the post-processor template
 * (e.g. BOS), like HF's add_special_tokens=True.  *ret_ids is malloc'ed. */
AGRT_WUR int rt_tokenize(const struct rt_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ret_ids,
                size_t *ret_n, struct rt_error *err);
/* Decode ids to UTF-8 text (NUL-terminated, malloc'ed).  skip_special drops
 * special added tokens like HF's skip_special_tokens. */
AGRT_WUR int rt_detokenize(const struct rt_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **ret_text,
                  size_t *ret_len, struct rt_error *err);
AGRT_WUR int rt_tokenizer_vocab_size(const struct rt_tokenizer *t);

/* A session owns a KV cache of max_ctx positions (0: model maximum, capped
 * at 4096) and scratch buffers. */
AGRT_WUR int rt_session_new(struct rt_model *m, int max_ctx, struct rt_session **ret_s, struct rt_error *err);
void rt_session_free(struct rt_session *s);
void rt_session_reset(struct rt_session *s);
AGRT_WUR int rt_session_pos(const struct rt_session *s);

/* Run n ids through the model as one batch, appending to the KV cache.
 * logits: when all_logits, n x vocab floats (teacher forcing: row i predicts
 * the token after ids[i]); otherwise vocab floats for the last position.
 * logits may be NULL when only the cache is wanted. */
AGRT_WUR int rt_session_forward(struct rt_session *s, const int32_t *ids, size_t n, bool all_logits, float *logits,
                       struct rt_error *err);

struct rt_gen_opts {
	int max_new;      /* tokens to generate at most */
	int top_k;        /* per-step top-k recorded, 0..64 */
	bool stop_at_eos; /* stop after emitting an EOS id */
};

struct rt_topk {
	int32_t id;
	float logprob;
};

struct rt_gen_result {
	int32_t *ids; /* n_out generated ids */
	size_t n_out;
	struct rt_topk *topk; /* n_out x top_k entries, best first */
	int top_k;
	double prefill_ms;
	double decode_ms; /* total time of the decode steps */
	bool hit_eos;
};

/* Greedy generation: reset, prefill the prompt as one batch, then decode. */
AGRT_WUR int rt_generate(struct rt_session *s, const int32_t *prompt, size_t n_prompt, const struct rt_gen_opts *opts,
                struct rt_gen_result **ret_res, struct rt_error *err);
void rt_gen_result_free(struct rt_gen_result *r);

/* Compute log-softmax of one logits row and the top-k (id, logprob) pairs,
 * best first; returns the argmax id. */
int32_t rt_logits_topk(const float *logits, int vocab, int k, struct rt_topk *out);

/* ---- Batched decoding (continuous batching, docs/SERVING.md) ----
 * One step for n sessions of the same model: session ss[i] appends n_ids[i]
 * tokens ids[i] to its KV cache (a prompt chunk or one decode token); logits
 * receives vocab floats per session for its last position (row i of an
 * n x vocab array; may be NULL).  The weight matrices are read once for all
 * sessions' tokens together, so decoding k sequences costs about one pass
 * over the weights.  Either every session advances or (on error) none does
 * beyond what it had; a session with n_ids[i] == 0 is skipped (its logits
 * row is left untouched).  A session may appear once per call (-EINVAL
 * otherwise); all sessions must belong to one model.  The logits equal what
 * each session's own rt_session_forward gives.  On the CPU the tokens of all
 * sessions are processed in steps of at most 256 rows (a long prompt chunk
 * is split across steps); the model holds the step's buffers, so a call
 * allocates nothing once warm when the sessions with tokens are contiguous
 * in ss[].  Sessions of a CUDA model run one after another. */
AGRT_WUR int rt_forward_batch(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids, size_t n,
                     float *logits, struct rt_error *err);
/* Teacher forcing of several sequences at once (the health check): as
 * rt_forward_batch, but logits (required) receives a row for every token,
 * the sessions' tokens one after another ([sum of n_ids][vocab]), each row
 * what rt_session_forward with all_logits gives.  On the CPU the layers are
 * the outer loop: each layer's weights are read once per call however many
 * tokens there are (a streamed model reads its files once); the call holds
 * the hidden states of all tokens ([sum of n_ids][hidden] floats).  Sessions
 * of a CUDA model run one after another. */
AGRT_WUR int rt_forward_batch_all(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids, size_t n,
                         float *logits, struct rt_error *err);
/* Drop cache positions >= pos (pos <= rt_session_pos); e.g. to retry. */
AGRT_WUR int rt_session_truncate(struct rt_session *s, int pos);
AGRT_WUR int rt_session_max_ctx(const struct rt_session *s);

/* ---- Sampling ----
 * Temperature, then top-k, then top-p over the distribution renormalized to
 * the top-k (transformers' order); candidates rank by probability, ties to
 * the lower id. */
struct rt_sampler_opts {
	float temperature; /* <= 0 (or NaN, inf): greedy (argmax, ties to the lowest id) */
	float top_p;       /* nucleus, (0, 1); <= 0 or >= 1 disables */
	int top_k;         /* <= 0 or >= vocab disables */
};
/* Sample an id from one logits row; *rng is the caller's 64-bit state
 * (seeded from the request's seed), advanced once per sampled (non-greedy)
 * call: the same seed and logits give the same ids.  Allocates vocab
 * candidates per call when top_k or top_p is active (on failure: argmax);
 * rt_sample_with takes that scratch from the caller instead and returns the
 * same ids for the same rng state. */
int32_t rt_sample(const float *logits, int vocab, const struct rt_sampler_opts *o, uint64_t *rng);
struct rt_sample_cand {
	int32_t id;
	float p;
};
/* scratch: vocab entries, contents undefined on return */
int32_t rt_sample_with(const float *logits, int vocab, const struct rt_sampler_opts *o, uint64_t *rng,
                       struct rt_sample_cand *scratch);

/* ---- Chat templates (a Jinja subset with transformers' semantics) ----
 * rt_chat_template_load reads MODEL_DIR/tokenizer_config.json "chat_template"
 * (a string, or a list of {"name","template"}: name NULL picks "default")
 * or MODEL_DIR/chat_template.jinja, and bos_token/eos_token from
 * tokenizer_config.json; -ENOENT (RT_ERR_MODEL) when the model has none. */
struct rt_chat_template;
AGRT_WUR int rt_chat_template_load(const char *model_dir, const char *name, struct rt_chat_template **ret,
                          struct rt_error *err);
/* Compile template source directly (tests, fuzzing); bos/eos may be NULL. */
AGRT_WUR int rt_chat_template_new(const char *src, size_t len, const char *bos, const char *eos,
                         struct rt_chat_template **ret, struct rt_error *err);
void rt_chat_template_free(struct rt_chat_template *t);
/* Render with ctx_json, a JSON object: messages, add_generation_prompt,
 * tools, and any extra keys become template variables (bos_token and
 * eos_token are added unless present).  A template's raise_exception() or
 * a runtime type error fails with RT_ERR_USAGE and the message.  The
 * result is NUL-terminated and malloc'ed. */
AGRT_WUR int rt_chat_template_render(const struct rt_chat_template *t, const char *ctx_json, size_t len, char **ret_text,
                            size_t *ret_len, struct rt_error *err);
/* A compiled template is immutable: several threads may render it at once.
 * Compile errors (syntax, unsupported statements, nesting over 64) fail
 * with RT_ERR_MODEL; renders over a limit (1e6 steps, 4 MiB output, value
 * nesting 64: docs/RUNTIME.md "Chat templates") with RT_ERR_USAGE.  For
 * raise_exception() err->msg is the template's message itself, with
 * nothing prepended (control characters become '?').
 * Whether the template's source refers to the variable name (e.g. "tools"). */
bool rt_chat_template_mentions(const struct rt_chat_template *t, const char *name);
/* Whether text occurs inside one of the template's literal texts or string
 * literals (e.g. "<tool_call>": how its tool calls look). */
bool rt_chat_template_has_text(const struct rt_chat_template *t, const char *text);

#ifdef __cplusplus
}
#endif
