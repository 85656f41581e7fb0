/* SPDX-License-Identifier: Apache-2.0 */
/* CPU backend: pthreads pool + SIMD kernels chosen at runtime.  The build is
 * portable x86-64 (or any arch); AVX2/FMA/F16C code lives in functions
 * compiled with a target pragma and is used only when the CPU has it. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dtype.h"
#include "quant.h"
#include "threadpool.h"

/* out[r][t] = dot(w row r, x row t) for a 4-row x 3-token tile.  Unused rows
 * and tokens point at duplicates, so the kernels have no branches inside. */
typedef void (*tile_fn)(const void *const w[4], const float *const x[3], int K, float out[4][3], size_t pf);
typedef void (*tile1_fn)(const void *const w[4], const float *x, int K, float out[4], size_t pf);
typedef float (*dot_fn)(const float *a, const float *b, int n);
typedef void (*axpy_fn)(float *y, float a, const float *x, int n);
typedef void (*cvt_fn)(float *dst, const void *src, int n);
/* out[r][t] = dot(w row r, x[t]) for 4 rows x nt (1..TILE_T) tokens */
#define TILE_T 6
/* attention: the scores of this many positions, then one softmax rescale */
#define ATT_BLOCK 128
/* attention: at most this many query heads of one KV head in one task */
#define ATT_G 16
/* att_z: at most this many accumulator sets */
#define ATT_S 4
typedef void (*tilen_fn)(const void *const w[4], const float *const *x, int nt, int K, float out[4][TILE_T], size_t pf,
                         unsigned pfrows);
/* out[r] = dot(row r, x) for the nr rows of rb bytes each from w, one token:
 * the rows one after another, so a task reads one contiguous stream, which
 * the hardware prefetchers follow, with a software prefetch ROWS1_PF bytes
 * ahead into L1; each row summed in the order of its family's tiles, so a
 * token gets the same results alone as in a batch, bitwise */
typedef void (*rowsn_fn)(const void *w, size_t rb, int nr, const float *x, int K, float *out);
#define ROWS1_PF 8192

struct kern {
	tile_fn tile[3]; /* per dtype */
	cvt_fn cvt[3];   /* row of dtype -> f32 */
	tile1_fn tile1[3];
	dot_fn dot;
	axpy_fn axpy;
	const char *name;
	/* AVX-512 only (NULL elsewhere): the 4 x nt tiles, one kernel for every
	 * T including 1, per dtype; xperm: x is passed packed by pack_x (see
	 * there) for that dtype */
	tilen_fn tilen[3];
	bool xperm[3];
	/* AVX2 and AVX-512: T = 1, consecutive rows one after another (rowsn_fn);
	 * x packed as for tilen where xperm */
	rowsn_fn rowsn[3];
	/* AVX-512 only: one query row of G consecutive heads sharing a KV head
	 * against its cache (att_one's arithmetic with the row held in
	 * registers), or NULL */
	void (*att)(float *o, const float *q, int G, const float *kc, const float *vc, int lo, int qpos, int kvstride,
	            int hd);
};

/* y[t0 + c][n0 + r] for r < nrow, c < nt from a kernel's output tile
 * o[r * ostride + c], plus the bias, added to y when acc: every matmul path
 * writes its results through this (compiled for any x86-64, outside the
 * SIMD target regions) */
static void store_tile(float *y, int N, const float *bias, bool acc, int n0, int nrow, int t0, int nt, const float *o,
                       int ostride)
{
	for (int c = 0; c < nt; c++) {
		float *yr = y + (size_t)(t0 + c) * N;
		for (int r = 0; r < nrow; r++) {
			float v = o[(size_t)r * ostride + c] + (bias ? bias[n0 + r] : 0.0f);
			yr[n0 + r] = acc ? yr[n0 + r] + v : v;
		}
	}
}

/* ---- generic kernels ---- */

static void tile_generic(const void *const w[4], const float *const x[3], int K, float out[4][3], int dt)
{
	for (int r = 0; r < 4; r++)
		for (int t = 0; t < 3; t++)
			out[r][t] = 0;
	for (int k = 0; k < K; k++) {
		for (int r = 0; r < 4; r++) {
			float wv = rt_load_elem(w[r], dt, k);
			for (int t = 0; t < 3; t++)
				out[r][t] += wv * x[t][k];
		}
	}
}

static void tile_g_f32(const void *const w[4], const float *const x[3], int K, float out[4][3], size_t pf)
{
	(void)pf;
	tile_generic(w, x, K, out, RT_F32);
}
static void tile_g_f16(const void *const w[4], const float *const x[3], int K, float out[4][3], size_t pf)
{
	(void)pf;
	tile_generic(w, x, K, out, RT_F16);
}
static void tile_g_bf16(const void *const w[4], const float *const x[3], int K, float out[4][3], size_t pf)
{
	(void)pf;
	tile_generic(w, x, K, out, RT_BF16);
}

static void tile1_generic(const void *const w[4], const float *x, int K, float out[4], int dt)
{
	/* no explicit prefetch: portable code leaves it to the hardware */
	for (int r = 0; r < 4; r++) {
		float s = 0;
		for (int k = 0; k < K; k++)
			s += rt_load_elem(w[r], dt, k) * x[k];
		out[r] = s;
	}
}
static void tile1_g_f32(const void *const w[4], const float *x, int K, float out[4], size_t pf)
{
	tile1_generic(w, x, K, out, RT_F32);
}
static void tile1_g_f16(const void *const w[4], const float *x, int K, float out[4], size_t pf)
{
	tile1_generic(w, x, K, out, RT_F16);
}
static void tile1_g_bf16(const void *const w[4], const float *x, int K, float out[4], size_t pf)
{
	tile1_generic(w, x, K, out, RT_BF16);
}

static float dot_generic(const float *a, const float *b, int n)
{
	float s = 0;
	for (int i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void axpy_generic(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] += a * x[i];
}

static void cvt_generic(float *dst, const void *src, int n, int dt)
{
	for (int i = 0; i < n; i++)
		dst[i] = rt_load_elem(src, dt, i);
}
static void cvt_g_f32(float *dst, const void *src, int n)
{
	cvt_generic(dst, src, n, RT_F32);
}
static void cvt_g_f16(float *dst, const void *src, int n)
{
	cvt_generic(dst, src, n, RT_F16);
}
static void cvt_g_bf16(float *dst, const void *src, int n)
{
	cvt_generic(dst, src, n, RT_BF16);
}

static const struct kern kern_generic = {
    .tile = {tile_g_f32, tile_g_f16, tile_g_bf16},
    .cvt = {cvt_g_f32, cvt_g_f16, cvt_g_bf16},
    .tile1 = {tile1_g_f32, tile1_g_f16, tile1_g_bf16},
    .dot = dot_generic,
    .axpy = axpy_generic,
    .name = "generic",
};

/* ---- AVX2 + FMA + F16C kernels ---- */
#if defined(__x86_64__) || defined(__i386__)
#define HAVE_X86 1
#include <cpuid.h>
/* clang ignores GCC's target pragma; its attribute pragma does the same */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#include <immintrin.h>

static inline __m256 ld_f32(const void *p, int k)
{
	return _mm256_loadu_ps((const float *)p + k);
}
static inline __m256 ld_f16(const void *p, int k)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + k)));
}
static inline __m256 ld_bf16(const void *p, int k)
{
	__m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + k));
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static inline float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* HOT LOOP: the 4x3 register tile is where prefill and batched decode spend
 * their time; 12 accumulators + 3 x vectors + 1 weight vector fill the 16
 * ymm registers.  With few tokens (a decode batch) the tile streams its 4
 * weight rows about as fast as tile1 does, so like tile1 it prefetches the
 * next group of rows (pf bytes further on): the rows are too short for the
 * hardware prefetcher.  The sums run in the same order as tile1's (8 lanes,
 * k ascending), so a token gets the same result alone or in a batch. */
#define DEF_TILE(NAME, LD, DT, ES)                                                                                     \
	static void NAME(const void *const w[4], const float *const x[3], int K, float out[4][3], size_t pf)           \
	{                                                                                                              \
		__m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00,    \
		       a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;                                          \
		int k = 0;                                                                                             \
		for (; k + 8 <= K; k += 8) {                                                                           \
			__m256 x0 = _mm256_loadu_ps(x[0] + k), x1 = _mm256_loadu_ps(x[1] + k),                         \
			       x2 = _mm256_loadu_ps(x[2] + k), wv;                                                     \
			if (pf && (k & (64 / ES - 1)) == 0)                                                            \
				for (int r = 0; r < 4; r++)                                                            \
					_mm_prefetch((const char *)w[r] + (size_t)k * ES + pf, _MM_HINT_T0);           \
			wv = LD(w[0], k);                                                                              \
			a00 = _mm256_fmadd_ps(wv, x0, a00);                                                            \
			a01 = _mm256_fmadd_ps(wv, x1, a01);                                                            \
			a02 = _mm256_fmadd_ps(wv, x2, a02);                                                            \
			wv = LD(w[1], k);                                                                              \
			a10 = _mm256_fmadd_ps(wv, x0, a10);                                                            \
			a11 = _mm256_fmadd_ps(wv, x1, a11);                                                            \
			a12 = _mm256_fmadd_ps(wv, x2, a12);                                                            \
			wv = LD(w[2], k);                                                                              \
			a20 = _mm256_fmadd_ps(wv, x0, a20);                                                            \
			a21 = _mm256_fmadd_ps(wv, x1, a21);                                                            \
			a22 = _mm256_fmadd_ps(wv, x2, a22);                                                            \
			wv = LD(w[3], k);                                                                              \
			a30 = _mm256_fmadd_ps(wv, x0, a30);                                                            \
			a31 = _mm256_fmadd_ps(wv, x1, a31);                                                            \
			a32 = _mm256_fmadd_ps(wv, x2, a32);                                                            \
		}                                                                                                      \
		out[0][0] = hsum(a00), out[0][1] = hsum(a01), out[0][2] = hsum(a02);                                   \
		out[1][0] = hsum(a10), out[1][1] = hsum(a11), out[1][2] = hsum(a12);                                   \
		out[2][0] = hsum(a20), out[2][1] = hsum(a21), out[2][2] = hsum(a22);                                   \
		out[3][0] = hsum(a30), out[3][1] = hsum(a31), out[3][2] = hsum(a32);                                   \
		for (; k < K; k++) /* fmaf, as tile1 and rows_a (not left to contraction) */                           \
			for (int r = 0; r < 4; r++) {                                                                  \
				float wv = rt_load_elem(w[r], DT, k);                                                  \
				for (int t = 0; t < 3; t++)                                                            \
					out[r][t] = fmaf(wv, x[t][k], out[r][t]);                                      \
			}                                                                                              \
	}

/* 4 rows x 1 token: a batch's last single token (one decode token runs
 * rows_a, below, the same sums); the next group of rows (pf bytes further on)
 * is prefetched while this one is summed, one cache line per row per
 * 32-element step. */
#define DEF_TILE1(NAME, LD, DT, ES)                                                                                    \
	static void NAME(const void *const w[4], const float *x, int K, float out[4], size_t pf)                       \
	{                                                                                                              \
		__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                            \
		int k = 0;                                                                                             \
		for (; k + 32 <= K; k += 32) {                                                                         \
			for (int r = 0; r < 4; r++)                                                                    \
				_mm_prefetch((const char *)w[r] + (size_t)k * ES + pf, _MM_HINT_T0);                   \
			for (int u = 0; u < 32; u += 8) {                                                              \
				__m256 xv = _mm256_loadu_ps(x + k + u);                                                \
				a0 = _mm256_fmadd_ps(LD(w[0], k + u), xv, a0);                                         \
				a1 = _mm256_fmadd_ps(LD(w[1], k + u), xv, a1);                                         \
				a2 = _mm256_fmadd_ps(LD(w[2], k + u), xv, a2);                                         \
				a3 = _mm256_fmadd_ps(LD(w[3], k + u), xv, a3);                                         \
			}                                                                                              \
		}                                                                                                      \
		for (; k + 8 <= K; k += 8) {                                                                           \
			__m256 xv = _mm256_loadu_ps(x + k);                                                            \
			a0 = _mm256_fmadd_ps(LD(w[0], k), xv, a0);                                                     \
			a1 = _mm256_fmadd_ps(LD(w[1], k), xv, a1);                                                     \
			a2 = _mm256_fmadd_ps(LD(w[2], k), xv, a2);                                                     \
			a3 = _mm256_fmadd_ps(LD(w[3], k), xv, a3);                                                     \
		}                                                                                                      \
		out[0] = hsum(a0), out[1] = hsum(a1), out[2] = hsum(a2), out[3] = hsum(a3);                            \
		for (; k < K; k++)                                                                                     \
			for (int r = 0; r < 4; r++)                                                                    \
				out[r] = fmaf(rt_load_elem(w[r], DT, k), x[k], out[r]);                                \
	}

/* HOT LOOP: decode, one token (rowsn_fn): each row in tile1's order, two
 * rows at a time (one chain of 8-lane FMAs, 16 bytes of bf16 each, would hold
 * a core to about 4 bytes a cycle) */
#define DEF_ROWS_A(NAME, LD, DT, ES)                                                                                   \
	static void NAME(const void *w, size_t rb, int nr, const float *x, int K, float *out)                         \
	{                                                                                                              \
		for (int r = 0; r < nr; r += 2) {                                                                      \
			const char *w0 = (const char *)w + (size_t)r * rb, *w1 = r + 1 < nr ? w0 + rb : w0;            \
			__m256 a0 = _mm256_setzero_ps(), a1 = a0;                                                      \
			int k = 0;                                                                                     \
			for (; k + 8 <= K; k += 8) {                                                                   \
				__m256 xv = _mm256_loadu_ps(x + k);                                                    \
				if ((k & (64 / ES - 1)) == 0) {                                                        \
					_mm_prefetch(w0 + (size_t)k * ES + ROWS1_PF, _MM_HINT_T0);                     \
					_mm_prefetch(w1 + (size_t)k * ES + ROWS1_PF, _MM_HINT_T0);                     \
				}                                                                                      \
				a0 = _mm256_fmadd_ps(LD(w0, k), xv, a0);                                               \
				a1 = _mm256_fmadd_ps(LD(w1, k), xv, a1);                                               \
			}                                                                                              \
			float o0 = hsum(a0), o1 = hsum(a1);                                                            \
			for (; k < K; k++) {                                                                           \
				o0 = fmaf(rt_load_elem(w0, DT, k), x[k], o0);                                          \
				o1 = fmaf(rt_load_elem(w1, DT, k), x[k], o1);                                          \
			}                                                                                              \
			out[r] = o0;                                                                                   \
			if (r + 1 < nr)                                                                                \
				out[r + 1] = o1;                                                                       \
		}                                                                                                      \
	}

DEF_TILE(tile_a_f32, ld_f32, RT_F32, 4)
DEF_TILE(tile_a_f16, ld_f16, RT_F16, 2)
DEF_TILE(tile_a_bf16, ld_bf16, RT_BF16, 2)
DEF_TILE1(tile1_a_f32, ld_f32, RT_F32, 4)
DEF_TILE1(tile1_a_f16, ld_f16, RT_F16, 2)
DEF_TILE1(tile1_a_bf16, ld_bf16, RT_BF16, 2)
DEF_ROWS_A(rows_a_f32, ld_f32, RT_F32, 4)
DEF_ROWS_A(rows_a_f16, ld_f16, RT_F16, 2)
DEF_ROWS_A(rows_a_bf16, ld_bf16, RT_BF16, 2)

#define DEF_CVT(NAME, LD, DT)                                                                                          \
	static void NAME(float *dst, const void *src, int n)                                                           \
	{                                                                                                              \
		int i = 0;                                                                                             \
		for (; i + 8 <= n; i += 8)                                                                             \
			_mm256_storeu_ps(dst + i, LD(src, i));                                                         \
		for (; i < n; i++)                                                                                     \
			dst[i] = rt_load_elem(src, DT, i);                                                             \
	}
DEF_CVT(cvt_a_f32, ld_f32, RT_F32)
DEF_CVT(cvt_a_f16, ld_f16, RT_F16)
DEF_CVT(cvt_a_bf16, ld_bf16, RT_BF16)

static float dot_avx2(const float *a, const float *b, int n)
{
	__m256 s = _mm256_setzero_ps();
	int i = 0;
	float r;
	for (; i + 8 <= n; i += 8)
		s = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s);
	r = hsum(s);
	for (; i < n; i++)
		r += a[i] * b[i];
	return r;
}

static void axpy_avx2(float *y, float a, const float *x, int n)
{
	__m256 av = _mm256_set1_ps(a);
	int i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

static const struct kern kern_avx2 = {
    .tile = {tile_a_f32, tile_a_f16, tile_a_bf16},
    .cvt = {cvt_a_f32, cvt_a_f16, cvt_a_bf16},
    .tile1 = {tile1_a_f32, tile1_a_f16, tile1_a_bf16},
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .name = "avx2",
    .rowsn = {rows_a_f32, rows_a_f16, rows_a_bf16},
};
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* ---- AVX-512F kernels: the matmul tiles with 16 lanes ----
 * The same 4x3 and 4x1 tiles over zmm registers; twice the FMA width is what
 * batched decode (compute-bound at 8+ tokens) needs.  tile and tile1 again
 * sum each row in one order (16 lanes, k ascending, then the scalar tail), so
 * batched and single-token results stay identical.  Attention and the
 * conversions keep the AVX2 code. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")
#endif

static inline __m512 ld16_f32(const void *p, int k)
{
	return _mm512_loadu_ps((const float *)p + k);
}
static inline __m512 ld16_f16(const void *p, int k)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k)));
}
static inline __m512 ld16_bf16(const void *p, int k)
{
	__m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k));
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
static inline float hsum16(__m512 v)
{
	/* fixed order: halves, then the AVX2 reduction */
	__m256 h =
	    _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
	return hsum(h);
}

/* HOT LOOP: see DEF_TILE; 12 zmm accumulators */
#define DEF_TILE16(NAME, LD, DT, ES)                                                                                   \
	static void NAME(const void *const w[4], const float *const x[3], int K, float out[4][3], size_t pf)           \
	{                                                                                                              \
		__m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00, a20 = a00,    \
		       a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;                                          \
		int k = 0;                                                                                             \
		for (; k + 16 <= K; k += 16) {                                                                         \
			__m512 x0 = _mm512_loadu_ps(x[0] + k), x1 = _mm512_loadu_ps(x[1] + k),                         \
			       x2 = _mm512_loadu_ps(x[2] + k), wv;                                                     \
			if (pf && (k & (64 / ES - 1)) == 0)                                                            \
				for (int r = 0; r < 4; r++)                                                            \
					_mm_prefetch((const char *)w[r] + (size_t)k * ES + pf, _MM_HINT_T0);           \
			wv = LD(w[0], k);                                                                              \
			a00 = _mm512_fmadd_ps(wv, x0, a00);                                                            \
			a01 = _mm512_fmadd_ps(wv, x1, a01);                                                            \
			a02 = _mm512_fmadd_ps(wv, x2, a02);                                                            \
			wv = LD(w[1], k);                                                                              \
			a10 = _mm512_fmadd_ps(wv, x0, a10);                                                            \
			a11 = _mm512_fmadd_ps(wv, x1, a11);                                                            \
			a12 = _mm512_fmadd_ps(wv, x2, a12);                                                            \
			wv = LD(w[2], k);                                                                              \
			a20 = _mm512_fmadd_ps(wv, x0, a20);                                                            \
			a21 = _mm512_fmadd_ps(wv, x1, a21);                                                            \
			a22 = _mm512_fmadd_ps(wv, x2, a22);                                                            \
			wv = LD(w[3], k);                                                                              \
			a30 = _mm512_fmadd_ps(wv, x0, a30);                                                            \
			a31 = _mm512_fmadd_ps(wv, x1, a31);                                                            \
			a32 = _mm512_fmadd_ps(wv, x2, a32);                                                            \
		}                                                                                                      \
		out[0][0] = hsum16(a00), out[0][1] = hsum16(a01), out[0][2] = hsum16(a02);                             \
		out[1][0] = hsum16(a10), out[1][1] = hsum16(a11), out[1][2] = hsum16(a12);                             \
		out[2][0] = hsum16(a20), out[2][1] = hsum16(a21), out[2][2] = hsum16(a22);                             \
		out[3][0] = hsum16(a30), out[3][1] = hsum16(a31), out[3][2] = hsum16(a32);                             \
		for (; k < K; k++)                                                                                     \
			for (int r = 0; r < 4; r++) {                                                                  \
				float wv = rt_load_elem(w[r], DT, k);                                                  \
				for (int t = 0; t < 3; t++)                                                            \
					out[r][t] += wv * x[t][k];                                                     \
			}                                                                                              \
	}

/* HOT LOOP: decode, see DEF_TILE1 */
#define DEF_TILE1_16(NAME, LD, DT, ES)                                                                                 \
	static void NAME(const void *const w[4], const float *x, int K, float out[4], size_t pf)                       \
	{                                                                                                              \
		__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                            \
		int k = 0;                                                                                             \
		for (; k + 16 <= K; k += 16) {                                                                         \
			__m512 xv = _mm512_loadu_ps(x + k);                                                            \
			if ((k & (64 / ES - 1)) == 0)                                                                  \
				for (int r = 0; r < 4; r++)                                                            \
					_mm_prefetch((const char *)w[r] + (size_t)k * ES + pf, _MM_HINT_T0);           \
			a0 = _mm512_fmadd_ps(LD(w[0], k), xv, a0);                                                     \
			a1 = _mm512_fmadd_ps(LD(w[1], k), xv, a1);                                                     \
			a2 = _mm512_fmadd_ps(LD(w[2], k), xv, a2);                                                     \
			a3 = _mm512_fmadd_ps(LD(w[3], k), xv, a3);                                                     \
		}                                                                                                      \
		out[0] = hsum16(a0), out[1] = hsum16(a1), out[2] = hsum16(a2), out[3] = hsum16(a3);                    \
		for (; k < K; k++)                                                                                     \
			for (int r = 0; r < 4; r++)                                                                    \
				out[r] += rt_load_elem(w[r], DT, k) * x[k];                                            \
	}

DEF_TILE16(tile_z_f32, ld16_f32, RT_F32, 4)
DEF_TILE16(tile_z_f16, ld16_f16, RT_F16, 2)
DEF_TILE16(tile_z_bf16, ld16_bf16, RT_BF16, 2)
DEF_TILE1_16(tile1_z_f32, ld16_f32, RT_F32, 4)
DEF_TILE1_16(tile1_z_f16, ld16_f16, RT_F16, 2)
DEF_TILE1_16(tile1_z_bf16, ld16_bf16, RT_BF16, 2)

/* ---- AVX-512 4 x nt tiles (batched decode, prefill and T = 1) ----
 * Each 32-element step of a weight row yields two 16-lane vectors w0, w1
 * and each token two x vectors x0, x1; every accumulator runs
 * acc = fma(w0, x0, acc), acc = fma(w1, x1, acc) over the steps in k order,
 * then hsum16, then the scalar tail.  That order is the same for every nt
 * and for the row-pair passes, so a token's result does not depend on how
 * many tokens share its tile (single-stream and batched decode agree
 * bitwise).  BF16 rows are widened without a shuffle: one 64-byte load of
 * 32 values, a shift left by 16 gives the even elements as f32 and a mask of
 * the high halves the odd ones (both exact), so x is packed to match
 * (pack_x: per 32 elements the 16 even ones, then the 16 odd ones).  Up to 6
 * tokens share each widened weight vector (see tz_body). */
enum { LZ_F32, LZ_F16, LZ_BF16 };

/* half h (0: w0, 1: w1) of the 32 elements at k of a row */
static inline __attribute__((always_inline)) __m512 ldz(const void *p, int k, int h, int L)
{
	if (L == LZ_F32)
		return _mm512_loadu_ps((const float *)p + k + 16 * h);
	if (L == LZ_F16)
		return ld16_f16(p, k + 16 * h);
	if (!h)
		return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_loadu_si512((const uint16_t *)p + k), 16));
	return _mm512_castsi512_ps(
	    _mm512_and_si512(_mm512_loadu_si512((const uint16_t *)p + k), _mm512_set1_epi32((int)0xffff0000u)));
}

/* HOT LOOP: 4 rows x C tokens, C and L constants after inlining: 4C
 * accumulators (up to 24) + C x vectors (one half at a time) + 1 weight
 * vector of the 32 zmm registers; each x vector feeds 4 FMAs */
static inline __attribute__((always_inline)) void tz_body(const void *const w[4], const float *const *x, int K,
                                                          float out[4][TILE_T], size_t pf, unsigned pfrows, int C,
                                                          int L, int dt)
{
	__m512 acc[4][TILE_T];
	int es = L == LZ_F32 ? 4 : 2, k = 0;

	for (int r = 0; r < 4; r++)
		for (int c = 0; c < C; c++)
			acc[r][c] = _mm512_setzero_ps();
	for (; k + 32 <= K; k += 32) {
		if (pf)
			for (int r = 0; r < 4; r++)
				if (pfrows >> r & 1)
					for (int b = 0; b < 32 * es; b += 64)
						_mm_prefetch((const char *)w[r] + (size_t)k * es + b + pf, _MM_HINT_T1);
		for (int h = 0; h < 2; h++) {
			__m512 xv[TILE_T];
			for (int c = 0; c < C; c++)
				xv[c] = _mm512_loadu_ps(x[c] + k + 16 * h);
			for (int r = 0; r < 4; r++) {
				__m512 wv = ldz(w[r], k, h, L);
				for (int c = 0; c < C; c++)
					acc[r][c] = _mm512_fmadd_ps(wv, xv[c], acc[r][c]);
			}
		}
	}
	for (int r = 0; r < 4; r++)
		for (int c = 0; c < C; c++)
			out[r][c] = hsum16(acc[r][c]);
	/* the tail through fmaf, in rows_body too: what the compiler would
	 * contract (or vectorize without contracting) is not left to it */
	for (; k < K; k++)
		for (int r = 0; r < 4; r++) {
			float wv = rt_load_elem(w[r], dt, k);
			for (int c = 0; c < C; c++)
				out[r][c] = fmaf(wv, x[c][k], out[r][c]);
		}
}

#define DEF_TILEN(NAME, L, DT)                                                                                         \
	static void NAME(const void *const w[4], const float *const *x, int nt, int K, float out[4][TILE_T],           \
	                 size_t pf, unsigned pfrows)                                                                   \
	{                                                                                                              \
		switch (nt) {                                                                                          \
		case 1: tz_body(w, x, K, out, pf, pfrows, 1, L, DT); break;                                            \
		case 2: tz_body(w, x, K, out, pf, pfrows, 2, L, DT); break;                                            \
		case 3: tz_body(w, x, K, out, pf, pfrows, 3, L, DT); break;                                            \
		case 4: tz_body(w, x, K, out, pf, pfrows, 4, L, DT); break;                                            \
		case 5: tz_body(w, x, K, out, pf, pfrows, 5, L, DT); break;                                            \
		default: tz_body(w, x, K, out, pf, pfrows, 6, L, DT); break;                                           \
		}                                                                                                      \
	}
DEF_TILEN(tilen_z_f32, LZ_F32, RT_F32)
DEF_TILEN(tilen_z_f16, LZ_F16, RT_F16)
DEF_TILEN(tilen_z_bf16, LZ_BF16, RT_BF16)

/* HOT LOOP: decode, one token (rowsn_fn): each row's sum in tz_body's order
 * for C = 1 */
static inline __attribute__((always_inline)) void rows_body(const void *w, size_t rb, int nr, const float *x, int K,
                                                            float *out, int L, int dt)
{
	int es = L == LZ_F32 ? 4 : 2;

	for (int r = 0; r < nr; r++) {
		const void *wr = (const char *)w + (size_t)r * rb;
		__m512 acc = _mm512_setzero_ps();
		int k = 0;
		for (; k + 32 <= K; k += 32) {
			for (int b = 0; b < 32 * es; b += 64)
				_mm_prefetch((const char *)wr + (size_t)k * es + b + ROWS1_PF, _MM_HINT_T0);
			acc = _mm512_fmadd_ps(ldz(wr, k, 0, L), _mm512_loadu_ps(x + k), acc);
			acc = _mm512_fmadd_ps(ldz(wr, k, 1, L), _mm512_loadu_ps(x + k + 16), acc);
		}
		float o = hsum16(acc);
		for (; k < K; k++)
			o = fmaf(rt_load_elem(wr, dt, k), x[k], o);
		out[r] = o;
	}
}

#define DEF_ROWSN(NAME, L, DT)                                                                                         \
	static void NAME(const void *w, size_t rb, int nr, const float *x, int K, float *out)                         \
	{                                                                                                              \
		rows_body(w, rb, nr, x, K, out, L, DT);                                                                \
	}
DEF_ROWSN(rowsn_z_f32, LZ_F32, RT_F32)
DEF_ROWSN(rowsn_z_f16, LZ_F16, RT_F16)
DEF_ROWSN(rowsn_z_bf16, LZ_BF16, RT_BF16)

/* e^x for 8 doubles: x * 32 / ln 2 = k + r (k an integer, |r| <= 1/2),
 * e^x = 2^(k / 32) * 2^(r / 32), the first from a table of 2^(i / 32) (i =
 * k mod 32) whose exponent gets k / 32 added, the second a degree-4 Taylor
 * polynomial (relative error under 1e-12).  Inputs below -200 (-inf among
 * them) are taken as -200 (e^x under any float); NaN stays NaN. */
static const uint64_t exp_tab[32] = { /* bits of 2^(i/32) less i << 47 (k << 47 adds it back) */
    0x3ff0000000000000ull, 0x3fefd9b0d3158574ull, 0x3fefb5586cf9890full, 0x3fef9301d0125b51ull,
    0x3fef72b83c7d517bull, 0x3fef54873168b9aaull, 0x3fef387a6e756238ull, 0x3fef1e9df51fdee1ull,
    0x3fef06fe0a31b715ull, 0x3feef1a7373aa9cbull, 0x3feedea64c123422ull, 0x3feece086061892dull,
    0x3feebfdad5362a27ull, 0x3feeb42b569d4f82ull, 0x3feeab07dd485429ull, 0x3feea47eb03a5585ull,
    0x3feea09e667f3bcdull, 0x3fee9f75e8ec5f74ull, 0x3feea11473eb0187ull, 0x3feea589994cce13ull,
    0x3feeace5422aa0dbull, 0x3feeb737b0cdc5e5ull, 0x3feec49182a3f090ull, 0x3feed503b23e255dull,
    0x3feee89f995ad3adull, 0x3feeff76f2fb5e47ull, 0x3fef199bdd85529cull, 0x3fef3720dcef9069ull,
    0x3fef5818dcfba487ull, 0x3fef7c97337b9b5full, 0x3fefa4afa2a490daull, 0x3fefd0765b6e4540ull,
};
static inline __m512d exp8d(__m512d x)
{
	const double c1 = 0x1.62e42fefa39efp-6 /* ln 2 / 32 */, c2 = c1 * c1 / 2, c3 = c2 * c1 / 3, c4 = c3 * c1 / 4;
	const double *tab = (const double *)(const void *)exp_tab;
	__m512d z, kd, r, p, t;
	__m512i ki;

	x = _mm512_max_pd(_mm512_set1_pd(-200.0), x); /* NaN: the second operand, x */
	z = _mm512_mul_pd(x, _mm512_set1_pd(0x1.71547652b82fep+5)); /* 32 / ln 2 */
	kd = _mm512_add_pd(z, _mm512_set1_pd(0x1.8p52)); /* k in the low bits, rounded to nearest */
	ki = _mm512_castpd_si512(kd);
	kd = _mm512_sub_pd(kd, _mm512_set1_pd(0x1.8p52));
	r = _mm512_sub_pd(z, kd);
	t = _mm512_mask_blend_pd(_mm512_test_epi64_mask(ki, _mm512_set1_epi64(16)),
	                         _mm512_permutex2var_pd(_mm512_loadu_pd(tab), ki, _mm512_loadu_pd(tab + 8)),
	                         _mm512_permutex2var_pd(_mm512_loadu_pd(tab + 16), ki, _mm512_loadu_pd(tab + 24)));
	t = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(t), _mm512_slli_epi64(ki, 47)));
	p = _mm512_fmadd_pd(_mm512_set1_pd(c4), r, _mm512_set1_pd(c3));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c2));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(c1));
	p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
	return _mm512_mul_pd(p, t);
}

/* e^x for 16 floats (x up to 88.7), each computed in double and rounded once:
 * within 1 ulp of e^x everywhere (checked over every float in [-104, 0]:
 * 333 of 1.1e9 not correctly rounded, glibc's expf 97052), so no worse than
 * the libm expf it replaces in att_z */
static inline __m512 exp16(__m512 x)
{
	__m512d lo = exp8d(_mm512_cvtps_pd(_mm512_castps512_ps256(x))),
	        hi = exp8d(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))));
	return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo))),
	                                           _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
}

/* the 16 sums of d[0..15], each in hsum16's order (lanes i + 8, then i + 4,
 * i + 2, i + 1 added pairwise), transposed: 30 shuffles and 15 adds for what
 * 16 hsum16 take 128 instructions for.  Lane 4L + k of the result is the sum
 * of d[4k + L]. */
static inline __m512 hsum16x16(const __m512 *d)
{
	__m512 a[8], b[4], c[2];

	for (int j = 0; j < 8; j++) /* 128-bit lanes 0 + 2, 1 + 3 of d[2j] and d[2j + 1] */
		a[j] = _mm512_add_ps(_mm512_shuffle_f32x4(d[2 * j], d[2 * j + 1], 0x44),
		                     _mm512_shuffle_f32x4(d[2 * j], d[2 * j + 1], 0xee));
	for (int m = 0; m < 4; m++) /* lane L: d[4m + L]'s 4 sums of 4 apart */
		b[m] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0x88),
		                     _mm512_shuffle_f32x4(a[2 * m], a[2 * m + 1], 0xdd));
	for (int n = 0; n < 2; n++)
		c[n] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * n], b[2 * n + 1], _MM_SHUFFLE(1, 0, 1, 0)),
		                     _mm512_shuffle_ps(b[2 * n], b[2 * n + 1], _MM_SHUFFLE(3, 2, 3, 2)));
	return _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(2, 0, 2, 0)),
	                     _mm512_shuffle_ps(c[0], c[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/* q . k for one position, 16 lanes: qv[0] * k then NV - 1 FMAs (reduced by
 * the caller) */
static inline __attribute__((always_inline)) __m512 att_qk(const __m512 *qv, const float *kp, int NV)
{
	__m512 e = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kp));
	for (int v = 1; v < NV; v++)
		e = _mm512_fmadd_ps(qv[v], _mm512_loadu_ps(kp + 16 * v), e);
	return e;
}

/* acc += e * v for one position's V row */
static inline __attribute__((always_inline)) void att_av(__m512 *acc, float e, const float *vp, int NV)
{
	__m512 ev = _mm512_set1_ps(e);
	for (int v = 0; v < NV; v++)
		acc[v] = _mm512_fmadd_ps(ev, _mm512_loadu_ps(vp + 16 * v), acc[v]);
}

/* HOT LOOP (long contexts): att_one for hd a multiple of 16 up to 128 (NV
 * vectors) and G heads sharing one KV head (G <= ATT_G), the query and the
 * output accumulator in NV registers each; per block of the cache each head
 * in turn (its accumulator, max and sum kept in acc_g/m_g/l_g between
 * blocks), so the block's K and V rows come from memory once for the G heads
 * and from L1/L2 for the others; a block's scores 16 positions at a time (NV
 * FMAs each, then hsum16x16), the rest one at a time (hsum16: the same sums);
 * the block's exponentials 16 at a time (exp16); NV FMAs a position into the
 * accumulator; blockwise online softmax as att_one.  A head's output depends
 * on its query and the cache alone, whatever G is, and a position's score and
 * weight on that position alone, so prefill and decode (any qpos) give a query
 * the same output. */
static inline __attribute__((always_inline)) void att_z_body(float *o, const float *q, int G, const float *kc,
                                                             const float *vc, int lo, int qpos, int kvstride,
                                                             int hd, int NV)
{
	float s[ATT_BLOCK], m_g[ATT_G], l_g[ATT_G], scale = 1.0f / sqrtf((float)hd);
	__m512 acc_g[ATT_G][8];
	const int S = NV <= 2 ? 4 : NV <= 4 ? 2 : 1; /* accumulator sets: up to 8 registers */

	for (int g = 0; g < G; g++) {
		m_g[g] = -INFINITY;
		l_g[g] = 0;
		for (int v = 0; v < NV; v++)
			acc_g[g][v] = _mm512_setzero_ps();
	}
	for (int b0 = lo; b0 <= qpos; b0 += ATT_BLOCK) {
		int b1 = b0 + ATT_BLOCK <= qpos + 1 ? b0 + ATT_BLOCK : qpos + 1;
		for (int g = 0; g < G; g++) {
			__m512 qv[8], acc[8];
			float bm = -INFINITY, m = m_g[g], l = l_g[g];
			int p = b0;
			for (int v = 0; v < NV; v++) {
				qv[v] = _mm512_loadu_ps(q + (size_t)g * hd + 16 * v);
				acc[v] = acc_g[g][v];
			}
			for (; p + 16 <= b1; p += 16) {
				__m512 d[16];
				for (int i = 0; i < 16; i++) /* position p + i into d[4 (i % 4) + i / 4] */
					d[4 * (i & 3) + (i >> 2)] = att_qk(qv, kc + (size_t)(p + i) * kvstride, NV);
				_mm512_storeu_ps(s + (p - b0), _mm512_mul_ps(hsum16x16(d), _mm512_set1_ps(scale)));
			}
			for (; p < b1; p++)
				s[p - b0] = hsum16(att_qk(qv, kc + (size_t)p * kvstride, NV)) * scale;
			for (p = b0; p < b1; p++)
				if (s[p - b0] > bm)
					bm = s[p - b0];
			if (bm > m) {
				float f = expf(m - bm);
				for (int v = 0; v < NV; v++)
					acc[v] = _mm512_mul_ps(acc[v], _mm512_set1_ps(f));
				l *= f;
				m = bm;
			}
			__m512 ls = _mm512_setzero_ps(), as[ATT_S][8];
			for (p = b0; p < b1; p += 16) { /* s becomes the weights e^(s - m), ls their sums */
				__mmask16 k = b1 - p >= 16 ? 0xffff : (__mmask16)((1u << (b1 - p)) - 1);
				__m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + (p - b0)), _mm512_set1_ps(m)),
				       e = _mm512_maskz_mov_ps(k, exp16(x));
				_mm512_mask_storeu_ps(s + (p - b0), k, e);
				ls = _mm512_add_ps(ls, e);
			}
			l += hsum16(ls);
			/* S accumulator sets, position p + u into set u (S FMA chains a
			 * lane: one chain waited out the FMA latency every position),
			 * added pairwise into acc at the block's end */
			for (int u = 0; u < S; u++)
				for (int v = 0; v < NV; v++)
					as[u][v] = u ? _mm512_setzero_ps() : acc[v];
			for (p = b0; p + S <= b1; p += S)
				for (int u = 0; u < S; u++)
					att_av(as[u], s[p + u - b0], vc + (size_t)(p + u) * kvstride, NV);
			for (; p < b1; p++)
				att_av(as[0], s[p - b0], vc + (size_t)p * kvstride, NV);
			for (int v = 0; v < NV; v++) {
				if (S == 4)
					acc[v] = _mm512_add_ps(_mm512_add_ps(as[0][v], as[1][v]), _mm512_add_ps(as[2][v], as[3][v]));
				else if (S == 2)
					acc[v] = _mm512_add_ps(as[0][v], as[1][v]);
				else
					acc[v] = as[0][v];
			}
			for (int v = 0; v < NV; v++)
				acc_g[g][v] = acc[v];
			m_g[g] = m;
			l_g[g] = l;
		}
	}
	for (int g = 0; g < G; g++)
		for (int v = 0; v < NV; v++)
			_mm512_storeu_ps(o + (size_t)g * hd + 16 * v, _mm512_div_ps(acc_g[g][v], _mm512_set1_ps(l_g[g])));
}

static void att_z(float *o, const float *q, int G, const float *kc, const float *vc, int lo, int qpos, int kvstride,
                  int hd)
{
	switch (hd / 16) {
	case 1: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 1); break;
	case 2: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 2); break;
	case 3: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 3); break;
	case 4: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 4); break;
	case 5: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 5); break;
	case 6: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 6); break;
	case 7: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 7); break;
	default: att_z_body(o, q, G, kc, vc, lo, qpos, kvstride, hd, 8); break;
	}
}

static const struct kern kern_avx512 = {
    .tile = {tile_z_f32, tile_z_f16, tile_z_bf16},
    .cvt = {cvt_a_f32, cvt_a_f16, cvt_a_bf16},
    .tile1 = {tile1_z_f32, tile1_z_f16, tile1_z_bf16},
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .name = "avx512",
    .tilen = {tilen_z_f32, tilen_z_f16, tilen_z_bf16},
    .xperm = {false, false, true},
    .rowsn = {rowsn_z_f32, rowsn_z_f16, rowsn_z_bf16},
    .att = att_z,
};
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif


/* ---- AMX (bf16 weights): TDPBF16PS on 16-row x 32-element weight tiles ----
 * A weight tile is loaded straight from the row-major matrix (16 rows, 64
 * bytes each, the row length as stride).  AMX multiplies bf16 by bf16, so
 * each f32 activation is split once per matmul into three bf16 parts, x =
 * hi + mid + lo (round to nearest each time; 3 x 8 significant bits hold
 * f32's 24), and every weight tile is multiplied by the three: the products
 * of a bf16 weight and a bf16 part are exact in f32 and accumulate in f32
 * (denormal parts are flushed, an error below 2^-126 relative to nothing
 * that matters), so activations are not rounded.  A C tile element depends
 * only on its weight row and its token's column, in a fixed order (k blocks
 * ascending, hi, mid, lo), so a token's result does not depend on how many
 * tokens share the tiles: single-stream and batched decode agree bitwise.
 * The tiles leave the FMA units idle, and for up to 16 tokens a matmul costs
 * about one read of its weights.  At one token it is still slower than the
 * AVX-512 tiles (RUNTIME.md), which is why it runs only when asked for. */
#if defined(__x86_64__) && defined(__linux__)
#define HAVE_AMX 1
#include <sys/syscall.h>
#include <unistd.h>
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16,avx2,fma,f16c")
#endif

#define AMX_ROWS  32 /* weight rows per block: two 16-row tiles share each x tile */
#define AMX_TASK  64 /* weight rows per pool task */
#define AMX_PFD   2  /* decode: weight blocks prefetched ahead (bench_matmul: 1-4, 8 measured) */
#define AMX_COLS  16 /* tokens per C tile */
#define AMX_PARTS 3

struct amx_cfg {
	uint8_t palette, start_row, reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
};

/* One chunk of nt tokens: tmm0, tmm1: C [16 rows][nt] f32 of the two row
 * tiles; tmm2..5: A [16 rows][32] bf16, two blocks of two row tiles (double
 * buffered, amx_chunk_db); tmm6, tmm7: one part (hi, mid or lo) of x
 * [16 pairs][nt][2] bf16 at a time.  Two chunks of 16 (pair): tmm0..3: C
 * (row tile i, chunk c at 2i+c); tmm4, tmm5: A; tmm6, tmm7: one part of x
 * for chunk 0 and chunk 1. */
static _Thread_local int amx_cur = -1; /* the configuration this thread's tiles have */

static void amx_config(int nt, bool pair)
{
	struct amx_cfg cfg __attribute__((aligned(64)));
	int id = pair ? 0 : nt;

	if (amx_cur == id)
		return;
	memset(&cfg, 0, sizeof(cfg));
	cfg.palette = 1;
	for (int i = 0; i < 8; i++) {
		cfg.rows[i] = 16;
		if (pair)
			cfg.colsb[i] = 64;
		else
			cfg.colsb[i] = (uint16_t)(i >= 2 && i <= 5 ? 64 : 4 * nt);
	}
	_tile_loadconfig(&cfg);
	amx_cur = id;
}

/* x [T][K] -> xb: per token chunk of up to 16 (nt tokens), per 32-element
 * block kb, per part, [16 pairs][nt][2] bf16; the tail block zero-padded */
static void amx_pack_x(uint16_t *xb, const float *x, int T, int K)
{
	int KB = (K + 31) / 32;
	for (int t0 = 0; t0 < T; t0 += AMX_COLS) {
		int nt = T - t0 < AMX_COLS ? T - t0 : AMX_COLS;
		uint32_t *cb = (uint32_t *)(xb + (size_t)t0 * KB * AMX_PARTS * 32);
		for (int c = 0; c < nt; c++) {
			const float *xr = x + (size_t)(t0 + c) * K;
			for (int kb = 0; kb < KB; kb++) {
				float v[32];
				int n = K - kb * 32 < 32 ? K - kb * 32 : 32;
				memcpy(v, xr + kb * 32, sizeof(float) * n);
				memset(v + n, 0, sizeof(float) * (32 - n));
				__m512 lo = _mm512_loadu_ps(v), hi = _mm512_loadu_ps(v + 16);
				uint32_t *blk = cb + (size_t)kb * AMX_PARTS * 16 * nt;
				for (int p = 0; p < AMX_PARTS; p++) {
					/* 32 bf16 in k order = 16 pairs; the rest for the next part */
					__m512bh h = _mm512_cvtne2ps_pbh(hi, lo);
					__m512i hv = (__m512i)h;
					uint32_t pr[16];
					_mm512_storeu_si512(pr, hv);
					for (int q = 0; q < 16; q++)
						blk[((size_t)p * 16 + q) * nt + c] = pr[q];
					__m512 bl = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(hv)), 16));
					__m512 bh = _mm512_castsi512_ps(
					    _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(hv, 1)), 16));
					lo = _mm512_sub_ps(lo, bl);
					hi = _mm512_sub_ps(hi, bh);
				}
			}
		}
	}
}

struct amx_job {
	float *y;
	const uint16_t *xb;
	const struct rt_weight *w;
	const float *bias;
	uint16_t **pad; /* per thread [16][KB * 32]: rows of a short last tile, zero-padded */
	int T;
	bool acc;
};

/* the weight tiles of rows [n0, n0 + nrow): two 16-row tiles (one if nrow
 * <= 16) as pointers into the matrix, or, for a short tile or a row length
 * off the 32-element blocks, zero-padded copies (no load reads past a row) */
static int amx_a_tiles(const struct amx_job *j, int n0, int nrow, int thread, const char *a[2], size_t as[2])
{
	const struct rt_weight *w = j->w;
	int K = w->cols, KB = (K + 31) / 32, ntile = nrow > 16 ? 2 : 1;
	size_t rb = (size_t)K * 2;

	for (int i = 0; i < ntile; i++) {
		int nr = nrow - 16 * i < 16 ? nrow - 16 * i : 16;
		a[i] = (const char *)w->data + (size_t)(n0 + 16 * i) * rb;
		as[i] = rb;
		if (nr < 16 || K % 32) {
			uint16_t *pd = j->pad[thread] + (size_t)i * 16 * KB * 32;
			memset(pd, 0, sizeof(uint16_t) * 16 * KB * 32);
			for (int r = 0; r < nr; r++)
				memcpy(pd + (size_t)r * KB * 32, a[i] + (size_t)r * rb, rb);
			a[i] = (const char *)pd;
			as[i] = (size_t)KB * 64;
		}
	}
	return ntile;
}

/* y rows [n0, n0 + nrow) of tokens [t0, t0 + nt) from out[row][token] */
static void amx_store(const struct amx_job *j, float out[AMX_ROWS][AMX_COLS], int n0, int nrow, int t0, int nt)
{
	store_tile(j->y, j->w->rows, j->bias, j->acc, n0, nrow, t0, nt, out[0], AMX_COLS);
}

/* HOT LOOP: a single row tile (16 rows or fewer) x one chunk of nt (1..16)
 * tokens: block kb's weights in tmm2 or tmm3 (alternating, as in
 * amx_chunk_db), the parts of x alternating between tmm6 and tmm7 */
static void amx_chunk1(const struct amx_job *j, const char *const a[2], const size_t as[2], int n0, int nrow, int t0,
                       int nt)
{
	int KB = (j->w->cols + 31) / 32, kb = 0;
	const uint16_t *xb = j->xb + (size_t)t0 * KB * AMX_PARTS * 32;
	float out[AMX_ROWS][AMX_COLS];

#define AMX_1_BLOCK(BK, A0, B0, B1, B2)                                                                                \
	do {                                                                                                           \
		const uint16_t *b_ = xb + (size_t)(BK) * AMX_PARTS * 32 * nt;                                          \
		_tile_loadd(A0, a[0] + (size_t)(BK) * 64, as[0]);                                                      \
		_tile_loadd(B0, b_, 4 * nt);                                                                           \
		_tile_dpbf16ps(0, A0, B0);                                                                             \
		_tile_loadd(B1, b_ + 32 * nt, 4 * nt);                                                                 \
		_tile_dpbf16ps(0, A0, B1);                                                                             \
		_tile_loadd(B2, b_ + 64 * nt, 4 * nt);                                                                 \
		_tile_dpbf16ps(0, A0, B2);                                                                             \
	} while (0)
	_tile_zero(0);
	for (; kb + 2 <= KB; kb += 2) {
		AMX_1_BLOCK(kb, 2, 6, 7, 6);
		AMX_1_BLOCK(kb + 1, 3, 7, 6, 7);
	}
	if (kb < KB)
		AMX_1_BLOCK(kb, 2, 6, 7, 6);
#undef AMX_1_BLOCK
	_tile_stored(0, out[0], sizeof(out[0]));
	amx_store(j, out, n0, nrow, t0, nt);
}

/* HOT LOOP: the task's rows (two row tiles) x one chunk of nt (1..16)
 * tokens, the weight tiles double buffered: a tile register is only loaded again once the products that
 * read it are done, so with one set of A registers every load waited for
 * the previous block's products and the memory latency was never hidden
 * (perf: the first product after each load held the samples).  Blocks kb
 * and kb + 1 use tmm2/tmm4 and tmm3/tmm5; the parts of x alternate between
 * tmm6 and tmm7.  Per output the same products in the same order as
 * amx_chunk1 and amx_chunk2 (blocks ascending; hi, mid, lo). */
#define AMX_DB_BLOCK(BK, A0, A1, B0, B1, B2)                                                                           \
	do {                                                                                                           \
		const uint16_t *b_ = xb + (size_t)(BK) * AMX_PARTS * 32 * nt;                                          \
		/* AMX_PFD blocks ahead: in these rows, or at the start of the next 32 */                          \
		size_t o_ = (BK) + AMX_PFD < KB ? (size_t)((BK) + AMX_PFD) * 64                                        \
		                                : 32 * as[0] + (size_t)((BK) + AMX_PFD - KB) * 64;                     \
		for (int r_ = 0; r_ < 16; r_++) {                                                                      \
			_mm_prefetch(a[0] + (size_t)r_ * as[0] + o_, _MM_HINT_T0);                                     \
			_mm_prefetch(a[1] + (size_t)r_ * as[1] + o_, _MM_HINT_T0);                                     \
		}                                                                                                      \
		_tile_loadd(A0, a[0] + (size_t)(BK) * 64, as[0]);                                                      \
		_tile_loadd(A1, a[1] + (size_t)(BK) * 64, as[1]);                                                      \
		_tile_loadd(B0, b_, 4 * nt);                                                                           \
		_tile_dpbf16ps(0, A0, B0);                                                                             \
		_tile_dpbf16ps(1, A1, B0);                                                                             \
		_tile_loadd(B1, b_ + 32 * nt, 4 * nt);                                                                 \
		_tile_dpbf16ps(0, A0, B1);                                                                             \
		_tile_dpbf16ps(1, A1, B1);                                                                             \
		_tile_loadd(B2, b_ + 64 * nt, 4 * nt);                                                                 \
		_tile_dpbf16ps(0, A0, B2);                                                                             \
		_tile_dpbf16ps(1, A1, B2);                                                                             \
	} while (0)

static void amx_chunk_db(const struct amx_job *j, const char *const a[2], const size_t as[2], int n0, int nrow, int t0,
                         int nt)
{
	int KB = (j->w->cols + 31) / 32, kb = 0;
	const uint16_t *xb = j->xb + (size_t)t0 * KB * AMX_PARTS * 32;
	float out[AMX_ROWS][AMX_COLS];

	_tile_zero(0);
	_tile_zero(1);
	for (; kb + 2 <= KB; kb += 2) {
		AMX_DB_BLOCK(kb, 2, 4, 6, 7, 6);
		AMX_DB_BLOCK(kb + 1, 3, 5, 7, 6, 7);
	}
	if (kb < KB)
		AMX_DB_BLOCK(kb, 2, 4, 6, 7, 6);
	_tile_stored(0, out[0], sizeof(out[0]));
	_tile_stored(1, out[16], sizeof(out[0]));
	amx_store(j, out, n0, nrow, t0, nt);
}

/* HOT LOOP: the task's rows x two full chunks (tokens t0 .. t0 + 31): each
 * weight tile load serves 32 tokens (prefill); per output the same sums in
 * the same order as amx_chunk1's and amx_chunk_db's */
static void amx_chunk2(const struct amx_job *j, const char *const a[2], const size_t as[2], int ntile, int n0,
                       int nrow, int t0)
{
	int KB = (j->w->cols + 31) / 32;
	const uint16_t *x0 = j->xb + (size_t)t0 * KB * AMX_PARTS * 32, *x1 = x0 + (size_t)16 * KB * AMX_PARTS * 32;
	float out[AMX_ROWS][AMX_COLS];

	_tile_zero(0);
	_tile_zero(1);
	_tile_zero(2);
	_tile_zero(3);
	for (int kb = 0; kb < KB; kb++) {
		const uint16_t *b0 = x0 + (size_t)kb * AMX_PARTS * 32 * 16, *b1 = x1 + (size_t)kb * AMX_PARTS * 32 * 16;
		_tile_loadd(4, a[0] + (size_t)kb * 64, as[0]);
		if (ntile > 1)
			_tile_loadd(5, a[1] + (size_t)kb * 64, as[1]);
		for (int p = 0; p < AMX_PARTS; p++) {
			_tile_loadd(6, b0 + p * 32 * 16, 64);
			_tile_loadd(7, b1 + p * 32 * 16, 64);
			_tile_dpbf16ps(0, 4, 6);
			_tile_dpbf16ps(1, 4, 7);
			if (ntile > 1) {
				_tile_dpbf16ps(2, 5, 6);
				_tile_dpbf16ps(3, 5, 7);
			}
		}
	}
	_tile_stored(0, out[0], sizeof(out[0]));
	if (ntile > 1)
		_tile_stored(2, out[16], sizeof(out[0]));
	amx_store(j, out, n0, nrow, t0, 16);
	_tile_stored(1, out[0], sizeof(out[0]));
	if (ntile > 1)
		_tile_stored(3, out[16], sizeof(out[0]));
	amx_store(j, out, n0, nrow, t0 + 16, 16);
}

/* A task: AMX_TASK rows in blocks of AMX_ROWS.  The tiles keep their
 * configuration between tasks (amx_cur): loading one costs about as much as
 * a block's work at T = 1.  They are not released: the thread keeps the
 * 8 KiB of tile state the kernel saves on a switch. */
static void amx_task(void *ctx, int task, int thread)
{
	const struct amx_job *j = ctx;
	int n1 = (task + 1) * AMX_TASK < j->w->rows ? (task + 1) * AMX_TASK : j->w->rows;

	for (int n0 = task * AMX_TASK; n0 < n1; n0 += AMX_ROWS) {
		int nrow = n1 - n0 < AMX_ROWS ? n1 - n0 : AMX_ROWS;
		const char *a[2];
		size_t as[2];
		int ntile = amx_a_tiles(j, n0, nrow, thread, a, as);

		for (int t0 = 0; t0 < j->T;) {
			int nt = j->T - t0;
			if (nt >= 2 * AMX_COLS) {
				amx_config(16, true);
				amx_chunk2(j, a, as, ntile, n0, nrow, t0);
				t0 += 2 * AMX_COLS;
				continue;
			}
			nt = nt < AMX_COLS ? nt : AMX_COLS;
			amx_config(nt, false);
			if (ntile > 1)
				amx_chunk_db(j, a, as, n0, nrow, t0, nt);
			else
				amx_chunk1(j, a, as, n0, nrow, t0, nt);
			t0 += nt;
		}
	}
}

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* AMX-TILE and AMX-BF16 (CPUID.7.0:EDX bits 24, 22), their state enabled by
 * the OS (XCR0 bits 17, 18), and Linux's permission for this process */
static bool amx_usable(void)
{
	unsigned a, b, c, d, lo, hi;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22)))
		return false;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return false;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & (3u << 17)) != (3u << 17))
		return false;
	return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
}
#endif /* HAVE_AMX */

/* __builtin_cpu_supports() knows no "f16c" in clang (14): CPUID.1:ECX.F16C */
static bool cpu_has_f16c(void)
{
	unsigned a, b, c, d;
	return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static const struct kern *pick_kern(const char *force)
{
	if (force && !strcmp(force, "generic"))
		return &kern_generic;
#ifdef HAVE_X86
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c()) {
		if (__builtin_cpu_supports("avx512f") && !(force && !strcmp(force, "avx2")))
			return &kern_avx512;
		return &kern_avx2;
	}
#endif
	return &kern_generic;
}

struct cpu {
	struct rt_pool *pool;
	const struct kern *k;
	float **scratch; /* per thread [4][scratch_k]: converted weight rows */
	size_t scratch_k;
	float *xp; /* [xp_n]: x packed for the kernels that want it (kern.xperm) */
	size_t xp_n;
	struct rt_qcpu *q; /* quantized matrices: backend_quant.c */
	bool amx;          /* bf16 matrices through the AMX tiles */
	uint16_t *xb;      /* [xb_n]: x split for them (amx_pack_x) */
	size_t xb_n;
	uint16_t **pad; /* per thread [16 * 2][pad_k]: padded rows of a short tile */
	size_t pad_k;
	int pad_n; /* threads in pad */
};

const char *rt_backend_cpu_simd(const struct rt_backend *b)
{
	const struct cpu *c = b->priv;
	return c->amx ? "amx" : c->k->name;
}

bool rt_backend_cpu_int4_pairs(const struct rt_backend *b)
{
	const struct cpu *c = b->priv;
	return c->q && rt_qcpu_int4_pairs(c->q);
}

int rt_backend_cpu_reserve_x(struct rt_backend *b, size_t cols)
{
	struct cpu *c = b->priv;
	return c->q ? rt_qcpu_reserve(c->q, cols) : -ENOMEM;
}

void rt_backend_cpu_run(struct rt_backend *b, int n_tasks, rt_task_fn fn, void *ctx)
{
	rt_pool_run(((struct cpu *)b->priv)->pool, n_tasks, fn, ctx);
}

/* ---- matmul ---- */

#define ROWS_PER_TASK 16
/* one token (decode) through kern.rowsn: a task is about ROWS1_BYTES of
 * consecutive rows, one after another, so each thread reads one contiguous
 * stream, which the hardware prefetchers follow (with ROWS1_PF above).  The
 * 4-row tiles in 16-row tasks read 4 streams of one row each, too short to
 * ramp up: the bench model's bf16 decode reads 30-34 GB/s that way, 38-47
 * this way (docs/PERFORMANCE.md, session 8) */
#define ROWS1_BYTES 65536
#define ROWS1_MAX   256
/* the AVX-512 4 x nt tiles (T > 1): 64-row tasks, for the same reason (the
 * bench model's batched decode step: k = 2 7.5-7.9 -> 6.7-7.3 ms, k = 4
 * 8.6-10.0 -> 7.6-8.8 ms against 16-row tasks; k = 8 within the noise) */
#define ROWS_TILEN 64
#define TOK_BLOCK     48
/* from this many tokens on, 16-bit weight rows are converted to f32 once per
 * token block; fewer tokens (decode batches) convert inside the tile, which
 * prefetches (measured on the bench model: faster up to about 24 tokens) */
#define SCRATCH_MIN_T 24

struct mm_job {
	const struct kern *k;
	float *const *scratch; /* NULL: convert inside the tile kernels (always for tilen) */
	float *y;              /* [T][N] */
	const float *x;        /* [T][K] (packed when xp) */
	const struct rt_weight *w;
	const float *bias; /* [N] or NULL */
	int T;
	bool acc;
	bool xp;  /* use the tilen kernels */
	bool r1;  /* T = 1 through kern.rowsn */
	int rpt;  /* rows per task */
};

static void mm_store(const struct mm_job *j, int n, int nr, int t, int nt, const float *o, int ostride)
{
	store_tile(j->y, j->w->rows, j->bias, j->acc, n, nr, t, nt, o, ostride);
}

/* the AVX-512 tiles: 4 rows x up to TILE_T tokens, T = 1 included.  They
 * always widen the weights inline: a row group (4 rows) stays in L1/L2 for
 * the token tiles of a block, and converting it into a buffer first was
 * slower (bench_matmul, L2-resident: 104-115 against 130 GFLOP/s for BF16 at
 * 24..256 tokens, F16 equal) */
static void mm_task_n(const struct mm_job *j, int n0, int n1)
{
	const struct rt_weight *w = j->w;
	int K = w->cols;
	size_t rb = (size_t)K * rt_dtype_size(w->dtype);

	for (int t0 = 0; t0 < j->T; t0 += TOK_BLOCK) {
		int t1 = t0 + TOK_BLOCK < j->T ? t0 + TOK_BLOCK : j->T;
		for (int n = n0; n < n1; n += 4) {
			const void *wr[4];
			int nr = n1 - n < 4 ? n1 - n : 4;
			tilen_fn tile = j->k->tilen[w->dtype];
			for (int r = 0; r < 4; r++)
				wr[r] = (const char *)w->data + (size_t)(n + (r < nr ? r : nr - 1)) * rb;
			/* tiles of nearly equal size: 8 tokens as 4 + 4, not 6 + 2 */
			int ntile = (t1 - t0 + TILE_T - 1) / TILE_T;
			for (int i = 0, t = t0; i < ntile; i++) {
				const float *xr[TILE_T];
				float o[4][TILE_T];
				int nt = (t1 - t) / (ntile - i);
				for (int c = 0; c < nt; c++)
					xr[c] = j->x + (size_t)(t + c) * K;
				/* the first token tile streams the rows from memory; the
				 * next row group is prefetched by every tile of the block
				 * in turn (rows r with r % ntile == i), so the memory is
				 * kept busy through all of them, not only the first */
				unsigned pfrows = 0;
				for (int r = i; r < 4; r += ntile)
					pfrows |= 1u << r;
				tile(wr, xr, nt, K, o, 4 * rb, pfrows);
				mm_store(j, n, nr, t, nt, o[0], TILE_T);
				t += nt;
			}
		}
	}
}

static void mm_task(void *ctx, int task, int thread)
{
	const struct mm_job *j = ctx;
	const struct rt_weight *w = j->w;
	int N = w->rows, K = w->cols, n0 = task * j->rpt;
	int n1 = n0 + j->rpt < N ? n0 + j->rpt : N;
	size_t rb = (size_t)K * rt_dtype_size(w->dtype);
	tile_fn tile = j->k->tile[w->dtype];
	tile1_fn tile1 = j->k->tile1[w->dtype];

	if (j->r1) {
		float o[ROWS1_MAX];
		j->k->rowsn[w->dtype]((const char *)w->data + (size_t)n0 * rb, rb, n1 - n0, j->x, K, o);
		store_tile(j->y, N, j->bias, j->acc, n0, n1 - n0, 0, 1, o, 1);
		return;
	}
	if (j->xp) {
		mm_task_n(j, n0, n1);
		return;
	}
	/* token blocks outermost keep a block of x hot in L2 while the task's
	 * weight rows (16 x K) stream from L1/L2 */
	for (int t0 = 0; t0 < j->T; t0 += TOK_BLOCK) {
		int t1 = t0 + TOK_BLOCK < j->T ? t0 + TOK_BLOCK : j->T;
		for (int n = n0; n < n1; n += 4) {
			const void *wr[4];
			int nr = n1 - n < 4 ? n1 - n : 4;
			for (int r = 0; r < 4; r++)
				wr[r] = (const char *)w->data + (size_t)(n + (r < nr ? r : nr - 1)) * rb;
			if (j->scratch) {
				/* batch of tokens: convert the 4 rows once per token block
				 * (a small tile, never the whole matrix) and run the f32 tile */
				float *cv = j->scratch[thread];
				for (int r = 0; r < 4; r++) {
					j->k->cvt[w->dtype](cv + (size_t)r * K, wr[r], K);
					wr[r] = cv + (size_t)r * K;
				}
				tile = j->k->tile[RT_F32];
			}
			if (j->T == 1) {
				float o[4];
				tile1(wr, j->x, K, o, 4 * rb);
				mm_store(j, n, nr, 0, 1, o, 1);
				continue;
			}
			for (int t = t0; t < t1; t += 3) {
				const float *xr[3];
				float o[4][3];
				int nt = t1 - t < 3 ? t1 - t : 3;
				if (nt == 1 && t > t0) {
					/* a last single token: the 4x1 tile (same sums) instead
					 * of a 4x3 tile doing three times the work */
					float o1[4];
					(j->scratch ? j->k->tile1[RT_F32] : tile1)(wr, j->x + (size_t)t * K, K, o1, 0);
					mm_store(j, n, nr, t, 1, o1, 1);
					continue;
				}
				for (int c = 0; c < 3; c++)
					xr[c] = j->x + (size_t)(t + (c < nt ? c : nt - 1)) * K;
				/* prefetch the next row group while the first token tile
				 * streams this one (not for converted rows in scratch) */
				tile(wr, xr, K, o, t == t0 && !j->scratch ? 4 * rb : 0);
				mm_store(j, n, nr, t, nt, o[0], 3);
			}
		}
	}
}

static int ensure_scratch(struct cpu *c, int n_threads, size_t K)
{
	if (c->scratch_k >= K)
		return 0;
	if (!c->scratch) {
		c->scratch = calloc(n_threads, sizeof(float *));
		if (!c->scratch)
			return -ENOMEM;
	}
	for (int i = 0; i < n_threads; i++) {
		float *p = realloc(c->scratch[i], sizeof(float) * 4 * K);
		if (!p)
			return -ENOMEM; /* keeps the old, smaller buffers; scratch_k unchanged */
		c->scratch[i] = p;
	}
	c->scratch_k = K;
	return 0;
}

/* x for kern.xperm: in each full 32-element block of a row the 16 even
 * elements, then the 16 odd ones; the tail as it is */
static int pack_x(struct cpu *c, const float *x, int T, int K, const float **ret_xp)
{
	size_t n = (size_t)T * K;
	if (c->xp_n < n) {
		/* 64-byte aligned: every 16-lane load of x is then one cache line */
		float *p = aligned_alloc(64, (sizeof(float) * n + 63) & ~(size_t)63);
		if (!p)
			return -ENOMEM;
		free(c->xp);
		c->xp = p;
		c->xp_n = n;
	}
	for (int t = 0; t < T; t++) {
		const float *s = x + (size_t)t * K;
		float *d = c->xp + (size_t)t * K;
		int k = 0;
		for (; k + 32 <= K; k += 32)
			for (int i = 0; i < 16; i++) {
				d[k + i] = s[k + 2 * i];
				d[k + 16 + i] = s[k + 2 * i + 1];
			}
		for (; k < K; k++)
			d[k] = s[k];
	}
	*ret_xp = c->xp;
	return 0;
}

#ifdef HAVE_AMX
/* the AMX path for a bf16 matrix; < 0 (out of memory for its buffers): the
 * caller runs the AVX-512 tiles instead */
static int amx_matmul(struct rt_backend *b, float *y, const float *x, const struct rt_weight *w, const float *bias,
                      int T, bool accumulate)
{
	struct cpu *c = b->priv;
	int K = w->cols, KB = (K + 31) / 32, nthr = rt_pool_threads(c->pool);
	size_t need = (size_t)((T + AMX_COLS - 1) / AMX_COLS) * AMX_COLS * KB * AMX_PARTS * 32;
	struct amx_job j = {y, NULL, w, bias, NULL, T, accumulate};

	if (c->xb_n < need) {
		uint16_t *p = aligned_alloc(64, need * sizeof(uint16_t));
		if (!p)
			return -ENOMEM;
		free(c->xb);
		c->xb = p;
		c->xb_n = need;
	}
	if (c->pad_k < (size_t)KB * 32) {
		if (!c->pad) {
			if (!(c->pad = calloc(nthr, sizeof(*c->pad))))
				return -ENOMEM;
			c->pad_n = nthr;
		}
		for (int i = 0; i < nthr; i++) {
			uint16_t *p = realloc(c->pad[i], sizeof(uint16_t) * 2 * 16 * KB * 32);
			if (!p)
				return -ENOMEM; /* the old, smaller buffers stay; pad_k unchanged */
			c->pad[i] = p;
		}
		c->pad_k = (size_t)KB * 32;
	}
	amx_pack_x(c->xb, x, T, K);
	j.xb = c->xb;
	j.pad = c->pad;
	rt_pool_run(c->pool, (w->rows + AMX_TASK - 1) / AMX_TASK, amx_task, &j);
	return 0;
}
#endif

static void cpu_matmul(struct rt_backend *b, float *y, const float *x, const struct rt_weight *w, const float *bias,
                       int T, bool accumulate)
{
	struct cpu *c = b->priv;
	struct mm_job j = {c->k, NULL, y, x, w, bias, T, accumulate, false, false, ROWS_PER_TASK};

	if (w->q.fmt != RT_WF_DENSE) {
		rt_qcpu_matmul(c->q, c->pool, y, x, w, bias, T, accumulate);
		return;
	}
#ifdef HAVE_AMX
	if (c->amx && w->dtype == RT_BF16 && amx_matmul(b, y, x, w, bias, T, accumulate) == 0)
		return;
#endif
	/* the 4 x nt tiles where the CPU has them; if the packed copy of x cannot
	 * be allocated, the 4x3 tiles (the same values up to the summation order) */
	if (c->k->tilen[w->dtype] && (!c->k->xperm[w->dtype] || pack_x(c, x, T, w->cols, &j.x) == 0))
		j.xp = true;
	if (!j.xp && w->dtype != RT_F32 && T >= SCRATCH_MIN_T && ensure_scratch(c, b->n_threads, (size_t)w->cols) == 0)
		j.scratch = c->scratch;
	if (T == 1 && c->k->rowsn[w->dtype] && (j.xp || !c->k->xperm[w->dtype])) {
		/* one token: tasks of about ROWS1_BYTES of consecutive rows */
		size_t rb = (size_t)w->cols * rt_dtype_size(w->dtype), n = ROWS1_BYTES / rb;
		j.rpt = n < ROWS_PER_TASK ? ROWS_PER_TASK : n > ROWS1_MAX ? ROWS1_MAX : (int)n;
		j.r1 = true;
	} else if (j.xp) {
		j.rpt = ROWS_TILEN;
	}
	if ((size_t)w->rows * w->cols * T < (1u << 15)) {
		/* too small to pay for waking the pool */
		for (int t = 0; t < (w->rows + j.rpt - 1) / j.rpt; t++)
			mm_task(&j, t, 0);
		return;
	}
	rt_pool_run(c->pool, (w->rows + j.rpt - 1) / j.rpt, mm_task, &j);
}

/* ---- attention ---- */

#define MAX_HD 1024

struct att_job {
	const struct kern *k;
	float *out;
	const float *q, *kc, *vc;
	int T, pos0, nh, nkv, hd, window;
	int G; /* query heads a task */
};

/* HOT LOOP (long contexts): one query row of one head against its cache.
 * q, o: [hd]; kc, vc: the cache of the query's own sequence. */
static void att_one1(const struct kern *k, float *o, const float *q, const float *kc, const float *vc, int lo,
                     int qpos, int kvh, int nkv, int hd)
{
	int kvstride = nkv * hd;
	float acc[MAX_HD], s[ATT_BLOCK], m = -INFINITY, l = 0, scale = 1.0f / sqrtf((float)hd);

	memset(acc, 0, sizeof(float) * hd);
	/* blockwise online softmax: scores of a block, then one rescale */
	for (int b0 = lo; b0 <= qpos; b0 += ATT_BLOCK) {
		int b1 = b0 + ATT_BLOCK <= qpos + 1 ? b0 + ATT_BLOCK : qpos + 1;
		float bm = -INFINITY;
		for (int p = b0; p < b1; p++) {
			s[p - b0] = k->dot(q, kc + (size_t)p * kvstride + (size_t)kvh * hd, hd) * scale;
			if (s[p - b0] > bm)
				bm = s[p - b0];
		}
		if (bm > m) {
			float f = expf(m - bm);
			for (int i = 0; i < hd; i++)
				acc[i] *= f;
			l *= f;
			m = bm;
		}
		for (int p = b0; p < b1; p++) {
			float e = expf(s[p - b0] - m);
			l += e;
			k->axpy(acc, e, vc + (size_t)p * kvstride + (size_t)kvh * hd, hd);
		}
	}
	for (int i = 0; i < hd; i++)
		o[i] = acc[i] / l;
}

/* one query row of the G consecutive heads from the one at q (q, o: [G][hd])
 * that share KV head kvh */
static void att_one(const struct kern *k, float *o, const float *q, int G, const float *kc, const float *vc, int qpos,
                    int kvh, int nkv, int hd, int window)
{
	int lo = 0;

	if (window > 0 && qpos - window + 1 > 0)
		lo = qpos - window + 1;
	if (k->att && hd % 16 == 0 && hd <= 128) {
		k->att(o, q, G, kc + (size_t)kvh * hd, vc + (size_t)kvh * hd, lo, qpos, nkv * hd, hd);
		return;
	}
	for (int g = 0; g < G; g++)
		att_one1(k, o + (size_t)g * hd, q + (size_t)g * hd, kc, vc, lo, qpos, kvh, nkv, hd);
}

/* query heads a task takes: all of a KV head's (up to ATT_G) when there are
 * at least as many (token, KV head) pairs as threads, so each KV row comes
 * from memory once for them; else one (every thread gets work) */
static int att_group(const struct cpu *c, int rows, int nh, int nkv)
{
	int per = nh / nkv, G = per;

	if (!c->k->att || (long)rows * nkv < rt_pool_threads(c->pool))
		return 1;
	while (G > ATT_G || per % G)
		G--;
	return G;
}

static void att_task(void *ctx, int task, int thread)
{
	const struct att_job *j = ctx;
	int ng = j->nh / j->G, t = task / ng, h = task % ng * j->G, hd = j->hd;
	size_t off = (size_t)t * j->nh * hd + (size_t)h * hd;

	(void)thread;
	att_one(j->k, j->out + off, j->q + off, j->G, j->kc, j->vc, j->pos0 + t, h / (j->nh / j->nkv), j->nkv, hd,
	        j->window);
}

static void cpu_attention(struct rt_backend *b, float *out, const float *q, const float *kc, const float *vc, int T,
                          int pos0, int nh, int nkv, int hd, int window)
{
	struct cpu *c = b->priv;
	struct att_job j = {c->k, out, q, kc, vc, T, pos0, nh, nkv, hd, window, att_group(c, T, nh, nkv)};
	rt_pool_run(c->pool, T * (nh / j.G), att_task, &j);
}

struct att_batch_job {
	const struct kern *k;
	float *out;
	const float *q;
	const struct rt_att_seg *seg;
	int n_seg, nh, nkv, hd, window;
	int G; /* query heads a task */
};

/* task = query row (over all segments) x head; rows are in segment order */
static void att_batch_task(void *ctx, int task, int thread)
{
	const struct att_batch_job *j = ctx;
	int ng = j->nh / j->G, row = task / ng, h = task % ng * j->G, hd = j->hd, lo = 0, hi = j->n_seg - 1;
	const struct rt_att_seg *sg;
	size_t off = (size_t)row * j->nh * hd + (size_t)h * hd;

	(void)thread;
	while (lo < hi) { /* last segment with row0 <= row */
		int mid = (lo + hi + 1) / 2;
		if (j->seg[mid].row0 <= row)
			lo = mid;
		else
			hi = mid - 1;
	}
	sg = &j->seg[lo];
	att_one(j->k, j->out + off, j->q + off, j->G, sg->kc, sg->vc, sg->pos0 + (row - sg->row0),
	        h / (j->nh / j->nkv), j->nkv, hd, j->window);
}

static void cpu_attention_batch(struct rt_backend *b, float *out, const float *q, const struct rt_att_seg *seg,
                                int n_seg, int nh, int nkv, int hd, int window)
{
	struct cpu *c = b->priv;
	struct att_batch_job j = {c->k, out, q, seg, n_seg, nh, nkv, hd, window, 1};

	if (n_seg <= 0)
		return;
	int rows = seg[n_seg - 1].row0 + seg[n_seg - 1].T;
	j.G = att_group(c, rows, nh, nkv);
	rt_pool_run(c->pool, rows * (nh / j.G), att_batch_task, &j);
}

static void cpu_free(struct rt_backend *b)
{
	if (!b)
		return;
	if (b->priv) {
		struct cpu *c = b->priv;
		rt_pool_free(c->pool);
		if (c->scratch)
			for (int i = 0; i < b->n_threads; i++)
				free(c->scratch[i]);
		free(c->scratch);
		free(c->xp);
		free(c->xb);
		if (c->pad)
			for (int i = 0; i < c->pad_n; i++)
				free(c->pad[i]);
		free(c->pad);
		rt_qcpu_free(c->q);
	}
	free(b->priv);
	free(b);
}

static const struct rt_backend_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .matmul = cpu_matmul,
    .attention = cpu_attention,
    .attention_batch = cpu_attention_batch,
};

int rt_backend_cpu_new(int n_threads, const char *simd, struct rt_backend **ret_b)
{
	struct rt_backend *b;
	struct cpu *c;
	int r;

	b = calloc(1, sizeof(*b));
	c = calloc(1, sizeof(*c));
	if (!b || !c) {
		free(b);
		free(c);
		return -ENOMEM;
	}
	b->ops = &cpu_ops;
	b->priv = c;
	b->n_threads = n_threads;
	c->k = pick_kern(simd);
#ifdef HAVE_AMX
	/* only when asked ("amx"): the tiles are faster from 2 tokens on but
	 * slower at one (RUNTIME.md), and every path sums in its own order */
	c->amx = c->k == &kern_avx512 && simd && !strcmp(simd, "amx") && amx_usable();
#endif
	r = rt_pool_new(n_threads, &c->pool);
	if (r == 0)
		r = rt_qcpu_new(c->k->name, rt_pool_threads(c->pool), &c->q);
	if (r < 0) {
		cpu_free(b);
		return r;
	}
	*ret_b = b;
	return 0;
}
