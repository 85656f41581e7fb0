/* SPDX-License-Identifier: Apache-2.0 */
/* CPU kernels for quantized matrices (issue 19), straight on the mapped
 * tensors: each weight is computed in f32 from its code, scale and zero
 * point (quant.h defines the value) and multiplied in f32 (the AVX-512 fp8
 * kernels multiply a scale block's f32 sum of code * x by the scale once);
 * nothing is expanded beyond a per-thread scratch of a few rows.
 *
 * Two shapes of kernel:
 *  - row formats (fp8, compressed-tensors int4: a weight row is contiguous):
 *    an 8-lane dot per row, k ascending, then the scalar tail; on AVX2, int4
 *    in groups of a multiple of 64 and e4m3 in scale blocks of a multiple of
 *    16 (or one per row) sum n - zero (int4) or code (fp8) times x per group
 *    and multiply each group's sum by its scale once (i4a_rows, f8a_rows);
 *  - column formats (GPTQ, AWQ: a packed word holds 8 rows or 8 columns of
 *    one row across the row dimension): 8 rows at once (AVX-512: 16), one
 *    lane per row, k ascending.
 * A token block (T > 1) dequantizes the task's rows once into the scratch and
 * runs the same sums over it, so a token gets the same result alone or in a
 * batch (the AVX-512 kernels multiply each weight vector into up to 4
 * tokens' sums instead).  On CPUs with AVX-512 (F, BW, VL) the row formats in
 * groups or scale blocks the 16-lane steps can take, and GPTQ and AWQ unless
 * g_idx is act-order (not monotone), run the AVX-512 kernels below; the rest
 * the AVX2 code; generic C where there is no AVX2 (AGRT_SIMD forces either,
 * as backend_cpu.c's pick_kern does: AGRT_SIMD=avx2 keeps every format on
 * the AVX2 code). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "threadpool.h"

#define QROWS 16 /* rows per task: two octets of the column formats */
/* one token, compressed-tensors int4 and fp8 on the AVX2 kernel: tasks of
 * about this many bytes of rows, a multiple of 8 rows; 16-row tasks (6 KB at
 * K = 768, claimed every few hundred ns) decoded the bench model 12% slower
 * (int4, AVX-512), fp8 on AVX2 (Zen 3) 1.2x slower.  The AVX-512 fp8 kernels
 * keep 16-row tasks: 32-256 KB ones were no faster there (docs/PERFORMANCE.md,
 * session 8) */
#define QTASK1_BYTES 65536
#define I4A_B 64 /* AVX2 int4 (i4a_rows): columns per block, 8 packed words */
#define I4A_FLIP ((int)0x88888888u) /* i4a_rows, symmetric: every nibble's top bit */
#define CCH   4  /* AVX-512 column formats: chains (16 rows each) per one-token pass */

struct rt_qcpu {
	bool avx2, avx512;
	bool f8g; /* AVX-512 VBMI and GFNI: the fp8 kernel f8g_pass */
	int n_threads;
	float **scratch; /* per thread [QROWS][scratch_k] */
	size_t scratch_k;
	float *xp; /* [xp_n]: x permuted for the AVX-512 row-format kernels */
	size_t xp_n;
	bool *xbig; /* [xbig_n]: f8g_pass: the tokens with some |x| >= 2^60 */
	size_t xbig_n;
	struct crun *runs; /* [runs_n]: the column formats' groups for the AVX-512 kernels */
	size_t runs_n;
	float *xg; /* [xg_n]: x gathered for a matrix with rt_wquant.perm (perm_matmul) */
	size_t xg_n;
};

struct crun {
	int k0, g; /* columns k0 up to the next run's k0, group g */
};

struct qjob {
	const struct rt_qcpu *c;
	float *y;
	const float *x;
	const struct rt_weight *w;
	const float *bias;
	int T;
	bool acc;
	bool have_scratch;
	bool k512;       /* the AVX-512 kernels take w */
	bool f8g;        /* fp8 with k512: f8g_pass (x scaled by F8G_XS) */
	const bool *xbig; /* f8g: [T], the tokens the AVX2 code takes */
	const float *xp; /* row formats with k512: x permuted, xs floats a token */
	size_t xs;
	const struct crun *runs; /* GPTQ, AWQ with k512: nrun runs, then one at K */
	int nrun;
	int tr; /* rows per task */
};

/* the buffer the pointer at bufp points to holds at least need elements of
 * size bytes (the old contents are not kept); on ENOMEM the old buffer and
 * *cap stay.  bufp is any object pointer's address (memcpy: no aliasing) */
static int grow(void *bufp, size_t *cap, size_t need, size_t size)
{
	void *old, *p;

	if (*cap >= need)
		return 0;
	if (!(p = malloc(size * need)))
		return -ENOMEM;
	memcpy(&old, bufp, sizeof(old));
	free(old);
	memcpy(bufp, &p, sizeof(p));
	*cap = need;
	return 0;
}

static inline void put(const struct qjob *j, int t, int r, float v)
{
	float *yr = j->y + (size_t)t * j->w->rows;
	v += j->bias ? j->bias[r] : 0.0f;
	yr[r] = j->acc ? yr[r] + v : v;
}

static inline float tail_add(float s, float w, float x)
{
	float p = w * x;
#if defined(__x86_64__) || defined(__i386__)
	__asm__("" : "+x"(p)); /* a product and a sum, never contracted to an fma */
#else
	__asm__("" : "+r"(p));
#endif
	return s + p;
}

/* ---- generic ---- */

static void task_generic(const struct qjob *j, int n0, int n1, float *scr)
{
	const struct rt_weight *w = j->w;
	int K = w->cols;

	for (int r = n0; r < n1; r++) {
		if (scr) {
			for (int k = 0; k < K; k++)
				scr[k] = rt_q_weight(w, r, k);
			for (int t = 0; t < j->T; t++) {
				const float *xr = j->x + (size_t)t * K;
				float s = 0;
				for (int k = 0; k < K; k++)
					s = tail_add(s, scr[k], xr[k]);
				put(j, t, r, s);
			}
		} else {
			/* no scratch (allocation failed): the same sums, weights recomputed */
			for (int t = 0; t < j->T; t++) {
				const float *xr = j->x + (size_t)t * K;
				float s = 0;
				for (int k = 0; k < K; k++)
					s = tail_add(s, rt_q_weight(w, r, k), xr[k]);
				put(j, t, r, s);
			}
		}
	}
}

/* ---- AVX2 ---- */
#if defined(__x86_64__) || defined(__i386__)
#define HAVE_X86 1
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#include <immintrin.h>

static inline float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* 8 fp8 codes -> their values (through f16: exact) */
static inline __m256 fp8x8(const uint8_t *p, bool e5m2)
{
	__m128i v = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)p)), h;
	if (e5m2) {
		h = _mm_slli_epi16(v, 8);
	} else {
		__m128i m = _mm_and_si128(v, _mm_set1_epi16(0x7f));
		h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(v, _mm_set1_epi16(0x80)), 8), _mm_slli_epi16(m, 7));
		/* S.1111.111 is NaN: all-ones f16 exponent over a nonzero mantissa */
		h = _mm_or_si128(h, _mm_and_si128(_mm_cmpeq_epi16(m, _mm_set1_epi16(0x7f)), _mm_set1_epi16(0x7c00)));
	}
	return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
}

/* codes 0-7 (LO) or 8-15 (HI) of the e4m3 codes b (16 bytes) over 2^8, as
 * f32: each byte in the high half of a 16-bit lane, shifted right
 * arithmetically and bit 14 cleared, is the f16 of code / 2^8 (exact,
 * subnormal codes too; NaN codes come out finite) */
#define F8A_LO(b)                                                                                                      \
	_mm256_cvtph_ps(_mm_and_si128(_mm_srai_epi16(_mm_unpacklo_epi8(_mm_setzero_si128(), b), 1),                    \
	                              _mm_set1_epi16((short)0xbfff)))
#define F8A_HI(b)                                                                                                      \
	_mm256_cvtph_ps(_mm_and_si128(_mm_srai_epi16(_mm_unpackhi_epi8(_mm_setzero_si128(), b), 1),                    \
	                              _mm_set1_epi16((short)0xbfff)))

/* the 8 nibbles of u plus 2^23, as floats (the nibble in the mantissa of
 * 2^23): minus (zero + 2^23) gives nibble - zero exactly, one conversion less */
#define MAGIC 8388608.0f
static inline __m256 nib8(uint32_t u)
{
	const __m256i sh = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	return _mm256_castsi256_ps(
	    _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u), sh), _mm256_set1_epi32(15)),
	                    _mm256_set1_epi32(0x4b000000)));
}

/* Row r of a row format: dst != NULL stores its K weights, else returns its
 * dot with x.  Chunks of 8 at k = 0, 8, ... then the scalar tail; a chunk
 * inside one scale group takes the vector path, one across groups (group
 * sizes not a multiple of 8, act-order g_idx) is computed lane by lane with
 * the same formula. */
static float row_avx2(const struct rt_weight *w, int r, const float *x, float *dst)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, kv = K & ~7, k = 0;
	bool fp8 = q->fmt == RT_WF_FP8, e5m2 = w->dtype == RT_F8_E5M2;
	const uint8_t *crow = (const uint8_t *)w->data + (size_t)r * K;
	const char *prow = (const char *)w->data + (size_t)r * ((K + 7) / 8) * 4;
	__m256 acc = _mm256_setzero_ps();
	float s;

	while (k < kv) {
		int ge = k + 1;
		if (fp8)
			ge = (k / q->sc + 1) * q->sc;
		else if (!q->g_idx)
			ge = (k / q->sc + 1) * q->sc;
		if (k + 8 <= ge) {
			__m256 sv = _mm256_set1_ps(rt_q_scale(w, r, k));
			__m256 zv = fp8 ? sv : _mm256_set1_ps((float)rt_q_zero(w, r, k / q->sc) + MAGIC);
			for (; k + 8 <= ge && k < kv; k += 8) {
				__m256 wv;
				if (fp8) {
					wv = _mm256_mul_ps(fp8x8(crow + k, e5m2), sv);
				} else {
					uint32_t u;
					memcpy(&u, prow + (size_t)(k / 8) * 4, 4);
					wv = _mm256_mul_ps(_mm256_sub_ps(nib8(u), zv), sv);
				}
				if (dst)
					_mm256_storeu_ps(dst + k, wv);
				else
					acc = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k), acc);
			}
		} else {
			float t[8];
			for (int i = 0; i < 8; i++)
				t[i] = rt_q_weight(w, r, k + i);
			if (dst)
				memcpy(dst + k, t, sizeof(t));
			else
				acc = _mm256_fmadd_ps(_mm256_loadu_ps(t), _mm256_loadu_ps(x + k), acc);
			k += 8;
		}
	}
	if (dst) {
		for (; k < K; k++)
			dst[k] = rt_q_weight(w, r, k);
		return 0;
	}
	s = hsum8(acc);
	for (; k < K; k++)
		s = tail_add(s, rt_q_weight(w, r, k), x[k]);
	return s;
}

/* HOT LOOP (decode): row_avx2's sums for 4 rows at once (rows r0..r0+nr-1,
 * the missing ones repeat the last), so 4 independent FMA chains run and
 * each row's result is exactly row_avx2's.  The rows are short, so the next
 * group of 4 rows is prefetched while this one streams. */
static void row4_avx2(const struct rt_weight *w, int r0, int nr, const float *x, float out[4])
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, kv = K & ~7, k = 0, rr[4];
	bool fp8 = q->fmt == RT_WF_FP8, e5m2 = w->dtype == RT_F8_E5M2;
	size_t rb = fp8 ? (size_t)K : (size_t)((K + 7) / 8) * 4;
	const char *row[4];
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

	for (int i = 0; i < 4; i++) {
		rr[i] = r0 + (i < nr ? i : nr - 1);
		row[i] = (const char *)w->data + (size_t)rr[i] * rb;
	}
	while (k < kv) {
		int ge = fp8 || !q->g_idx ? (k / q->sc + 1) * q->sc : k + 1;
		if (k + 8 <= ge) {
			__m256 s0 = _mm256_set1_ps(rt_q_scale(w, rr[0], k)),
			       s1 = _mm256_set1_ps(rt_q_scale(w, rr[1], k)),
			       s2 = _mm256_set1_ps(rt_q_scale(w, rr[2], k)),
			       s3 = _mm256_set1_ps(rt_q_scale(w, rr[3], k));
			if (fp8) {
				/* 16 codes a step: the byte in the high half of a 16-bit lane,
				 * shifted right arithmetically and bit 14 cleared, is the f16 of
				 * the code over 2^8, folded into the scale (exact: 256 * s is,
				 * and so is the f16); a step with a NaN code (S.1111.111) and a
				 * scale that 256 overflows go the 8-code way below, which
				 * gives the same values */
				__m256 t0 = _mm256_mul_ps(s0, _mm256_set1_ps(256.0f)),
				       t1 = _mm256_mul_ps(s1, _mm256_set1_ps(256.0f)),
				       t2 = _mm256_mul_ps(s2, _mm256_set1_ps(256.0f)),
				       t3 = _mm256_mul_ps(s3, _mm256_set1_ps(256.0f));
				bool fin = !e5m2 && isfinite(_mm256_cvtss_f32(t0)) && isfinite(_mm256_cvtss_f32(t1)) &&
				           isfinite(_mm256_cvtss_f32(t2)) && isfinite(_mm256_cvtss_f32(t3));
				for (; fin && k + 16 <= ge && k + 16 <= kv; k += 16) {
					__m128i b0 = _mm_loadu_si128((const __m128i *)(row[0] + k)),
					        b1 = _mm_loadu_si128((const __m128i *)(row[1] + k)),
					        b2 = _mm_loadu_si128((const __m128i *)(row[2] + k)),
					        b3 = _mm_loadu_si128((const __m128i *)(row[3] + k));
					__m128i m7 = _mm_set1_epi8(0x7f), nan;
					__m256 xl = _mm256_loadu_ps(x + k), xh = _mm256_loadu_ps(x + k + 8);
					nan = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(_mm_and_si128(b0, m7), m7),
					                                _mm_cmpeq_epi8(_mm_and_si128(b1, m7), m7)),
					                   _mm_or_si128(_mm_cmpeq_epi8(_mm_and_si128(b2, m7), m7),
					                                _mm_cmpeq_epi8(_mm_and_si128(b3, m7), m7)));
					if (!_mm_testz_si128(nan, nan))
						break;
					if ((k & 63) == 0)
						for (int i = 0; i < 4; i++)
							_mm_prefetch(row[i] + k + 4 * rb, _MM_HINT_T0);
					a0 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_LO(b0), t0), xl, a0);
					a1 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_LO(b1), t1), xl, a1);
					a2 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_LO(b2), t2), xl, a2);
					a3 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_LO(b3), t3), xl, a3);
					a0 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_HI(b0), t0), xh, a0);
					a1 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_HI(b1), t1), xh, a1);
					a2 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_HI(b2), t2), xh, a2);
					a3 = _mm256_fmadd_ps(_mm256_mul_ps(F8A_HI(b3), t3), xh, a3);
				}
				for (; k + 8 <= ge && k < kv; k += 8) {
					__m256 xv = _mm256_loadu_ps(x + k);
					if ((k & 63) == 0)
						for (int i = 0; i < 4; i++)
							_mm_prefetch(row[i] + k + 4 * rb, _MM_HINT_T0);
					a0 = _mm256_fmadd_ps(
					    _mm256_mul_ps(fp8x8((const uint8_t *)row[0] + k, e5m2), s0), xv, a0);
					a1 = _mm256_fmadd_ps(
					    _mm256_mul_ps(fp8x8((const uint8_t *)row[1] + k, e5m2), s1), xv, a1);
					a2 = _mm256_fmadd_ps(
					    _mm256_mul_ps(fp8x8((const uint8_t *)row[2] + k, e5m2), s2), xv, a2);
					a3 = _mm256_fmadd_ps(
					    _mm256_mul_ps(fp8x8((const uint8_t *)row[3] + k, e5m2), s3), xv, a3);
				}
			} else {
				int g = k / q->sc;
				__m256 z0 = _mm256_set1_ps((float)rt_q_zero(w, rr[0], g) + MAGIC),
				       z1 = _mm256_set1_ps((float)rt_q_zero(w, rr[1], g) + MAGIC),
				       z2 = _mm256_set1_ps((float)rt_q_zero(w, rr[2], g) + MAGIC),
				       z3 = _mm256_set1_ps((float)rt_q_zero(w, rr[3], g) + MAGIC);
/* one group's chunks; symmetric checkpoints pass one zero register for all 4 rows */
#define I4LOOP(Z0, Z1, Z2, Z3)                                                                                         \
	for (; k + 8 <= ge && k < kv; k += 8) {                                                                        \
		__m256 xv = _mm256_loadu_ps(x + k);                                                                    \
		size_t o = (size_t)(k / 8) * 4;                                                                        \
		uint32_t u0, u1, u2, u3;                                                                               \
		if ((k & 127) == 0)                                                                                    \
			for (int i = 0; i < 4; i++)                                                                    \
				_mm_prefetch(row[i] + o + 4 * rb, _MM_HINT_T0);                                        \
		memcpy(&u0, row[0] + o, 4);                                                                            \
		memcpy(&u1, row[1] + o, 4);                                                                            \
		memcpy(&u2, row[2] + o, 4);                                                                            \
		memcpy(&u3, row[3] + o, 4);                                                                            \
		a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(nib8(u0), Z0), s0), xv, a0);                          \
		a1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(nib8(u1), Z1), s1), xv, a1);                          \
		a2 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(nib8(u2), Z2), s2), xv, a2);                          \
		a3 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(nib8(u3), Z3), s3), xv, a3);                          \
	}
				if (!q->zero)
					I4LOOP(z0, z0, z0, z0)
				else
					I4LOOP(z0, z1, z2, z3)
#undef I4LOOP
			}
		} else {
			float t[4][8];
			__m256 xv = _mm256_loadu_ps(x + k);
			for (int i = 0; i < 4; i++)
				for (int l = 0; l < 8; l++)
					t[i][l] = rt_q_weight(w, rr[i], k + l);
			a0 = _mm256_fmadd_ps(_mm256_loadu_ps(t[0]), xv, a0);
			a1 = _mm256_fmadd_ps(_mm256_loadu_ps(t[1]), xv, a1);
			a2 = _mm256_fmadd_ps(_mm256_loadu_ps(t[2]), xv, a2);
			a3 = _mm256_fmadd_ps(_mm256_loadu_ps(t[3]), xv, a3);
			k += 8;
		}
	}
	out[0] = hsum8(a0), out[1] = hsum8(a1), out[2] = hsum8(a2), out[3] = hsum8(a3);
	for (; k < K; k++)
		for (int i = 0; i < 4; i++)
			out[i] = tail_add(out[i], rt_q_weight(w, rr[i], k), x[k]);
}

/* ---- AVX2, compressed-tensors int4 in groups of a multiple of 64 columns
 * or per channel, without g_idx (take_i4a) ----
 * A block of 64 columns is one ymm of 8 packed words; shifting the words
 * right by 4s puts column 8j + s in the low nibble of lane j (x is permuted
 * to match once per call, permute_x).  Each weight's n - zero is a small
 * integer, exact in f32; per row, group and lane the products with x sum
 * in f32 (one FMA a weight), and each group's sum is multiplied by its scale
 * once, as the AVX-512 fp8 kernels do (the one reassociation: no weight or
 * x is rounded).  Symmetric checkpoints (zero 8) flip each nibble's top bit,
 * so a shift left and an arithmetic shift right give n - 8 directly.  Four
 * rows a pass, one token (i4a_rows); a token block decodes each row once
 * into the scratch (i4a_dec) and runs the same sums over it (blk_dot), so a
 * token gets the same result alone or in a batch. */

static inline __m256i i4a_words(const char *row, int b, int W)
{
	if (W - b * 8 >= 8)
		return _mm256_loadu_si256((const __m256i *)(row + (size_t)b * 32));
	const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	return _mm256_maskload_epi32((const int *)(row + (size_t)b * 32),
	                             _mm256_cmpgt_epi32(_mm256_set1_epi32(W - b * 8), iota));
}

/* n - zero of nibble s of each lane, as f32; sym: the words' nibbles were
 * xor'ed with 8 (then the zero is 8 and zv unused) */
static inline __m256 i4a_val(__m256i wd, int s, bool sym, __m256i zv)
{
	__m256i n;
	if (sym)
		n = _mm256_srai_epi32(_mm256_slli_epi32(wd, 28 - 4 * s), 28);
	else
		n = _mm256_sub_epi32(_mm256_and_si256(_mm256_srli_epi32(wd, 4 * s), _mm256_set1_epi32(15)), zv);
	return _mm256_cvtepi32_ps(n);
}

/* HOT LOOP (decode): rows r0..r0+nr-1 (nr <= 4; the missing ones repeat the
 * last) with one token, x permuted (xp) */
static void i4a_rows(const struct rt_weight *w, int r0, int nr, const float *xp, float out[4])
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, W = (K + 7) / 8, nb = (K + I4A_B - 1) / I4A_B, rr[4];
	bool sym = !q->zero && q->zero_const == 8;
	size_t rb = (size_t)W * 4;
	const char *row[4];
	const __m256i flip = _mm256_set1_epi32(I4A_FLIP);
	__m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0, g0 = t0, g1 = t0, g2 = t0, g3 = t0;
	__m256i z0 = _mm256_setzero_si256(), z1 = z0, z2 = z0, z3 = z0;
	float sc[4] = {0};

	for (int i = 0; i < 4; i++) {
		rr[i] = r0 + (i < nr ? i : nr - 1);
		row[i] = (const char *)w->data + (size_t)rr[i] * rb;
	}
	for (int b = 0, g = -1, kn = 0; b < nb; b++) {
		int k = b * I4A_B;
		if (k == kn) { /* the next group: the last one's sums times its scales */
			if (g >= 0) {
				t0 = _mm256_fmadd_ps(g0, _mm256_set1_ps(sc[0]), t0);
				t1 = _mm256_fmadd_ps(g1, _mm256_set1_ps(sc[1]), t1);
				t2 = _mm256_fmadd_ps(g2, _mm256_set1_ps(sc[2]), t2);
				t3 = _mm256_fmadd_ps(g3, _mm256_set1_ps(sc[3]), t3);
				g0 = g1 = g2 = g3 = _mm256_setzero_ps();
			}
			g++;
			kn += q->sc;
			for (int i = 0; i < 4; i++)
				sc[i] = rt_load_elem(q->scale, q->scale_dtype, (size_t)rr[i] * q->n_sc + (size_t)g);
			if (!sym) {
				z0 = _mm256_set1_epi32(rt_q_zero(w, rr[0], g));
				z1 = _mm256_set1_epi32(rt_q_zero(w, rr[1], g));
				z2 = _mm256_set1_epi32(rt_q_zero(w, rr[2], g));
				z3 = _mm256_set1_epi32(rt_q_zero(w, rr[3], g));
			}
		}
		__m256i w0 = i4a_words(row[0], b, W), w1 = i4a_words(row[1], b, W), w2 = i4a_words(row[2], b, W),
		        w3 = i4a_words(row[3], b, W);
		if ((b & 1) == 0)
			for (int i = 0; i < 4; i++)
				_mm_prefetch(row[i] + (size_t)b * 32 + 4 * rb, _MM_HINT_T0);
		if (sym) {
			w0 = _mm256_xor_si256(w0, flip), w1 = _mm256_xor_si256(w1, flip);
			w2 = _mm256_xor_si256(w2, flip), w3 = _mm256_xor_si256(w3, flip);
		}
#pragma GCC unroll 8
		for (int s = 0; s < 8; s++) {
			__m256 xv = _mm256_loadu_ps(xp + k + 8 * s);
			g0 = _mm256_fmadd_ps(i4a_val(w0, s, sym, z0), xv, g0);
			g1 = _mm256_fmadd_ps(i4a_val(w1, s, sym, z1), xv, g1);
			g2 = _mm256_fmadd_ps(i4a_val(w2, s, sym, z2), xv, g2);
			g3 = _mm256_fmadd_ps(i4a_val(w3, s, sym, z3), xv, g3);
		}
	}
	t0 = _mm256_fmadd_ps(g0, _mm256_set1_ps(sc[0]), t0);
	t1 = _mm256_fmadd_ps(g1, _mm256_set1_ps(sc[1]), t1);
	t2 = _mm256_fmadd_ps(g2, _mm256_set1_ps(sc[2]), t2);
	t3 = _mm256_fmadd_ps(g3, _mm256_set1_ps(sc[3]), t3);
	out[0] = hsum8(t0), out[1] = hsum8(t1), out[2] = hsum8(t2), out[3] = hsum8(t3);
}

/* row r's n - zero in i4a_rows' order into dst[nb * 64] */
static void i4a_dec(const struct rt_weight *w, int r, float *dst)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, W = (K + 7) / 8, nb = (K + I4A_B - 1) / I4A_B;
	bool sym = !q->zero && q->zero_const == 8;
	const char *row = (const char *)w->data + (size_t)r * W * 4;
	__m256i zv = _mm256_setzero_si256();

	for (int b = 0, g = -1, kn = 0; b < nb; b++) {
		int k = b * I4A_B;
		if (k == kn) {
			g++;
			kn += q->sc;
			if (!sym)
				zv = _mm256_set1_epi32(rt_q_zero(w, r, g));
		}
		__m256i wd = i4a_words(row, b, W);
		if (sym)
			wd = _mm256_xor_si256(wd, _mm256_set1_epi32(I4A_FLIP));
#pragma GCC unroll 8
		for (int s = 0; s < 8; s++)
			_mm256_storeu_ps(dst + k + 8 * s, i4a_val(wd, s, sym, zv));
	}
}

/* the AVX2 block kernels' sums (i4a_rows, f8a_rows) for row r over its
 * decoded values v[Kp] (Kp: the columns rounded up to 8), tokens 0..nt-1
 * (nt <= 4) of xp (xs floats a token): per scale block (q->sc columns, a
 * multiple of 8) one 8-lane sum of v x, k ascending, times the block's
 * scale times mul, summed into each lane; then the lanes */
static void blk_dot(const struct rt_weight *w, int r, float mul, const float *v, int Kp, const float *xp, size_t xs,
                    int nt, float out[4])
{
	const struct rt_wquant *q = &w->q;
	const float *x0 = xp, *x1 = xp + (nt > 1 ? xs : 0), *x2 = xp + (nt > 2 ? 2 * xs : 0),
	            *x3 = xp + (nt > 3 ? 3 * xs : 0);
	size_t si = (size_t)(r / q->sr) * q->n_sc;
	__m256 t0 = _mm256_setzero_ps(), t1 = t0, t2 = t0, t3 = t0, g0 = t0, g1 = t0, g2 = t0, g3 = t0, sv = t0;

	for (int k = 0, g = -1, kn = 0; k < Kp; k += 8) {
		if (k == kn && k < w->cols) { /* (the padding past K is no block of its own) */
			if (g >= 0) {
				t0 = _mm256_fmadd_ps(g0, sv, t0), t1 = _mm256_fmadd_ps(g1, sv, t1);
				t2 = _mm256_fmadd_ps(g2, sv, t2), t3 = _mm256_fmadd_ps(g3, sv, t3);
				g0 = g1 = g2 = g3 = _mm256_setzero_ps();
			}
			g++;
			kn += q->sc;
			sv = _mm256_set1_ps(rt_load_elem(q->scale, q->scale_dtype, si + (size_t)g) * mul);
		}
		__m256 wv = _mm256_loadu_ps(v + k);
		g0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + k), g0);
		g1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k), g1);
		g2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + k), g2);
		g3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + k), g3);
	}
	t0 = _mm256_fmadd_ps(g0, sv, t0), t1 = _mm256_fmadd_ps(g1, sv, t1);
	t2 = _mm256_fmadd_ps(g2, sv, t2), t3 = _mm256_fmadd_ps(g3, sv, t3);
	out[0] = hsum8(t0), out[1] = hsum8(t1), out[2] = hsum8(t2), out[3] = hsum8(t3);
}

/* ---- AVX2, e4m3 fp8 in scale blocks of a multiple of 16 columns or per
 * channel / tensor (take_f8a) ----
 * 16 codes a step, each in the high byte of a 16-bit lane, shifted right
 * arithmetically and bit 14 cleared: the f16 of code / 2^8, exact (subnormal
 * codes too), converted to f32; per scale block one 8-lane sum of those
 * times x (k ascending, x zero-padded to 16 columns, permute_x), times the
 * block's scale times 2^8 (the one reassociation, as in blk_dot; a matrix
 * with a scale that 2^8 overflows runs row4_avx2).  NaN codes (S.1111.111)
 * come out finite: the pass tracks its four rows' largest |code| and, where
 * that is 0x7f, scans them: a row holding one gets NaN, what its sum gives.  Four rows a pass, one token
 * (f8a_rows); a token block decodes each row once (f8a_dec, NaN codes as
 * NaN) and sums it with blk_dot, the same sums. */

/* the 16 codes of row at k (past K: zeros) */
static inline __m128i f8a_codes(const uint8_t *row, int k, int K)
{
	if (k + 16 <= K)
		return _mm_loadu_si128((const __m128i *)(row + k));
	uint8_t t[16] = {0};
	memcpy(t, row + k, (size_t)(K - k));
	return _mm_loadu_si128((const __m128i *)t);
}

/* HOT LOOP (decode): rows r0..r0+nr-1 (nr <= 4; the missing ones repeat the
 * last) with one token, x padded (xp) */
static void f8a_rows(const struct rt_weight *w, int r0, int nr, const float *xp, float out[4])
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, rr[4];
	const uint8_t *row[4];
	const __m128i m7 = _mm_set1_epi8(0x7f);
	__m128i nmax = _mm_setzero_si128(); /* the 4 rows' largest |code| */
	__m256 t[4], g0 = _mm256_setzero_ps(), g1 = g0, g2 = g0, g3 = g0;
	float sc[4] = {0};

	for (int i = 0; i < 4; i++) {
		rr[i] = r0 + (i < nr ? i : nr - 1);
		row[i] = (const uint8_t *)w->data + (size_t)rr[i] * K;
		t[i] = _mm256_setzero_ps();
	}
	/* (the block sums t and scales sc in memory, touched once a block: AVX2's
	 * 16 registers hold the 4 chains, x and the codes) */
	for (int k = 0, g = -1, kn = 0; k < K; k += 16) {
		if (k == kn) { /* the next scale block: the last one's sums times its scales */
			if (g >= 0) {
				t[0] = _mm256_fmadd_ps(g0, _mm256_set1_ps(sc[0]), t[0]);
				t[1] = _mm256_fmadd_ps(g1, _mm256_set1_ps(sc[1]), t[1]);
				t[2] = _mm256_fmadd_ps(g2, _mm256_set1_ps(sc[2]), t[2]);
				t[3] = _mm256_fmadd_ps(g3, _mm256_set1_ps(sc[3]), t[3]);
				g0 = g1 = g2 = g3 = _mm256_setzero_ps();
			}
			g++;
			kn += q->sc;
			for (int i = 0; i < 4; i++)
				sc[i] = rt_q_scale(w, rr[i], k) * 256.0f;
		}
		__m128i b0 = f8a_codes(row[0], k, K), b1 = f8a_codes(row[1], k, K), b2 = f8a_codes(row[2], k, K),
		        b3 = f8a_codes(row[3], k, K);
		__m256 xl = _mm256_loadu_ps(xp + k), xh = _mm256_loadu_ps(xp + k + 8);
		if ((k & 63) == 0) {
			size_t pf = (size_t)k + 4 * (size_t)K; /* the next pass's rows */
			_mm_prefetch((const char *)row[0] + pf, _MM_HINT_T0);
			_mm_prefetch((const char *)row[1] + pf, _MM_HINT_T0);
			_mm_prefetch((const char *)row[2] + pf, _MM_HINT_T0);
			_mm_prefetch((const char *)row[3] + pf, _MM_HINT_T0);
		}
		nmax = _mm_max_epu8(nmax, _mm_max_epu8(_mm_max_epu8(_mm_and_si128(b0, m7), _mm_and_si128(b1, m7)),
		                                       _mm_max_epu8(_mm_and_si128(b2, m7), _mm_and_si128(b3, m7))));
		g0 = _mm256_fmadd_ps(F8A_LO(b0), xl, g0);
		g1 = _mm256_fmadd_ps(F8A_LO(b1), xl, g1);
		g2 = _mm256_fmadd_ps(F8A_LO(b2), xl, g2);
		g3 = _mm256_fmadd_ps(F8A_LO(b3), xl, g3);
		g0 = _mm256_fmadd_ps(F8A_HI(b0), xh, g0);
		g1 = _mm256_fmadd_ps(F8A_HI(b1), xh, g1);
		g2 = _mm256_fmadd_ps(F8A_HI(b2), xh, g2);
		g3 = _mm256_fmadd_ps(F8A_HI(b3), xh, g3);
	}
	t[0] = _mm256_fmadd_ps(g0, _mm256_set1_ps(sc[0]), t[0]);
	t[1] = _mm256_fmadd_ps(g1, _mm256_set1_ps(sc[1]), t[1]);
	t[2] = _mm256_fmadd_ps(g2, _mm256_set1_ps(sc[2]), t[2]);
	t[3] = _mm256_fmadd_ps(g3, _mm256_set1_ps(sc[3]), t[3]);
	for (int i = 0; i < 4; i++)
		out[i] = hsum8(t[i]);
	/* a NaN code (|code| 0x7f is the largest there is): the rows holding one */
	__m128i nan = _mm_cmpeq_epi8(nmax, m7);
	if (!_mm_testz_si128(nan, nan))
		for (int i = 0; i < 4; i++)
			for (int k = 0; k < K; k++)
				if ((row[i][k] & 0x7f) == 0x7f) {
					out[i] = __builtin_nanf("");
					break;
				}
}

/* row r's code / 2^8 (NaN codes: NaN) in f8a_rows' order into dst[K rounded up to 16] */
static void f8a_dec(const struct rt_weight *w, int r, float *dst)
{
	int K = w->cols;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r * K;

	for (int k = 0; k < K; k += 16) {
		__m128i b = f8a_codes(row, k, K), m7 = _mm_set1_epi8(0x7f),
		        e = _mm_cmpeq_epi8(_mm_and_si128(b, m7), m7);
		_mm256_storeu_ps(dst + k, F8A_LO(b));
		_mm256_storeu_ps(dst + k + 8, F8A_HI(b));
		if (!_mm_testz_si128(e, e))
			for (int i = 0; i < 16 && k + i < K; i++)
				if ((row[k + i] & 0x7f) == 0x7f)
					dst[k + i] = __builtin_nanf("");
	}
}

/* the AVX2 block kernels' task (i4a_rows or f8a_rows, over x in j->xp) */
static void task_blk(const struct qjob *j, int n0, int n1, float *scr)
{
	const struct rt_weight *w = j->w;
	bool fp8 = w->q.fmt == RT_WF_FP8;
	float o[4];

	if (j->T == 1 || !scr) {
		for (int t = 0; t < j->T; t++)
			for (int r = n0; r < n1; r += 4) {
				int nr = n1 - r < 4 ? n1 - r : 4;
				if (fp8)
					f8a_rows(w, r, nr, j->xp + (size_t)t * j->xs, o);
				else
					i4a_rows(w, r, nr, j->xp + (size_t)t * j->xs, o);
				for (int i = 0; i < nr; i++)
					put(j, t, r + i, o[i]);
			}
		return;
	}
	for (int r = n0; r < n1; r++) {
		float *v = scr + (size_t)(r - n0) * j->xs;
		if (fp8)
			f8a_dec(w, r, v);
		else
			i4a_dec(w, r, v);
		for (int t = 0; t < j->T; t += 4) {
			int nt = j->T - t < 4 ? j->T - t : 4;
			blk_dot(w, r, fp8 ? 256.0f : 1.0f, v, (int)j->xs, j->xp + (size_t)t * j->xs, j->xs, nt, o);
			for (int i = 0; i < nt; i++)
				put(j, t + i, r, o[i]);
		}
	}
}

/* the same sums over a row of stored weights (not backend_cpu.c's dot: this
 * one must keep row4_avx2's order whatever the dense kernels do) */
static float dot_avx2(const float *wr, const float *x, int K)
{
	__m256 acc = _mm256_setzero_ps();
	int k = 0;
	float s;
	for (; k + 8 <= K; k += 8)
		acc = _mm256_fmadd_ps(_mm256_loadu_ps(wr + k), _mm256_loadu_ps(x + k), acc);
	s = hsum8(acc);
	for (; k < K; k++)
		s = tail_add(s, wr[k], x[k]);
	return s;
}

static inline __m256 scale8(const struct rt_wquant *q, size_t i)
{
	if (q->scale_dtype == RT_F32)
		return _mm256_loadu_ps((const float *)q->scale + i);
	if (q->scale_dtype == RT_F16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)q->scale + i)));
	return _mm256_castsi256_ps(_mm256_slli_epi32(
	    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)q->scale + i))), 16));
}

/* the zero points of an octet of rows, in f32, from packed word zi of
 * q->zero (shifts: each lane's nibble); no zero points: rt_q_zero's constant,
 * as the AVX-512 code takes it */
static inline __m256 zero8(const struct rt_wquant *q, size_t zi, __m256i shifts)
{
	if (!q->zero)
		return _mm256_set1_ps((float)q->zero_const);
	__m256i z = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)rt_q_u32(q->zero, zi)), shifts),
	                             _mm256_set1_epi32(15));
	return _mm256_cvtepi32_ps(_mm256_add_epi32(z, _mm256_set1_epi32(q->zero_add)));
}

/* the group of column k of a column format, k ascending from 0: g_idx's, or
 * k / sc counted (*kn: where the next group begins; no division a column) */
static inline int col_grp(const struct rt_weight *w, int k, int *kn, int gcur)
{
	if (w->q.g_idx)
		return rt_q_group(w, k);
	if (k != *kn)
		return gcur;
	*kn = k + w->q.sc;
	return k / w->q.sc;
}

/* Rows r8..r8+7 of a column format (GPTQ, AWQ), k ascending, one lane per
 * row: scr != NULL ([K][8]) receives the weights; else out[8] the dots with x. */
static void oct_avx2(const struct rt_weight *w, int r8, const float *x, float *scr, float *out)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, R = w->rows, gcur = -1;
	bool awq = q->layout == RT_I4_AWQ;
	const __m256i shp = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	const __m256i sha = _mm256_setr_epi32(0, 16, 4, 20, 8, 24, 12, 28);
	const __m256i m15 = _mm256_set1_epi32(15);
	__m256 acc = _mm256_setzero_ps(), sv = acc, zv = acc;
	__m256i words = _mm256_setzero_si256();

	for (int k = 0, kn = 0; k < K; k++) {
		int g = col_grp(w, k, &kn, gcur);
		__m256i nib;
		__m256 wv;
		if (g != gcur) {
			zv = zero8(q, (size_t)g * (R / 8) + (size_t)(r8 / 8), awq ? sha : shp);
			sv = scale8(q, (size_t)g * R + (size_t)r8);
			gcur = g;
		}
		if (awq) {
			uint32_t u = rt_q_u32(w->data, (size_t)k * (R / 8) + (size_t)(r8 / 8));
			nib = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u), sha), m15);
		} else {
			if ((k & 7) == 0)
				words = _mm256_loadu_si256(
				    (const __m256i *)((const char *)w->data + ((size_t)(k / 8) * R + (size_t)r8) * 4));
			nib = _mm256_and_si256(_mm256_srl_epi32(words, _mm_cvtsi32_si128(4 * (k & 7))), m15);
		}
		wv = _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(nib), zv), sv);
		if (scr)
			_mm256_storeu_ps(scr + (size_t)k * 8, wv);
		else
			acc = _mm256_fmadd_ps(wv, _mm256_set1_ps(x[k]), acc);
	}
	if (!scr)
		_mm256_storeu_ps(out, acc);
}

/* HOT LOOP (decode): oct_avx2's sums for rows r8..r8+15 (no > 1: the second
 * octet too), two independent chains, each lane exactly as oct_avx2 computes
 * it; the packed words of the coming columns are prefetched (they lie a row
 * of the packed tensor apart). */
static void oct2_avx2(const struct rt_weight *w, int r8, int no, const float *x, float *out)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, R = w->rows, gcur = -1, o2 = no > 1 ? 8 : 0;
	bool awq = q->layout == RT_I4_AWQ;
	const __m256i shp = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	const __m256i sha = _mm256_setr_epi32(0, 16, 4, 20, 8, 24, 12, 28);
	const __m256i m15 = _mm256_set1_epi32(15);
	const char *d = w->data;
	size_t ws = awq ? (size_t)R / 2 : (size_t)R * 4; /* bytes from one packed row to the next */
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, s0 = a0, s1 = a0, z0 = a0, z1 = a0;
	__m256i w0 = _mm256_setzero_si256(), w1 = w0;

	for (int k = 0, kn = 0; k < K; k++) {
		int g = col_grp(w, k, &kn, gcur);
		__m256i n0, n1;
		__m256 xv = _mm256_set1_ps(x[k]);
		if (g != gcur) {
			size_t zi = (size_t)g * (R / 8) + (size_t)(r8 / 8);
			z0 = zero8(q, zi, awq ? sha : shp);
			z1 = zero8(q, zi + (o2 ? 1 : 0), awq ? sha : shp);
			s0 = scale8(q, (size_t)g * R + (size_t)r8);
			s1 = scale8(q, (size_t)g * R + (size_t)r8 + o2);
			gcur = g;
		}
		if (awq) {
			const char *p = d + (size_t)k * ws + (size_t)(r8 / 8) * 4;
			uint32_t u0, u1;
			if ((k & 7) == 0)
				_mm_prefetch(p + 8 * ws, _MM_HINT_T0);
			memcpy(&u0, p, 4);
			memcpy(&u1, p + (o2 ? 4 : 0), 4);
			n0 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u0), sha), m15);
			n1 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u1), sha), m15);
		} else {
			__m128i c = _mm_cvtsi32_si128(4 * (k & 7));
			if ((k & 7) == 0) {
				const char *p = d + (size_t)(k / 8) * ws + (size_t)r8 * 4;
				_mm_prefetch(p + 4 * ws, _MM_HINT_T0);
				w0 = _mm256_loadu_si256((const __m256i *)p);
				w1 = _mm256_loadu_si256((const __m256i *)(p + o2 * 4));
			}
			n0 = _mm256_and_si256(_mm256_srl_epi32(w0, c), m15);
			n1 = _mm256_and_si256(_mm256_srl_epi32(w1, c), m15);
		}
		a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(n0), z0), s0), xv, a0);
		a1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(n1), z1), s1), xv, a1);
	}
	_mm256_storeu_ps(out, a0);
	if (no > 1)
		_mm256_storeu_ps(out + 8, a1);
}

/* HOT LOOP (decode): oct2_avx2's sums for the 64 rows r8..r8+63, eight
 * chains, each lane exactly as oct_avx2 computes it: a pass reads 256
 * bytes (GPTQ) or 32 (AWQ) of each packed row, where 16 rows read 64 or 8
 * and left most of each page the stride crosses to later passes (GPTQ decode
 * on the bench model 2.0x faster on Zen 3, AWQ about the same: docs/
 * PERFORMANCE.md, session 9); the group's zero points and scales wait in
 * memory, one load each a column */
static void oct8_avx2(const struct rt_weight *w, int r8, const float *x, float *out)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, R = w->rows, gcur = -1;
	bool awq = q->layout == RT_I4_AWQ;
	const __m256i shp = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
	const __m256i sha = _mm256_setr_epi32(0, 16, 4, 20, 8, 24, 12, 28);
	const __m256i m15 = _mm256_set1_epi32(15);
	const char *d = w->data;
	size_t ws = awq ? (size_t)R / 2 : (size_t)R * 4; /* bytes from one packed row to the next */
	__m256 acc[8], sv[8], zv[8];
	__m256i wd[8];

	for (int o = 0; o < 8; o++) {
		acc[o] = _mm256_setzero_ps();
		wd[o] = _mm256_setzero_si256();
	}
	for (int k = 0, kn = 0; k < K; k++) {
		int g = col_grp(w, k, &kn, gcur);
		if (g != gcur) {
			for (int o = 0; o < 8; o++) {
				zv[o] = zero8(q, (size_t)g * (R / 8) + (size_t)(r8 / 8) + o, awq ? sha : shp);
				sv[o] = scale8(q, (size_t)g * R + (size_t)r8 + 8 * o);
			}
			gcur = g;
		}
		__m256 xv = _mm256_set1_ps(x[k]);
		if (awq) {
			const char *p = d + (size_t)k * ws + (size_t)(r8 / 8) * 4;
			_mm_prefetch(p + 8 * ws, _MM_HINT_T0);
#pragma GCC unroll 8
			for (int o = 0; o < 8; o++) {
				uint32_t u;
				memcpy(&u, p + 4 * o, 4);
				__m256i n = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u), sha), m15);
				acc[o] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(n), zv[o]), sv[o]), xv,
				                         acc[o]);
			}
		} else {
			__m128i c = _mm_cvtsi32_si128(4 * (k & 7));
			if ((k & 7) == 0) {
				const char *p = d + (size_t)(k / 8) * ws + (size_t)r8 * 4;
				for (int o = 0; o < 8; o += 2)
					_mm_prefetch(p + 4 * ws + 32 * o, _MM_HINT_T0);
				for (int o = 0; o < 8; o++)
					wd[o] = _mm256_loadu_si256((const __m256i *)(p + 32 * o));
			}
#pragma GCC unroll 8
			for (int o = 0; o < 8; o++) {
				__m256i n = _mm256_and_si256(_mm256_srl_epi32(wd[o], c), m15);
				acc[o] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(n), zv[o]), sv[o]), xv,
				                         acc[o]);
			}
		}
	}
	for (int o = 0; o < 8; o++)
		_mm256_storeu_ps(out + 8 * o, acc[o]);
}

static void oct_dot_avx2(const float *scr, const float *x, int K, float *out)
{
	__m256 acc = _mm256_setzero_ps();
	for (int k = 0; k < K; k++)
		acc = _mm256_fmadd_ps(_mm256_loadu_ps(scr + (size_t)k * 8), _mm256_set1_ps(x[k]), acc);
	_mm256_storeu_ps(out, acc);
}

static void task_avx2(const struct qjob *j, int n0, int n1, float *scr)
{
	const struct rt_weight *w = j->w;
	int K = w->cols;

	if (w->q.fmt == RT_WF_INT4 && w->q.layout != RT_I4_CT) {
		float o[64];
		if (j->T == 1) {
			for (int r8 = n0; r8 < n1; r8 += 16) {
				int no = n1 - r8 >= 16 ? 2 : 1;
				if (n1 - r8 >= 64) {
					oct8_avx2(w, r8, j->x, o);
					for (int i = 0; i < 64; i++)
						put(j, 0, r8 + i, o[i]);
					r8 += 48;
					continue;
				}
				oct2_avx2(w, r8, no, j->x, o);
				for (int i = 0; i < 8 * no; i++)
					put(j, 0, r8 + i, o[i]);
			}
			return;
		}
		for (int r8 = n0; r8 < n1; r8 += 8) {
			if (!scr) {
				for (int t = 0; t < j->T; t++) {
					oct_avx2(w, r8, j->x + (size_t)t * K, NULL, o);
					for (int i = 0; i < 8; i++)
						put(j, t, r8 + i, o[i]);
				}
				continue;
			}
			oct_avx2(w, r8, NULL, scr, NULL);
			for (int t = 0; t < j->T; t++) {
				oct_dot_avx2(scr, j->x + (size_t)t * K, K, o);
				for (int i = 0; i < 8; i++)
					put(j, t, r8 + i, o[i]);
			}
		}
		return;
	}
	if (j->xp) {
		task_blk(j, n0, n1, scr);
		return;
	}
	if (j->T == 1 || !scr) {
		for (int r = n0; r < n1; r += 4) {
			int nr = n1 - r < 4 ? n1 - r : 4;
			float o[4];
			for (int t = 0; t < j->T; t++) {
				row4_avx2(w, r, nr, j->x + (size_t)t * K, o);
				for (int i = 0; i < nr; i++)
					put(j, t, r + i, o[i]);
			}
		}
		return;
	}
	for (int r = n0; r < n1; r++)
		row_avx2(w, r, NULL, scr + (size_t)(r - n0) * K);
	for (int t = 0; t < j->T; t++)
		for (int r = n0; r < n1; r++)
			put(j, t, r, dot_avx2(scr + (size_t)(r - n0) * K, j->x + (size_t)t * K, K));
}

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* ---- AVX-512 (F, BW, VL) ----
 * Row formats: compressed-tensors int4 in groups of a multiple of 128
 * columns, of 32 or 64 (i4s_pass) or per channel, without g_idx; e4m3 fp8 with scale blocks of a
 * multiple of 32 columns or per channel / tensor (take512); the other row
 * formats run the AVX2 code (the column formats: after task_avx512).  Per
 * row and token one 16-lane sum, blocks in ascending k, then
 * _mm512_reduce_add_ps; a pass takes up to 8 rows (one token) or 4 rows
 * (fp8: 2) x up to 4 tokens, each weight vector made once and multiplied
 * into each token's sum, so a token gets the same sums alone and in a batch.
 * x is permuted once per call to the order the weight vectors come out in
 * (permute_x).
 *
 * int4: a block of 128 columns is one zmm of 16 packed words; shifting the
 * words right by 4s puts column 8j + s in the low nibble of lane j, and
 * vpermps (which reads only those 4 bits) looks it up in the group's table
 * of (n - zero) * scale, n = 0..15: each weight's f32 value exactly as
 * rt_q_weight computes it, in one instruction.
 *
 * fp8 e4m3 (where the CPU lacks VBMI or GFNI, or AGRT_FP8_F16 is set; else
 * f8g_pass below): 32 codes broadcast and vpshufb'd into the high bytes of
 * 16-bit words, shifted right arithmetically by 1 and bit 14 cleared, are
 * the f16 of code / 2^8 (exact, subnormal codes included, and no f32
 * denormals, which older CPUs take microcode assists on); the sums of
 * code * x over a scale block are multiplied by the block's scale * 2^8 once
 * (the one reassociation: weights are not rounded, x is not, the sums are
 * f32).  A scale that 2^8 overflows sends its rows to the AVX2 code.  NaN
 * codes (S.1111.111) would come out finite: the pass tracks the byte maxima
 * and a row holding one gets NaN, what the sum gives. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif
#define AI   static inline __attribute__((always_inline))
#define I4B  128 /* int4 columns per block: 16 packed words */
#define XPT4 4   /* tokens per pass */
/* the row formats' prefetch: each line a pass loads brings the line QPF bytes
 * on (the rows are contiguous, so the passes to come) into L2; an L1
 * prefetch a pass ahead, as these kernels had, kept too few lines in flight
 * (fp8 decode on the bench model 1.5x faster, int4 1.3x: PERFORMANCE.md) */
#define QPF 16384

/* SMALL: groups of 32 or 64 columns.  A block of 128 columns then holds
 * 128 / sc groups, lane j (columns 8j..8j+7) in group 8j / sc of them, so
 * instead of one table a group each row gets per block a vector of its
 * lanes' scales and one of their zero points + 2^23 (masked loads of the
 * block's scales and zero-point words, one vpermps each), and a weight is
 * the float 2^23 + n (the nibble masked into its mantissa, one vpternlogd)
 * minus zero + 2^23, i.e. n - zero exactly, times the scale: rt_q_weight's
 * value, 4 uops per 16 weights where the tables take 2; up to 4 rows a pass
 * (the lanes' vectors take registers: i4s_pass runs NR 8 as two).  The sums
 * in the same order either way: a token gets the same alone and in a
 * batch. */
AI void i4_pass(const struct rt_weight *w, int r0, int nr, const float *xp, size_t xs, int NR, int NT, float *out,
                bool SMALL)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, W = (K + 7) / 8, nb = (K + I4B - 1) / I4B, rr[8];
	size_t rb = (size_t)W * 4;
	const char *row[8];
	const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
	             sym = _mm512_sub_ps(iota, _mm512_set1_ps((float)q->zero_const));
	__m512 acc[8][XPT4], tab[8];
	size_t s0[8]; /* each row's first scale */

#pragma GCC unroll 8
	for (int i = 0; i < NR; i++) {
		rr[i] = r0 + (i < nr ? i : nr - 1);
		row[i] = (const char *)w->data + (size_t)rr[i] * rb;
		s0[i] = (size_t)rr[i] * q->n_sc;
		tab[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[i][t] = _mm512_setzero_ps();
	}
	/* group g = k / sc: sc is a multiple of 128 or at least K, so groups
	 * begin at block starts (counted, no division a block); SMALL: 128 / sc
	 * groups a block */
	for (int b = 0, g = -1, kn = 0; b < nb; b++) {
		int k = b * I4B;
		__mmask16 m = W - b * 16 >= 16 ? 0xffff : (__mmask16)((1u << (W - b * 16)) - 1);
		__m512i wd[8];
		__m512 sl[8], zl[8];
		if (SMALL) {
			int gpb = I4B / q->sc, g0 = b * gpb, ng = q->n_sc - g0 < gpb ? q->n_sc - g0 : gpb;
			__mmask8 mg = (__mmask8)((1u << ng) - 1);
			/* lane j's group within the block */
			const __m512i lg = _mm512_srli_epi32(
			    _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), q->sc == 32 ? 2 : 3);
#pragma GCC unroll 8
			for (int i = 0; i < NR; i++) {
				size_t si = s0[i] + (size_t)g0;
				__m128 sv, zv = _mm_set1_ps((float)q->zero_const + 0x1p23f);
				if (q->scale_dtype == RT_F32)
					sv = _mm_maskz_loadu_ps(mg, (const float *)q->scale + si);
				else if (q->scale_dtype == RT_F16)
					sv = _mm_cvtph_ps(_mm_maskz_loadu_epi16(mg, (const uint16_t *)q->scale + si));
				else
					sv = _mm_castsi128_ps(_mm_slli_epi32(
					    _mm_cvtepu16_epi32(_mm_maskz_loadu_epi16(mg, (const uint16_t *)q->scale + si)), 16));
				if (q->zero) {
					/* rows r..r+7's nibbles of groups g0.. in consecutive words */
					__m128i u = _mm_maskz_loadu_epi32(mg, (const uint32_t *)q->zero +
					                                          (size_t)(rr[i] / 8) * q->n_sc + (size_t)g0);
					u = _mm_and_si128(_mm_srli_epi32(u, 4 * (rr[i] & 7)), _mm_set1_epi32(15));
					zv = _mm_add_ps(_mm_cvtepi32_ps(_mm_add_epi32(u, _mm_set1_epi32(q->zero_add))),
					                _mm_set1_ps(0x1p23f)); /* exact */
				}
				sl[i] = _mm512_permutexvar_ps(lg, _mm512_castps128_ps512(sv));
				zl[i] = _mm512_permutexvar_ps(lg, _mm512_castps128_ps512(zv));
			}
		} else if (k == kn) {
			g++;
			kn += q->sc;
			if (q->sz)
#pragma GCC unroll 8
				for (int i = 0; i < NR; i++) {
					/* the same values as fma(n, scale, -zero * scale) (rt_quant_pairs) */
					const float *p = q->sz + 2 * (s0[i] + (size_t)g);
					tab[i] = _mm512_fmsub_ps(iota, _mm512_set1_ps(p[0]), _mm512_set1_ps(p[1]));
				}
			else
#pragma GCC unroll 8
			for (int i = 0; i < NR; i++) {
				/* (n - zero) * scale for n = 0..15, as rt_q_weight (small integers: exact in f32) */
				__m512 n = sym;
				if (q->zero)
					n = _mm512_sub_ps(iota, _mm512_set1_ps((float)rt_q_zero(w, rr[i], g)));
				tab[i] = _mm512_mul_ps(
				    n, _mm512_set1_ps(rt_load_elem(q->scale, q->scale_dtype, s0[i] + (size_t)g)));
			}
		}
		if (m == 0xffff) /* plain loads but in the row's last block */
#pragma GCC unroll 8
			for (int i = 0; i < NR; i++)
				wd[i] = _mm512_loadu_si512(row[i] + (size_t)b * 64);
		else
#pragma GCC unroll 8
			for (int i = 0; i < NR; i++)
				wd[i] = _mm512_maskz_loadu_epi32(m, row[i] + (size_t)b * 64);
#pragma GCC unroll 8
		for (int i = 0; i < NR; i++)
			_mm_prefetch(row[i] + (size_t)b * 64 + QPF, _MM_HINT_T1);
#pragma GCC unroll 8
		for (int s = 0; s < 8; s++)
#pragma GCC unroll 8
			for (int i = 0; i < NR; i++) {
				__m512i sh = _mm512_srli_epi32(wd[i], 4 * s);
				__m512 wv;
				if (SMALL) /* (A & B) | C: the nibble into 2^23's mantissa */
					wv = _mm512_mul_ps(_mm512_sub_ps(_mm512_castsi512_ps(_mm512_ternarylogic_epi32(
					                                     sh, _mm512_set1_epi32(15), _mm512_set1_epi32(0x4b000000), 0xea)),
					                                 zl[i]),
					                   sl[i]);
				else
					wv = _mm512_permutexvar_ps(sh, tab[i]);
#pragma GCC unroll 4
				for (int t = 0; t < NT; t++)
					acc[i][t] =
					    _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp + t * xs + k + 16 * s), acc[i][t]);
			}
	}
#pragma GCC unroll 8
	for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			out[i * XPT4 + t] = _mm512_reduce_add_ps(acc[i][t]);
}

/* groups of 32 or 64: at most 4 rows a pass */
AI void i4s_pass(const struct rt_weight *w, int r0, int nr, const float *xp, size_t xs, int NR, int NT, float *out)
{
	i4_pass(w, r0, nr < 4 ? nr : 4, xp, xs, 4, NT, out, true);
	if (NR > 4 && nr > 4)
		i4_pass(w, r0 + 4, nr - 4, xp, xs, 4, NT, out + 4 * XPT4, true);
}

/* 32 codes of each of the NR rows at kc (full: all 32, else those in mc)
 * into the block sums: f16 bits of code / 2^8 (exact), in f32, times x */
AI void f8_rows32(const uint8_t *const *row, int kc, __mmask32 mc, bool full, const float *xp, size_t xs, int NR,
                  int NT, __m512 (*blk)[XPT4])
{
	/* the 32 codes broadcast to both halves: lanes 0..3 take bytes 0-7, 16-23,
	 * 8-15, 24-31 into the high bytes of their 16-bit words */
	const __m512i shuf =
	    _mm512_set_epi8(15, -1, 14, -1, 13, -1, 12, -1, 11, -1, 10, -1, 9, -1, 8, -1, 15, -1, 14, -1, 13, -1, 12,
	                    -1, 11, -1, 10, -1, 9, -1, 8, -1, 7, -1, 6, -1, 5, -1, 4, -1, 3, -1, 2, -1, 1, -1, 0, -1, 7,
	                    -1, 6, -1, 5, -1, 4, -1, 3, -1, 2, -1, 1, -1, 0, -1);
	const __m512i keep = _mm512_set1_epi16((short)0xbfff);

#pragma GCC unroll 8
	for (int i = 0; i < NR; i++) {
		/* a broadcast load (no shuffle uop) but in the row's last 32 */
		__m256i b = full ? _mm256_loadu_si256((const __m256i *)(row[i] + kc))
		                 : _mm256_maskz_loadu_epi8(mc, row[i] + kc);
		__m512i h =
		    _mm512_and_si512(_mm512_srai_epi16(_mm512_shuffle_epi8(_mm512_broadcast_i64x4(b), shuf), 1), keep);
		__m512 w0 = _mm512_cvtph_ps(_mm512_castsi512_si256(h)),
		       w1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++) {
			blk[i][t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xp + t * xs + kc), blk[i][t]);
			blk[i][t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xp + t * xs + kc + 16), blk[i][t]);
		}
	}
}

/* the fp8 passes' start: the NR rows from r0 (past nr the last again), each
 * row's first scale index, the sums zero */
AI void f8_begin(const struct rt_weight *w, int r0, int nr, int NR, int NT, const uint8_t **row, size_t *s0, float *sf,
                 __m512 (*acc)[XPT4], __m512 (*blk)[XPT4])
{
#pragma GCC unroll 8
	for (int i = 0; i < NR; i++) {
		int r = r0 + (i < nr ? i : nr - 1);
		row[i] = (const uint8_t *)w->data + (size_t)r * w->cols;
		s0[i] = (size_t)(r / w->q.sr) * w->q.n_sc;
		sf[i] = 0;
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[i][t] = blk[i][t] = _mm512_setzero_ps();
	}
}

/* the fp8 passes' end: each row's sums (the last block's times its scale) into
 * out; NaN for the rows holding a NaN code (S.1111.111), which the byte
 * maxima mu (unsigned) and ms (signed) flag */
AI void f8_out(const uint8_t *const *row, int K, int NR, int NT, __m512 (*acc)[XPT4], __m512 (*blk)[XPT4],
               const float *sf, __m512i mu, __m512i ms, float *out)
{
#pragma GCC unroll 8
	for (int i = 0; i < NR; i++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			out[i * XPT4 + t] =
			    _mm512_reduce_add_ps(_mm512_fmadd_ps(blk[i][t], _mm512_set1_ps(sf[i]), acc[i][t]));
	if (_mm512_cmpeq_epi8_mask(mu, _mm512_set1_epi8(-1)) || _mm512_cmpeq_epi8_mask(ms, _mm512_set1_epi8(0x7f)))
		for (int i = 0; i < NR; i++)
			for (int k = 0; k < K; k++)
				if ((row[i][k] & 0x7f) == 0x7f) {
					for (int t = 0; t < NT; t++)
						out[i * XPT4 + t] = NAN;
					break;
				}
}

/* returns the rows (bit i: row r0 + i) where a scale times 2^8 overflows
 * (the caller runs the AVX2 code on them) */
AI unsigned f8_pass(const struct rt_weight *w, int r0, int nr, const float *xp, size_t xs, int NR, int NT, float *out)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols;
	const uint8_t *row[8];
	__m512 acc[8][XPT4], blk[8][XPT4];
	float sf[8];
	size_t s0[8]; /* each row's first scale */
	__m512i mu = _mm512_setzero_si512(), ms = _mm512_set1_epi8(-128);
	unsigned bad = 0;

	f8_begin(w, r0, nr, NR, NT, row, s0, sf, acc, blk);
	/* scale block g = k / sc: sc is a multiple of 32 or at least K (counted) */
	for (int k = 0, kn = 0, g = -1; k < K; k += 64) {
		int nk = K - k < 64 ? K - k : 64;
		__mmask64 m = nk == 64 ? ~(__mmask64)0 : ((__mmask64)1 << nk) - 1;
#pragma GCC unroll 8
		for (int i = 0; i < NR; i++) {
			__m512i v = _mm512_maskz_loadu_epi8(m, row[i] + k);
			mu = _mm512_max_epu8(mu, v);
			ms = _mm512_max_epi8(ms, v);
			_mm_prefetch(row[i] + k + QPF, _MM_HINT_T1);
		}
		for (int c = 0; c < nk; c += 32) {
			int kc = k + c;
			__mmask32 mc = nk - c >= 32 ? ~(__mmask32)0 : ((__mmask32)1 << (nk - c)) - 1;
			if (kc == kn) { /* a scale block begins: the last one's sums times its scale */
#pragma GCC unroll 8
				for (int i = 0; i < NR; i++) {
#pragma GCC unroll 4
					for (int t = 0; t < NT; t++) {
						acc[i][t] =
						    _mm512_fmadd_ps(blk[i][t], _mm512_set1_ps(sf[i]), acc[i][t]);
						blk[i][t] = _mm512_setzero_ps();
					}
					sf[i] = rt_load_elem(q->scale, q->scale_dtype, s0[i] + (size_t)g + 1) * 256.0f;
					bad |= (unsigned)!(sf[i] <= 3.4028234663852886e38f) << i;
				}
				g++;
				kn = kc + q->sc;
			}
			if (mc == ~(__mmask32)0)
				f8_rows32(row, kc, mc, true, xp, xs, NR, NT, blk);
			else
				f8_rows32(row, kc, mc, false, xp, xs, NR, NT, blk);
		}
	}
	f8_out(row, K, NR, NT, acc, blk, sf, mu, ms, out);
	return bad;
}

/* the passes, NR rows x NT tokens: int4 8x1 and 4x2..4; fp8 (a block sum
 * besides each sum) 8x1 and 2x2..4 */
#define PASS512(NR, NT, NR8)                                                                                           \
	static unsigned pass512_##NT(const struct rt_weight *w, int r0, int nr, const float *x, size_t xs, float *out) \
	{                                                                                                              \
		if (w->q.fmt == RT_WF_FP8)                                                                             \
			return f8_pass(w, r0, nr, x, xs, NR8, NT, out);                                                \
		if (w->q.sc < I4B && w->q.sc < w->cols)                                                                \
			i4s_pass(w, r0, nr, x, xs, NR, NT, out);                                                       \
		else                                                                                                   \
			i4_pass(w, r0, nr, x, xs, NR, NT, out, false);                                                 \
		return 0;                                                                                              \
	}
PASS512(8, 1, 8)
PASS512(4, 2, 2)
PASS512(4, 3, 2)
PASS512(4, 4, 2)
#undef PASS512
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* ---- fp8 e4m3 with AVX-512 VBMI and GFNI (Ice Lake, Sapphire Rapids, Zen 4) ----
 * Each code becomes the f32 whose bits are sign << 31 | (code & 0x7f) << 20:
 * code * 2^-120 exactly (subnormal codes as f32 denormals, which Zen 4's FMA
 * takes at full speed; Intel's not measured: docs/RUNTIME.md).  Two
 * vgf2p8affineqb move each code's bits into the bytes A = s000 0eee (sign,
 * exponent bits 3..1) and B = emmm 0000 (exponent bit 0, mantissa), and two
 * byte and four word unpacks (with zero) put B and A in bytes 2 and 3 of their
 * lane (f8g_w: lanes in the unpacks' order, x permuted to match), 8 uops for
 * 64 weights where the f16 route above takes 16 (a zero-masking vpermt2b per
 * 16 codes, 6 uops, ran 1.25x slower in L1 on Zen 4: its byte permutes are the
 * costly uops; batched fp8 steps 1.3-1.5x faster this way, one token alike).
 * Scale blocks must be a multiple of 64 codes here (or one per row): the
 * unpacks' quarters mix the codes of a 64-code step; [32,32] blocks take
 * the f16 route.  x comes
 * scaled by 2^64 (permute_x; exact, as is the scale's 2^56 below): the
 * products and sums are those of code * x times 2^-56, the same f32 roundings
 * while the sums stay above 2^-70 (under it, denormal sums round coarser).
 * The sums of a scale block are multiplied by the block's scale * 2^56 once,
 * as the f16 route does; a scale that overflows sends its rows to the AVX2
 * code, a token with some |x| >= 2^60 its sums (permute_x: alone or in a
 * batch, the same code takes a token's sums).  NaN codes come out finite
 * (480 x 2^-120): the pass tracks the byte maxima as f8_pass does. */
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,gfni,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vbmi,gfni,avx2,fma,f16c")
#endif

/* vgf2p8affineqb matrices: result bit i is the parity of byte 7 - i and the code */
#define F8G_A 0x1020400000000080ull /* bit 7 <- 7, bits 2..0 <- 6..4 */
#define F8G_B 0x0000000001020408ull /* bits 7..4 <- 3..0 */
#define F8G_XS 0x1p64f             /* x's scale (permute_x) */
#define F8G_XMAX 0x1p60f           /* a token with some |x| at least this: the AVX2 code */
#define F8G_SS 0x1p56f             /* the scale's: 2^-120 * 2^64 * 2^56 = 1 */

/* the q-th quarter of 64 codes' f32 (q = 0..3): lane 4L + i holds code
 * 16L + 4q + i (L the 128-bit lane).  lo and hi are a's and b's bytes
 * interleaved per lane (16-bit words B | A << 8, the low and high 8 codes of
 * each lane); the word-level unpack with zero puts each word in the upper
 * half of its dword, B in byte 2 and A in byte 3 */
AI __m512 f8g_w(__m512i lo, __m512i hi, int q)
{
	const __m512i z = _mm512_setzero_si512();
	__m512i h = q < 2 ? lo : hi;
	return _mm512_castsi512_ps(q & 1 ? _mm512_unpackhi_epi16(z, h) : _mm512_unpacklo_epi16(z, h));
}

AI void f8g_quarter(__m512 wv, const float *xp, size_t xs, int kq, int NT, __m512 *blk)
{
#pragma GCC unroll 4
	for (int t = 0; t < NT; t++)
		blk[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp + t * xs + kq), blk[t]);
}

/* a scale block begins: the last one's sums times its scale (scale index si next) */
AI void f8g_block(const struct rt_weight *w, size_t si, int i, int NT, __m512 *acc, __m512 *blk, float *sf,
                  unsigned *bad)
{
#pragma GCC unroll 4
	for (int t = 0; t < NT; t++) {
		acc[t] = _mm512_fmadd_ps(blk[t], _mm512_set1_ps(*sf), acc[t]);
		blk[t] = _mm512_setzero_ps();
	}
	*sf = rt_load_elem(w->q.scale, w->q.scale_dtype, si) * F8G_SS;
	*bad |= (unsigned)!(*sf <= 3.4028234663852886e38f) << i;
}

AI unsigned f8g_pass(const struct rt_weight *w, int r0, int nr, const float *xp, size_t xs, int NR, int NT, float *out)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols;
	const uint8_t *row[8];
	__m512 acc[8][XPT4], blk[8][XPT4];
	float sf[8];
	size_t s0[8]; /* each row's first scale */
	const __m512i ma = _mm512_set1_epi64((long long)F8G_A), mb = _mm512_set1_epi64((long long)F8G_B);
	__m512i mu = _mm512_setzero_si512(), ms = _mm512_set1_epi8(-128);
	unsigned bad = 0;

	f8_begin(w, r0, nr, NR, NT, row, s0, sf, acc, blk);
	/* scale block g = k / sc: sc is a multiple of 64 or at least K, so a
	 * block begins at a 64-code step (counted); past K the masked load
	 * gives code 0 (weight 0) and x is 0 */
	for (int k = 0, kn = 0, g = -1; k < K; k += 64) {
		int nk = K - k < 64 ? K - k : 64;
		__mmask64 m = nk == 64 ? ~(__mmask64)0 : ((__mmask64)1 << nk) - 1;
		bool nb = k == kn;
		if (nb) {
			g++;
			kn += q->sc;
		}
#pragma GCC unroll 8
		for (int i = 0; i < NR; i++) {
			__m512i v = _mm512_maskz_loadu_epi8(m, row[i] + k), a, b, lo, hi;
			mu = _mm512_max_epu8(mu, v);
			ms = _mm512_max_epi8(ms, v);
			_mm_prefetch(row[i] + k + QPF, _MM_HINT_T1);
			a = _mm512_gf2p8affine_epi64_epi8(v, ma, 0);
			b = _mm512_gf2p8affine_epi64_epi8(v, mb, 0);
			lo = _mm512_unpacklo_epi8(b, a);
			hi = _mm512_unpackhi_epi8(b, a);
			if (nb)
				f8g_block(w, s0[i] + (size_t)g, i, NT, acc[i], blk[i], &sf[i], &bad);
#pragma GCC unroll 4
			for (int qq = 0; qq < 4; qq++)
				f8g_quarter(f8g_w(lo, hi, qq), xp, xs, k + 16 * qq, NT, blk[i]);
		}
	}
	f8_out(row, K, NR, NT, acc, blk, sf, mu, ms, out);
	return bad;
}

#define PASSG(NR, NT)                                                                                                 \
	static unsigned f8g_##NT(const struct rt_weight *w, int r0, int nr, const float *x, size_t xs, float *out)    \
	{                                                                                                              \
		return f8g_pass(w, r0, nr, x, xs, NR, NT, out);                                                        \
	}
PASSG(8, 1)
PASSG(2, 2)
PASSG(2, 3)
PASSG(2, 4)
#undef PASSG

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

typedef unsigned (*pass_fn)(const struct rt_weight *w, int r0, int nr, const float *x, size_t xs, float *out);
static const pass_fn pass512[XPT4 + 1] = {NULL, pass512_1, pass512_2, pass512_3, pass512_4},
                     passg[XPT4 + 1] = {NULL, f8g_1, f8g_2, f8g_3, f8g_4};

static void task_avx512(const struct qjob *j, int n0, int n1)
{
	const struct rt_weight *w = j->w;
	const float *x = j->xp;
	size_t xs = j->xs;
	float o[8 * XPT4];

	for (int t0 = 0; t0 < j->T; t0 += XPT4) {
		int nt = j->T - t0 < XPT4 ? j->T - t0 : XPT4, NR = nt == 1 ? 8 : w->q.fmt == RT_WF_FP8 ? 2 : 4;
		for (int r = n0; r < n1; r += NR) {
			int nr = n1 - r < NR ? n1 - r : NR;
			const float *xt = x + (size_t)t0 * xs;
			unsigned bad = (j->f8g ? passg : pass512)[nt](w, r, nr, xt, xs, o);
			for (int i = 0; i < nr; i++)
				for (int t = 0; t < nt; t++) {
					float v = !(bad >> i & 1) && !(j->f8g && j->xbig[t0 + t])
					              ? o[i * XPT4 + t]
					              : row_avx2(w, r + i, j->x + (size_t)(t0 + t) * w->cols, NULL);
					put(j, t0 + t, r + i, v);
				}
		}
	}
}

/* ---- AVX-512 column formats (GPTQ, AWQ) ----
 * oct_avx2's sums 16 rows to a zmm (two packed octets), one lane per row, k
 * ascending, each weight (n - zero) * scale as rt_q_weight computes it and
 * one FMA a column: every lane is the chain oct_avx2 / oct2_avx2 run, so the
 * results are theirs bit for bit, alone or in a batch.  A pass runs up to 4
 * such chains (64 rows, one token: the FMA latency hidden) or 2 chains x up
 * to 4 tokens, each weight vector made once.  A weight vector is 5 zmm uops:
 * the shift that brings the column's nibble down, one vpternlogd that masks
 * it and ors in the bits of 2^23 (the nibble in the float's mantissa), the
 * subtraction of zero + 2^23 (exact: n - zero), the product with the scale.
 * The groups come as runs of columns (col_runs: k / sc, or a g_idx that never
 * decreases); a non-monotone g_idx (act-order) runs the AVX2 code.
 *
 * GPTQ: the 16 words of rows rb..rb+15 at k / 8 are one zmm, lane i row
 * rb + i, nibble k % 8.  AWQ: the two words of rows rb..rb+15 at column k are
 * 8 bytes, broadcast; lane 2m + h takes word h's nibble m (shift 4m), which
 * AWQ's order gives to row rb + 8h + (0,2,4,6,1,3,5,7)[m]: the scales and zero
 * points are loaded in that lane order, the sums stored back by it. */

/* lane l's row (of the 16 at rb) and, for the zero points and AWQ's words,
 * which of the two packed words it reads and the shift */
static const int32_t col_row[2][16] = {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
                                       {0, 8, 2, 10, 4, 12, 6, 14, 1, 9, 3, 11, 5, 13, 7, 15}};
static const int32_t col_word[2][16] = {{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1},
                                        {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}};
static const int32_t col_shift[2][16] = {{0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28},
                                         {0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28}};

/* the two packed words at p broadcast, word h in the lanes 2m + h; where
 * half (the second octet lies past the matrix) the first in all lanes */
AI __m512i col_pair(const char *p, bool half)
{
	uint32_t u;
	uint64_t v;

	if (half) {
		memcpy(&u, p, 4);
		return _mm512_set1_epi32((int)u);
	}
	memcpy(&v, p, 8);
	return _mm512_set1_epi64((long long)v);
}

/* group g's scales and zero points + 2^23 of the 16 rows at rb, in lane order */
AI void col_group(const struct rt_weight *w, int rb, bool half, int g, bool awq, __m512 *sv, __m512 *zv)
{
	const struct rt_wquant *q = &w->q;
	int R = w->rows;
	__mmask16 m = half ? 0xff : 0xffff;
	size_t si = (size_t)g * R + (size_t)rb;
	__m512 s;

	if (q->scale_dtype == RT_F32)
		s = _mm512_maskz_loadu_ps(m, (const float *)q->scale + si);
	else if (q->scale_dtype == RT_F16)
		s = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)q->scale + si));
	else
		s = _mm512_castsi512_ps(_mm512_slli_epi32(
		    _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)q->scale + si)), 16));
	*sv = _mm512_permutexvar_ps(_mm512_loadu_si512(col_row[awq]), s);
	if (!q->zero) {
		*zv = _mm512_set1_ps((float)q->zero_const + MAGIC);
		return;
	}
	__m512i z = _mm512_permutexvar_epi32(
	    _mm512_loadu_si512(col_word[awq]),
	    col_pair((const char *)q->zero + ((size_t)g * (R / 8) + (size_t)(rb / 8)) * 4, half));
	z = _mm512_and_si512(_mm512_srlv_epi32(z, _mm512_loadu_si512(col_shift[awq])), _mm512_set1_epi32(15));
	*zv = _mm512_castsi512_ps(_mm512_add_epi32(z, _mm512_set1_epi32(0x4b000000 + q->zero_add)));
}

/* column k of the NC chains (nibbles in the low 4 bits of nb's lanes) into the sums */
AI void col_fma(const __m512i *nb, const __m512 *sv, const __m512 *zv, const float *x, size_t K, int k, int NC, int NT,
                __m512 (*acc)[XPT4])
{
	const __m512i m15 = _mm512_set1_epi32(15), mag = _mm512_set1_epi32(0x4b000000);
#pragma GCC unroll 4
	for (int c = 0; c < NC; c++) {
		/* (nb & 15) | bits of 2^23 */
		__m512 n = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(nb[c], m15, mag, 0xea)),
		       wv = _mm512_mul_ps(_mm512_sub_ps(n, zv[c]), sv[c]);
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[c][t] = _mm512_fmadd_ps(wv, _mm512_set1_ps(x[(size_t)t * K + (size_t)k]), acc[c][t]);
	}
}

/* rows r0..r0+nr-1 (nr a multiple of 8, at most 16 NC; chains past nr repeat
 * the last) x NT tokens of x ([NT][K]) over the runs; out[c][t][lane] */
AI void col_pass(const struct rt_weight *w, const struct crun *run, int nrun, int r0, int nr, const float *x, int NC,
                 int NT, float *out)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, R = w->rows, rb[CCH];
	bool awq = q->layout == RT_I4_AWQ, half[CCH];
	const char *d = w->data;
	size_t ws = awq ? (size_t)R / 2 : (size_t)R * 4; /* bytes from one packed row to the next */
	__m512 acc[CCH][XPT4], sv[CCH], zv[CCH];
	const __m512i sha = _mm512_loadu_si512(col_shift[1]);

#pragma GCC unroll 4
	for (int c = 0; c < NC; c++) {
		int cc = 16 * c < nr ? c : (nr - 1) / 16;
		rb[c] = r0 + 16 * cc;
		half[c] = nr - 16 * cc < 16;
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[c][t] = _mm512_setzero_ps();
	}
	for (int i = 0; i < nrun; i++) {
		int k = run[i].k0, k1 = run[i + 1].k0;
		__m512i nb[CCH];
#pragma GCC unroll 4
		for (int c = 0; c < NC; c++)
			col_group(w, rb[c], half[c], run[i].g, awq, &sv[c], &zv[c]);
		if (awq) {
			for (; k < k1; k++) {
				const char *p = d + (size_t)k * ws;
				/* each column a packed row (R / 2 bytes) from the last: too far
				 * apart for the hardware prefetchers */
				_mm_prefetch(p + 8 * ws + (size_t)(rb[0] / 8) * 4, _MM_HINT_T0);
#pragma GCC unroll 4
				for (int c = 0; c < NC; c++)
					nb[c] = _mm512_srlv_epi32(col_pair(p + (size_t)(rb[c] / 8) * 4, half[c]), sha);
				col_fma(nb, sv, zv, x, (size_t)K, k, NC, NT, acc);
			}
			continue;
		}
		while (k < k1) {
			const char *p = d + (size_t)(k / 8) * ws;
			__m512i wd[CCH];
#pragma GCC unroll 4
			for (int c = 0; c < NC; c++)
				wd[c] = _mm512_maskz_loadu_epi32(half[c] ? 0xff : 0xffff, p + (size_t)rb[c] * 4);
			if ((k & 7) == 0 && k + 8 <= k1) { /* a whole packed row: immediate shifts */
#pragma GCC unroll 4
				for (int c = 0; c < NC; c++)
					_mm_prefetch(p + 4 * ws + (size_t)rb[c] * 4, _MM_HINT_T0);
#pragma GCC unroll 8
				for (int s = 0; s < 8; s++) {
#pragma GCC unroll 4
					for (int c = 0; c < NC; c++)
						nb[c] = _mm512_srli_epi32(wd[c], 4 * s);
					col_fma(nb, sv, zv, x, (size_t)K, k + s, NC, NT, acc);
				}
				k += 8;
			} else { /* a run that begins or ends inside one */
#pragma GCC unroll 4
				for (int c = 0; c < NC; c++)
					nb[c] = _mm512_srlv_epi32(wd[c], _mm512_set1_epi32(4 * (k & 7)));
				col_fma(nb, sv, zv, x, (size_t)K, k, NC, NT, acc);
				k++;
			}
		}
	}
#pragma GCC unroll 4
	for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			_mm512_storeu_ps(out + (size_t)(c * XPT4 + t) * 16, acc[c][t]);
}

#define CPASS(NC, NT)                                                                                                  \
	static void cpass_##NC##_##NT(const struct rt_weight *w, const struct crun *run, int nrun, int r0, int nr,     \
	                              const float *x, float *out)                                                      \
	{                                                                                                              \
		col_pass(w, run, nrun, r0, nr, x, NC, NT, out);                                                        \
	}
CPASS(4, 1)
CPASS(2, 2)
CPASS(2, 3)
CPASS(2, 4)
#undef CPASS

static void task_col512(const struct qjob *j, int n0, int n1)
{
	const struct rt_weight *w = j->w;
	int K = w->cols, awq = w->q.layout == RT_I4_AWQ;
	float o[CCH * XPT4 * 16];

	for (int t0 = 0; t0 < j->T; t0 += XPT4) {
		int nt = j->T - t0 < XPT4 ? j->T - t0 : XPT4, NR = nt > 1 ? 32 : 64;
		const float *xt = j->x + (size_t)t0 * K;
		for (int r = n0; r < n1; r += NR) {
			int nr = n1 - r < NR ? n1 - r : NR;
			if (nt == 1)
				cpass_4_1(w, j->runs, j->nrun, r, nr, xt, o);
			else if (nt == 2)
				cpass_2_2(w, j->runs, j->nrun, r, nr, xt, o);
			else if (nt == 3)
				cpass_2_3(w, j->runs, j->nrun, r, nr, xt, o);
			else
				cpass_2_4(w, j->runs, j->nrun, r, nr, xt, o);
			for (int c = 0; 16 * c < nr; c++)
				for (int t = 0; t < nt; t++)
					for (int l = 0; l < 16; l++)
						if (16 * c + col_row[awq][l] < nr)
							put(j, t0 + t, r + 16 * c + col_row[awq][l],
							    o[(size_t)(c * XPT4 + t) * 16 + l]);
		}
	}
}

#undef AI
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif

static void q_task(void *ctx, int task, int thread)
{
	const struct qjob *j = ctx;
	int n0 = task * j->tr, n1 = n0 + j->tr < j->w->rows ? n0 + j->tr : j->w->rows;
	float *scr = j->have_scratch ? j->c->scratch[thread] : NULL;

#ifdef HAVE_X86
	if (j->k512) {
		if (j->runs)
			task_col512(j, n0, n1);
		else
			task_avx512(j, n0, n1);
		return;
	}
	if (j->c->avx2) {
		task_avx2(j, n0, n1, scr);
		return;
	}
#endif
	task_generic(j, n0, n1, scr);
}

static int ensure_scratch(struct rt_qcpu *c, size_t K)
{
	if (c->scratch_k >= K)
		return 0;
	for (int i = 0; i < c->n_threads; i++) {
		float *p = realloc(c->scratch[i], sizeof(float) * QROWS * K);
		if (!p)
			return -ENOMEM; /* the old buffers stay; scratch_k unchanged */
		c->scratch[i] = p;
	}
	c->scratch_k = K;
	return 0;
}

/* the matrices the AVX-512 kernels take (see there) */
/* fp8 matrix w through f8g_pass: the CPU has VBMI and GFNI (c->f8g) and the
 * scale blocks are a multiple of its 64-code steps, or one per row */
static bool take_f8g(const struct rt_qcpu *c, const struct rt_weight *w)
{
	return w->q.fmt == RT_WF_FP8 && c->f8g && (w->q.sc % 64 == 0 || w->q.sc >= w->cols);
}

/* the AVX2 int4 kernels (i4a_rows): compressed-tensors, no g_idx, groups of
 * a multiple of 64 columns or one per row */
static bool take_i4a(const struct rt_weight *w)
{
	const struct rt_wquant *q = &w->q;
	return q->fmt == RT_WF_INT4 && q->layout == RT_I4_CT && !q->g_idx && (q->sc % I4A_B == 0 || q->sc >= w->cols);
}

/* the AVX2 fp8 kernels (f8a_rows): e4m3, scale blocks of a multiple of 16
 * columns or one per row, every scale times 2^8 finite (a scan of the
 * scales, small beside the codes) */
static bool take_f8a(const struct rt_weight *w)
{
	const struct rt_wquant *q = &w->q;
	size_t n;

	if (q->fmt != RT_WF_FP8 || w->dtype != RT_F8_E4M3 || (q->sc % 16 && q->sc < w->cols))
		return false;
	n = (size_t)((w->rows + q->sr - 1) / q->sr) * q->n_sc;
	for (size_t i = 0; i < n; i++)
		if (!isfinite(rt_load_elem(q->scale, q->scale_dtype, i) * 256.0f))
			return false;
	return true;
}

static bool take512(const struct rt_weight *w)
{
	const struct rt_wquant *q = &w->q;

	if (q->fmt == RT_WF_FP8)
		return w->dtype == RT_F8_E4M3 && (q->sc % 32 == 0 || q->sc >= w->cols);
	if (q->fmt != RT_WF_INT4)
		return false;
	if (q->layout != RT_I4_CT)
		return true; /* GPTQ, AWQ: unless g_idx decreases somewhere (col_runs) */
	return !q->g_idx && (q->sc % 128 == 0 || q->sc >= w->cols || q->sc == 32 || q->sc == 64);
}

/* the column format w's groups as runs of columns into c->runs (k / sc, or
 * g_idx where it never decreases); -EDOM where it does (act-order) */
static int col_runs(struct rt_qcpu *c, const struct rt_weight *w, struct qjob *j)
{
	const struct rt_wquant *q = &w->q;
	int K = w->cols, n = 0;
	size_t need = (size_t)(q->g_idx ? K : q->n_sc) + 1;

	if (grow(&c->runs, &c->runs_n, need, sizeof(*c->runs)))
		return -ENOMEM;
	for (int k = 0; k < K;) {
		int g = rt_q_group(w, k), k1 = k + 1;
		if (n && g < c->runs[n - 1].g)
			return -EDOM;
		if (q->g_idx)
			while (k1 < K && rt_q_group(w, k1) == g)
				k1++;
		else
			k1 = k + q->sc < K ? k + q->sc : K;
		c->runs[n++] = (struct crun){k, g};
		k = k1;
	}
	c->runs[n] = (struct crun){K, 0};
	j->runs = c->runs;
	j->nrun = n;
	return 0;
}

/* the orders permute_x puts x in */
enum xperm {
	XP_I4,   /* AVX-512 int4: per 128 columns, column 8j + s at 16s + j */
	XP_F8,   /* AVX-512 fp8 (f16 route): per 32 columns, 0-7, 16-23, 8-15, 24-31 */
	XP_F8G,  /* f8g_pass: per 64 columns, column 16L + 4q + i at 16q + 4L + i (f8g_w's lanes),
	          * times F8G_XS; c->xbig marks the tokens with some |x| >= 2^60 */
	XP_I4A,  /* AVX2 int4 (i4a_rows): per 64 columns, column 8j + s at 8s + j */
	XP_PAD,  /* AVX2 fp8 (f8a_rows): in order, padded to 16 columns */
};

/* x[T][K] into c->xp in the order a kernel takes it (mode), zeros past K */
static int permute_x(struct rt_qcpu *c, const float *x, int T, int K, enum xperm mode, struct qjob *j)
{
	size_t B = mode == XP_I4 ? 128 : mode == XP_F8 ? 32 : mode == XP_PAD ? 16 : 64;
	size_t xs = ((size_t)K + B - 1) / B * B, n = xs * (size_t)T;

	if (grow(&c->xp, &c->xp_n, n, sizeof(float)))
		return -ENOMEM;
	j->xp = c->xp;
	j->xs = xs;
#ifdef HAVE_X86
	if (mode == XP_F8G) {
		if (grow(&c->xbig, &c->xbig_n, (size_t)T, sizeof(bool)))
			return -ENOMEM;
		j->f8g = true;
		j->xbig = c->xbig;
		for (int t = 0; t < T; t++) {
			const float *s = x + (size_t)t * K;
			float *d = c->xp + (size_t)t * xs;
			bool big = false;
			/* f8g_w's order: position b + 16q + 4L + i takes x[b + 16L + 4q + i] */
			for (size_t b = 0; b < xs; b += 64)
				for (size_t i = 0; i < 64; i++) {
					size_t k = b + 16 * (i >> 2 & 3) + 4 * (i >> 4) + (i & 3);
					d[b + i] = k < (size_t)K ? s[k] * F8G_XS : 0.0f;
					big |= k < (size_t)K && fabsf(s[k]) >= F8G_XMAX;
				}
			c->xbig[t] = big;
		}
		return 0;
	}
#endif
	for (int t = 0; t < T; t++) {
		const float *s = x + (size_t)t * K;
		float *d = c->xp + (size_t)t * xs;
		for (size_t b = 0; b < xs; b += B)
			for (size_t i = 0; i < B; i++) {
				size_t k = b + (mode == XP_F8    ? (i & 7) + (i >> 3 & 1) * 16 + (i >> 4) * 8
				                : mode == XP_I4  ? 8 * (i & 15) + (i >> 4)
				                : mode == XP_I4A ? 8 * (i & 7) + (i >> 3)
				                                 : i);
				d[b + i] = k < (size_t)K ? s[k] : 0.0f;
			}
	}
	return 0;
}

int rt_qcpu_reserve(struct rt_qcpu *c, size_t cols)
{
	return grow(&c->xg, &c->xg_n, cols, sizeof(float));
}

/* act-order in rows (rt_wquant.perm): x's columns gathered into the
 * stored order, then the rows' kernels as for any other matrix, all T tokens
 * at once or as many as the buffer holds (a token gets the same sums either
 * way); without even one token's room (no rt_qcpu_reserve), each weight
 * through rt_q_weight */
static void perm_matmul(struct rt_qcpu *c, struct rt_pool *pool, float *y, const float *x, const struct rt_weight *w,
                        const float *bias, int T, bool acc)
{
	size_t K = (size_t)w->cols, N = (size_t)w->rows, n = (size_t)T;
	struct rt_weight wp = *w;

	wp.q.perm = NULL;
	if (grow(&c->xg, &c->xg_n, n * K, sizeof(float)) != 0)
		n = c->xg_n / K;
	if (n == 0) {
		for (size_t t = 0; t < (size_t)T; t++)
			for (size_t r = 0; r < N; r++) {
				float s = 0;
				for (size_t k = 0; k < K; k++)
					s = fmaf(rt_q_weight(&wp, (int)r, (int)k), x[t * K + (size_t)w->q.perm[k]], s);
				s += bias ? bias[r] : 0;
				y[t * N + r] = acc ? y[t * N + r] + s : s;
			}
		return;
	}
	for (size_t t0 = 0; t0 < (size_t)T; t0 += n) {
		size_t nt = (size_t)T - t0 < n ? (size_t)T - t0 : n;
		for (size_t t = 0; t < nt; t++)
			for (size_t k = 0; k < K; k++)
				c->xg[t * K + k] = x[(t0 + t) * K + (size_t)w->q.perm[k]];
		rt_qcpu_matmul(c, pool, y + t0 * N, c->xg, &wp, bias, (int)nt, acc);
	}
}

void rt_qcpu_matmul(struct rt_qcpu *c, struct rt_pool *pool, float *y, const float *x, const struct rt_weight *w,
                    const float *bias, int T, bool acc)
{
	struct qjob j = {.c = c, .y = y, .x = x, .w = w, .bias = bias, .T = T, .acc = acc, .tr = QROWS};
	int n_tasks;

	if (w->q.perm) {
		perm_matmul(c, pool, y, x, w, bias, T, acc);
		return;
	}

	/* the AVX-512 kernels where they take w (and, for the row formats, x could
	 * be permuted; else the AVX2 code: the same values up to the order of the
	 * sums); the column formats' in tasks of a one-token pass's rows */
	if (c->avx512 && take512(w)) {
		if (w->q.fmt == RT_WF_INT4 && w->q.layout != RT_I4_CT) {
			if (col_runs(c, w, &j) == 0) {
				j.k512 = true;
				j.tr = 16 * CCH;
			}
		} else if (permute_x(c, x, T, w->cols,
		                     w->q.fmt != RT_WF_FP8 ? XP_I4 : take_f8g(c, w) ? XP_F8G : XP_F8, &j) == 0) {
			j.k512 = true;
		}
	} else if (c->avx2 && (take_i4a(w) || take_f8a(w))) {
		/* on ENOMEM j.xp stays NULL: row4_avx2, the same values summed in another order */
		if (permute_x(c, x, T, w->cols, w->q.fmt == RT_WF_FP8 ? XP_PAD : XP_I4A, &j) != 0)
			j.xp = NULL;
	}
	/* one token: tasks of QTASK1_BYTES (compressed-tensors int4; fp8 on the
	 * AVX2 kernel) */
	if (T == 1 &&
	    ((w->q.fmt == RT_WF_INT4 && w->q.layout == RT_I4_CT) || (w->q.fmt == RT_WF_FP8 && j.xp && !j.k512))) {
		size_t rb = w->q.fmt == RT_WF_FP8 ? (size_t)w->cols : (size_t)(w->cols + 7) / 8 * 4,
		       n = QTASK1_BYTES / rb / 8 * 8;
		if (n > (size_t)j.tr)
			j.tr = n > 1024 ? 1024 : (int)n;
	}
	/* AVX2 column formats, one token: tasks of oct8_avx2's 64 rows */
	if (T == 1 && !j.k512 && c->avx2 && w->q.fmt == RT_WF_INT4 && w->q.layout != RT_I4_CT)
		j.tr = 64;
	n_tasks = (w->rows + j.tr - 1) / j.tr;
	/* generic C always sums over the scratch; AVX2 only for token blocks
	 * (i4a: rows of j.xs values) */
	if (!j.k512 && (T > 1 || !c->avx2) && ensure_scratch(c, j.xp ? j.xs : (size_t)w->cols) == 0)
		j.have_scratch = true;
	if ((size_t)w->rows * w->cols * T < (1u << 15)) {
		for (int t = 0; t < n_tasks; t++)
			q_task(&j, t, 0);
		return;
	}
	rt_pool_run(pool, n_tasks, q_task, &j);
}

bool rt_qcpu_int4_pairs(const struct rt_qcpu *c)
{
	return c->avx512;
}

int rt_qcpu_new(const char *simd, int n_threads, struct rt_qcpu **ret)
{
	struct rt_qcpu *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->n_threads = n_threads;
	c->scratch = calloc((size_t)n_threads, sizeof(float *));
	if (!c->scratch) {
		free(c);
		return -ENOMEM;
	}
#ifdef HAVE_X86
	/* backend_cpu.c picks avx2 or avx512 only where the CPU has AVX2, FMA and F16C */
	c->avx2 = simd && (!strcmp(simd, "avx2") || !strcmp(simd, "avx512"));
	__builtin_cpu_init();
	c->avx512 =
	    simd && !strcmp(simd, "avx512") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
	/* AGRT_FP8_F16 (any value) keeps fp8 on the f16 route, as on CPUs
	 * without VBMI or GFNI: the tests run both */
	c->f8g = c->avx512 && __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni") &&
	         !getenv("AGRT_FP8_F16");
#else
	(void)simd;
#endif
	*ret = c;
	return 0;
}

void rt_qcpu_free(struct rt_qcpu *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_threads; i++)
		free(c->scratch[i]);
	free(c->scratch);
	free(c->xp);
	free(c->xbig);
	free(c->runs);
	free(c->xg);
	free(c);
}
