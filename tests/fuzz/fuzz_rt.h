/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Helpers of the runtime harnesses (fuzz-safetensors, fuzz-config). */
#include "agrt/agrt.h"
#include "fuzz_common.h"

/* The tiny llama the runtime harnesses are built around: hidden 8,
 * intermediate 16, 1 layer, 2 heads of 4 (1 KV head), vocab 16.
 * gen-rt-corpus.py writes the same model's seeds. */
#define FUZZ_RT_CONFIG                                                                                             \
	"{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 8,\n"             \
	" \"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,\n"                      \
	" \"num_key_value_heads\": 1, \"vocab_size\": 16, \"max_position_embeddings\": 64,\n"                      \
	" \"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\", \"rope_theta\": 10000.0,\n"                           \
	" \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}\n"

/* rt_model_load(dir) with one thread; when it loads, a session and one
 * forward pass of 2 ids (all logits); frees everything.  Returns whether
 * the model loaded. */
bool fuzz_rt_load_and_run(const char *dir);
