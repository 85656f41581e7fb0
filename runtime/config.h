/* config.json / generation_config.json parsing for Llama-family models. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "agrt/agrt.h"

enum rt_arch { RT_ARCH_LLAMA, RT_ARCH_MISTRAL, RT_ARCH_QWEN2, RT_ARCH_QWEN3 };
enum rt_rope_kind { RT_ROPE_DEFAULT, RT_ROPE_LINEAR, RT_ROPE_LLAMA3 };

struct rt_config {
	int arch; /* enum rt_arch */
	char arch_name[64];
	int hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, vocab, max_pos;
	double rms_eps;
	double rope_theta;
	int rope_kind; /* enum rt_rope_kind */
	double rope_factor, rope_low_freq, rope_high_freq, rope_orig_max_pos;
	bool tie_embeddings;
	bool qkv_bias;      /* Qwen2, or Llama attention_bias */
	bool o_bias;        /* Llama attention_bias */
	bool qk_norm;       /* Qwen3 */
	int sliding_window; /* 0: none */
	int n_eos;
	int32_t eos[8];
	int32_t bos;
};

/* Parse DIR/config.json and the optional DIR/generation_config.json. */
int rt_config_load(const char *dir, struct rt_config *ret_cfg, struct rt_error *err);

#endif
