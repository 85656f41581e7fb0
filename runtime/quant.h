/* SPDX-License-Identifier: Apache-2.0 */
/* Quantized checkpoints (issue 19): config.json's quantization_config, the
 * binding of quantized matrices (quant.c) and their CPU kernels
 * (backend_quant.c).  The element accessors below are the reference
 * definition of each layout (struct rt_wquant in backend.h); the SIMD kernels
 * compute the same values. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "agrt/agrt.h"
#include "backend.h"
#include "dtype.h"

struct st_set;
struct rt_quant;
struct rt_pool;

/* DIR/config.json's quantization_config; *ret NULL when there is none. */
int rt_quant_load(const char *dir, struct rt_quant **ret, struct rt_error *err);
void rt_quant_free(struct rt_quant *q);
/* quant_method as written ("fp8", "compressed-tensors", "awq", "gptq"). */
const char *rt_quant_method(const struct rt_quant *q);

/* Bind the matrix NAME ("<module>.weight") of shape [rows][cols]: dense, or
 * quantized as the checkpoint and q (may be NULL) say, every tensor checked
 * against the format (shapes, dtypes, group sizes, finite positive scales).
 * dir names the model in errors. */
int rt_quant_bind(const struct rt_quant *q, const struct st_set *st, const char *dir, const char *name, int rows,
                  int cols, struct rt_weight *w, struct rt_error *err);

/* The bytes (a multiple of 64) that rt_quant_to_rows needs for w: an int4
 * GPTQ or AWQ matrix whose groups the CPU's row kernels take (groups of a
 * multiple of 128 columns or one a row, and with small (the AVX-512
 * kernels) of 32 or 64; act-order g_idx, GPTQ's or compressed-tensors',
 * where every group has exactly that many columns); 0 for any other. */
size_t rt_quant_rows_bytes(const struct rt_weight *w, bool small);
/* Whether rt_quant_to_rows sorts the columns of w (rt_quant_rows_bytes(w,
 * ...) > 0): act-order, so the copy has rt_wquant.perm, and its matmuls
 * gather x (rt_qcpu_reserve). */
bool rt_quant_rows_perm(const struct rt_weight *w);
/* w (rt_quant_rows_bytes(w, ...) > 0) repacked into compressed-tensors' layout,
 * codes, scales and zero points, in dst (rt_quant_rows_bytes(w, ...) bytes,
 * 64-byte aligned), which must outlive every use of w: every weight keeps
 * its value, at (r, k) or, for act-order, at (r, k') with perm[k'] = k. */
void rt_quant_to_rows(struct rt_weight *w, void *dst);
/* The bytes (a multiple of 64) of w's (scale, zero * scale) pairs
 * (rt_quant_pairs): an int4 matrix with zero points and F16 or BF16 scales
 * whose groups the row kernels take, in rows or to be repacked into them
 * (rt_quant_rows_bytes); 0 for any other. */
size_t rt_quant_pairs_bytes(const struct rt_weight *w);
/* w's pairs in dst (rt_quant_pairs_bytes(w) bytes, 64-byte aligned, which
 * must outlive every use of w) and w->q.sz set to them; false, w unchanged,
 * where w (in rows) has no zero points, or a scale that 16 times overflows. */
bool rt_quant_pairs(struct rt_weight *w, float *dst);

/* e4m3 (no infinities; S.1111.111 is NaN) and e5m2 (IEEE-like) codes. */
static inline float rt_f8e4m3_to_f32(uint8_t v)
{
	/* as f16: exponent bias 15 vs 7, so the value times 2^8 (exact) */
	uint16_t h = (uint16_t)(((v & 0x80u) << 8) | ((v & 0x7fu) << 7));
	if ((v & 0x7f) == 0x7f)
		return __builtin_nanf("");
	return rt_f16_to_f32(h) * 256.0f;
}

static inline float rt_f8e5m2_to_f32(uint8_t v)
{
	return rt_f16_to_f32((uint16_t)(v << 8));
}

static inline uint32_t rt_q_u32(const void *p, size_t i)
{
	uint32_t u;
	memcpy(&u, (const char *)p + 4 * i, 4);
	return u;
}

/* the nibble of packed word u that holds row r (AWQ's interleaved order) */
static inline int rt_awq_shift(int r)
{
	static const int8_t s[8] = {0, 16, 4, 20, 8, 24, 12, 28};
	return s[r & 7];
}

static inline int rt_q_group(const struct rt_weight *w, int k)
{
	if (w->q.g_idx) {
		int32_t g;
		memcpy(&g, (const char *)w->q.g_idx + 4 * (size_t)k, 4);
		return g;
	}
	return k / w->q.sc;
}

static inline float rt_q_scale(const struct rt_weight *w, int r, int k)
{
	const struct rt_wquant *q = &w->q;
	size_t i;

	if (q->fmt == RT_WF_FP8)
		i = (size_t)(r / q->sr) * q->n_sc + (size_t)(k / q->sc);
	else if (q->layout == RT_I4_CT)
		i = (size_t)r * q->n_sc + (size_t)rt_q_group(w, k);
	else
		i = (size_t)rt_q_group(w, k) * w->rows + (size_t)r;
	return rt_load_elem(q->scale, q->scale_dtype, i);
}

static inline int rt_q_zero(const struct rt_weight *w, int r, int g)
{
	const struct rt_wquant *q = &w->q;
	uint32_t u;

	if (!q->zero)
		return q->zero_const;
	if (q->layout == RT_I4_CT)
		return (int)((rt_q_u32(q->zero, (size_t)(r / 8) * q->n_sc + (size_t)g) >> (4 * (r & 7))) & 15) +
		       q->zero_add;
	u = rt_q_u32(q->zero, (size_t)g * (w->rows / 8) + (size_t)(r / 8));
	return (int)((u >> (q->layout == RT_I4_AWQ ? rt_awq_shift(r) : 4 * (r & 7))) & 15) + q->zero_add;
}

static inline int rt_q_nibble(const struct rt_weight *w, int r, int k)
{
	switch (w->q.layout) {
	case RT_I4_CT:
		return (int)((rt_q_u32(w->data, (size_t)r * ((w->cols + 7) / 8) + (size_t)(k / 8)) >> (4 * (k & 7))) &
		             15);
	case RT_I4_GPTQ: return (int)((rt_q_u32(w->data, (size_t)(k / 8) * w->rows + (size_t)r) >> (4 * (k & 7))) & 15);
	default: return (int)((rt_q_u32(w->data, (size_t)k * (w->rows / 8) + (size_t)(r / 8)) >> rt_awq_shift(r)) & 15);
	}
}

/* Weight (r, k) in f32, exactly as the format defines it. */
static inline float rt_q_weight(const struct rt_weight *w, int r, int k)
{
	if (w->q.fmt == RT_WF_FP8) {
		uint8_t v = ((const uint8_t *)w->data)[(size_t)r * w->cols + (size_t)k];
		float c = w->dtype == RT_F8_E4M3 ? rt_f8e4m3_to_f32(v) : rt_f8e5m2_to_f32(v);
		return c * rt_q_scale(w, r, k);
	}
	return (float)(rt_q_nibble(w, r, k) - rt_q_zero(w, r, rt_q_group(w, k))) * rt_q_scale(w, r, k);
}

/* ---- the CPU kernels (backend_quant.c) ---- */
struct rt_qcpu;
/* simd: the CPU backend's choice ("avx512", "avx2", "generic") */
int rt_qcpu_new(const char *simd, int n_threads, struct rt_qcpu **ret);
void rt_qcpu_free(struct rt_qcpu *c);
/* whether c's int4 row kernels read rt_wquant.sz (AVX-512) */
bool rt_qcpu_int4_pairs(const struct rt_qcpu *c);
/* room for x of cols columns gathered for a matrix with rt_wquant.perm, so
 * that its matmuls need no allocation that can fail (token by token where
 * a whole batch's cannot be had): 0, or -ENOMEM */
int rt_qcpu_reserve(struct rt_qcpu *c, size_t cols);
/* y[T][w->rows] = (acc ? y : 0) + x[T][w->cols] . w^T + bias, w quantized */
void rt_qcpu_matmul(struct rt_qcpu *c, struct rt_pool *pool, float *y, const float *x, const struct rt_weight *w,
                    const float *bias, int T, bool acc);
