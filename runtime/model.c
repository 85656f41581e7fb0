/* SPDX-License-Identifier: Apache-2.0 */
/* Model binding (config + safetensors -> layer weights) and the forward pass
 * with Hugging Face Llama semantics: pre-norm RMSNorm, rotate-half RoPE,
 * grouped-query attention, SwiGLU MLP. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agrt/agrt.h"
#include "backend.h"
#include "config.h"
#include "dtype.h"
#include "quant.h"
#include "rt_buf.h"
#include "rt_error.h"
#include "safetensors.h"
#include "stream.h"

#define CHUNK 256 /* prompt tokens per batched forward */
_Static_assert(CHUNK <= RT_DEV_CHUNK, "device sessions size their buffers for RT_DEV_CHUNK tokens");
#define DEFAULT_CTX_CAP 4096
#define MAX_TOPK        64

struct rt_model {
	struct rt_config cfg;
	struct rt_model_info info;
	struct st_set *st;
	struct rt_backend *be;
	struct rt_layer *layers;
	struct rt_weight embed;       /* [vocab][hidden] */
	struct rt_weight lm_head;     /* [vocab][hidden], may alias embed */
	float *final_norm;            /* [hidden] */
	float *inv_freq;              /* [head_dim/2] */
	const char *dir;              /* for error messages during load */
	pthread_mutex_t run;          /* sessions share the backend's pool and scratch */
	const struct rt_dev_ops *dev; /* whole-forward device path, NULL on the CPU */
	void *dm;                     /* its model */
	struct batch_scratch *bs;     /* rt_forward_batch's buffers, allocated on first use (under run) */
	struct moe_scratch *moe;      /* MoE blocks' buffers (both paths run under run), NULL when dense */
	struct mla_scratch *mla;      /* latent attention's buffers, NULL without MLA */
	struct rt_stream *stream;     /* out-of-core: layers streamed from the files, NULL when all mapped */
	uint64_t max_memory;          /* rt_load_opts.max_memory */
	struct rt_quant *quant;       /* config.json's quantization_config, NULL when none */
	float **kvb_f32;              /* [n_layers]: dequantized copies of quantized MLA kv_b_proj, or NULL */
	void *rows;                   /* GPTQ/AWQ matrices repacked into rows (repack_rows), or NULL */
};

/* Buffers of multi-head latent attention over at most CHUNK rows. */
struct mla_scratch {
	float *qf;  /* [CHUNK][nh*qk_head_dim] queries as projected */
	float *qn;  /* [CHUNK][qk_nope_head_dim] one head's q_nope */
	float *qa;  /* [CHUNK][q_lora_rank] */
	float *lat; /* [CHUNK][kv_lora_rank] one head's attention output */
	float *o1;  /* [CHUNK][v_head_dim] one head's value */
	float *ov;  /* [CHUNK][nh*v_head_dim] */
};

/* Buffers of one MoE block over at most CHUNK rows. */
struct moe_scratch {
	float *logits;    /* [CHUNK][n_experts] router logits, then routing scores */
	int *sel;         /* [CHUNK][top_k] chosen experts */
	float *selw;      /* [CHUNK][top_k] their weights */
	int *cnt, *start; /* [n_experts + 1] */
	int *tok;         /* [CHUNK * top_k] rows grouped by expert, ascending within each */
	float *tw;        /* [CHUNK * top_k] their weights */
	float *xg;        /* [CHUNK][hidden] the rows routed to one expert */
	float *g, *u;     /* [CHUNK][max(moe_inter, shared_inter)] */
	float *y;         /* [CHUNK][hidden] one expert's output */
	float *acc;       /* [CHUNK][hidden] the block's output */
	float *sgl;       /* [CHUNK] shared expert gate logits */
};

/* One sequence's share of a batched step: T tokens at positions pos0.. in
 * rows row0.. of the gathered activations. */
struct batch_seg {
	struct rt_session *s;
	const int32_t *ids;
	int T, pos0, row0;
	int end;  /* position after the sequence's last token of this call (dynamic rope) */
	long out; /* logits row (the caller's session index), -1: no logits this step */
};

/* Activations of one batched step: at most CHUNK tokens of all sequences
 * together, so every weight matrix is streamed once per step. */
struct batch_scratch {
	float *x, *xn;           /* [CHUNK][hidden] */
	float *q, *att;          /* [CHUNK][nh*hd] */
	float *k, *v;            /* [CHUNK][nkv*hd], copied into each session's cache after RoPE */
	float *g, *u;            /* [CHUNK][inter] */
	float *cosb, *sinb;      /* [CHUNK][hd/2] */
	struct batch_seg *seg;   /* [CHUNK]: every segment has at least one token */
	struct rt_att_seg *aseg; /* [CHUNK] */
	float *lg;               /* [lg_rows][vocab]: logits when the caller's rows are not contiguous */
	size_t lg_rows;
};

struct rt_session {
	struct rt_model *m;
	int max_ctx, pos;
	bool in_batch;      /* rt_forward_batch: marks duplicates while it validates */
	float **kc, **vc;   /* per layer [max_ctx][nkv*hd] */
	float *x, *xn;      /* [CHUNK][hidden] */
	float *q, *att;     /* [CHUNK][nh*hd] */
	float *g, *u;       /* [CHUNK][inter] */
	float *cosb, *sinb; /* [CHUNK][hd/2] */
	float *last;        /* [vocab] */
	void *ds;           /* device session when m->dev */
};

static int bind_matrix(struct rt_model *m, const char *name, int rows, int cols, struct rt_weight *w,
                       struct rt_error *err)
{
	const struct st_tensor *t = rt_st_find(m->st, name);

	if (m->quant || (t && !rt_dtype_is_float(t->dtype)))
		return rt_quant_bind(m->quant, m->st, m->dir, name, rows, cols, w, err);
	if (!t)
		return rt_fail(err, RT_ERR_MODEL, -ENOENT, "%s: missing tensor '%s'", m->dir, name);
	if (t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' has shape %s[%lld,%lld], expected [%d,%d]",
		               rt_st_file_name(m->st, t), name, t->ndim == 2 ? "" : "(not 2-D) ",
		               (long long)(t->ndim > 0 ? t->shape[0] : 0), (long long)(t->ndim > 1 ? t->shape[1] : 0),
		               rows, cols);
	w->data = t->data;
	w->dtype = t->dtype;
	w->rows = rows;
	w->cols = cols;
	w->src = t;
	return 0;
}

/* Small vectors (norm weights, biases) are copied to f32 once. */
static int bind_vector(struct rt_model *m, const char *name, int n, float **ret, struct rt_error *err)
{
	const struct st_tensor *t = rt_st_find(m->st, name);
	float *v;

	if (!t)
		return rt_fail(err, RT_ERR_MODEL, -ENOENT, "%s: missing tensor '%s'", m->dir, name);
	if (t->ndim != 1 || t->shape[0] != n)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' has wrong shape, expected [%d]",
		               rt_st_file_name(m->st, t), name, n);
	if (!rt_dtype_is_float(t->dtype))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16",
		               rt_st_file_name(m->st, t), name, rt_dtype_name(t->dtype));
	v = malloc(sizeof(float) * (size_t)n);
	if (!v)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	for (int i = 0; i < n; i++)
		v[i] = rt_load_elem(t->data, t->dtype, i);
	*ret = v;
	return 0;
}

/* transformers _compute_yarn_parameters: the dimension index at which a
 * frequency makes num_rot turns over the original context */
static double yarn_corr_dim(double num_rot, int dim, double base, double orig)
{
	return (dim * log(orig / (num_rot * 2 * M_PI))) / (2 * log(base));
}

static int bind_expert(struct rt_model *m, const char *fmt_g, const char *fmt_u, const char *fmt_d, int layer, int idx,
                       int inter, struct rt_expert *x, struct rt_error *err)
{
	const struct rt_config *c = &m->cfg;
	char n[256];
	int r;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(n, sizeof(n), fmt_g, layer, idx);
	if ((r = bind_matrix(m, n, inter, c->hidden, &x->wg, err)) < 0)
		return r;
	snprintf(n, sizeof(n), fmt_u, layer, idx);
	if ((r = bind_matrix(m, n, inter, c->hidden, &x->wu, err)) < 0)
		return r;
	snprintf(n, sizeof(n), fmt_d, layer, idx);
#pragma GCC diagnostic pop
	return bind_matrix(m, n, c->hidden, inter, &x->wd, err);
}

/* A layer's MoE block with the checkpoint's tensor names. */
static int bind_moe(struct rt_model *m, int i, struct rt_layer *L, struct rt_error *err)
{
	const struct rt_config *c = &m->cfg;
	bool mixtral = c->arch == RT_ARCH_MIXTRAL || c->arch == RT_ARCH_MINIMAX_M2;
	char n[256];
	int r;

	L->moe = true;
	L->experts = calloc((size_t)c->n_experts, sizeof(*L->experts));
	if (!L->experts)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	snprintf(n, sizeof(n), "model.layers.%d.%s", i, mixtral ? "block_sparse_moe.gate.weight" : "mlp.gate.weight");
	if ((r = bind_matrix(m, n, c->n_experts, c->hidden, &L->router, err)) < 0)
		return r;
	if (c->sigmoid_router) {
		/* kept in F32 inside BF16 checkpoints; bind_vector reads any dtype */
		snprintf(n, sizeof(n), "model.layers.%d.%s", i,
		         mixtral ? "block_sparse_moe.e_score_correction_bias" : "mlp.gate.e_score_correction_bias");
		if ((r = bind_vector(m, n, c->n_experts, &L->router_bias, err)) < 0)
			return r;
	}
	for (int e = 0; e < c->n_experts; e++) {
		if (mixtral)
			r = bind_expert(m, "model.layers.%d.block_sparse_moe.experts.%d.w1.weight",
			                "model.layers.%d.block_sparse_moe.experts.%d.w3.weight",
			                "model.layers.%d.block_sparse_moe.experts.%d.w2.weight", i, e, c->moe_inter,
			                &L->experts[e], err);
		else
			r = bind_expert(m, "model.layers.%d.mlp.experts.%d.gate_proj.weight",
			                "model.layers.%d.mlp.experts.%d.up_proj.weight",
			                "model.layers.%d.mlp.experts.%d.down_proj.weight", i, e, c->moe_inter,
			                &L->experts[e], err);
		if (r < 0)
			return r;
	}
	if (c->shared_inter > 0) {
		const char *sn = c->arch == RT_ARCH_QWEN2_MOE ? "shared_expert" : "shared_experts";
		char fg[128], fu[128], fd[128];
		snprintf(fg, sizeof(fg), "model.layers.%%d.mlp.%s.gate_proj.weight%%.0d", sn);
		snprintf(fu, sizeof(fu), "model.layers.%%d.mlp.%s.up_proj.weight%%.0d", sn);
		snprintf(fd, sizeof(fd), "model.layers.%%d.mlp.%s.down_proj.weight%%.0d", sn);
		if ((r = bind_expert(m, fg, fu, fd, i, 0, c->shared_inter, &L->shared, err)) < 0)
			return r;
	}
	if (c->shared_gate) {
		snprintf(n, sizeof(n), "model.layers.%d.mlp.shared_expert_gate.weight", i);
		if ((r = bind_matrix(m, n, 1, c->hidden, &L->sgate, err)) < 0)
			return r;
	}
	return 0;
}

/* Llama-style attention: q/k/v/o projections, optional biases and q/k norms. */
static int bind_attention(struct rt_model *m, int i, struct rt_layer *L, struct rt_error *err)
{
	const struct rt_config *c = &m->cfg;
	int qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim, r;
	char n[256];

#define NM(suffix) (snprintf(n, sizeof(n), "model.layers.%d.self_attn.%s", i, suffix), n)
	if ((r = bind_matrix(m, NM("q_proj.weight"), qd, c->hidden, &L->wq, err)) < 0 ||
	    (r = bind_matrix(m, NM("k_proj.weight"), kvd, c->hidden, &L->wk, err)) < 0 ||
	    (r = bind_matrix(m, NM("v_proj.weight"), kvd, c->hidden, &L->wv, err)) < 0 ||
	    (r = bind_matrix(m, NM("o_proj.weight"), c->hidden, qd, &L->wo, err)) < 0)
		return r;
	if (c->qkv_bias && ((r = bind_vector(m, NM("q_proj.bias"), qd, &L->bq, err)) < 0 ||
	                    (r = bind_vector(m, NM("k_proj.bias"), kvd, &L->bk, err)) < 0 ||
	                    (r = bind_vector(m, NM("v_proj.bias"), kvd, &L->bv, err)) < 0))
		return r;
	if (c->o_bias && (r = bind_vector(m, NM("o_proj.bias"), c->hidden, &L->bo, err)) < 0)
		return r;
	if (c->qk_norm &&
	    ((r = bind_vector(m, NM("q_norm.weight"), c->qk_norm_full ? qd : c->head_dim, &L->q_norm, err)) < 0 ||
	     (r = bind_vector(m, NM("k_norm.weight"), c->qk_norm_full ? kvd : c->head_dim, &L->k_norm, err)) < 0))
		return r;
	return 0;
}

/* DeepSeek-V3 multi-head latent attention. */
static int bind_mla(struct rt_model *m, int i, struct rt_layer *L, struct rt_error *err)
{
	const struct rt_config *c = &m->cfg;
	int qk = c->qk_nope_dim + c->qk_rope_dim, lat = c->kv_lora_rank + c->qk_rope_dim, nh = c->n_heads, r;
	char n[256];

	if (c->q_lora_rank) {
		if ((r = bind_matrix(m, NM("q_a_proj.weight"), c->q_lora_rank, c->hidden, &L->wq_a, err)) < 0 ||
		    (r = bind_vector(m, NM("q_a_layernorm.weight"), c->q_lora_rank, &L->q_a_norm, err)) < 0 ||
		    (r = bind_matrix(m, NM("q_b_proj.weight"), nh * qk, c->q_lora_rank, &L->wq_b, err)) < 0 ||
		    (c->qkv_bias && (r = bind_vector(m, NM("q_a_proj.bias"), c->q_lora_rank, &L->bq, err)) < 0))
			return r;
	} else if ((r = bind_matrix(m, NM("q_proj.weight"), nh * qk, c->hidden, &L->wq, err)) < 0) {
		return r;
	}
	if ((r = bind_matrix(m, NM("kv_a_proj_with_mqa.weight"), lat, c->hidden, &L->wkv_a, err)) < 0 ||
	    (r = bind_vector(m, NM("kv_a_layernorm.weight"), c->kv_lora_rank, &L->kv_a_norm, err)) < 0 ||
	    (r = bind_matrix(m, NM("kv_b_proj.weight"), nh * (c->qk_nope_dim + c->v_head_dim), c->kv_lora_rank,
	                     &L->wkv_b, err)) < 0 ||
	    (r = bind_matrix(m, NM("o_proj.weight"), c->hidden, nh * c->v_head_dim, &L->wo, err)) < 0)
		return r;
	if (c->qkv_bias && ((r = bind_vector(m, NM("kv_a_proj_with_mqa.bias"), lat, &L->bk, err)) < 0 ||
	                    (r = bind_vector(m, NM("o_proj.bias"), c->hidden, &L->bo, err)) < 0))
		return r;
#undef NM
	if (L->wkv_b.q.fmt != RT_WF_DENSE) {
		/* a quantized kv_b_proj (DeepSeek-V3's FP8 checkpoints): its key half
		 * is transposed per head below and its value half sliced per head, so
		 * it is dequantized once into an f32 host copy (exact; 1/64 to 1/16 of
		 * a layer's attention weights, docs/RUNTIME.md) */
		size_t R = (size_t)L->wkv_b.rows, C = (size_t)L->wkv_b.cols;
		float *f = malloc(sizeof(float) * R * C);
		if (!f)
			return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		for (size_t row = 0; row < R; row++)
			for (size_t k = 0; k < C; k++)
				f[row * C + k] = rt_q_weight(&L->wkv_b, (int)row, (int)k);
		m->kvb_f32[i] = f;
		L->wkv_b = (struct rt_weight){.data = f, .dtype = RT_F32, .rows = (int)R, .cols = (int)C};
	}
	{
		/* W_kb^T per head, element for element in the stored dtype, so that
		 * q_nope^T W_kb is an ordinary (threaded, SIMD) matmul */
		size_t ds = rt_dtype_size(L->wkv_b.dtype), rank = (size_t)c->kv_lora_rank,
		       nope = (size_t)c->qk_nope_dim;
		size_t rows = nope + (size_t)c->v_head_dim;
		char *t = malloc(ds * (size_t)nh * rank * (nope ? nope : 1));
		const char *src = L->wkv_b.data;
		if (!t)
			return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		for (size_t h = 0; h < (size_t)nh; h++)
			for (size_t rr = 0; rr < rank; rr++)
				for (size_t d = 0; d < nope; d++)
					memcpy(t + ((h * rank + rr) * nope + d) * ds,
					       src + ((h * rows + d) * rank + rr) * ds, ds);
		L->wkb_t = (struct rt_weight){
		    .data = t, .dtype = L->wkv_b.dtype, .rows = nh * c->kv_lora_rank, .cols = c->qk_nope_dim};
	}
	return 0;
}

static void init_rope(struct rt_model *m)
{
	const struct rt_config *c = &m->cfg;
	int dim = c->rope_dim, half = dim / 2;
	double lo = 0, hi = 0;

	if (c->rope_kind == RT_ROPE_YARN) {
		lo = yarn_corr_dim(c->rope_beta_fast, dim, c->rope_theta, c->rope_orig_max_pos);
		hi = yarn_corr_dim(c->rope_beta_slow, dim, c->rope_theta, c->rope_orig_max_pos);
		if (c->rope_truncate) {
			lo = floor(lo);
			hi = ceil(hi);
		}
		lo = lo < 0 ? 0 : lo;
		hi = hi > dim - 1 ? dim - 1 : hi;
		if (lo == hi)
			hi += 0.001;
	}
	for (int i = 0; i < half; i++) {
		double f = 1.0 / pow(c->rope_theta, (double)(2 * i) / dim);
		if (c->rope_kind == RT_ROPE_LINEAR) {
			f /= c->rope_factor;
		} else if (c->rope_kind == RT_ROPE_LLAMA3) {
			/* transformers _compute_llama3_parameters */
			double low_wl = c->rope_orig_max_pos / c->rope_low_freq;
			double high_wl = c->rope_orig_max_pos / c->rope_high_freq;
			double wl = 2 * M_PI / f;
			if (wl > low_wl) {
				f = f / c->rope_factor;
			} else if (wl >= high_wl) {
				double sm = (c->rope_orig_max_pos / wl - c->rope_low_freq) /
				            (c->rope_high_freq - c->rope_low_freq);
				f = (1 - sm) * f / c->rope_factor + sm * f;
			}
		} else if (c->rope_kind == RT_ROPE_YARN) {
			/* ramp from extrapolation (fast dims) to interpolation (slow dims) */
			double ramp = (i - lo) / (hi - lo), ex;
			ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
			ex = 1 - ramp;
			f = f / c->rope_factor * (1 - ex) + f * ex;
		}
		m->inv_freq[i] = (float)f;
	}
}

/* cos/sin of one row at position pos, for a forward whose sequence ends at
 * seq_len (dynamic NTK grows the base with it, as transformers does per
 * call); yarn scales both by its attention factor. */
static void rope_row(const struct rt_model *m, int pos, int seq_len, float *cs, float *sn)
{
	const struct rt_config *c = &m->cfg;
	int dim = c->rope_dim, half = dim / 2;
	float af = (float)c->rope_attn_factor;
	bool dyn = c->rope_kind == RT_ROPE_DYNAMIC && seq_len > c->rope_orig_max_pos;
	double base = 0;

	if (dyn)
		base = c->rope_theta * pow(c->rope_factor * seq_len / c->rope_orig_max_pos - (c->rope_factor - 1),
		                           (double)dim / (dim - 2));
	for (int i = 0; i < half; i++) {
		float f = dyn ? (float)(1.0 / pow(base, (double)(2 * i) / dim)) : m->inv_freq[i];
		/* HF computes the angle in float32 */
		float ang = (float)pos * f;
		cs[i] = cosf(ang);
		sn[i] = sinf(ang);
		if (af != 1.0f) {
			cs[i] *= af;
			sn[i] *= af;
		}
	}
}

static void moe_scratch_free(struct moe_scratch *s)
{
	if (!s)
		return;
	free(s->logits);
	free(s->sel);
	free(s->selw);
	free(s->cnt);
	free(s->start);
	free(s->tok);
	free(s->tw);
	free(s->xg);
	free(s->g);
	free(s->u);
	free(s->y);
	free(s->acc);
	free(s->sgl);
	free(s);
}

static int moe_scratch_new(const struct rt_config *c, struct moe_scratch **ret)
{
	struct moe_scratch *s = calloc(1, sizeof(*s));
	size_t E = (size_t)c->n_experts, K = (size_t)c->top_k, H = (size_t)c->hidden;
	size_t I = (size_t)(c->moe_inter > c->shared_inter ? c->moe_inter : c->shared_inter);

	if (!s)
		return -ENOMEM;
	s->logits = malloc(sizeof(float) * CHUNK * E);
	s->sel = malloc(sizeof(int) * CHUNK * K);
	s->selw = malloc(sizeof(float) * CHUNK * K);
	s->cnt = malloc(sizeof(int) * (E + 1));
	s->start = malloc(sizeof(int) * (E + 1));
	s->tok = malloc(sizeof(int) * CHUNK * K);
	s->tw = malloc(sizeof(float) * CHUNK * K);
	s->xg = malloc(sizeof(float) * CHUNK * H);
	s->g = malloc(sizeof(float) * CHUNK * I);
	s->u = malloc(sizeof(float) * CHUNK * I);
	s->y = malloc(sizeof(float) * CHUNK * H);
	s->acc = malloc(sizeof(float) * CHUNK * H);
	s->sgl = malloc(sizeof(float) * CHUNK);
	if (!s->logits || !s->sel || !s->selw || !s->cnt || !s->start || !s->tok || !s->tw || !s->xg || !s->g ||
	    !s->u || !s->y || !s->acc || !s->sgl) {
		moe_scratch_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

static void mla_scratch_free(struct mla_scratch *s)
{
	if (!s)
		return;
	free(s->qf);
	free(s->qn);
	free(s->qa);
	free(s->lat);
	free(s->o1);
	free(s->ov);
	free(s);
}

static int mla_scratch_new(const struct rt_config *c, struct mla_scratch **ret)
{
	struct mla_scratch *s = calloc(1, sizeof(*s));
	size_t nh = (size_t)c->n_heads;

	if (!s)
		return -ENOMEM;
	s->qf = malloc(sizeof(float) * CHUNK * nh * (c->qk_nope_dim + c->qk_rope_dim));
	s->qn = malloc(sizeof(float) * CHUNK * (c->qk_nope_dim ? c->qk_nope_dim : 1));
	s->qa = malloc(sizeof(float) * CHUNK * (c->q_lora_rank ? c->q_lora_rank : 1));
	s->lat = malloc(sizeof(float) * CHUNK * c->kv_lora_rank);
	s->o1 = malloc(sizeof(float) * CHUNK * c->v_head_dim);
	s->ov = malloc(sizeof(float) * CHUNK * nh * c->v_head_dim);
	if (!s->qf || !s->qn || !s->qa || !s->lat || !s->o1 || !s->ov) {
		mla_scratch_free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

static void batch_scratch_free(struct batch_scratch *b)
{
	if (!b)
		return;
	free(b->x);
	free(b->xn);
	free(b->q);
	free(b->att);
	free(b->k);
	free(b->v);
	free(b->g);
	free(b->u);
	free(b->cosb);
	free(b->sinb);
	free(b->seg);
	free(b->aseg);
	free(b->lg);
	free(b);
}

/* What the whole-forward CUDA path (kernels/) lacks, or NULL. */
static const char *dev_unsupported(const struct rt_config *c)
{
	if (c->kv_lora_rank)
		return "multi-head latent attention";
	if (c->n_experts)
		return "mixture of experts";
	if (c->rope_dim != c->head_dim)
		return "partial rotary embedding";
	if (c->rope_kind == RT_ROPE_DYNAMIC)
		return "dynamic rope scaling";
	if (c->rope_kind == RT_ROPE_YARN && c->rope_attn_factor != 1.0)
		return "yarn attention factor";
	return NULL;
}

void rt_model_free(struct rt_model *m)
{
	if (!m)
		return;
	if (m->layers)
		for (int i = 0; i < m->cfg.n_layers; i++) {
			struct rt_layer *L = &m->layers[i];
			free(L->attn_norm);
			free(L->ffn_norm);
			free(L->q_norm);
			free(L->k_norm);
			free(L->bq);
			free(L->bk);
			free(L->bv);
			free(L->bo);
			free(L->experts);
			free(L->q_a_norm);
			free((void *)L->wkb_t.data);
			free(L->router_bias);
			free(L->kv_a_norm);
		}
	free(m->layers);
	if (m->kvb_f32)
		for (int i = 0; i < m->cfg.n_layers; i++)
			free(m->kvb_f32[i]);
	free(m->kvb_f32);
	free(m->rows);
	batch_scratch_free(m->bs);
	rt_stream_free(m->stream);
	moe_scratch_free(m->moe);
	mla_scratch_free(m->mla);
	rt_quant_free(m->quant);
	free(m->final_norm);
	free(m->inv_freq);
	pthread_mutex_destroy(&m->run);
	if (m->dm)
		m->dev->model_free(m->dm);
	if (m->be)
		m->be->ops->free(m->be);
	rt_st_close(m->st);
	free(m);
}

/* The pages of [p, p + n) that lie wholly inside it out of this process
 * (a private read-only file mapping: they come back from the file if read) */
static void drop_pages(const void *p, uint64_t n)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), lo = ((uintptr_t)p + pg - 1) / pg * pg,
	          hi = ((uintptr_t)p + n) / pg * pg;
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* fn on every matrix of the model that may be GPTQ/AWQ (the embedding and
 * an output head that shares it never are: embed_row reads their rows),
 * until it returns < 0 */
static int each_matrix(struct rt_model *m, int (*fn)(struct rt_model *m, struct rt_weight *w, void *arg), void *arg)
{
	const struct rt_config *c = &m->cfg;
	int r;

	for (int l = 0; l < c->n_layers; l++) {
		struct rt_layer *L = &m->layers[l];
		struct rt_weight *ws[] = {&L->wq,     &L->wk,    &L->wv,        &L->wo,        &L->wg,
		                          &L->wu,     &L->wd,    &L->wq_a,      &L->wq_b,      &L->wkv_a,
		                          &L->router, &L->sgate, &L->shared.wg, &L->shared.wu, &L->shared.wd};
		for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
			if ((r = fn(m, ws[i], arg)) < 0)
				return r;
		for (int e = 0; L->moe && L->experts && e < c->n_experts; e++)
			if ((r = fn(m, &L->experts[e].wg, arg)) < 0 || (r = fn(m, &L->experts[e].wu, arg)) < 0 ||
			    (r = fn(m, &L->experts[e].wd, arg)) < 0)
				return r;
	}
	if (m->lm_head.data != m->embed.data && (r = fn(m, &m->lm_head, arg)) < 0)
		return r;
	return 0;
}

/* The matrices repack_rows copies or makes pairs for (struct rows_item),
 * each at its offset in one buffer: rows bytes of copied rows, then pairs
 * bytes of (scale, zero * scale) pairs */
struct rows_item {
	struct rt_weight *w;
	size_t off, rows, pairs;
};
struct rows_job {
	struct rt_buf items;
	uint64_t total;
	bool pairs; /* the int4 kernels are AVX-512's: they read pairs, take groups of 32 and 64 in rows */
	char *buf;
};

static int rows_add(struct rt_model *m, struct rt_weight *w, void *arg)
{
	struct rows_job *j = arg;
	/* sizes are multiples of 64 */
	struct rows_item it = {w, j->total, rt_quant_rows_bytes(w, j->pairs), j->pairs ? rt_quant_pairs_bytes(w) : 0};

	/* act-order rows gather x in their matmuls: the room for it first, or
	 * the matrix stays in its columns */
	if (it.rows && rt_quant_rows_perm(w) && rt_backend_cpu_reserve_x(m->be, (size_t)w->cols) < 0)
		it.rows = 0, it.pairs = 0;
	if (!it.rows && !it.pairs)
		return 0;
	j->total += it.rows + it.pairs;
	return rt_buf_put(&j->items, &it, sizeof(it));
}

/* one matrix of the job: copied (then its stored codes' pages released),
 * and its pairs made */
static void rows_task(void *ctx, int task, int thread)
{
	struct rows_job *j = ctx;
	const struct rows_item *it = (const struct rows_item *)j->items.p + task;
	struct rt_weight *w = it->w;
	const struct st_tensor *src = w->src;
	const void *old = w->data;

	(void)thread;
	if (it->rows) {
		rt_quant_to_rows(w, j->buf + it->off);
		if (src && src->data == old)
			drop_pages(src->data, src->nbytes);
	}
	if (it->pairs)
		rt_quant_pairs(w, (float *)(j->buf + it->off + it->rows));
}

/* The memory this process may fill with copies: the smallest of the
 * physical memory, RLIMIT_DATA, RLIMIT_AS and its cgroup's memory.max */
static uint64_t memory_room(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
	uint64_t room = pages > 0 && pg > 0 ? (uint64_t)pages * (uint64_t)pg : UINT64_MAX;
	struct rlimit rl;
	char line[512], path[600];
	FILE *f;

	if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < room)
		room = rl.rlim_cur;
	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < room)
		room = rl.rlim_cur;
	/* cgroup v2: the line "0::/PATH" of /proc/self/cgroup */
	if ((f = fopen("/proc/self/cgroup", "re"))) {
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "0::", 3)) {
				unsigned long long v;
				FILE *g;
				line[strcspn(line, "\n")] = 0;
				snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.max", line + 3);
				if ((g = fopen(path, "re"))) {
					if (fscanf(g, "%llu", &v) == 1 && v < room) /* "max" reads as no number */
						room = v;
					fclose(g);
				}
			}
		fclose(f);
	}
	return room;
}

/* CPU, all weights mapped: GPTQ and AWQ matrices into compressed-tensors'
 * rows (rt_quant_to_rows), where the row kernels take them, and the
 * (scale, zero * scale) pairs of asymmetric int4 rows where the kernels
 * read them (rt_quant_pairs), on the
 * backend's threads, all in one buffer in 2 MiB pages where the kernel
 * gives them (transparent huge pages: fewer page faults to fill it, fewer
 * TLB misses to stream it), when the copies take at most half the memory
 * this process may use (memory_room): a model larger than that keeps running
 * from its mapping, paged in and out as before, and so does every matrix
 * when the buffer cannot be had. */
static void repack_rows(struct rt_model *m)
{
	struct rows_job j = {.pairs = rt_backend_cpu_int4_pairs(m->be)};
	size_t huge = (size_t)2 << 20, size, n;
	void *p;

	if (each_matrix(m, rows_add, &j) == 0 && (n = j.items.len / sizeof(struct rows_item)) > 0 &&
	    j.total <= memory_room() / 2 && j.total < SIZE_MAX - huge) {
		size = (j.total + huge - 1) / huge * huge;
		if (posix_memalign(&p, huge, size) == 0) {
			madvise(p, size, MADV_HUGEPAGE); /* advice: EINVAL without THP is fine */
			j.buf = p;
			rt_backend_cpu_run(m->be, (int)n, rows_task, &j);
			m->rows = p;
			for (size_t i = 0; i < n; i++) {
				const struct rows_item *it = (const struct rows_item *)j.items.p + i;
				m->info.repacked_bytes += it->rows;
				m->info.pair_bytes += it->w->q.sz ? it->pairs : 0;
			}
		}
	}
	rt_buf_release(&j.items);
}

int rt_model_load(const char *dir, const struct rt_load_opts *opts, struct rt_model **ret_model, struct rt_error *err)
{
	struct rt_model *m;
	struct rt_config *c;
	char n[256];
	int r, nthr = opts ? opts->n_threads : 0;
	struct rt_dev_load_stats dst = {0};
	const char *why_dev = NULL;

	if (!dir || !ret_model || nthr < 0 || nthr > 1024)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	if (opts && opts->backend != RT_BACKEND_CPU && opts->backend != RT_BACKEND_CUDA)
		return rt_fail(err, RT_ERR_USAGE, -EOPNOTSUPP, "backend %d not available", opts->backend);
	if (opts && opts->backend == RT_BACKEND_CUDA) {
		const char *why;
		if (!rt_dev_cuda(&why))
			return rt_fail(err, RT_ERR_DEVICE, -EOPNOTSUPP, "%s%s", why,
			               rt_dev_cuda_built() ? "" : " (configure with -Dcuda=enabled)");
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	m->dir = dir;
	pthread_mutex_init(&m->run, NULL);
	c = &m->cfg;
	r = rt_config_load(dir, c, err);
	if (r < 0)
		goto out;
	r = rt_quant_load(dir, &m->quant, err);
	if (r < 0)
		goto out;
	r = rt_st_open_dir(dir, &m->st, err);
	if (r < 0)
		goto out;
	m->layers = calloc(c->n_layers, sizeof(*m->layers));
	m->inv_freq = calloc(c->head_dim / 2, sizeof(float));
	m->kvb_f32 = calloc(c->n_layers, sizeof(*m->kvb_f32));
	if (!m->layers || !m->inv_freq || !m->kvb_f32) {
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		goto out;
	}
	if ((r = bind_matrix(m, "model.embed_tokens.weight", c->vocab, c->hidden, &m->embed, err)) < 0 ||
	    (r = bind_vector(m, "model.norm.weight", c->hidden, &m->final_norm, err)) < 0)
		goto out;
	if (m->embed.q.fmt != RT_WF_DENSE) {
		r = rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
		            "%s: quantized embeddings (model.embed_tokens) not supported", dir);
		goto out;
	}
	if (c->tie_embeddings)
		m->lm_head = m->embed;
	else if ((r = bind_matrix(m, "lm_head.weight", c->vocab, c->hidden, &m->lm_head, err)) < 0)
		goto out;
	for (int i = 0; i < c->n_layers; i++) {
		struct rt_layer *L = &m->layers[i];
#define NM(suffix) (snprintf(n, sizeof(n), "model.layers.%d.%s", i, suffix), n)
		if ((r = bind_vector(m, NM("input_layernorm.weight"), c->hidden, &L->attn_norm, err)) < 0 ||
		    (r = bind_vector(m, NM("post_attention_layernorm.weight"), c->hidden, &L->ffn_norm, err)) < 0)
			goto out;
		if (c->kv_lora_rank)
			r = bind_mla(m, i, L, err);
		else
			r = bind_attention(m, i, L, err);
		if (r < 0)
			goto out;
		if (c->moe_layer[i])
			r = bind_moe(m, i, L, err);
		else if ((r = bind_matrix(m, NM("mlp.gate_proj.weight"), c->intermediate, c->hidden, &L->wg, err)) >=
		             0 &&
		         (r = bind_matrix(m, NM("mlp.up_proj.weight"), c->intermediate, c->hidden, &L->wu, err)) >= 0)
			r = bind_matrix(m, NM("mlp.down_proj.weight"), c->hidden, c->intermediate, &L->wd, err);
		if (r < 0)
			goto out;
#undef NM
	}
	init_rope(m);
	if ((c->n_experts && (r = moe_scratch_new(c, &m->moe)) < 0) ||
	    (c->kv_lora_rank && (r = mla_scratch_new(c, &m->mla)) < 0)) {
		rt_fail(err, RT_ERR_INTERNAL, r, "out of memory");
		goto out;
	}
	if (opts && opts->backend == RT_BACKEND_CUDA &&
	    (why_dev = dev_unsupported(c))) {
		if (!opts->device_fallback) {
			r = rt_fail(err, RT_ERR_DEVICE, -EOPNOTSUPP,
			            "%s: the CUDA backend does not run this model (%s); use the CPU", dir, why_dev);
			goto out;
		}
		snprintf(m->info.fallback, sizeof(m->info.fallback), "the CUDA backend does not run this model (%s)",
		         why_dev);
	}
	if (nthr == 0) {
		long np = sysconf(_SC_NPROCESSORS_ONLN);
		nthr = np < 1 ? 1 : np > 256 ? 256 : (int)np;
	}
	if (opts && opts->backend == RT_BACKEND_CUDA && !why_dev) {
		/* the device uploads from the bound (validated) description;
		 * no CPU thread pool is started */
		struct rt_dev_model_desc d = {.cfg = c,
		                              .layers = m->layers,
		                              .embed = &m->embed,
		                              .lm_head = &m->lm_head,
		                              .final_norm = m->final_norm,
		                              .inv_freq = m->inv_freq,
		                              .st = m->st,
		                              .locate = rt_st_locate,
		                              .n_threads = opts->n_threads};
		m->dev = rt_dev_cuda(NULL);
		r = m->dev->model_new(&d, &m->dm, &dst, err);
		if (r < 0)
			goto out;
	} else {
		r = rt_backend_cpu_new(nthr, opts ? opts->simd : NULL, &m->be);
		if (r < 0) {
			rt_fail(err, RT_ERR_INTERNAL, r, "cannot start %d threads: %s", nthr, strerror(-r));
			goto out;
		}
		m->max_memory = opts ? opts->max_memory : 0;
		if (m->max_memory && rt_st_total_bytes(m->st) > m->max_memory / 4 * 3 &&
		    (r = rt_stream_new(m->st, c->n_layers, c->tie_embeddings, m->max_memory / 2, &m->stream, err)) < 0) {
			/* the message names the stage; say which limit */
			char msg[sizeof(err->msg)];
			if (err) {
				snprintf(msg, sizeof(msg), "%s", err->msg);
				rt_fail(err, err->code, r, "%s: cannot run under a memory limit of %.1f MiB: %s", dir,
				        m->max_memory / 1048576.0, msg);
			}
			goto out;
		}
		if (!m->stream && !(opts && opts->int4_columns))
			repack_rows(m);
	}
	{
		struct rt_model_info *in = &m->info;
		snprintf(in->arch, sizeof(in->arch), "%s", c->arch_name);
		in->n_layers = c->n_layers;
		in->hidden = c->hidden;
		in->intermediate = c->intermediate;
		in->n_heads = c->n_heads;
		in->n_kv_heads = c->n_kv_heads;
		in->head_dim = c->head_dim;
		in->vocab = c->vocab;
		in->max_positions = c->max_pos;
		in->tied_embeddings = c->tie_embeddings;
		in->n_eos = c->n_eos;
		memcpy(in->eos_ids, c->eos, sizeof(in->eos_ids));
		in->bos_id = c->bos;
		in->weight_bytes = rt_st_total_bytes(m->st);
		if (m->dev) {
			snprintf(in->backend, sizeof(in->backend), "%s", dst.name);
			in->n_threads = dst.n_threads;
			in->load_ms = dst.load_ms;
			in->load_gbs = dst.load_ms > 0 ? dst.upload_bytes / (dst.load_ms * 1e6) : 0;
			in->device_bytes = dst.device_bytes;
		} else {
			snprintf(in->backend, sizeof(in->backend), "%s/%s", m->be->ops->name, rt_backend_cpu_simd(m->be));
			in->n_threads = m->be->n_threads;
		}
		for (int i = 0; i < rt_st_count(m->st); i++) {
			const struct st_tensor *t = rt_st_get(m->st, i);
			size_t nl = strlen(t->name);
			/* packed int4 words hold 8 weights */
			bool packed = t->dtype == RT_I32 && ((nl > 8 && !strcmp(t->name + nl - 8, ".qweight")) ||
			                                     (nl > 14 && !strcmp(t->name + nl - 14, ".weight_packed")));
			in->n_params += t->nbytes / rt_dtype_size(t->dtype) * (packed ? 8 : 1);
		}
	}
	*ret_model = m;
	m = NULL;
	r = 0;
out:
	rt_model_free(m);
	return r;
}

int rt_cuda_device_count(char *why, size_t len)
{
	const char *reason;
	const struct rt_dev_ops *d = rt_dev_cuda(&reason);

	if (!d) {
		/* a CUDA build without its plugin (or without libcudart) has no
		 * device, and says why; a build without CUDA has nothing to say */
		if (why && len)
			snprintf(why, len, "%s", reason);
		return rt_dev_cuda_built() ? 0 : -EOPNOTSUPP;
	}
	return d->device_count(why, len);
}

const struct rt_model_info *rt_model_get_info(const struct rt_model *m)
{
	return &m->info;
}

void rt_model_stream_info(const struct rt_model *m, struct rt_stream_info *ret)
{
	struct rt_stream_stats st;

	rt_stream_get_stats(m->stream, &st);
	*ret = (struct rt_stream_info){.streaming = m->stream != NULL,
	                               .max_memory = m->max_memory,
	                               .bytes_read = st.bytes_read,
	                               .largest_stage = st.largest_stage};
}

int rt_model_resident(const struct rt_model *m, uint64_t *ret_resident, uint64_t *ret_mapped)
{
	if (!m || !ret_resident || !ret_mapped)
		return -EINVAL;
	return rt_st_resident(m->st, ret_resident, ret_mapped);
}

/* ---- session ---- */

void rt_session_free(struct rt_session *s)
{
	if (!s)
		return;
	if (s->ds)
		s->m->dev->session_free(s->ds);
	if (s->kc)
		for (int i = 0; i < s->m->cfg.n_layers; i++) {
			free(s->kc[i]);
			free(s->vc[i]);
		}
	free(s->kc);
	free(s->vc);
	free(s->x);
	free(s->xn);
	free(s->q);
	free(s->att);
	free(s->g);
	free(s->u);
	free(s->cosb);
	free(s->sinb);
	free(s->last);
	free(s);
}

int rt_session_new(struct rt_model *m, int max_ctx, struct rt_session **ret_s, struct rt_error *err)
{
	const struct rt_config *c;
	struct rt_session *s;
	size_t kvd;

	if (!m || !ret_s || max_ctx < 0)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	c = &m->cfg;
	if (max_ctx == 0)
		max_ctx = c->max_pos < DEFAULT_CTX_CAP ? c->max_pos : DEFAULT_CTX_CAP;
	if (max_ctx > c->max_pos)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "context %d exceeds max_position_embeddings %d", max_ctx,
		               c->max_pos);
	kvd = (size_t)c->kv_dim;
	s = calloc(1, sizeof(*s));
	if (!s)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	s->m = m;
	s->max_ctx = max_ctx;
	if (m->dev) {
		/* KV cache and activations live on the device; only the
		 * logits row for rt_generate stays here */
		int r;
		s->last = malloc(sizeof(float) * c->vocab);
		if (!s->last)
			goto oom;
		r = m->dev->session_new(m->dm, max_ctx, &s->ds, err);
		if (r < 0) {
			rt_session_free(s);
			return r;
		}
		*ret_s = s;
		return 0;
	}
	s->kc = calloc(c->n_layers, sizeof(float *));
	s->vc = calloc(c->n_layers, sizeof(float *));
	if (!s->kc || !s->vc)
		goto oom;
	for (int i = 0; i < c->n_layers; i++) {
		s->kc[i] = malloc(sizeof(float) * kvd * max_ctx);
		/* MLA caches the latent only: keys and values both read it */
		s->vc[i] = c->kv_lora_rank ? NULL : malloc(sizeof(float) * kvd * max_ctx);
		if (!s->kc[i] || (!s->vc[i] && !c->kv_lora_rank))
			goto oom;
	}
	/* the activations come with the first rt_session_forward: a session
	 * that only runs in batches (the model's buffers) never needs them */
	s->last = malloc(sizeof(float) * c->vocab);
	if (!s->last)
		goto oom;
	*ret_s = s;
	return 0;
oom:
	rt_session_free(s);
	return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory for a %d-token context", max_ctx);
}

void rt_session_reset(struct rt_session *s)
{
	s->pos = 0;
}

int rt_session_pos(const struct rt_session *s)
{
	return s->pos;
}

/* y[T][dim] = rmsnorm(x[T][dim]) * w[dim], computed per row in double like
 * HF's float32 upcast (the extra precision only helps). */
static void rmsnorm(float *y, const float *x, const float *w, int T, int dim, double eps)
{
	for (int t = 0; t < T; t++) {
		const float *xr = x + (size_t)t * dim;
		float *yr = y + (size_t)t * dim;
		double ss = 0;
		float inv;
		for (int i = 0; i < dim; i++)
			ss += (double)xr[i] * xr[i];
		inv = (float)(1.0 / sqrt(ss / dim + eps));
		for (int i = 0; i < dim; i++)
			yr[i] = w[i] * (xr[i] * inv);
	}
}

/* rotate-half RoPE on x[T][nh][hd] in place over each head's first rd dims
 * (rd < hd: partial_rotary_factor): pairs (i, i + rd/2); the tables have
 * hd/2 entries per row */
static void rope(float *x, int T, int nh, int hd, int rd, size_t stride, const float *cosb, const float *sinb)
{
	int half = hd / 2, rh = rd / 2;
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++) {
			float *v = x + (size_t)t * stride + (size_t)h * hd;
			const float *cs = cosb + (size_t)t * half, *sn = sinb + (size_t)t * half;
			for (int i = 0; i < rh; i++) {
				float a = v[i], b = v[i + rh];
				v[i] = a * cs[i] - b * sn[i];
				v[i + rh] = b * cs[i] + a * sn[i];
			}
		}
}

static void embed_row(const struct rt_weight *e, int32_t id, float *out)
{
	const char *row = (const char *)e->data + (size_t)id * e->cols * rt_dtype_size(e->dtype);
	for (int i = 0; i < e->cols; i++)
		out[i] = rt_load_elem(row, e->dtype, i);
}

static float silu(float v)
{
	return v / (1.0f + expf(-v));
}

/* The top-k experts of one row of routing scores, best first (ties: the
 * lower index), and their weights (Mixtral, Qwen2/3-MoE: softmax over all
 * experts, then optionally renormalised over the k). */
static void route_row(const struct rt_config *c, float *sc, int *sel, float *w)
{
	int E = c->n_experts, K = c->top_k;
	double mx = -INFINITY, sum = 0, ks = 0;

	for (int e = 0; e < E; e++)
		mx = sc[e] > mx ? sc[e] : mx;
	for (int e = 0; e < E; e++)
		sum += exp((double)sc[e] - mx);
	for (int e = 0; e < E; e++)
		sc[e] = (float)(exp((double)sc[e] - mx) / sum);
	for (int k = 0; k < K; k++) {
		int best = -1;
		for (int e = 0; e < E; e++) {
			bool taken = false;
			for (int j = 0; j < k; j++)
				taken |= sel[j] == e;
			if (!taken && (best < 0 || sc[e] > sc[best]))
				best = e;
		}
		sel[k] = best;
		w[k] = sc[best];
		ks += sc[best];
	}
	if (c->norm_topk)
		for (int k = 0; k < K; k++)
			w[k] = (float)(w[k] / ks);
}

/* The k best of v[0..n) (ties: the lower index) into idx, best first. */
static void top_k(const float *v, int n, int k, int *idx)
{
	for (int j = 0; j < k; j++) {
		int best = -1;
		for (int e = 0; e < n; e++) {
			bool taken = false;
			for (int i = 0; i < j; i++)
				taken |= idx[i] == e;
			if (!taken && (best < 0 || v[e] > v[best]))
				best = e;
		}
		idx[j] = best;
	}
}

/* DeepSeek-V3 / GLM-4.5 routing (transformers route_tokens_to_experts):
 * sigmoid scores; the correction bias only for choosing; groups ranked by
 * the sum of their two best biased scores, the topk_group best kept and the
 * others' scores zeroed; top-k among those; weights are the unbiased
 * scores, optionally renormalised, times routed_scaling_factor. */
static void route_row_sigmoid(const struct rt_config *c, const float *logit, const float *bias, int *sel, float *w)
{
	int E = c->n_experts, K = c->top_k, G = c->n_group, per = E / G;
	float sc[RT_MAX_EXPERTS], ch[RT_MAX_EXPERTS], gs[RT_MAX_EXPERTS];
	int gi[RT_MAX_EXPERTS], two[2];
	double sum = 0;

	for (int e = 0; e < E; e++) {
		sc[e] = 1.0f / (1.0f + expf(-logit[e]));
		ch[e] = sc[e] + bias[e];
	}
	if (G > 1) {
		bool keep[RT_MAX_EXPERTS] = {false};
		for (int g = 0; g < G; g++) {
			top_k(ch + (size_t)g * per, per, 2, two);
			gs[g] = ch[g * per + two[0]] + ch[g * per + two[1]];
		}
		top_k(gs, G, c->topk_group, gi);
		for (int j = 0; j < c->topk_group; j++)
			keep[gi[j]] = true;
		for (int e = 0; e < E; e++)
			if (!keep[e / per])
				ch[e] = 0.0f;
	}
	top_k(ch, E, K, sel);
	for (int k = 0; k < K; k++) {
		w[k] = sc[sel[k]];
		sum += w[k];
	}
	for (int k = 0; k < K; k++) {
		if (c->norm_topk)
			w[k] = (float)(w[k] / (sum + 1e-20));
		w[k] = (float)(w[k] * c->routed_scale);
	}
}

/* y[T][inter] = silu(x . wg^T) * (x . wu^T), then out[T][hidden] = y . wd^T
 * (accumulated into out when acc). */
static void swiglu(struct rt_backend *be, float *out, const float *x, const struct rt_expert *x_w, float *g, float *u,
                   int T, bool acc)
{
	size_t n = (size_t)T * x_w->wg.rows;

	be->ops->matmul(be, g, x, &x_w->wg, NULL, T, false);
	be->ops->matmul(be, u, x, &x_w->wu, NULL, T, false);
	for (size_t i = 0; i < n; i++)
		g[i] = silu(g[i]) * u[i];
	be->ops->matmul(be, out, g, &x_w->wd, NULL, T, acc);
}

/* x[T][hidden] += MoE(xn): router, top-k per row, then each chosen expert
 * once over all the rows routed to it (decode: only the k experts' matrices
 * are read), and the shared expert over all rows.  Each row sums its
 * experts in ascending expert order, whatever T is, so a token gets the
 * same result in rt_session_forward and in any rt_forward_batch step. */
static void moe_block(struct rt_model *m, const struct rt_layer *L, float *x, const float *xn, int T)
{
	const struct rt_config *c = &m->cfg;
	struct rt_backend *be = m->be;
	struct moe_scratch *s = m->moe;
	int E = c->n_experts, K = c->top_k, H = c->hidden;

	be->ops->matmul(be, s->logits, xn, &L->router, NULL, T, false);
	memset(s->cnt, 0, sizeof(int) * (E + 1));
	for (int t = 0; t < T; t++) {
		if (c->sigmoid_router)
			route_row_sigmoid(c, s->logits + (size_t)t * E, L->router_bias, s->sel + (size_t)t * K,
			                  s->selw + (size_t)t * K);
		else
			route_row(c, s->logits + (size_t)t * E, s->sel + (size_t)t * K, s->selw + (size_t)t * K);
		for (int k = 0; k < K; k++)
			s->cnt[s->sel[(size_t)t * K + k]]++;
	}
	s->start[0] = 0;
	for (int e = 0; e < E; e++)
		s->start[e + 1] = s->start[e] + s->cnt[e];
	memset(s->cnt, 0, sizeof(int) * (E + 1));
	for (int t = 0; t < T; t++)
		for (int k = 0; k < K; k++) {
			int e = s->sel[(size_t)t * K + k], j = s->start[e] + s->cnt[e]++;
			s->tok[j] = t;
			s->tw[j] = s->selw[(size_t)t * K + k];
		}
	memset(s->acc, 0, sizeof(float) * (size_t)T * H);
	for (int e = 0; e < E; e++) {
		int n = s->cnt[e], j0 = s->start[e];
		if (!n)
			continue;
		for (int j = 0; j < n; j++)
			memcpy(s->xg + (size_t)j * H, xn + (size_t)s->tok[j0 + j] * H, sizeof(float) * H);
		swiglu(be, s->y, s->xg, &L->experts[e], s->g, s->u, n, false);
		for (int j = 0; j < n; j++) {
			float *a = s->acc + (size_t)s->tok[j0 + j] * H, w = s->tw[j0 + j];
			const float *y = s->y + (size_t)j * H;
			for (int i = 0; i < H; i++)
				a[i] += w * y[i];
		}
	}
	if (c->shared_inter > 0) {
		swiglu(be, s->y, xn, &L->shared, s->g, s->u, T, false);
		if (c->shared_gate)
			be->ops->matmul(be, s->sgl, xn, &L->sgate, NULL, T, false);
		for (int t = 0; t < T; t++) {
			float *a = s->acc + (size_t)t * H, w = c->shared_gate ? 1.0f / (1.0f + expf(-s->sgl[t])) : 1.0f;
			const float *y = s->y + (size_t)t * H;
			for (int i = 0; i < H; i++)
				a[i] += w * y[i];
		}
	}
	for (size_t i = 0; i < (size_t)T * H; i++)
		x[i] += s->acc[i];
}

/* The feed-forward half of a layer: x += MLP(xn) or MoE(xn). */
static void ffn(struct rt_model *m, const struct rt_layer *L, float *x, const float *xn, float *g, float *u, int T)
{
	if (L->moe) {
		moe_block(m, L, x, xn, T);
		return;
	}
	swiglu(m->be, x, xn, &(struct rt_expert){L->wg, L->wu, L->wd}, g, u, T, true);
}

/* RoPE on one vector of dim rotary values: pairs (i, i + dim/2), or with
 * interleave (DeepSeek's rope_interleave) pairs (2i, 2i + 1).  transformers
 * permutes the interleaved values to the rotate-half layout first; q and k
 * get the same permutation, so their dot products are these. */
static void rope_vec(float *v, int dim, const float *cs, const float *sn, bool interleave)
{
	int half = dim / 2;
	for (int i = 0; i < half; i++) {
		float *pa = interleave ? v + 2 * i : v + i, *pb = interleave ? v + 2 * i + 1 : v + i + half;
		float a = *pa, b = *pb;
		*pa = a * cs[i] - b * sn[i];
		*pb = b * cs[i] + a * sn[i];
	}
}

/* Multi-head latent attention, projection half.  kv_out[T][kv_lora_rank +
 * rope] receives what the cache keeps per token: kv_a_layernorm(c_kv) and
 * the rotated shared rope key.  q_out[T][nh][kv_lora_rank + rope] receives
 * each head's query with the key half of kv_b_proj absorbed (q_nope^T W_kb,
 * so that q . k = q_abs . c_kv + q_rope . k_rope without expanding the
 * cache) and pre-scaled so that the attention kernel's 1/sqrt(width) gives
 * the model's softmax scale. */
static void mla_project(struct rt_model *m, const struct rt_layer *L, const float *xn, int T, const float *cosb,
                        const float *sinb, float *q_out, float *kv_out)
{
	const struct rt_config *c = &m->cfg;
	struct rt_backend *be = m->be;
	struct mla_scratch *ms = m->mla;
	int nh = c->n_heads, nope = c->qk_nope_dim, rp = c->qk_rope_dim, rank = c->kv_lora_rank;
	int lat = rank + rp, qk = nope + rp, half = rp / 2, ds = (int)rt_dtype_size(L->wkv_b.dtype);
	float qscale = (float)(c->attn_scale * sqrt((double)lat));

	if (c->q_lora_rank) {
		be->ops->matmul(be, ms->qa, xn, &L->wq_a, L->bq, T, false);
		/* DeepseekV3RMSNorm's default eps, not rms_norm_eps */
		rmsnorm(ms->qa, ms->qa, L->q_a_norm, T, c->q_lora_rank, 1e-6);
		be->ops->matmul(be, ms->qf, ms->qa, &L->wq_b, NULL, T, false);
	} else {
		be->ops->matmul(be, ms->qf, xn, &L->wq, NULL, T, false);
	}
	be->ops->matmul(be, kv_out, xn, &L->wkv_a, L->bk, T, false);
	for (int t = 0; t < T; t++) {
		float *row = kv_out + (size_t)t * lat;
		const float *cs = cosb + (size_t)t * half, *sn = sinb + (size_t)t * half;
		rmsnorm(row, row, L->kv_a_norm, 1, rank, 1e-6);
		rope_vec(row + rank, rp, cs, sn, c->rope_interleave);
		for (int h = 0; h < nh; h++) {
			float *qn = ms->qf + ((size_t)t * nh + h) * qk, *qo = q_out + ((size_t)t * nh + h) * lat;
			rope_vec(qn + nope, rp, cs, sn, c->rope_interleave);
			for (int i = 0; i < rp; i++)
				qo[rank + i] = qn[nope + i] * qscale;
		}
	}
	/* absorbed query per head: q_abs[T][rank] = q_nope[T][nope] . W_kb_h (wkb_t holds W_kb_h^T) */
	for (int h = 0; h < nh; h++) {
		struct rt_weight wk = L->wkb_t;
		wk.data = (const char *)L->wkb_t.data + (size_t)h * rank * nope * ds;
		wk.rows = rank;
		for (int t = 0; t < T; t++)
			memcpy(ms->qn + (size_t)t * nope, ms->qf + ((size_t)t * nh + h) * qk, sizeof(float) * nope);
		be->ops->matmul(be, ms->lat, ms->qn, &wk, NULL, T, false);
		for (int t = 0; t < T; t++) {
			float *qo = q_out + ((size_t)t * nh + h) * lat;
			const float *qa = ms->lat + (size_t)t * rank;
			for (int i = 0; i < rank; i++)
				qo[i] = qa[i] * qscale;
		}
	}
}

/* MLA output half: att[T][nh][kv_lora_rank + rope] holds each head's
 * attention-weighted latent; its value is W_vb (the value half of kv_b_proj)
 * times that, and x += o_proj(values). */
static void mla_output(struct rt_model *m, const struct rt_layer *L, float *x, const float *att, int T)
{
	const struct rt_config *c = &m->cfg;
	struct rt_backend *be = m->be;
	struct mla_scratch *ms = m->mla;
	int nh = c->n_heads, nope = c->qk_nope_dim, rank = c->kv_lora_rank, lat = rank + c->qk_rope_dim;
	int vd = c->v_head_dim;

	for (int h = 0; h < nh; h++) {
		struct rt_weight wv = L->wkv_b;
		wv.data = (const char *)L->wkv_b.data +
		          ((size_t)h * (nope + vd) + nope) * rank * rt_dtype_size(L->wkv_b.dtype);
		wv.rows = vd;
		for (int t = 0; t < T; t++)
			memcpy(ms->lat + (size_t)t * rank, att + ((size_t)t * nh + h) * lat, sizeof(float) * rank);
		be->ops->matmul(be, ms->o1, ms->lat, &wv, NULL, T, false);
		for (int t = 0; t < T; t++)
			memcpy(ms->ov + ((size_t)t * nh + h) * vd, ms->o1 + (size_t)t * vd, sizeof(float) * vd);
	}
	be->ops->matmul(be, x, ms->ov, &L->wo, L->bo, T, true);
}

/* One chunk of T <= CHUNK tokens of a call whose tokens end at position end.
 * logits: NULL, [T][vocab] (all) or [vocab]. */
static void forward_chunk(struct rt_session *s, const int32_t *ids, int T, int end, float *logits, bool all)
{
	struct rt_model *m = s->m;
	const struct rt_config *c = &m->cfg;
	struct rt_backend *be = m->be;
	int H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, half = hd / 2;
	size_t qd = (size_t)nh * hd, kvd = (size_t)c->kv_dim; /* kv_dim: nkv * hd unless MLA */
	int pos0 = s->pos;

	rt_stream_enter(m->stream, RT_STREAM_EMBED);
	for (int t = 0; t < T; t++)
		embed_row(&m->embed, ids[t], s->x + (size_t)t * H);
	for (int t = 0; t < T; t++)
		rope_row(m, pos0 + t, end, s->cosb + (size_t)t * half, s->sinb + (size_t)t * half);
	for (int l = 0; l < c->n_layers; l++) {
		const struct rt_layer *L = &m->layers[l];
		float *kdst = s->kc[l] + (size_t)pos0 * kvd; /* [T][nkv*hd] inside the cache */
		float *vdst;

		rt_stream_enter(m->stream, l);
		rmsnorm(s->xn, s->x, L->attn_norm, T, H, c->rms_eps);
		if (c->kv_lora_rank) {
			int lat = c->kv_dim;
			mla_project(m, L, s->xn, T, s->cosb, s->sinb, s->q, s->kc[l] + (size_t)pos0 * lat);
			be->ops->attention(be, s->att, s->q, s->kc[l], s->kc[l], T, pos0, nh, 1, lat, 0);
			mla_output(m, L, s->x, s->att, T);
			goto ffn;
		}
		vdst = s->vc[l] + (size_t)pos0 * kvd;
		be->ops->matmul(be, s->q, s->xn, &L->wq, L->bq, T, false);
		be->ops->matmul(be, kdst, s->xn, &L->wk, L->bk, T, false);
		be->ops->matmul(be, vdst, s->xn, &L->wv, L->bv, T, false);
		if (c->qk_norm_full) {
			rmsnorm(s->q, s->q, L->q_norm, T, nh * hd, c->rms_eps);
			rmsnorm(kdst, kdst, L->k_norm, T, nkv * hd, c->rms_eps);
		} else if (c->qk_norm) {
			rmsnorm(s->q, s->q, L->q_norm, T * nh, hd, c->rms_eps);
			rmsnorm(kdst, kdst, L->k_norm, T * nkv, hd, c->rms_eps);
		}
		rope(s->q, T, nh, hd, c->rope_dim, qd, s->cosb, s->sinb);
		rope(kdst, T, nkv, hd, c->rope_dim, kvd, s->cosb, s->sinb);
		be->ops->attention(be, s->att, s->q, s->kc[l], s->vc[l], T, pos0, nh, nkv, hd, c->sliding_window);
		be->ops->matmul(be, s->x, s->att, &L->wo, L->bo, T, true);
	ffn:
		rmsnorm(s->xn, s->x, L->ffn_norm, T, H, c->rms_eps);
		ffn(m, L, s->x, s->xn, s->g, s->u, T);
	}
	s->pos += T;
	if (!logits)
		return;
	rt_stream_enter(m->stream, c->n_layers);
	if (all) {
		rmsnorm(s->xn, s->x, m->final_norm, T, H, c->rms_eps);
		be->ops->matmul(be, logits, s->xn, &m->lm_head, NULL, T, false);
	} else {
		rmsnorm(s->xn, s->x + (size_t)(T - 1) * H, m->final_norm, 1, H, c->rms_eps);
		be->ops->matmul(be, logits, s->xn, &m->lm_head, NULL, 1, false);
	}
}

/* A CPU session's activations for forward_chunk, allocated on first use. */
static int session_scratch(struct rt_session *s)
{
	const struct rt_config *c = &s->m->cfg;
	size_t qd = (size_t)c->q_dim;

	if (s->x)
		return 0;
	s->x = malloc(sizeof(float) * CHUNK * c->hidden);
	s->xn = malloc(sizeof(float) * CHUNK * c->hidden);
	s->q = malloc(sizeof(float) * CHUNK * qd);
	s->att = malloc(sizeof(float) * CHUNK * qd);
	s->g = malloc(sizeof(float) * CHUNK * c->intermediate);
	s->u = malloc(sizeof(float) * CHUNK * c->intermediate);
	s->cosb = malloc(sizeof(float) * CHUNK * c->head_dim / 2);
	s->sinb = malloc(sizeof(float) * CHUNK * c->head_dim / 2);
	if (!s->x || !s->xn || !s->q || !s->att || !s->g || !s->u || !s->cosb || !s->sinb) {
		free(s->xn), free(s->q), free(s->att), free(s->g), free(s->u), free(s->cosb), free(s->sinb);
		free(s->x);
		s->x = NULL;
		return -ENOMEM;
	}
	return 0;
}

int rt_session_forward(struct rt_session *s, const int32_t *ids, size_t n, bool all_logits, float *logits,
                       struct rt_error *err)
{
	int V, end;

	if (!s || (!ids && n))
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	if (n == 0)
		return 0;
	V = s->m->cfg.vocab;
	if (n > (size_t)(s->max_ctx - s->pos))
		return rt_fail(err, RT_ERR_USAGE, -ENOSPC, "%zu tokens do not fit the context (%d of %d used)", n,
		               s->pos, s->max_ctx);
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= V)
			return rt_fail(err, RT_ERR_USAGE, -EINVAL, "token id %d out of range [0, %d)", ids[i], V);
	if (!s->ds && session_scratch(s) < 0)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory for a %zu-token forward", n);
	pthread_mutex_lock(&s->m->run);
	end = s->pos + (int)n;
	for (size_t done = 0; done < n;) {
		int T = n - done < CHUNK ? (int)(n - done) : CHUNK;
		bool last = done + T == n;
		float *lg = NULL;
		if (logits && all_logits)
			lg = logits + done * (size_t)V;
		else if (logits && last)
			lg = logits;
		if (s->ds) {
			int r = s->m->dev->forward(s->ds, ids + done, T, s->pos, lg, all_logits, err);
			if (r < 0) {
				/* the cache past s->pos is garbage, which the next forward overwrites */
				pthread_mutex_unlock(&s->m->run);
				return r;
			}
			s->pos += T;
		} else {
			forward_chunk(s, ids + done, T, end, lg, all_logits);
		}
		done += T;
	}
	pthread_mutex_unlock(&s->m->run);
	return 0;
}

int32_t rt_logits_topk(const float *logits, int vocab, int k, struct rt_topk *out)
{
	double mx = -INFINITY, sum = 0, lse;
	int32_t best = 0;
	int n = 0;

	for (int i = 0; i < vocab; i++)
		if (logits[i] > mx) {
			mx = logits[i];
			best = i;
		}
	for (int i = 0; i < vocab; i++)
		sum += exp((double)logits[i] - mx);
	lse = mx + log(sum);
	if (k > vocab)
		k = vocab;
	/* insertion into a best-first list; strict > keeps the lower id on ties */
	for (int i = 0; i < vocab && k > 0; i++) {
		float v = logits[i];
		int j;
		if (n == k && !(v > logits[out[n - 1].id]))
			continue;
		j = n < k ? n++ : n - 1;
		while (j > 0 && v > logits[out[j - 1].id]) {
			out[j] = out[j - 1];
			j--;
		}
		out[j].id = i;
	}
	for (int i = 0; i < n; i++)
		out[i].logprob = (float)((double)logits[out[i].id] - lse);
	return best;
}

void rt_gen_result_free(struct rt_gen_result *r)
{
	if (!r)
		return;
	free(r->ids);
	free(r->topk);
	free(r);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int rt_generate(struct rt_session *s, const int32_t *prompt, size_t n_prompt, const struct rt_gen_opts *opts,
                struct rt_gen_result **ret_res, struct rt_error *err)
{
	struct rt_gen_result *res;
	struct rt_topk one;
	const struct rt_model_info *in;
	double t0;
	int r, K;

	if (!s || !opts || !ret_res || n_prompt == 0 || opts->max_new < 0 || opts->top_k < 0 || opts->top_k > MAX_TOPK)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid generation arguments");
	in = &s->m->info;
	if (n_prompt + (size_t)opts->max_new > (size_t)s->max_ctx + 1 && opts->max_new > 0)
		return rt_fail(err, RT_ERR_USAGE, -ENOSPC, "prompt (%zu) + new tokens (%d) exceed the context %d",
		               n_prompt, opts->max_new, s->max_ctx);
	K = opts->top_k;
	res = calloc(1, sizeof(*res));
	if (!res)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	res->top_k = K;
	res->ids = calloc((size_t)opts->max_new + 1, sizeof(int32_t));
	res->topk = calloc(((size_t)opts->max_new + 1) * (K ? K : 1), sizeof(struct rt_topk));
	if (!res->ids || !res->topk) {
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		goto out;
	}
	rt_session_reset(s);
	t0 = now_ms();
	r = rt_session_forward(s, prompt, n_prompt, false, s->last, err);
	if (r < 0)
		goto out;
	res->prefill_ms = now_ms() - t0;
	t0 = now_ms();
	while (res->n_out < (size_t)opts->max_new) {
		int32_t id;
		bool eos = false;
		id = rt_logits_topk(s->last, in->vocab, K, K ? res->topk + res->n_out * K : &one);
		res->ids[res->n_out++] = id;
		for (int i = 0; i < in->n_eos; i++)
			eos |= in->eos_ids[i] == id;
		if (eos && opts->stop_at_eos) {
			res->hit_eos = true;
			break;
		}
		if (res->n_out == (size_t)opts->max_new)
			break;
		r = rt_session_forward(s, &id, 1, false, s->last, err);
		if (r < 0)
			goto out;
	}
	res->decode_ms = now_ms() - t0;
	*ret_res = res;
	res = NULL;
	r = 0;
out:
	rt_gen_result_free(res);
	return r;
}

int rt_session_truncate(struct rt_session *s, int pos)
{
	if (!s || pos < 0 || pos > s->pos)
		return -EINVAL;
	s->pos = pos;
	return 0;
}

int rt_session_max_ctx(const struct rt_session *s)
{
	return s ? s->max_ctx : 0;
}

/* Device sessions: each session in turn (the device runs whole forward
 * passes of one sequence).  Positions are restored on failure. */
static int forward_batch_each(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids, size_t n,
                              float *logits, struct rt_error *err)
{
	for (size_t i = 0; i < n; i++) {
		float *lg = logits ? logits + i * (size_t)ss[i]->m->cfg.vocab : NULL;
		int r, pos0 = ss[i]->pos;
		if (!n_ids[i])
			continue;
		r = rt_session_forward(ss[i], ids[i], n_ids[i], false, lg, err);
		if (r < 0) {
			/* a multi-chunk forward may have advanced before failing */
			ss[i]->pos = pos0;
			for (size_t j = 0; j < i; j++)
				ss[j]->pos -= (int)n_ids[j];
			return r;
		}
	}
	return 0;
}

static int batch_scratch_get(struct rt_model *m, size_t lg_rows, struct batch_scratch **ret)
{
	const struct rt_config *c = &m->cfg;
	struct batch_scratch *b = m->bs;
	size_t qd = (size_t)c->q_dim, kvd = (size_t)c->kv_dim;

	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return -ENOMEM;
		b->x = malloc(sizeof(float) * CHUNK * c->hidden);
		b->xn = malloc(sizeof(float) * CHUNK * c->hidden);
		b->q = malloc(sizeof(float) * CHUNK * qd);
		b->att = malloc(sizeof(float) * CHUNK * qd);
		b->k = malloc(sizeof(float) * CHUNK * kvd);
		b->v = malloc(sizeof(float) * CHUNK * kvd);
		b->g = malloc(sizeof(float) * CHUNK * c->intermediate);
		b->u = malloc(sizeof(float) * CHUNK * c->intermediate);
		b->cosb = malloc(sizeof(float) * CHUNK * (c->head_dim / 2));
		b->sinb = malloc(sizeof(float) * CHUNK * (c->head_dim / 2));
		b->seg = malloc(sizeof(*b->seg) * CHUNK);
		b->aseg = malloc(sizeof(*b->aseg) * CHUNK);
		if (!b->x || !b->xn || !b->q || !b->att || !b->k || !b->v || !b->g || !b->u || !b->cosb || !b->sinb ||
		    !b->seg || !b->aseg) {
			batch_scratch_free(b);
			return -ENOMEM;
		}
		m->bs = b;
	}
	if (lg_rows > b->lg_rows) {
		float *p = realloc(b->lg, sizeof(float) * lg_rows * c->vocab);
		if (!p)
			return -ENOMEM;
		b->lg = p;
		b->lg_rows = lg_rows;
	}
	*ret = b;
	return 0;
}

/* The rows of one batched step: n_seg segments, rows [0, rows) in total
 * (rows <= CHUNK); x, cosb and sinb are the step's own (rt_forward_batch:
 * the scratch's; rt_forward_batch_all: one slice per step of the call). */
struct batch_rows {
	struct batch_seg *seg;
	int n_seg, rows;
	float *x;           /* [rows][hidden] */
	float *cosb, *sinb; /* [rows][hd/2] */
};

static void batch_embed(struct rt_model *m, const struct batch_rows *br)
{
	int H = m->cfg.hidden, half = m->cfg.head_dim / 2;

	for (int j = 0; j < br->n_seg; j++) {
		const struct batch_seg *sg = &br->seg[j];
		for (int t = 0; t < sg->T; t++) {
			size_t r = (size_t)sg->row0 + t;
			embed_row(&m->embed, sg->ids[t], br->x + r * H);
			/* a prompt split across steps keeps its own sequence end */
			rope_row(m, sg->pos0 + t, sg->end, br->cosb + r * half, br->sinb + r * half);
		}
	}
}

/* Layer l over one step's rows.  Mirrors forward_chunk row by row: the same
 * kernels (the matmul tiles sum each row in the same order for any T) and
 * the same order of operations per token, so each sequence gets the logits
 * it gets alone. */
static void batch_layer(struct rt_model *m, struct batch_scratch *b, int l, const struct batch_rows *br)
{
	const struct rt_config *c = &m->cfg;
	struct rt_backend *be = m->be;
	const struct rt_layer *L = &m->layers[l];
	int H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, n_seg = br->n_seg, rows = br->rows;
	size_t qd = (size_t)nh * hd, kvd = (size_t)c->kv_dim; /* kv_dim: nkv * hd unless MLA */
	float *x = br->x;

	/* every matrix below is read once for all rows of all sequences */
	rmsnorm(b->xn, x, L->attn_norm, rows, H, c->rms_eps);
	if (c->kv_lora_rank) {
		/* latent rows into each session's cache; keys and values both read it */
		mla_project(m, L, b->xn, rows, br->cosb, br->sinb, b->q, b->k);
		for (int j = 0; j < n_seg; j++) {
			const struct batch_seg *sg = &br->seg[j];
			struct rt_session *s = sg->s;
			memcpy(s->kc[l] + (size_t)sg->pos0 * kvd, b->k + (size_t)sg->row0 * kvd,
			       sizeof(float) * kvd * sg->T);
			b->aseg[j] = (struct rt_att_seg){s->kc[l], s->kc[l], sg->row0, sg->T, sg->pos0};
		}
		be->ops->attention_batch(be, b->att, b->q, b->aseg, n_seg, nh, 1, (int)kvd, 0);
		mla_output(m, L, x, b->att, rows);
		goto ffn;
	}
	be->ops->matmul(be, b->q, b->xn, &L->wq, L->bq, rows, false);
	be->ops->matmul(be, b->k, b->xn, &L->wk, L->bk, rows, false);
	be->ops->matmul(be, b->v, b->xn, &L->wv, L->bv, rows, false);
	if (c->qk_norm_full) {
		rmsnorm(b->q, b->q, L->q_norm, rows, nh * hd, c->rms_eps);
		rmsnorm(b->k, b->k, L->k_norm, rows, nkv * hd, c->rms_eps);
	} else if (c->qk_norm) {
		rmsnorm(b->q, b->q, L->q_norm, rows * nh, hd, c->rms_eps);
		rmsnorm(b->k, b->k, L->k_norm, rows * nkv, hd, c->rms_eps);
	}
	/* RoPE per row with that row's own position */
	rope(b->q, rows, nh, hd, c->rope_dim, qd, br->cosb, br->sinb);
	rope(b->k, rows, nkv, hd, c->rope_dim, kvd, br->cosb, br->sinb);
	for (int j = 0; j < n_seg; j++) {
		const struct batch_seg *sg = &br->seg[j];
		struct rt_session *s = sg->s;
		memcpy(s->kc[l] + (size_t)sg->pos0 * kvd, b->k + (size_t)sg->row0 * kvd, sizeof(float) * kvd * sg->T);
		memcpy(s->vc[l] + (size_t)sg->pos0 * kvd, b->v + (size_t)sg->row0 * kvd, sizeof(float) * kvd * sg->T);
		b->aseg[j] = (struct rt_att_seg){s->kc[l], s->vc[l], sg->row0, sg->T, sg->pos0};
	}
	be->ops->attention_batch(be, b->att, b->q, b->aseg, n_seg, nh, nkv, hd, c->sliding_window);
	be->ops->matmul(be, x, b->att, &L->wo, L->bo, rows, true);
ffn:
	rmsnorm(b->xn, x, L->ffn_norm, rows, H, c->rms_eps);
	ffn(m, L, x, b->xn, b->g, b->u, rows);
}

/* One batched step of rt_forward_batch: every layer over the step's rows,
 * then the logits of the sequences that end in it. */
static void forward_batch_step(struct rt_model *m, struct batch_scratch *b, int n_seg, int rows, float *logits,
                               bool direct)
{
	const struct rt_config *c = &m->cfg;
	struct rt_backend *be = m->be;
	int H = c->hidden, V = c->vocab;
	int n_log = 0;
	long out0 = -1;
	struct batch_rows br = {b->seg, n_seg, rows, b->x, b->cosb, b->sinb};

	rt_stream_enter(m->stream, RT_STREAM_EMBED);
	batch_embed(m, &br);
	for (int l = 0; l < c->n_layers; l++) {
		rt_stream_enter(m->stream, l);
		batch_layer(m, b, l, &br);
	}
	for (int j = 0; j < n_seg; j++)
		b->seg[j].s->pos += b->seg[j].T;
	if (!logits)
		return;
	rt_stream_enter(m->stream, c->n_layers);
	/* lm_head only over the last row of each sequence that ends here */
	for (int j = 0; j < n_seg; j++) {
		const struct batch_seg *sg = &b->seg[j];
		if (sg->out < 0)
			continue;
		if (out0 < 0)
			out0 = sg->out;
		rmsnorm(b->xn + (size_t)n_log * H, b->x + (size_t)(sg->row0 + sg->T - 1) * H, m->final_norm, 1, H,
		        c->rms_eps);
		n_log++;
	}
	if (!n_log)
		return;
	if (direct) {
		/* the caller's rows out0.. are consecutive: write them in place */
		be->ops->matmul(be, logits + (size_t)out0 * V, b->xn, &m->lm_head, NULL, n_log, false);
		return;
	}
	be->ops->matmul(be, b->lg, b->xn, &m->lm_head, NULL, n_log, false);
	n_log = 0;
	for (int j = 0; j < n_seg; j++)
		if (b->seg[j].out >= 0)
			memcpy(logits + (size_t)b->seg[j].out * V, b->lg + (size_t)n_log++ * V, sizeof(float) * V);
}

/* Checks a batch before any session moves: what rt_forward_batch's
 * contract refuses.  *ret_first and *ret_last: the first and last entry
 * with tokens; *ret_active: how many have tokens. */
static int batch_validate(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids, size_t n,
                          size_t *ret_first, size_t *ret_last, size_t *ret_active, struct rt_error *err)
{
	size_t n_active = 0, first = 0, last = 0, i;
	int r = 0, V;

	if (!ss || !ids || !n_ids)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	for (i = 0; i < n; i++)
		if (!ss[i] || (n_ids[i] && !ids[i]) || ss[i]->m != ss[0]->m)
			return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid batch entry %zu", i);
	if (n == 0) {
		*ret_first = *ret_last = *ret_active = 0;
		return 0;
	}
	V = ss[0]->m->cfg.vocab;
	for (i = 0; i < n && r == 0; i++) {
		struct rt_session *s = ss[i];
		if (!n_ids[i])
			continue;
		if (s->in_batch) {
			r = rt_fail(err, RT_ERR_USAGE, -EINVAL, "batch entry %zu: session appears twice", i);
			break;
		}
		s->in_batch = true;
		if (n_ids[i] > (size_t)(s->max_ctx - s->pos)) {
			r = rt_fail(err, RT_ERR_USAGE, -ENOSPC,
			            "batch entry %zu: %zu tokens do not fit the context (%d of %d used)", i, n_ids[i],
			            s->pos, s->max_ctx);
			break;
		}
		for (size_t k = 0; k < n_ids[i]; k++)
			if (ids[i][k] < 0 || ids[i][k] >= V) {
				r = rt_fail(err, RT_ERR_USAGE, -EINVAL,
				            "batch entry %zu: token id %d out of range [0, %d)", i, ids[i][k], V);
				break;
			}
		if (!n_active++)
			first = i;
		last = i;
	}
	for (size_t j = 0; j < n && j <= i; j++)
		ss[j]->in_batch = false;
	if (r < 0)
		return r;
	*ret_first = first;
	*ret_last = last;
	*ret_active = n_active;
	return 0;
}

/* Plans one step of at most CHUNK rows from entry *i, token *done on (a
 * long entry is split across steps), up to entry last; advances both and
 * returns the step's rows, its n_seg segments in seg.  advanced: the
 * earlier steps' tokens are already counted in the sessions' positions
 * (rt_forward_batch runs each step before planning the next). */
static int batch_plan_step(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids, size_t last,
                           bool advanced, size_t *i, size_t *done, struct batch_seg *seg, int *ret_n_seg)
{
	int rows = 0, n_seg = 0;

	while (*i <= last && rows < CHUNK) {
		size_t take, k = *i;
		int pos0;
		if (!n_ids[k]) {
			(*i)++;
			continue;
		}
		take = n_ids[k] - *done;
		if (take > (size_t)(CHUNK - rows))
			take = (size_t)(CHUNK - rows);
		pos0 = ss[k]->pos + (advanced ? 0 : (int)*done);
		seg[n_seg++] = (struct batch_seg){ss[k],
		                                  ids[k] + *done,
		                                  (int)take,
		                                  pos0,
		                                  rows,
		                                  pos0 + (int)(n_ids[k] - *done),
		                                  *done + take == n_ids[k] ? (long)k : -1};
		rows += (int)take;
		*done += take;
		if (*done == n_ids[k]) {
			(*i)++;
			*done = 0;
		}
	}
	*ret_n_seg = n_seg;
	return rows;
}

/* CPU: all sessions' tokens are gathered into steps of at most CHUNK rows;
 * each step streams every weight matrix once for all of them. */
int rt_forward_batch(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids, size_t n,
                     float *logits, struct rt_error *err)
{
	struct rt_model *m;
	struct batch_scratch *b;
	size_t n_active, first, last, i, done;
	bool contiguous;
	int r;

	r = batch_validate(ss, ids, n_ids, n, &first, &last, &n_active, err);
	if (r < 0 || !n_active)
		return r;
	m = ss[0]->m;
	if (m->dev)
		return forward_batch_each(ss, ids, n_ids, n, logits, err);
	contiguous = last - first + 1 == n_active;
	pthread_mutex_lock(&m->run);
	r = batch_scratch_get(m, contiguous || !logits ? 0 : (n_active < CHUNK ? n_active : CHUNK), &b);
	if (r < 0) {
		pthread_mutex_unlock(&m->run);
		return rt_fail(err, RT_ERR_INTERNAL, r, "out of memory for a batch of %zu sequences", n_active);
	}
	/* steps of at most CHUNK tokens; a long prompt chunk is split across
	 * steps, and its logits come from the step holding its last token */
	i = first;
	done = 0;
	while (i <= last) {
		int n_seg, rows = batch_plan_step(ss, ids, n_ids, last, true, &i, &done, b->seg, &n_seg);
		forward_batch_step(m, b, n_seg, rows, logits, contiguous);
	}
	pthread_mutex_unlock(&m->run);
	return 0;
}

/* Device sessions for rt_forward_batch_all: each in turn, all logits. */
static int forward_batch_all_each(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids,
                                  size_t n, float *logits, struct rt_error *err)
{
	size_t row = 0;

	for (size_t i = 0; i < n; i++) {
		int r, pos0 = ss[i]->pos;
		if (!n_ids[i])
			continue;
		r = rt_session_forward(ss[i], ids[i], n_ids[i], true, logits + row * (size_t)ss[i]->m->cfg.vocab, err);
		if (r < 0) {
			ss[i]->pos = pos0;
			for (size_t j = 0; j < i; j++)
				ss[j]->pos -= (int)n_ids[j];
			return r;
		}
		row += n_ids[i];
	}
	return 0;
}

/* CPU: the layers are the outer loop and the steps of at most CHUNK rows
 * the inner one, so each layer's weights are read (and, streamed, mapped)
 * once per call.  A step's attention at layer l reads the cache rows of
 * layer l that the earlier steps of the same sequence wrote. */
int rt_forward_batch_all(struct rt_session *const *ss, const int32_t *const *ids, const size_t *n_ids, size_t n,
                         float *logits, struct rt_error *err)
{
	struct rt_model *m;
	struct batch_scratch *b;
	struct batch_seg *seg = NULL;
	size_t n_active, first, last, n_steps, n_segs, total = 0, *step0 = NULL;
	int r, *nrows = NULL, H, half, V;
	float *x = NULL, *cs = NULL, *sn = NULL;

	r = batch_validate(ss, ids, n_ids, n, &first, &last, &n_active, err);
	if (r < 0 || !n_active)
		return r;
	if (!logits)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	m = ss[0]->m;
	if (m->dev)
		return forward_batch_all_each(ss, ids, n_ids, n, logits, err);
	H = m->cfg.hidden;
	half = m->cfg.head_dim / 2;
	V = m->cfg.vocab;
	for (size_t i = first; i <= last; i++)
		total += n_ids[i];
	n_steps = (total + CHUNK - 1) / CHUNK; /* every step but the last is full */
	n_segs = n_steps + n_active;           /* a step adds at most one split entry */
	seg = malloc(sizeof(*seg) * n_segs);
	step0 = malloc(sizeof(*step0) * (n_steps + 1));
	nrows = malloc(sizeof(*nrows) * n_steps);
	x = malloc(sizeof(float) * total * H);
	cs = malloc(sizeof(float) * total * (half ? half : 1));
	sn = malloc(sizeof(float) * total * (half ? half : 1));
	if (!seg || !step0 || !nrows || !x || !cs || !sn) {
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory for a batch of %zu tokens", total);
		goto out;
	}
	{
		size_t i = first, done = 0, k = 0;
		step0[0] = 0;
		for (; k < n_steps && i <= last; k++) {
			int n_seg;
			nrows[k] = batch_plan_step(ss, ids, n_ids, last, false, &i, &done, seg + step0[k], &n_seg);
			step0[k + 1] = step0[k] + (size_t)n_seg;
		}
		n_steps = k;
	}
	pthread_mutex_lock(&m->run);
	r = batch_scratch_get(m, 0, &b);
	if (r < 0) {
		pthread_mutex_unlock(&m->run);
		r = rt_fail(err, RT_ERR_INTERNAL, r, "out of memory for a batch of %zu sequences", n_active);
		goto out;
	}
	/* step k's rows are rows row(k).. of the call, in x, cs, sn and logits */
#define STEP(k, row)                                                                                                  	((struct batch_rows){seg + step0[k], (int)(step0[(k) + 1] - step0[k]), nrows[k], x + (row) * H,              	                     cs + (row) * half, sn + (row) * half})
	rt_stream_enter(m->stream, RT_STREAM_EMBED);
	for (size_t k = 0, row = 0; k < n_steps; row += (size_t)nrows[k], k++)
		batch_embed(m, &STEP(k, row));
	for (int l = 0; l < m->cfg.n_layers; l++) {
		rt_stream_enter(m->stream, l);
		for (size_t k = 0, row = 0; k < n_steps; row += (size_t)nrows[k], k++)
			batch_layer(m, b, l, &STEP(k, row));
	}
	rt_stream_enter(m->stream, m->cfg.n_layers);
	for (size_t k = 0, row = 0; k < n_steps; row += (size_t)nrows[k], k++) {
		rmsnorm(b->xn, x + row * H, m->final_norm, nrows[k], H, m->cfg.rms_eps);
		m->be->ops->matmul(m->be, logits + row * V, b->xn, &m->lm_head, NULL, nrows[k], false);
	}
#undef STEP
	for (size_t i = first; i <= last; i++)
		ss[i]->pos += (int)n_ids[i];
	pthread_mutex_unlock(&m->run);
	r = 0;
out:
	free(seg);
	free(step0);
	free(nrows);
	free(x);
	free(cs);
	free(sn);
	return r;
}
