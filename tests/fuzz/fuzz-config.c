/* SPDX-License-Identifier: Apache-2.0 */
/* config.json: the input is config.json next to a fixed tiny
 * model.safetensors that holds the tensors of every supported architecture
 * at hidden 8, intermediate 16, 1 layer, 2 heads of 4, 1 KV head, vocab 16
 * (lm_head, q/k/v/o biases, q/k norms, 2 experts of 16 with router, shared
 * expert(s) and correction bias, latent attention with ranks 8: the binder
 * ignores what a config does not ask for); when the model loads, one
 * forward pass. */
#include <jansson.h>
#include <string.h>

#include "fuzz_rt.h"

static uint8_t *model;
static size_t model_len;

struct tdesc {
	const char *name;
	int rows, cols; /* cols 0: a vector */
};

/* Deterministic weights: a 32-bit LCG mapped to [-0.5, 0.5). */
static float next_weight(uint32_t *state)
{
	*state = *state * 1664525u + 1013904223u;
	return (float)(*state >> 8) / (float)(1u << 24) - 0.5f;
}

static void build_model(void)
{
	static const struct tdesc t[] = {
		{"model.embed_tokens.weight", 16, 8},
		{"lm_head.weight", 16, 8},
		{"model.norm.weight", 8, 0},
		{"model.layers.0.input_layernorm.weight", 8, 0},
		{"model.layers.0.post_attention_layernorm.weight", 8, 0},
		{"model.layers.0.self_attn.q_proj.weight", 8, 8},
		{"model.layers.0.self_attn.k_proj.weight", 4, 8},
		{"model.layers.0.self_attn.v_proj.weight", 4, 8},
		{"model.layers.0.self_attn.o_proj.weight", 8, 8},
		{"model.layers.0.self_attn.q_proj.bias", 8, 0},
		{"model.layers.0.self_attn.k_proj.bias", 4, 0},
		{"model.layers.0.self_attn.v_proj.bias", 4, 0},
		{"model.layers.0.self_attn.o_proj.bias", 8, 0},
		{"model.layers.0.self_attn.q_norm.weight", 4, 0},
		{"model.layers.0.self_attn.k_norm.weight", 4, 0},
		{"model.layers.0.mlp.gate_proj.weight", 16, 8},
		{"model.layers.0.mlp.up_proj.weight", 16, 8},
		{"model.layers.0.mlp.down_proj.weight", 8, 16},
		/* mixture of experts: 2 experts of 16 under each checkpoint's names */
		{"model.layers.0.block_sparse_moe.gate.weight", 2, 8},
		{"model.layers.0.block_sparse_moe.e_score_correction_bias", 2, 0},
		{"model.layers.0.block_sparse_moe.experts.0.w1.weight", 16, 8},
		{"model.layers.0.block_sparse_moe.experts.0.w2.weight", 8, 16},
		{"model.layers.0.block_sparse_moe.experts.0.w3.weight", 16, 8},
		{"model.layers.0.block_sparse_moe.experts.1.w1.weight", 16, 8},
		{"model.layers.0.block_sparse_moe.experts.1.w2.weight", 8, 16},
		{"model.layers.0.block_sparse_moe.experts.1.w3.weight", 16, 8},
		{"model.layers.0.mlp.gate.weight", 2, 8},
		{"model.layers.0.mlp.gate.e_score_correction_bias", 2, 0},
		{"model.layers.0.mlp.experts.0.gate_proj.weight", 16, 8},
		{"model.layers.0.mlp.experts.0.up_proj.weight", 16, 8},
		{"model.layers.0.mlp.experts.0.down_proj.weight", 8, 16},
		{"model.layers.0.mlp.experts.1.gate_proj.weight", 16, 8},
		{"model.layers.0.mlp.experts.1.up_proj.weight", 16, 8},
		{"model.layers.0.mlp.experts.1.down_proj.weight", 8, 16},
		{"model.layers.0.mlp.shared_expert.gate_proj.weight", 16, 8},
		{"model.layers.0.mlp.shared_expert.up_proj.weight", 16, 8},
		{"model.layers.0.mlp.shared_expert.down_proj.weight", 8, 16},
		{"model.layers.0.mlp.shared_expert_gate.weight", 1, 8},
		{"model.layers.0.mlp.shared_experts.gate_proj.weight", 16, 8},
		{"model.layers.0.mlp.shared_experts.up_proj.weight", 16, 8},
		{"model.layers.0.mlp.shared_experts.down_proj.weight", 8, 16},
		/* multi-head latent attention: q lora 8, kv lora 8, nope/rope/v 4 (o_proj as above) */
		{"model.layers.0.self_attn.q_a_proj.weight", 8, 8},
		{"model.layers.0.self_attn.q_a_layernorm.weight", 8, 0},
		{"model.layers.0.self_attn.q_b_proj.weight", 16, 8},
		{"model.layers.0.self_attn.kv_a_proj_with_mqa.weight", 12, 8},
		{"model.layers.0.self_attn.kv_a_proj_with_mqa.bias", 12, 0},
		{"model.layers.0.self_attn.kv_a_layernorm.weight", 8, 0},
		{"model.layers.0.self_attn.kv_b_proj.weight", 16, 8},
	};
	size_t n_t = sizeof t / sizeof *t, off = 0;
	json_t *h = json_object();
	FUZZ_ASSERT(h);
	FUZZ_ASSERT(json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt")) == 0);
	for (size_t i = 0; i < n_t; i++) {
		size_t n = (size_t)t[i].rows * (t[i].cols ? (size_t)t[i].cols : 1) * sizeof(float);
		json_t *shape = t[i].cols ? json_pack("[i, i]", t[i].rows, t[i].cols) : json_pack("[i]", t[i].rows);
		FUZZ_ASSERT(json_object_set_new(h, t[i].name,
		                                json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
		                                          "data_offsets", (json_int_t)off, (json_int_t)(off + n))) == 0);
		off += n;
	}
	char *hs = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
	FUZZ_ASSERT(hs);
	json_decref(h);
	size_t hl = strlen(hs), pad = (8 - hl % 8) % 8;
	model_len = 8 + hl + pad + off;
	model = malloc(model_len);
	FUZZ_ASSERT(model);
	uint64_t hl64 = hl + pad;
	for (int i = 0; i < 8; i++)
		model[i] = (uint8_t)(hl64 >> (8 * i));
	memcpy(model + 8, hs, hl);
	memset(model + 8 + hl, ' ', pad);
	free(hs);
	uint32_t st = 8;
	uint8_t *w = model + 8 + hl + pad;
	for (size_t i = 0; i < off / sizeof(float); i++) {
		float v = next_weight(&st);
		memcpy(w + i * sizeof v, &v, sizeof v);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	build_model();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *dir = fuzz_mkdtemp();
	free(fuzz_write(dir, "config.json", data, size));
	free(fuzz_write(dir, "model.safetensors", model, model_len));
	(void)fuzz_rt_load_and_run(dir);
	fuzz_assert_only(dir, (const char *const[]){"config.json", "model.safetensors", NULL});
	fuzz_rmdir(dir);
	return 0;
}
