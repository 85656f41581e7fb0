/* SPDX-License-Identifier: Apache-2.0 */
/* C interface of the CUDA kernels (cuda_kernels.cu).  Every launcher
 * enqueues on `st` and returns cudaGetLastError() (as int, cudaError_t) so
 * that cuda_backend.c can turn a bad launch into an rt_error.  All pointers
 * are device pointers; activations are f32, row-major.  dtype is enum
 * rt_dtype (0 f32, 1 f16, 2 bf16).  The KV cache is bf16. */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *agk_stream;

/* out[T][H] = embed[ids[t]][:] as f32; embed [vocab][H] in dtype */
int agk_embed(float *out, const void *embed, int dtype, const int32_t *ids, int T, int H, agk_stream st);

/* y[rows][dim] = x / rms(x) * w; y may equal x.  w [dim] f32 */
int agk_rmsnorm(float *y, const float *x, const float *w, int rows, int dim, float eps, agk_stream st);

/* rotate-half RoPE in place on x[T][n_heads][hd] (row stride `stride`
 * floats), position of row t = pos0 + t, angle (float)pos * inv_freq[i] */
int agk_rope(float *x, int T, int n_heads, int hd, int stride, int pos0, const float *inv_freq, agk_stream st);

/* kc/vc [ctx][kvd] bf16: rows pos0..pos0+T-1 = k/v [T][kvd] f32 */
int agk_kv_store(uint16_t *kc, uint16_t *vc, const float *k, const float *v, int T, int kvd, int pos0, agk_stream st);

/* causal GQA attention of T queries at pos0.. against cache rows [0, pos0+T):
 * out, q [T][nh*hd]; kc, vc [ctx][nkv*hd] bf16; window > 0 hides keys with
 * q_pos - k_pos >= window.  hd <= 1024. */
int agk_attention(float *out, const float *q, const uint16_t *kc, const uint16_t *vc, int T, int pos0, int nh, int nkv,
                  int hd, int window, agk_stream st);

/* g[n] = silu(g) * u */
int agk_swiglu(float *g, const float *u, size_t n, agk_stream st);

/* y[T][n] += b[n] (bias, broadcast over rows) */
int agk_add_bias(float *y, const float *b, int T, int n, agk_stream st);

/* y[n] += x[n] (residual) */
int agk_add(float *y, const float *x, size_t n, agk_stream st);

/* dst[n] = (dtype)src[n] for a GEMM operand; dtype f16 or bf16 */
int agk_convert(void *dst, int dtype, const float *src, size_t n, agk_stream st);

/* decode matrix-vector product: y[rows] = (acc ? y : 0) + W[rows][cols] . x[cols] + bias (may be NULL);
 * W in dtype, 16-byte aligned rows when cols is a multiple of 8 (4 for f32). */
int agk_matvec(float *y, const void *w, int dtype, const float *x, const float *bias, int rows, int cols, int acc,
               agk_stream st);

/* A quantized matrix [rows][cols] on the device: struct rt_wquant of
 * runtime/backend.h with its parts copied to the device unchanged (no
 * repack).  Weight (r, k) in f32 is code * scale (fmt 1, fp8) or
 * (nibble - zero) * scale (fmt 2, int4), as runtime/quant.h's rt_q_weight
 * defines it for each layout (0 compressed-tensors, 1 GPTQ, 2 AWQ). */
struct agk_qmat {
	const void *data, *scale, *zero, *g_idx; /* zero, g_idx may be NULL */
	int fmt, code_dtype;                     /* code_dtype: 3 F8_E4M3, 4 F8_E5M2 (fp8) */
	int layout, scale_dtype;                 /* scale_dtype: 0 f32, 1 f16, 2 bf16 */
	int sr, sc, n_sc;
	int zero_const, zero_add;
	int rows, cols;
};

/* y[T][rows] = (acc ? y : 0) + x[T][cols] . W^T + bias (may be NULL), W
 * quantized: every weight dequantized to f32 in registers and multiplied in
 * f32 (no rounding to 16 bits). */
int agk_qmatmul(float *y, const struct agk_qmat *w, const float *x, const float *bias, int T, int acc, agk_stream st);
/* The kernel's element math run on the host, over host pointers in w (for
 * test_kernels on machines without a GPU). */
float agk_q_weight_host(const struct agk_qmat *w, int r, int k);

#ifdef __cplusplus
}
#endif
