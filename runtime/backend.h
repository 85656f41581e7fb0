/* SPDX-License-Identifier: Apache-2.0 */
/* Backend interface: the few operations the forward pass needs.  The CPU
 * backend implements them here; a CUDA backend (kernels/) can provide the
 * same table.  All activations are f32, row-major; weights stay in their
 * stored dtype and are converted inside the kernels. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agrt/agrt.h"

struct st_tensor;
struct st_set;
struct rt_config;

/* How a quantized matrix is stored (docs/RUNTIME.md "Quantized weights");
 * runtime/quant.c binds and validates it, backend_quant.c multiplies by it
 * straight from the mapping.  Weight (r, k) is, computed in f32:
 *   RT_WF_FP8:  code(r, k) * scale[r / sr][k / sc]     (code: F8_E4M3 or F8_E5M2 in data, [rows][cols])
 *   RT_WF_INT4: (nibble(r, k) - zero(r, g)) * scale(r, g), g = g_idx ? g_idx[k] : k / group */
enum rt_wfmt { RT_WF_DENSE = 0, RT_WF_FP8 = 1, RT_WF_INT4 = 2 };
enum rt_i4_layout {
	RT_I4_CT = 0,   /* compressed-tensors: data I32 [rows][ceil(cols/8)], nibble k%8; scale [rows][n_groups];
	                 * zero I32 [ceil(rows/8)][n_groups], nibble r%8 */
	RT_I4_GPTQ = 1, /* data I32 [cols/8][rows], nibble k%8; scale [n_groups][rows]; zero I32 [n_groups][rows/8],
	                 * nibble r%8 */
	RT_I4_AWQ = 2,  /* data I32 [cols][rows/8], nibble order 0,4,1,5,2,6,3,7 of r%8; scale [n_groups][rows];
	                 * zero I32 [n_groups][rows/8] in the same order */
};
struct rt_wquant {
	int fmt;           /* enum rt_wfmt; RT_WF_DENSE: nothing below is used */
	int layout;        /* int4: enum rt_i4_layout */
	const void *scale; /* F32, F16 or BF16 (scale_dtype), in the mapping or a repacked copy */
	int scale_dtype;
	int sr, sc;        /* fp8: rows and columns per scale; int4: sc = group size (columns) */
	int n_sc;          /* fp8: scales per scale row, ceil(cols / sc); int4: groups per row */
	const void *zero;  /* int4: packed zero points, NULL: zero_const for all */
	int zero_const;    /* int4 without zero points: 8 (the signed range's offset) */
	int zero_add;      /* int4: added to each stored zero (GPTQ's original format stores zero - 1) */
	const void *g_idx; /* int4: I32 [cols] group of each column (GPTQ act-order), NULL: k / sc */
	const float *sz;   /* int4 in rows with zero points: [rows][n_sc] pairs (scale, zero * scale) in f32
	                    * (rt_quant_pairs), or NULL: the AVX-512 kernels' group tables in one fma */
	const int32_t *perm; /* int4 in rows from act-order (rt_quant_to_rows): stored column k holds input
	                      * column perm[k] (the columns sorted by group), or NULL: the identity */
};

/* A weight matrix [rows][cols] in dtype (enum rt_dtype), row-major; or, when
 * q.fmt is not RT_WF_DENSE, a quantized one whose codes data points at. */
struct rt_weight {
	const void *data;
	int dtype;
	int rows, cols;
	const struct st_tensor *src; /* where it lies in the safetensors files (device upload); the
	                              * stored tensor, also after a CPU repack (repack_rows) */
	struct rt_wquant q;
};

struct rt_backend;

/* One sequence of a batched attention call. */
struct rt_att_seg {
	const float *kc, *vc; /* [ctx][nkv*hd], rows [0, pos0 + T) valid */
	int row0;             /* first query row in q/out */
	int T, pos0;
};

struct rt_backend_ops {
	const char *name;
	void (*free)(struct rt_backend *b);
	/* y[T][w.rows] = (accumulate ? y : 0) + x[T][w.cols] . w^T + bias[w.rows] (bias may be NULL) */
	void (*matmul)(struct rt_backend *b, float *y, const float *x, const struct rt_weight *w, const float *bias,
	               int T, bool accumulate);
	/* causal attention for T queries at positions pos0..pos0+T-1 against cache rows [0, pos0+T);
	 * q, out: [T][nh*hd]; kc, vc: [ctx][nkv*hd]; window > 0 hides keys with q_pos - k_pos >= window */
	void (*attention)(struct rt_backend *b, float *out, const float *q, const float *kc, const float *vc, int T,
	                  int pos0, int nh, int nkv, int hd, int window);
	/* the same for several sequences in one job (batched decoding): segment i's T queries are rows
	 * row0.. of q and out ([sum T][nh*hd]) and attend to its own cache kc/vc as attention() does */
	void (*attention_batch)(struct rt_backend *b, float *out, const float *q, const struct rt_att_seg *seg,
	                        int n_seg, int nh, int nkv, int hd, int window);
};

struct rt_backend {
	const struct rt_backend_ops *ops;
	int n_threads;
	void *priv;
};

/* simd: as rt_load_opts.simd. */
int rt_backend_cpu_new(int n_threads, const char *simd, struct rt_backend **ret_b);
/* Name of the SIMD path b runs ("avx512", "avx2" or "generic"). */
const char *rt_backend_cpu_simd(const struct rt_backend *b);
/* Whether b's int4 kernels read rt_wquant.sz (the AVX-512 ones do). */
bool rt_backend_cpu_int4_pairs(const struct rt_backend *b);
/* Room for x of cols columns gathered for act-order rows (rt_qcpu_reserve): 0 or -ENOMEM. */
int rt_backend_cpu_reserve_x(struct rt_backend *b, size_t cols);
/* fn(ctx, task, thread) for task = 0..n_tasks-1 on b's threads (the caller's
 * among them), returning when all have run; not while b runs a matmul. */
void rt_backend_cpu_run(struct rt_backend *b, int n_tasks, void (*fn)(void *ctx, int task, int thread), void *ctx);

/* One SwiGLU expert: gate/up [inter][hidden], down [hidden][inter]. */
struct rt_expert {
	struct rt_weight wg, wu, wd;
};

/* Per-layer weights as model.c binds them: matrices point into the
 * safetensors mapping, vectors are f32 host copies (NULL when absent). */
struct rt_layer {
	float *attn_norm;         /* [hidden] */
	float *ffn_norm;          /* [hidden] */
	float *q_norm, *k_norm;   /* [head_dim], Qwen3 */
	float *bq, *bk, *bv, *bo; /* [nh*hd], [nkv*hd], [nkv*hd], [hidden] or NULL */
	struct rt_weight wq;      /* [nh*hd][hidden] */
	struct rt_weight wk, wv;  /* [nkv*hd][hidden] */
	struct rt_weight wo;      /* [hidden][nh*hd] */
	struct rt_weight wg, wu;  /* [inter][hidden] */
	struct rt_weight wd;      /* [hidden][inter] */
	/* multi-head latent attention (cfg kv_lora_rank > 0): wq is q_proj when q_lora_rank is 0,
	 * wk/wv unused; bq is q_a_proj's bias, bk kv_a_proj_with_mqa's */
	struct rt_weight wq_a, wq_b; /* [q_lora][hidden], [nh*qk_head_dim][q_lora] */
	struct rt_weight wkv_a;      /* [kv_lora_rank + rope][hidden] */
	struct rt_weight wkv_b;      /* [nh*(nope + v_head_dim)][kv_lora_rank] */
	struct rt_weight wkb_t;      /* [nh*kv_lora_rank][nope]: kv_b_proj's key rows transposed per head
	                              * (a host copy in the stored dtype), for the absorbed query */
	float *q_a_norm, *kv_a_norm; /* [q_lora], [kv_lora_rank] */
	/* mixture of experts (moe): wg/wu/wd unused */
	bool moe;
	struct rt_weight router;   /* [n_experts][hidden] */
	float *router_bias;        /* [n_experts] e_score_correction_bias (sigmoid routing), else NULL */
	struct rt_expert *experts; /* [n_experts], still memory-mapped */
	struct rt_expert shared;   /* shared expert(s) when shared_inter > 0 */
	struct rt_weight sgate;    /* [1][hidden]: Qwen2-MoE shared_expert_gate */
};

/* ---- whole-forward device path (issue 10) ----
 * A device backend (CUDA in kernels/) runs the entire forward pass of a chunk
 * on the device: going through rt_backend_ops per matmul would copy the
 * activations across PCIe for every operation.  model.c validates and binds
 * the model exactly as for the CPU, then hands the bound description to the
 * device, which uploads what it needs; sessions and rt_session_forward
 * dispatch to it.  The device backend is a plugin loaded at run time (see
 * below); without one rt_dev_cuda() returns NULL. */
struct rt_dev_model_desc {
	const struct rt_config *cfg;
	const struct rt_layer *layers;   /* [n_layers] */
	const struct rt_weight *embed;   /* [vocab][hidden] */
	const struct rt_weight *lm_head; /* [vocab][hidden]; same data as embed when tied */
	const float *final_norm;         /* [hidden] */
	const float *inv_freq;           /* [head_dim/2], RoPE scaling already applied */
	const struct st_set *st;         /* files of the weights, for locate */
	/* rt_st_locate: where a weight lies in its file (the plugin links nothing of the runtime) */
	int (*locate)(const struct st_set *s, const struct st_tensor *t, const char **ret_path, uint64_t *ret_off);
	int n_threads;                   /* reader threads for the upload (0: default) */
};

struct rt_dev_load_stats {
	char name[32];         /* info->backend, e.g. "cuda/NVIDIA H200" */
	uint64_t upload_bytes; /* matrix bytes read from the files and copied to the device */
	double load_ms;        /* wall time of that upload */
	uint64_t device_bytes; /* device memory held by the model */
	int n_threads;         /* reader threads used */
};

struct rt_dev_ops {
	/* > 0 devices, 0 none (why: reason), never negative */
	int (*device_count)(char *why, size_t len);
	int (*model_new)(const struct rt_dev_model_desc *d, void **ret_dm, struct rt_dev_load_stats *st,
	                 struct rt_error *err);
	void (*model_free)(void *dm);
	int (*session_new)(void *dm, int max_ctx, void **ret_ds, struct rt_error *err);
	void (*session_free)(void *ds);
	/* T <= RT_DEV_CHUNK tokens at positions pos0.. appended to the session's cache.
	 * logits: NULL, [T][vocab] (all) or [vocab] (last position) in host memory. */
	int (*forward)(void *ds, const int32_t *ids, int T, int pos0, float *logits, bool all, struct rt_error *err);
};

#define RT_DEV_CHUNK 256

/* ---- the device plugin (runtime/dev_plugin.c loads it) ----
 * A plugin exports RT_DEV_PLUGIN_SYMBOL: given the runtime's ABI number and
 * the sizes of the structures it shares, it returns its table, or NULL when
 * it was built from another tree (any of them differs).  Bump RT_DEV_ABI
 * when a structure above changes meaning without changing size. */
#define RT_DEV_ABI           2
#define RT_DEV_PLUGIN_SYMBOL "agrt_dev_plugin"
typedef const struct rt_dev_ops *(*rt_dev_plugin_fn)(int abi, size_t config_size, size_t layer_size,
                                                      size_t desc_size);

/* The CUDA plugin's table, loaded on first use; NULL when there is none, with
 * *ret_why (may be NULL) saying why: not built, not installed, not loadable
 * (e.g. no libcudart on this host), or refused. */
const struct rt_dev_ops *rt_dev_cuda(const char **ret_why);
/* Whether this build has a CUDA plugin at all (-Dcuda found nvcc). */
bool rt_dev_cuda_built(void);
