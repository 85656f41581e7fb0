/* SPDX-License-Identifier: Apache-2.0 */
/* config.json / generation_config.json parsing for Llama-family models. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "agrt/agrt.h"

enum rt_arch {
	RT_ARCH_LLAMA,
	RT_ARCH_MISTRAL,
	RT_ARCH_QWEN2,
	RT_ARCH_QWEN3,
	RT_ARCH_MIXTRAL,
	RT_ARCH_QWEN2_MOE,
	RT_ARCH_QWEN3_MOE,
	RT_ARCH_DEEPSEEK_V3,
	RT_ARCH_GLM4_MOE,
	RT_ARCH_MINIMAX_M2,
};

#define RT_MAX_LAYERS  1024
#define RT_MAX_EXPERTS 1024
#define RT_MAX_TOPK    64
enum rt_rope_kind { RT_ROPE_DEFAULT, RT_ROPE_LINEAR, RT_ROPE_LLAMA3, RT_ROPE_YARN, RT_ROPE_DYNAMIC };

struct rt_config {
	int arch; /* enum rt_arch */
	char arch_name[64];
	int hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, vocab, max_pos;
	double rms_eps;
	double rope_theta;
	int rope_kind; /* enum rt_rope_kind */
	double rope_factor, rope_low_freq, rope_high_freq, rope_orig_max_pos;
	double rope_beta_fast, rope_beta_slow;   /* yarn */
	double rope_factor_cfg;                  /* yarn: 'factor' as written (rope_factor may be max_pos / original) */
	bool rope_truncate;                      /* yarn: round the correction range outwards */
	double rope_attn_factor;                 /* yarn: cos/sin scale (1 otherwise) */
	double rope_mscale, rope_mscale_all_dim; /* yarn: 0 when absent */
	int rope_dim;                            /* rotated dims per head (head_dim unless partial) */
	bool tie_embeddings;
	bool qkv_bias;      /* Qwen2, or Llama attention_bias */
	bool o_bias;        /* Llama attention_bias */
	bool qk_norm;       /* Qwen3 */
	bool qk_norm_full;  /* MiniMax-M2: q/k RMSNorm over all heads together ([nh*hd], [nkv*hd]) */
	int sliding_window; /* 0: none */
	/* mixture of experts (n_experts == 0: dense) */
	int n_experts, top_k;          /* routed experts, experts per token */
	int moe_inter;                 /* intermediate size of one routed expert */
	int shared_inter;              /* intermediate size of the shared expert(s), 0: none */
	bool shared_gate;              /* Qwen2-MoE: sigmoid(shared_expert_gate . x) scales the shared expert */
	bool norm_topk;                /* renormalise the top-k weights to sum 1 */
	bool moe_layer[RT_MAX_LAYERS]; /* layer i's MLP is the MoE block */
	bool sigmoid_router;           /* DeepSeek-V3: sigmoid scores + e_score_correction_bias, group-limited */
	int n_group, topk_group;       /* expert groups, groups kept per token */
	double routed_scale;           /* routed_scaling_factor (1 otherwise) */
	/* multi-head latent attention (DeepSeek-V3): kv_lora_rank > 0 */
	int q_lora_rank; /* 0: plain q_proj */
	int kv_lora_rank, qk_nope_dim, qk_rope_dim, v_head_dim;
	bool rope_interleave; /* rotary pairs (2i, 2i+1) instead of (i, i + dim/2) */
	double attn_scale;    /* softmax scale (MLA: qk_head_dim^-0.5 times yarn's mscale^2) */
	int n_mtp;            /* num_nextn_predict_layers: present in the files, skipped */
	/* sizes per token derived from the above */
	int q_dim;  /* q buffer floats (nh*hd, or MLA nh*max(qk_head_dim, kv_lora_rank + rope)) */
	int kv_dim; /* KV cache floats per layer and position (K; V the same again unless MLA) */
	int n_eos;
	int32_t eos[8];
	int32_t bos;
};

/* Parse DIR/config.json and the optional DIR/generation_config.json. */
int rt_config_load(const char *dir, struct rt_config *ret_cfg, struct rt_error *err);

/* yarn's attention scale: 0.1 * mscale * ln(scale) + 1 (1 for scale <= 1). */
double rt_yarn_mscale(double scale, double mscale);
