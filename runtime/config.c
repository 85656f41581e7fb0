/* SPDX-License-Identifier: Apache-2.0 */
/* Model configuration.  Every size read from the file is capped so that a
 * hostile config cannot make us allocate absurd buffers. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "rt_error.h"

#define MAX_HIDDEN   65536
#define MAX_INTER    (1 << 20)
#define MAX_LAYERS   RT_MAX_LAYERS
#define MAX_HEADS    1024
#define MAX_HEAD_DIM 1024
#define MAX_VOCAB    (1 << 22)
#define MAX_POS      (1 << 24)

static int get_int(json_t *root, const char *key, int def, int lo, int hi, int *out, const char *path,
                   struct rt_error *err)
{
	json_t *v = json_object_get(root, key);
	json_int_t i;

	if (!v || json_is_null(v)) {
		if (def == INT_MIN)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: missing '%s'", path, key);
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: '%s' is not an integer", path, key);
	i = json_integer_value(v);
	if (i < lo || i > hi)
		return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: '%s' = %lld out of range [%d, %d]", path, key,
		               (long long)i, lo, hi);
	*out = (int)i;
	return 0;
}

static int get_num(json_t *obj, const char *key, double def, double *out, const char *path, struct rt_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: '%s' is not a number", path, key);
	*out = json_number_value(v);
	return 0;
}

static int get_bool(json_t *obj, const char *key, bool def, bool *out, const char *path, struct rt_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: '%s' is not a boolean", path, key);
	*out = json_is_true(v);
	return 0;
}

static int add_eos(struct rt_config *c, json_t *v, const char *path, struct rt_error *err)
{
	size_t i;
	json_t *e;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_t *tmp = json_array();
		int r;
		if (!tmp)
			return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		json_array_append(tmp, v);
		r = add_eos(c, tmp, path, err);
		json_decref(tmp);
		return r;
	}
	if (!json_is_array(v))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'eos_token_id' is not an integer or list", path);
	json_array_foreach(v, i, e)
	{
		json_int_t id;
		bool dup = false;
		if (!json_is_integer(e) || (id = json_integer_value(e)) < 0 || id >= c->vocab)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: bad eos_token_id entry", path);
		for (int k = 0; k < c->n_eos; k++)
			dup |= c->eos[k] == id;
		if (dup)
			continue;
		if (c->n_eos >= 8)
			return rt_fail(err, RT_ERR_MODEL, -E2BIG, "%s: more than 8 eos_token_id values", path);
		c->eos[c->n_eos++] = (int32_t)id;
	}
	return 0;
}

/* transformers _compute_yarn_parameters: when rope_scaling names
 * original_max_position_embeddings, the factor used is
 * max_position_embeddings / that (DeepSeek-V3 style), else 'factor'. */
/* Mixture-of-experts keys, with each architecture's config.json names and
 * transformers' defaults. */
static int parse_moe(struct rt_config *c, json_t *root, const char *path, struct rt_error *err)
{
	json_t *only = json_object_get(root, "mlp_only_layers"), *e;
	const char *ne_key = c->arch == RT_ARCH_MIXTRAL ? "num_local_experts" : "num_experts";
	int ne_def = c->arch == RT_ARCH_MIXTRAL ? 8 : c->arch == RT_ARCH_QWEN2_MOE ? 60 : 128;
	int k_def = c->arch == RT_ARCH_MIXTRAL ? 2 : c->arch == RT_ARCH_QWEN2_MOE ? 4 : 8;
	int step = 1, r;
	size_t i;

	if ((r = get_int(root, ne_key, ne_def, 0, RT_MAX_EXPERTS, &c->n_experts, path, err)) < 0 ||
	    (r = get_int(root, "num_experts_per_tok", k_def, 0, RT_MAX_TOPK, &c->top_k, path, err)) < 0)
		return r;
	if (c->n_experts < 1)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: '%s' is 0: a mixture-of-experts model needs experts",
		               path, ne_key);
	if (c->top_k < 1 || c->top_k > c->n_experts)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'num_experts_per_tok' %d not in [1, %s %d]", path,
		               c->top_k, ne_key, c->n_experts);
	if (c->arch == RT_ARCH_MIXTRAL) {
		/* Mixtral's experts use intermediate_size and always renormalise */
		c->moe_inter = c->intermediate;
		c->norm_topk = true;
		for (int l = 0; l < c->n_layers; l++)
			c->moe_layer[l] = true;
		return 0;
	}
	if ((r = get_int(root, "moe_intermediate_size", c->arch == RT_ARCH_QWEN2_MOE ? 1408 : 768, 1, MAX_INTER,
	                 &c->moe_inter, path, err)) < 0 ||
	    (r = get_bool(root, "norm_topk_prob", false, &c->norm_topk, path, err)) < 0 ||
	    (r = get_int(root, "decoder_sparse_step", 1, 1, MAX_LAYERS, &step, path, err)) < 0)
		return r;
	if (c->arch == RT_ARCH_QWEN2_MOE) {
		if ((r = get_int(root, "shared_expert_intermediate_size", 5632, 0, MAX_INTER, &c->shared_inter, path,
		                 err)) < 0)
			return r;
		c->shared_gate = c->shared_inter > 0;
	}
	/* transformers: MoE where (i + 1) % decoder_sparse_step == 0 and i is not in mlp_only_layers */
	for (int l = 0; l < c->n_layers; l++)
		c->moe_layer[l] = (l + 1) % step == 0;
	if (only && !json_is_null(only)) {
		if (!json_is_array(only))
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'mlp_only_layers' is not a list", path);
		json_array_foreach(only, i, e)
		{
			json_int_t l = json_is_integer(e) ? json_integer_value(e) : -1;
			if (l < 0 || l >= c->n_layers)
				return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
				               "%s: 'mlp_only_layers' entry is not a layer index in [0, %d)", path,
				               c->n_layers);
			c->moe_layer[l] = false;
		}
	}
	return 0;
}

/* Sigmoid group-limited routing with shared experts and leading dense
 * layers: DeepseekV3Config and Glm4MoeConfig keys (their defaults differ). */
static int parse_sigmoid_moe(struct rt_config *c, json_t *root, const char *path, struct rt_error *err)
{
	bool ds = c->arch == RT_ARCH_DEEPSEEK_V3;
	int first = 0, n_shared = 0, r;

	if (c->arch == RT_ARCH_MINIMAX_M2) {
		/* MiniMaxM2TopKRouter: sigmoid, correction bias for choosing, top-k
		 * always renormalised, no groups, no scaling, no shared expert;
		 * every layer sparse with experts of intermediate_size */
		if ((r = get_int(root, "num_local_experts", 256, 0, RT_MAX_EXPERTS, &c->n_experts, path, err)) < 0 ||
		    (r = get_int(root, "num_experts_per_tok", 8, 0, RT_MAX_TOPK, &c->top_k, path, err)) < 0)
			return r;
		if (c->n_experts < 1)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			               "%s: 'num_local_experts' is 0: a mixture-of-experts model needs experts", path);
		if (c->top_k < 1 || c->top_k > c->n_experts)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			               "%s: 'num_experts_per_tok' %d not in [1, num_local_experts %d]", path, c->top_k,
			               c->n_experts);
		c->moe_inter = c->intermediate;
		c->n_group = c->topk_group = 1;
		c->norm_topk = true;
		c->routed_scale = 1.0;
		c->sigmoid_router = true;
		for (int l = 0; l < c->n_layers; l++)
			c->moe_layer[l] = true;
		return 0;
	}

	if ((r = get_int(root, "n_routed_experts", ds ? 256 : 128, 0, RT_MAX_EXPERTS, &c->n_experts, path, err)) < 0 ||
	    (r = get_int(root, "num_experts_per_tok", 8, 0, RT_MAX_TOPK, &c->top_k, path, err)) < 0 ||
	    (r = get_int(root, "moe_intermediate_size", ds ? 2048 : 1408, 1, MAX_INTER, &c->moe_inter, path, err)) <
	        0 ||
	    (r = get_int(root, "n_shared_experts", 1, 0, 64, &n_shared, path, err)) < 0 ||
	    (r = get_int(root, "n_group", ds ? 8 : 1, 1, RT_MAX_EXPERTS, &c->n_group, path, err)) < 0 ||
	    (r = get_int(root, "topk_group", ds ? 4 : 1, 1, RT_MAX_EXPERTS, &c->topk_group, path, err)) < 0 ||
	    (r = get_int(root, "first_k_dense_replace", ds ? 3 : 1, 0, MAX_LAYERS, &first, path, err)) < 0 ||
	    (r = get_bool(root, "norm_topk_prob", true, &c->norm_topk, path, err)) < 0 ||
	    (r = get_num(root, "routed_scaling_factor", ds ? 2.5 : 1.0, &c->routed_scale, path, err)) < 0 ||
	    (r = get_int(root, "num_nextn_predict_layers", 0, 0, MAX_LAYERS, &c->n_mtp, path, err)) < 0)
		return r;
	if (c->n_experts < 1)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		               "%s: 'n_routed_experts' is 0: a mixture-of-experts model "
		               "needs experts",
		               path);
	if (c->top_k < 1 || c->top_k > c->n_experts)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		               "%s: 'num_experts_per_tok' %d not in [1, n_routed_experts %d]", path, c->top_k,
		               c->n_experts);
	if (c->n_experts % c->n_group)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'n_group' %d does not divide n_routed_experts %d",
		               path, c->n_group, c->n_experts);
	if (c->topk_group > c->n_group)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'topk_group' %d exceeds n_group %d", path,
		               c->topk_group, c->n_group);
	/* group scores sum each group's best two, and top-k picks among the kept groups */
	if (c->n_experts / c->n_group < 2 && c->n_group > 1)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: groups of %d expert(s); group scoring needs 2", path,
		               c->n_experts / c->n_group);
	if (c->top_k > c->topk_group * (c->n_experts / c->n_group))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		               "%s: 'num_experts_per_tok' %d exceeds the experts of topk_group %d groups", path,
		               c->top_k, c->topk_group);
	if (!(c->routed_scale > 0 && c->routed_scale <= 1e3))
		return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: 'routed_scaling_factor' out of range", path);
	c->sigmoid_router = true;
	c->shared_inter = c->moe_inter * n_shared;
	if (c->shared_inter > MAX_INTER)
		return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: shared experts too large", path);
	for (int l = 0; l < c->n_layers; l++)
		c->moe_layer[l] = l >= first;
	return 0;
}

/* DeepseekV3Config's multi-head latent attention.  Called before the rope is
 * parsed (the rotary dims are qk_rope_head_dim). */
static int parse_mla(struct rt_config *c, json_t *root, const char *path, struct rt_error *err)
{
	json_t *ql = json_object_get(root, "q_lora_rank");
	int r;

	if ((r = get_int(root, "kv_lora_rank", 512, 0, MAX_HEAD_DIM, &c->kv_lora_rank, path, err)) < 0 ||
	    (r = get_int(root, "qk_rope_head_dim", 64, 0, MAX_HEAD_DIM, &c->qk_rope_dim, path, err)) < 0 ||
	    (r = get_int(root, "qk_nope_head_dim", 128, 0, MAX_HEAD_DIM, &c->qk_nope_dim, path, err)) < 0 ||
	    (r = get_int(root, "v_head_dim", 128, 0, MAX_HEAD_DIM, &c->v_head_dim, path, err)) < 0 ||
	    (r = get_bool(root, "rope_interleave", true, &c->rope_interleave, path, err)) < 0)
		return r;
	if (ql && !json_is_null(ql)) {
		if ((r = get_int(root, "q_lora_rank", 0, 0, MAX_HIDDEN, &c->q_lora_rank, path, err)) < 0)
			return r;
		if (c->q_lora_rank == 0)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'q_lora_rank' is 0 (null means no q lora)",
			               path);
	}
	if (c->kv_lora_rank < 1)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'kv_lora_rank' must be at least 1", path);
	if (c->qk_rope_dim < 2 || c->qk_rope_dim % 2 || c->v_head_dim < 1 || c->qk_nope_dim < 1)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		               "%s: 'qk_rope_head_dim' must be even and positive, 'qk_nope_head_dim' and 'v_head_dim' "
		               "positive",
		               path);
	if (c->kv_lora_rank + c->qk_rope_dim > MAX_HEAD_DIM)
		return rt_fail(err, RT_ERR_MODEL, -ERANGE,
		               "%s: kv_lora_rank + qk_rope_head_dim = %d exceeds %d (the latent attention width)", path,
		               c->kv_lora_rank + c->qk_rope_dim, MAX_HEAD_DIM);
	/* transformers' DeepseekV3Config: head_dim is the rotary part */
	c->head_dim = c->qk_rope_dim;
	c->rope_dim = c->qk_rope_dim;
	return 0;
}

/* partial_rotary_factor (top level, or in rope_parameters as newer
 * transformers keeps it): RoPE on the first int(head_dim * factor) dims of
 * each head.  Only Glm4MoeForCausalLM's attention applies it. */
static int parse_partial_rotary(struct rt_config *c, json_t *root, const char *path, struct rt_error *err)
{
	json_t *rp = json_object_get(root, "rope_parameters");
	double f = 1.0;
	int r;

	if ((r = get_num(root, "partial_rotary_factor", 1.0, &f, path, err)) < 0)
		return r;
	if (json_is_object(rp) && json_object_get(rp, "partial_rotary_factor") &&
	    (r = get_num(rp, "partial_rotary_factor", 1.0, &f, path, err)) < 0)
		return r;
	if (c->arch == RT_ARCH_MINIMAX_M2) {
		/* MiniMax's own config.json key; transformers reads partial_rotary_factor */
		json_t *rd = json_object_get(root, "rotary_dim");
		if (rd && !(json_is_integer(rd) && json_integer_value(rd) == (json_int_t)(c->head_dim * f)))
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			               "%s: 'rotary_dim' disagrees with partial_rotary_factor %g x head_dim %d", path,
			               f, c->head_dim);
	}
	if (f == 1.0)
		return 0;
	if (c->arch != RT_ARCH_GLM4_MOE && c->arch != RT_ARCH_MINIMAX_M2)
		return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, "%s: partial_rotary_factor not supported for %s", path,
		               c->arch_name);
	if (!(f > 0 && f < 1) || (int)(c->head_dim * f) < 2 || (int)(c->head_dim * f) % 2)
		return rt_fail(
		    err, RT_ERR_MODEL, -EBADMSG,
		    "%s: partial_rotary_factor %g gives %d rotary dims of head_dim %d (need an even number >= 2)", path,
		    f, (int)(c->head_dim * f), c->head_dim);
	c->rope_dim = (int)(c->head_dim * f);
	return 0;
}

static int parse_yarn(struct rt_config *c, json_t *sc, const char *path, struct rt_error *err)
{
	double af = -1;
	int r;

	c->rope_kind = RT_ROPE_YARN;
	if (!json_is_number(json_object_get(sc, "factor")))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: yarn rope_scaling needs a numeric 'factor'", path);
	if ((r = get_num(sc, "factor", 1.0, &c->rope_factor, path, err)) < 0 ||
	    (r = get_num(sc, "factor", 1.0, &c->rope_factor_cfg, path, err)) < 0 ||
	    (r = get_num(sc, "original_max_position_embeddings", 0, &c->rope_orig_max_pos, path, err)) < 0 ||
	    (r = get_num(sc, "beta_fast", 0, &c->rope_beta_fast, path, err)) < 0 ||
	    (r = get_num(sc, "beta_slow", 0, &c->rope_beta_slow, path, err)) < 0 ||
	    (r = get_num(sc, "mscale", 0, &c->rope_mscale, path, err)) < 0 ||
	    (r = get_num(sc, "mscale_all_dim", 0, &c->rope_mscale_all_dim, path, err)) < 0 ||
	    (r = get_num(sc, "attention_factor", -1, &af, path, err)) < 0 ||
	    (r = get_bool(sc, "truncate", true, &c->rope_truncate, path, err)) < 0)
		return r;
	if (!(c->rope_factor >= 1.0 && c->rope_factor <= 1024.0))
		return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: rope scaling factor out of range", path);
	if (c->rope_orig_max_pos != 0) {
		if (!(c->rope_orig_max_pos >= 1 && c->rope_orig_max_pos <= MAX_POS))
			return rt_fail(err, RT_ERR_MODEL, -ERANGE,
			               "%s: yarn original_max_position_embeddings out of range", path);
		c->rope_factor = c->max_pos / c->rope_orig_max_pos;
	} else {
		c->rope_orig_max_pos = c->max_pos;
	}
	if (!(c->rope_factor > 0))
		return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: yarn scaling factor out of range", path);
	/* transformers treats 0 / null as "use the default" here */
	if (c->rope_beta_fast == 0)
		c->rope_beta_fast = 32;
	if (c->rope_beta_slow == 0)
		c->rope_beta_slow = 1;
	if (!(c->rope_beta_fast > 0 && c->rope_beta_fast <= 1e6 && c->rope_beta_slow > 0 && c->rope_beta_slow <= 1e6 &&
	      c->rope_mscale >= 0 && c->rope_mscale <= 1e3 && c->rope_mscale_all_dim >= 0 &&
	      c->rope_mscale_all_dim <= 1e3))
		return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: yarn rope_scaling parameters out of range", path);
	if (af >= 0) {
		if (!(af > 0 && af <= 1e3))
			return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: yarn attention_factor out of range", path);
		c->rope_attn_factor = af;
	} else if (c->rope_mscale != 0 && c->rope_mscale_all_dim != 0) {
		c->rope_attn_factor = rt_yarn_mscale(c->rope_factor, c->rope_mscale) /
		                      rt_yarn_mscale(c->rope_factor, c->rope_mscale_all_dim);
	} else {
		c->rope_attn_factor = rt_yarn_mscale(c->rope_factor, 1.0);
	}
	return 0;
}

double rt_yarn_mscale(double scale, double mscale)
{
	return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

static int parse_rope(struct rt_config *c, json_t *root, const char *path, struct rt_error *err)
{
	json_t *params = json_object_get(root, "rope_parameters");
	json_t *sc = json_object_get(root, "rope_scaling");
	json_t *type;
	const char *t;
	int r;

	r = get_num(root, "rope_theta", 10000.0, &c->rope_theta, path, err);
	if (r < 0)
		return r;
	/* newer transformers nest theta and scaling in rope_parameters */
	if (params && !json_is_null(params)) {
		if (!json_is_object(params))
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'rope_parameters' is not an object", path);
		r = get_num(params, "rope_theta", c->rope_theta, &c->rope_theta, path, err);
		if (r < 0)
			return r;
		if (!sc || json_is_null(sc))
			sc = params;
	}
	if (!(c->rope_theta > 1.0 && c->rope_theta < 1e12))
		return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: rope_theta out of range", path);
	c->rope_kind = RT_ROPE_DEFAULT;
	c->rope_attn_factor = 1.0;
	if (!sc || json_is_null(sc))
		return 0;
	if (!json_is_object(sc))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'rope_scaling' is not an object", path);
	type = json_object_get(sc, "rope_type");
	if (!type)
		type = json_object_get(sc, "type");
	t = json_string_value(type);
	if (!t || !strcmp(t, "default"))
		return 0;
	if (!strcmp(t, "linear") || !strcmp(t, "llama3")) {
		c->rope_kind = !strcmp(t, "linear") ? RT_ROPE_LINEAR : RT_ROPE_LLAMA3;
		if ((r = get_num(sc, "factor", 1.0, &c->rope_factor, path, err)) < 0)
			return r;
		if (!(c->rope_factor >= 1.0 && c->rope_factor <= 1024.0))
			return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: rope scaling factor out of range", path);
		if (c->rope_kind == RT_ROPE_LINEAR)
			return 0;
		if ((r = get_num(sc, "low_freq_factor", 1.0, &c->rope_low_freq, path, err)) < 0 ||
		    (r = get_num(sc, "high_freq_factor", 4.0, &c->rope_high_freq, path, err)) < 0 ||
		    (r = get_num(sc, "original_max_position_embeddings", 8192, &c->rope_orig_max_pos, path, err)) < 0)
			return r;
		if (!(c->rope_high_freq > c->rope_low_freq && c->rope_low_freq > 0 && c->rope_orig_max_pos >= 1 &&
		      c->rope_orig_max_pos <= MAX_POS))
			return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: llama3 rope_scaling parameters out of range",
			               path);
		return 0;
	}
	if (!strcmp(t, "yarn"))
		return parse_yarn(c, sc, path, err);
	if (!strcmp(t, "dynamic")) {
		/* transformers' dynamic NTK: max_position_embeddings is the
		 * trained length; past it the base grows with the sequence, so
		 * the context may reach factor times that length */
		double mp;
		c->rope_kind = RT_ROPE_DYNAMIC;
		if ((r = get_num(sc, "factor", 1.0, &c->rope_factor, path, err)) < 0)
			return r;
		if (!(c->rope_factor >= 1.0 && c->rope_factor <= 1024.0))
			return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: rope scaling factor out of range", path);
		if (c->rope_dim < 4)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: dynamic rope needs at least 4 rotary dims",
			               path);
		c->rope_orig_max_pos = c->max_pos;
		mp = floor(c->max_pos * c->rope_factor);
		c->max_pos = mp > MAX_POS ? MAX_POS : (int)mp;
		return 0;
	}
	return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, "%s: rope scaling type '%.40s' not supported", path, t);
}

int rt_config_load(const char *dir, struct rt_config *ret_cfg, struct rt_error *err)
{
	struct rt_config c;
	char path[PATH_MAX], gpath[PATH_MAX];
	json_t *root = NULL, *gen = NULL, *archs;
	json_error_t jerr;
	const char *a, *act;
	bool swa = false, mlp_bias = false, attn_bias = false, qkv_bias = true;
	int r, hd_def;

	memset(&c, 0, sizeof(c));
	c.bos = -1;
	snprintf(path, sizeof(path), "%s/config.json", dir);
	if (access(path, R_OK) != 0)
		return rt_fail(err, RT_ERR_IO, -errno, "%s: %s", path, strerror(errno));
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: invalid JSON: %s", path,
		            root ? "not an object" : jerr.text);
		goto out;
	}
	archs = json_object_get(root, "architectures");
	a = json_string_value(json_array_get(archs, 0));
	if (!a || json_array_size(archs) != 1) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: 'architectures' must list exactly one name", path);
		goto out;
	}
	if (!strcmp(a, "LlamaForCausalLM"))
		c.arch = RT_ARCH_LLAMA;
	else if (!strcmp(a, "MistralForCausalLM"))
		c.arch = RT_ARCH_MISTRAL;
	else if (!strcmp(a, "Qwen2ForCausalLM"))
		c.arch = RT_ARCH_QWEN2;
	else if (!strcmp(a, "Qwen3ForCausalLM"))
		c.arch = RT_ARCH_QWEN3;
	else if (!strcmp(a, "MixtralForCausalLM"))
		c.arch = RT_ARCH_MIXTRAL;
	else if (!strcmp(a, "Qwen2MoeForCausalLM"))
		c.arch = RT_ARCH_QWEN2_MOE;
	else if (!strcmp(a, "Qwen3MoeForCausalLM"))
		c.arch = RT_ARCH_QWEN3_MOE;
	else if (!strcmp(a, "DeepseekV3ForCausalLM"))
		c.arch = RT_ARCH_DEEPSEEK_V3;
	else if (!strcmp(a, "Glm4MoeForCausalLM"))
		c.arch = RT_ARCH_GLM4_MOE;
	else if (!strcmp(a, "MiniMaxM2ForCausalLM"))
		c.arch = RT_ARCH_MINIMAX_M2;
	else {
		r = rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, "%s: architecture '%.60s' not supported", path, a);
		goto out;
	}
	snprintf(c.arch_name, sizeof(c.arch_name), "%s", a);
	act = json_string_value(json_object_get(root, "hidden_act"));
	if (act && strcmp(act, "silu")) {
		r = rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, "%s: hidden_act '%.40s' not supported", path, act);
		goto out;
	}
	if ((r = get_int(root, "hidden_size", INT_MIN, 1, MAX_HIDDEN, &c.hidden, path, err)) < 0 ||
	    (r = get_int(root, "intermediate_size", INT_MIN, 1, MAX_INTER, &c.intermediate, path, err)) < 0 ||
	    (r = get_int(root, "num_hidden_layers", INT_MIN, 1, MAX_LAYERS, &c.n_layers, path, err)) < 0 ||
	    (r = get_int(root, "num_attention_heads", INT_MIN, 1, MAX_HEADS, &c.n_heads, path, err)) < 0 ||
	    (r = get_int(root, "num_key_value_heads", c.n_heads, 1, MAX_HEADS, &c.n_kv_heads, path, err)) < 0 ||
	    (r = get_int(root, "vocab_size", INT_MIN, 1, MAX_VOCAB, &c.vocab, path, err)) < 0 ||
	    (r = get_int(root, "max_position_embeddings", 2048, 1, MAX_POS, &c.max_pos, path, err)) < 0)
		goto out;
	/* transformers' defaults: Qwen3Config has head_dim=128, the others hidden/heads */
	hd_def = c.arch == RT_ARCH_QWEN3 || c.arch == RT_ARCH_MINIMAX_M2 ? 128
	         : c.arch == RT_ARCH_DEEPSEEK_V3                         ? 64
	                                                                 : c.hidden / c.n_heads;
	if ((r = get_int(root, "head_dim", hd_def, 2, MAX_HEAD_DIM, &c.head_dim, path, err)) < 0)
		goto out;
	if (c.head_dim % 2) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: head_dim %d is odd", path, c.head_dim);
		goto out;
	}
	if (c.n_heads % c.n_kv_heads) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		            "%s: num_attention_heads %d not a multiple of num_key_value_heads %d", path, c.n_heads,
		            c.n_kv_heads);
		goto out;
	}
	if ((long)c.n_heads * c.head_dim > 4 * MAX_HIDDEN) {
		r = rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: heads x head_dim too large", path);
		goto out;
	}
	c.rope_dim = c.head_dim;
	c.routed_scale = 1.0;
	if ((c.arch == RT_ARCH_DEEPSEEK_V3 || c.arch == RT_ARCH_GLM4_MOE || c.arch == RT_ARCH_MINIMAX_M2) &&
	    (r = parse_sigmoid_moe(&c, root, path, err)) < 0)
		goto out;
	if (c.arch == RT_ARCH_DEEPSEEK_V3 && (r = parse_mla(&c, root, path, err)) < 0)
		goto out;
	if ((r = parse_partial_rotary(&c, root, path, err)) < 0)
		goto out;
	if ((r = get_num(root, "rms_norm_eps", 1e-6, &c.rms_eps, path, err)) < 0)
		goto out;
	if (!(c.rms_eps > 0 && c.rms_eps < 1)) {
		r = rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: rms_norm_eps out of range", path);
		goto out;
	}
	if ((r = parse_rope(&c, root, path, err)) < 0)
		goto out;
	c.q_dim = c.n_heads * c.head_dim;
	c.kv_dim = c.n_kv_heads * c.head_dim;
	c.attn_scale = 1.0 / sqrt(c.head_dim);
	if (c.kv_lora_rank) {
		/* MLA: per head q = [nope | rope]; the absorbed query and the
		 * attention output are [kv_lora_rank | rope] wide */
		int qk = c.qk_nope_dim + c.qk_rope_dim, lat = c.kv_lora_rank + c.qk_rope_dim;
		if ((long)c.n_heads * (qk > lat ? qk : lat) > 4 * MAX_HIDDEN ||
		    (long)c.n_heads * c.v_head_dim > 4 * MAX_HIDDEN) {
			r = rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: heads x MLA head dims too large", path);
			goto out;
		}
		c.q_dim = c.n_heads * (qk > lat ? qk : lat);
		c.kv_dim = lat;
		c.attn_scale = 1.0 / sqrt(qk);
		/* DeepseekV3Attention: times mscale(factor, mscale_all_dim)^2 for a scaled rope */
		if (c.rope_kind == RT_ROPE_YARN && c.rope_mscale_all_dim != 0) {
			double ms = rt_yarn_mscale(c.rope_factor_cfg, c.rope_mscale_all_dim);
			c.attn_scale *= ms * ms;
		}
	}
	if ((r = get_bool(root, "tie_word_embeddings", false, &c.tie_embeddings, path, err)) < 0 ||
	    (r = get_bool(root, "attention_bias", false, &attn_bias, path, err)) < 0 ||
	    (r = get_bool(root, "mlp_bias", false, &mlp_bias, path, err)) < 0 ||
	    (r = get_bool(root, "use_sliding_window", false, &swa, path, err)) < 0 ||
	    (r = get_bool(root, "qkv_bias", true, &qkv_bias, path, err)) < 0)
		goto out;
	if (mlp_bias) {
		r = rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, "%s: mlp_bias not supported", path);
		goto out;
	}
	switch (c.arch) {
	case RT_ARCH_LLAMA: c.qkv_bias = c.o_bias = attn_bias; break;
	case RT_ARCH_MISTRAL:
		/* MistralConfig defaults sliding_window to 4096 when the key is absent; null disables it */
		if (!json_object_get(root, "sliding_window"))
			c.sliding_window = 4096;
		else if ((r = get_int(root, "sliding_window", 0, 0, INT_MAX, &c.sliding_window, path, err)) < 0)
			goto out;
		break;
	case RT_ARCH_DEEPSEEK_V3:
		/* attention_bias: q_a_proj, kv_a_proj_with_mqa and o_proj */
		c.qkv_bias = c.o_bias = attn_bias;
		break;
	case RT_ARCH_MINIMAX_M2:
		/* MiniMaxM2Attention: no biases, q/k norms over the whole projection, no sliding window */
		c.qk_norm = c.qk_norm_full = true;
		break;
	case RT_ARCH_GLM4_MOE:
		/* Glm4MoeAttention: q/k/v biases with attention_bias, no o bias; use_qk_norm */
		c.qkv_bias = attn_bias;
		if ((r = get_bool(root, "use_qk_norm", false, &c.qk_norm, path, err)) < 0)
			goto out;
		break;
	case RT_ARCH_MIXTRAL:
		/* MixtralConfig defaults sliding_window to None */
		if ((r = get_int(root, "sliding_window", 0, 0, INT_MAX, &c.sliding_window, path, err)) < 0)
			goto out;
		break;
	case RT_ARCH_QWEN2:
	case RT_ARCH_QWEN3:
	case RT_ARCH_QWEN2_MOE:
	case RT_ARCH_QWEN3_MOE:
		/* Qwen2 always has q/k/v biases, Qwen2-MoE unless qkv_bias is false; Qwen3 follows attention_bias */
		c.qkv_bias = c.arch == RT_ARCH_QWEN2 ? true : c.arch == RT_ARCH_QWEN2_MOE ? qkv_bias : attn_bias;
		c.o_bias = (c.arch == RT_ARCH_QWEN3 || c.arch == RT_ARCH_QWEN3_MOE) && attn_bias;
		c.qk_norm = c.arch == RT_ARCH_QWEN3 || c.arch == RT_ARCH_QWEN3_MOE;
		if (swa) {
			r = rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, "%s: use_sliding_window not supported", path);
			goto out;
		}
		break;
	}
	if (c.arch == RT_ARCH_MIXTRAL || c.arch == RT_ARCH_QWEN2_MOE || c.arch == RT_ARCH_QWEN3_MOE) {
		if ((r = parse_moe(&c, root, path, err)) < 0)
			goto out;
	}
	if ((r = get_int(root, "bos_token_id", -1, -1, c.vocab - 1, &c.bos, path, err)) < 0 ||
	    (r = add_eos(&c, json_object_get(root, "eos_token_id"), path, err)) < 0)
		goto out;
	snprintf(gpath, sizeof(gpath), "%s/generation_config.json", dir);
	if (access(gpath, F_OK) == 0) {
		gen = json_load_file(gpath, JSON_REJECT_DUPLICATES, &jerr);
		if (!gen || !json_is_object(gen)) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: invalid JSON: %s", gpath,
			            gen ? "not an object" : jerr.text);
			goto out;
		}
		if ((r = add_eos(&c, json_object_get(gen, "eos_token_id"), gpath, err)) < 0)
			goto out;
	}
	*ret_cfg = c;
	r = 0;
out:
	json_decref(root);
	json_decref(gen);
	return r;
}
