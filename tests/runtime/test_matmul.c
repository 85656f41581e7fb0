/* The CPU backend's matmul kernels (y[T][N] = x[T][K] . W[N][K]^T + bias,
 * optionally accumulated into y) for f32, f16 and bf16 weights, with every
 * SIMD path this CPU has ("generic", "avx2", "avx512", "amx" where the CPU
 * has AMX, whose bf16 tiles split x into three bf16 parts, and the default):
 * each output
 * against a double-precision reference, and each token's row of a batched
 * call bitwise equal to the same token alone (T = 1), which is what keeps
 * batched serving's greedy output equal to single-stream decode.  Shapes are
 * chosen off the tile sizes (4 rows, 3/6 tokens, 16/32 elements, 48-token
 * blocks, the converted-rows threshold at 24 tokens).  Then the same checks
 * for the quantized kernels (backend_quant.c: compressed-tensors int4, e4m3
 * fp8, GPTQ and AWQ packed here, which AVX-512, AVX2 and generic C each run;
 * GPTQ and AWQ on AVX-512 also bitwise equal to the AVX2 code, whose sums the
 * AVX-512 column kernels run).  TAP output. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dtype.h"
#include "quant.h"
#include "../tap.h"

static uint32_t rng = 2463534242u;

static uint32_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* a random value in about [-1, 1) stored as dt, and its exact value */
static double put(void *w, int dt, size_t i)
{
	uint32_t r = next();
	if (dt == RT_F32) {
		float v = (float)((int32_t)r) / 2147483648.0f;
		((float *)w)[i] = v;
		return v;
	}
	if (dt == RT_BF16) {
		/* sign, exponent 2^-8 .. 2^0, 7 mantissa bits: value (-1)^s 2^(e-127) (1 + m/128) */
		int s = r >> 31, e = 119 + (int)((r >> 8) % 8), m = r & 127;
		((uint16_t *)w)[i] = (uint16_t)(s << 15 | e << 7 | m);
		return (s ? -1 : 1) * ldexp(1.0 + m / 128.0, e - 127);
	}
	/* f16: sign, exponent 2^-8 .. 2^-1, 10 mantissa bits */
	int s = r >> 31, e = 7 + (int)((r >> 8) % 8), m = r & 1023;
	((uint16_t *)w)[i] = (uint16_t)(s << 15 | e << 10 | m);
	return (s ? -1 : 1) * ldexp(1.0 + m / 1024.0, e - 15);
}

struct shape {
	int N, K;
};

static const char *dt_name[] = {"f32", "f16", "bf16"};

/* x_big: one element of every third token (t % 3 == 1) is +-2^66, which the
 * AVX-512 VBMI fp8 kernel leaves to the AVX2 code (alone and in a batch) */
static int x_big;

/* one simd path x matrix w (wref: its exact values) over a list of T */
static void check(struct rt_backend *be, const char *simd, const char *what, const struct rt_weight *w,
                  const double *wref, const int *Ts, int nT)
{
	int N = w->rows, K = w->cols, Tmax = 0;
	for (int i = 0; i < nT; i++)
		Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
	float *x = malloc(sizeof(float) * Tmax * K), *y = malloc(sizeof(float) * Tmax * N),
	      *y1 = malloc(sizeof(float) * N), *bias = malloc(sizeof(float) * N),
	      *y0 = malloc(sizeof(float) * Tmax * N);

	if (!x || !y || !y1 || !bias || !y0) {
		TAP_OK(0, "allocation");
		return;
	}
	for (size_t i = 0; i < (size_t)Tmax * K; i++)
		x[i] = (float)((int32_t)next()) / 2147483648.0f;
	for (int t = 1; x_big && t < Tmax; t += 3)
		x[(size_t)t * K + (size_t)(t * 5) % K] = t & 2 ? -0x1p66f : 0x1p66f;
	for (int n = 0; n < N; n++)
		bias[n] = (float)(n % 7) * 0.25f - 0.5f;
	for (int ti = 0; ti < nT; ti++) {
		int T = Ts[ti], bad_ref = 0, bad_same = 0, bad_acc = 0;
		double worst = 0;
		/* plain, then with bias accumulated onto y0 */
		be->ops->matmul(be, y, x, w, NULL, T, false);
		for (int t = 0; t < T; t++) {
			be->ops->matmul(be, y1, x + (size_t)t * K, w, NULL, 1, false);
			for (int n = 0; n < N; n++) {
				float a = y1[n], b = y[(size_t)t * N + n];
				/* bitwise, or both NaN (a NaN weight: which NaN is not specified) */
				if (isnan(a) ? !isnan(b) : memcmp(&a, &b, sizeof(a)))
					bad_same++;
			}
			for (int n = 0; n < N; n++) {
				double ref = 0, mag = 0;
				for (int k = 0; k < K; k++) {
					ref += wref[(size_t)n * K + k] * x[(size_t)t * K + k];
					mag += fabs(wref[(size_t)n * K + k] * x[(size_t)t * K + k]);
				}
				/* the f32 sum's rounding: well inside the worst case K 2^-24 sum |w x| */
				double err = fabs(y[(size_t)t * N + n] - ref),
				       tol = 1.2e-7 * mag * (4 + K / 8.0) + 1e-30;
				if (isnan(ref) ? !isnan(y[(size_t)t * N + n]) : !(err <= tol))
					bad_ref++;
				if (!isnan(ref) && err / tol > worst)
					worst = err / tol;
			}
		}
		for (size_t i = 0; i < (size_t)T * N; i++)
			y0[i] = (float)(i % 5) - 2.0f;
		be->ops->matmul(be, y0, x, w, bias, T, true);
		for (int t = 0; t < T; t++)
			for (int n = 0; n < N; n++) {
				size_t i = (size_t)t * N + n;
				float want = ((float)(i % 5) - 2.0f) + (y[i] + bias[n]);
				if (isnan(want) ? !isnan(y0[i]) : y0[i] != want)
					bad_acc++;
			}
		TAP_OK(
		    !bad_ref && !bad_same && !bad_acc,
		    "%s %s N=%d K=%d T=%d: %d off the reference (worst %.2f of the tolerance), %d tokens differ from "
		    "T=1, %d wrong with bias+accumulate",
		    simd, what, N, K, T, bad_ref, worst, bad_same, bad_acc);
	}
	free(x);
	free(y);
	free(y1);
	free(bias);
	free(y0);
}

/* one simd path x dtype x shape */
static void run(struct rt_backend *be, const char *simd, int dt, struct shape s, const int *Ts, int nT)
{
	int N = s.N, K = s.K;
	size_t es = dt == RT_F32 ? 4 : 2;
	void *wd = malloc((size_t)N * K * es);
	double *wref = malloc(sizeof(double) * N * K);
	struct rt_weight w = {.data = wd, .dtype = dt, .rows = N, .cols = K};

	if (!wd || !wref) {
		TAP_OK(0, "allocation");
		return;
	}
	for (size_t i = 0; i < (size_t)N * K; i++)
		wref[i] = put(wd, dt, i);
	check(be, simd, dt_name[dt], &w, wref, Ts, nT);
	free(wd);
	free(wref);
}

/* ---- quantized matrices (backend_quant.c), packed here from the format
 * descriptions; wref from the codes as the formats define the values:
 * compressed-tensors int4 (n - zero) * scale, e4m3 code * scale, in f32 ---- */

struct qshape {
	int N, K;
	int a, b;    /* int4: group (0: channel), asymmetric; fp8: block rows, columns */
	int special; /* fp8: 1 a NaN code in row 1, 2 a scale in the first block that 2^8 overflows,
	              * 3 x_big, 4 a scale that 2^56 overflows (not 2^8) */
};

static double e4m3(int v)
{
	int e = (v >> 3) & 15, m = v & 7;
	double a = e ? ldexp(1 + m / 8.0, e - 7) : ldexp(m / 8.0, -6);
	return (v & 0x7f) == 0x7f ? NAN : v & 0x80 ? -a : a;
}

static void run_ct_int4(struct rt_backend *be, const char *simd, struct qshape s, const int *Ts, int nT)
{
	int N = s.N, K = s.K, G = s.a ? s.a : K, ng = (K + G - 1) / G, W = (K + 7) / 8;
	uint32_t *qw = calloc((size_t)N * W, 4), *zp = calloc((size_t)(N + 7) / 8 * ng, 4);
	float *sc = malloc(sizeof(float) * N * ng);
	double *wref = malloc(sizeof(double) * N * K);
	char what[64];

	if (!qw || !zp || !sc || !wref) {
		TAP_OK(0, "allocation");
		return;
	}
	for (size_t i = 0; i < (size_t)N * W; i++) /* the padding nibbles too: they must not count */
		qw[i] = next();
	for (int r = 0; r < N; r++)
		for (int g = 0; g < ng; g++) {
			sc[r * ng + g] = (float)(1 + next() % 1000) / 4096.0f;
			zp[(r / 8) * ng + g] |= (next() & 15) << 4 * (r & 7);
		}
	for (int r = 0; r < N; r++)
		for (int k = 0; k < K; k++) {
			int n = (int)(qw[(size_t)r * W + k / 8] >> 4 * (k & 7) & 15), g = k / G;
			int z = s.b ? (int)(zp[(r / 8) * ng + g] >> 4 * (r & 7) & 15) : 8;
			wref[(size_t)r * K + k] = (float)(n - z) * sc[r * ng + g];
		}
	struct rt_weight w = {.data = qw,
	                      .dtype = RT_I32,
	                      .rows = N,
	                      .cols = K,
	                      .q = {.fmt = RT_WF_INT4,
	                            .layout = RT_I4_CT,
	                            .scale = sc,
	                            .scale_dtype = RT_F32,
	                            .sr = 1,
	                            .sc = G,
	                            .n_sc = ng,
	                            .zero = s.b ? zp : NULL,
	                            .zero_const = 8}};
	if (s.a)
		snprintf(what, sizeof(what), "ct-int4 g%d %s", s.a, s.b ? "asym" : "sym");
	else
		snprintf(what, sizeof(what), "ct-int4 channel %s", s.b ? "asym" : "sym");
	check(be, simd, what, &w, wref, Ts, nT);
	free(qw);
	free(zp);
	free(sc);
	free(wref);
}

static void run_fp8(struct rt_backend *be, const char *simd, struct qshape s, const int *Ts, int nT)
{
	int N = s.N, K = s.K, nr = (N + s.a - 1) / s.a, nc = (K + s.b - 1) / s.b;
	uint8_t *c = malloc((size_t)N * K);
	float *sc = malloc(sizeof(float) * nr * nc);
	double *wref = malloc(sizeof(double) * N * K);
	char what[64];

	if (!c || !sc || !wref) {
		TAP_OK(0, "allocation");
		return;
	}
	for (size_t i = 0; i < (size_t)N * K; i++) {
		c[i] = (uint8_t)next();
		if ((c[i] & 0x7f) == 0x7f)
			c[i] ^= 1;
	}
	if (s.special == 1)
		c[(size_t)1 * K + K / 2] = 0xff;
	for (int i = 0; i < nr * nc; i++)
		sc[i] = (float)(1 + next() % 1000) / 65536.0f;
	if (s.special == 2 || s.special == 4) { /* the AVX-512 kernels' fallback; codes below 0.25 keep the sums finite */
		sc[0] = s.special == 2 ? 1.5e36f : 1e30f;
		for (int r = 0; r < N && r < s.a; r++)
			for (int k = 0; k < K && k < s.b; k++)
				c[(size_t)r * K + k] &= 0x9f;
	}
	for (int r = 0; r < N; r++)
		for (int k = 0; k < K; k++)
			wref[(size_t)r * K + k] = (float)e4m3(c[(size_t)r * K + k]) * sc[(r / s.a) * nc + k / s.b];
	struct rt_weight w = {
	    .data = c,
	    .dtype = RT_F8_E4M3,
	    .rows = N,
	    .cols = K,
	    .q = {.fmt = RT_WF_FP8, .scale = sc, .scale_dtype = RT_F32, .sr = s.a, .sc = s.b, .n_sc = nc}};
	snprintf(what, sizeof(what), "fp8 e4m3 [%d,%d]%s", s.a, s.b,
	         s.special == 1   ? " NaN code"
	         : s.special == 2 ? " scale 1.5e36"
	         : s.special == 3 ? " x 2^66"
	         : s.special == 4 ? " scale 1e30"
	                          : "");
	x_big = s.special == 3;
	check(be, simd, what, &w, wref, Ts, nT);
	x_big = 0;
	free(c);
	free(sc);
	free(wref);
}

/* GPTQ (qweight [K/8][N], nibble k % 8; qzeros [groups][N/8], nibble r % 8)
 * and AWQ (qweight [K][N/8], qzeros [groups][N/8], AutoAWQ's pack order: the
 * word's nibble i holds row 8 (r / 8) + (0,2,4,6,1,3,5,7)[i]); scales
 * [groups][N]; weight (n - (zero + zadd)) * scale.  gidx: 0 none (k / G), 1
 * explicit k / G, 2 monotone with runs of uneven length (not multiples of 8),
 * 3 act-order (a permutation: the AVX2 code, or rows with the columns
 * sorted by group) */
struct cshape {
	int N, K, G; /* G 0: channel */
	int awq, asym, gidx;
	int sdt; /* scale dtype */
	int zadd;
};

static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* a scale stored as dt at s[i] (powers of two 2^-12 .. 2^-9 times 1 + mantissa), and its value */
static double put_scale(void *s, int dt, size_t i)
{
	uint32_t r = next();
	if (dt == RT_F32) {
		float v = (float)(1 + r % 1000) / 4096.0f;
		((float *)s)[i] = v;
		return v;
	}
	if (dt == RT_F16) {
		int e = 3 + (int)(r >> 20) % 4, m = r & 1023;
		((uint16_t *)s)[i] = (uint16_t)(e << 10 | m);
		return ldexp(1.0 + m / 1024.0, e - 15);
	}
	int e = 115 + (int)(r >> 20) % 4, m = r & 127;
	((uint16_t *)s)[i] = (uint16_t)(e << 7 | m);
	return ldexp(1.0 + m / 128.0, e - 127);
}

/* the AVX-512 column kernels run the AVX2 code's sums (one chain a row, k
 * ascending): the same bits, alone and in a token block */
static void same_as_avx2(struct rt_backend *be, const char *simd, const char *what, const struct rt_weight *w)
{
	enum { TB = 6 };
	int N = w->rows, K = w->cols, bad = 0;
	struct rt_backend *b2;
	float *x = malloc(sizeof(float) * TB * K), *y = malloc(sizeof(float) * TB * N),
	      *y2 = malloc(sizeof(float) * TB * N);

	if (!x || !y || !y2 || rt_backend_cpu_new(2, "avx2", &b2) < 0) {
		TAP_OK(0, "allocation, avx2 backend");
		return;
	}
	for (int i = 0; i < TB * K; i++)
		x[i] = (float)((int32_t)next()) / 2147483648.0f;
	for (int T = 1; T <= TB; T += TB - 1) {
		be->ops->matmul(be, y, x, w, NULL, T, false);
		b2->ops->matmul(b2, y2, x, w, NULL, T, false);
		bad += memcmp(y, y2, sizeof(float) * T * N) != 0;
	}
	TAP_OK(!bad && !strcmp(rt_backend_cpu_simd(b2), "avx2"), "%s %s N=%d K=%d: T=1 and T=%d bitwise equal to avx2",
	       simd, what, N, K, TB);
	b2->ops->free(b2);
	free(x);
	free(y);
	free(y2);
}

/* rt_quant_pairs (made at load for asymmetric int4 rows with f16 or bf16
 * scales, where the AVX-512 kernels read them): made exactly there, and the
 * kernels' outputs with them bitwise those without them, every T; a scale
 * that 16 times overflows makes none */
static void with_pairs(struct rt_backend *be, const char *simd, const char *what, const struct rt_weight *w,
                       const int *Ts, int nT)
{
	/* groups of 32 and 64 (i4s_pass) read no pairs: none made */
	bool want = w->q.zero && w->q.scale_dtype != RT_F32 && (w->q.sc % 128 == 0 || w->q.sc >= w->cols);
	size_t need = rt_quant_pairs_bytes(w);
	int N = w->rows, K = w->cols, Tmax = 0, bad = 0;
	struct rt_weight c = *w, o = *w;
	float *p, *x, *y, *y2;

	if ((need > 0) != want || need % 64 || w->q.sz) {
		TAP_OK(0, "%s %s: rt_quant_pairs_bytes %zu, expected %s a multiple of 64", simd, what, need,
		       want ? "one" : "0, not");
		return;
	}
	if (!need)
		return;
	for (int i = 0; i < nT; i++)
		Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
	p = aligned_alloc(64, need);
	x = malloc(sizeof(float) * Tmax * K);
	y = malloc(sizeof(float) * Tmax * N);
	y2 = malloc(sizeof(float) * Tmax * N);
	if (!p || !x || !y || !y2) {
		TAP_OK(0, "allocation");
		return;
	}
	for (size_t i = 0; i < (size_t)Tmax * K; i++)
		x[i] = (float)((int32_t)next()) / 2147483648.0f;
	bool made = rt_quant_pairs(&c, p), reads = rt_backend_cpu_int4_pairs(be);
	for (int ti = 0; made && ti < nT; ti++) {
		be->ops->matmul(be, y, x, w, NULL, Ts[ti], false);
		be->ops->matmul(be, y2, x, &c, NULL, Ts[ti], false);
		bad += memcmp(y, y2, sizeof(float) * Ts[ti] * N) != 0;
	}
	TAP_OK(made && c.q.sz == p && !bad, "%s %s: with (scale, zero * scale) pairs, %d of %d token counts differ",
	       simd, what, bad, nT);
	/* the kernels that read them do: pairs times 2 double every output (exactly), the others ignore them */
	for (size_t i = 0; made && i < need / sizeof(float); i++)
		p[i] *= 2;
	bad = 0;
	if (made) {
		be->ops->matmul(be, y, x, w, NULL, Tmax, false);
		be->ops->matmul(be, y2, x, &c, NULL, Tmax, false);
		for (size_t i = 0; i < (size_t)Tmax * N; i++)
			bad += y2[i] != (reads ? 2 * y[i] : y[i]);
	}
	TAP_OK(made && !bad, "%s %s: the pairs doubled %s, %d outputs off", simd, what,
	       reads ? "double every output (the kernels read them)" : "change nothing (the kernels do not read them)",
	       bad);
	/* a scale of 2^124 (bf16; f16 cannot hold one): 16 times it overflows, no pairs */
	if (w->q.scale_dtype == RT_BF16) {
		uint16_t *sc = malloc((size_t)N * w->q.n_sc * 2);
		if (!sc) {
			TAP_OK(0, "allocation");
			return;
		}
		memcpy(sc, w->q.scale, (size_t)N * w->q.n_sc * 2);
		sc[(size_t)(N - 1) * w->q.n_sc] = (uint16_t)((127 + 124) << 7);
		o.q.scale = sc;
		TAP_OK(!rt_quant_pairs(&o, p) && !o.q.sz, "%s %s: a scale of 2^124 makes no pairs", simd, what);
		free(sc);
	}
	free(p);
	free(x);
	free(y);
	free(y2);
}

/* rt_quant_to_rows (the loader's repack): taken exactly where the row
 * kernels take the groups (want), every weight the same bits after it, and
 * the row kernels on the copy against the same reference */
static void as_rows(struct rt_backend *be, const char *simd, const char *what, const struct rt_weight *w,
                    const double *wref, const int *Ts, int nT, bool want)
{
	struct rt_weight c = *w;
	bool small = rt_backend_cpu_int4_pairs(be); /* the AVX-512 kernels: groups of 32 and 64 in rows too */
	size_t need = rt_quant_rows_bytes(w, small);
	void *buf;
	int bad = 0;
	char name[128];

	if ((need > 0) != want || need % 64) {
		TAP_OK(0, "%s %s: rt_quant_rows_bytes %zu, expected %s a multiple of 64", simd, what, need,
		       want ? "one" : "0, not");
		return;
	}
	if (!need) {
		TAP_OK(1, "%s %s: not repacked (groups the row kernels do not take)", simd, what);
		return;
	}
	if (!(buf = aligned_alloc(64, need))) {
		TAP_OK(0, "allocation");
		return;
	}
	rt_quant_to_rows(&c, buf);
	bool all8 = true; /* then the copy drops the zero points (the symmetric kernels) */
	for (int n = 0; n < w->rows; n++)
		for (int g = 0; g < w->q.n_sc; g++)
			all8 &= rt_q_zero(w, n, g) == 8;
	/* act-order: the columns sorted by group, each group's in their order (stable) */
	bool perm_ok = (c.q.perm != NULL) == rt_quant_rows_perm(w);
	for (int k = 0; perm_ok && c.q.perm && k < w->cols; k++)
		perm_ok = c.q.perm[k] >= 0 && c.q.perm[k] < w->cols && rt_q_group(w, c.q.perm[k]) == k / w->q.sc &&
		          (k % w->q.sc == 0 || c.q.perm[k] > c.q.perm[k - 1]);
	for (int n = 0; perm_ok && n < w->rows; n++)
		for (int k = 0; k < w->cols; k++) {
			float a = rt_q_weight(w, n, c.q.perm ? c.q.perm[k] : k), b = rt_q_weight(&c, n, k);
			bad += memcmp(&a, &b, sizeof(a)) != 0;
		}
	TAP_OK(perm_ok && !bad && c.q.layout == RT_I4_CT && !c.q.g_idx && (c.q.zero == NULL) == all8 &&
	           (const char *)c.q.scale > (const char *)buf && (const char *)c.q.scale < (const char *)buf + need,
	       "%s %s: repacked into rows%s%s, %d of %d weights differ", simd, what,
	       all8 ? " (zero points all 8: dropped)" : "", c.q.perm ? " (columns sorted by group)" : "", bad,
	       w->rows * w->cols);
	snprintf(name, sizeof(name), "%s as rows", what);
	check(be, simd, name, &c, wref, Ts, nT);
	with_pairs(be, simd, name, &c, Ts, nT);
	free(buf);
}

static void run_col(struct rt_backend *be, const char *simd, struct cshape s, const int *Ts, int nT)
{
	int N = s.N, K = s.K, G = s.G ? s.G : K, ng = K / G;
	uint32_t *qw = calloc((size_t)N * K / 8, 4), *zp = calloc((size_t)ng * N / 8, 4);
	int32_t *gi = malloc(sizeof(int32_t) * K);
	int *nib = malloc(sizeof(int) * N * K), *zero = malloc(sizeof(int) * N * ng);
	void *sc = malloc(sizeof(float) * N * ng);
	double *sv = malloc(sizeof(double) * N * ng), *wref = malloc(sizeof(double) * N * K);
	char what[96];

	if (!qw || !zp || !gi || !nib || !zero || !sc || !sv || !wref) {
		TAP_OK(0, "allocation");
		return;
	}
	for (int k = 0; k < K; k++)
		gi[k] = k / G;
	if (s.gidx == 2) /* group g has G columns on average, the boundaries moved off multiples of 8 */
		for (int k = 0; k < K; k++)
			gi[k] = (int)((long)k * k * ng / ((long)K * K));
	if (s.gidx == 3)
		for (int k = K - 1; k > 0; k--) {
			int o = (int)(next() % (uint32_t)(k + 1)), t = gi[k];
			gi[k] = gi[o], gi[o] = t;
		}
	for (int i = 0; i < N * K; i++)
		nib[i] = (int)(next() & 15);
	for (int g = 0; g < ng; g++)
		for (int r = 0; r < N; r++) {
			sv[g * N + r] = put_scale(sc, s.sdt, (size_t)g * N + r);
			zero[g * N + r] = s.asym ? (int)(next() & 15) + s.zadd : 8;
		}
	for (int r = 0; r < N; r++)
		for (int k = 0; k < K; k++) {
			int v = nib[r * K + k];
			if (s.awq)
				for (int i = 0; i < 8; i++) {
					if (8 * (r / 8) + awq_order[i] == r)
						qw[(size_t)k * (N / 8) + r / 8] |= (uint32_t)v << 4 * i;
				}
			else
				qw[(size_t)(k / 8) * N + r] |= (uint32_t)v << 4 * (k % 8);
			wref[(size_t)r * K + k] = (double)(float)((v - zero[gi[k] * N + r]) * sv[gi[k] * N + r]);
		}
	for (int g = 0; g < ng; g++)
		for (int r = 0; r < N; r++) {
			uint32_t z = (uint32_t)(zero[g * N + r] - s.zadd);
			for (int i = 0; i < 8; i++)
				if (8 * (r / 8) + (s.awq ? awq_order[i] : i) == r)
					zp[(size_t)g * (N / 8) + r / 8] |= z << 4 * i;
		}
	struct rt_weight w = {.data = qw,
	                      .dtype = RT_I32,
	                      .rows = N,
	                      .cols = K,
	                      .q = {.fmt = RT_WF_INT4,
	                            .layout = s.awq ? RT_I4_AWQ : RT_I4_GPTQ,
	                            .scale = sc,
	                            .scale_dtype = s.sdt,
	                            .sr = 1,
	                            .sc = G,
	                            .n_sc = ng,
	                            .zero = zp, /* GPTQ, AWQ checkpoints have qzeros (the loader requires them) */
	                            .zero_const = 8,
	                            .zero_add = s.zadd,
	                            .g_idx = s.gidx ? gi : NULL}};
	static const char *gname[] = {"", " g_idx k/G", " g_idx uneven runs", " g_idx act-order"};
	snprintf(what, sizeof(what), "%s g%d %s %s%s%s", s.awq ? "awq" : "gptq", s.G, s.asym ? "asym" : "sym",
	         dt_name[s.sdt], gname[s.gidx], s.zadd ? " zero-1 stored" : "");
	check(be, simd, what, &w, wref, Ts, nT);
	if (!strcmp(simd, "avx512") || !strcmp(simd, "amx"))
		same_as_avx2(be, simd, what, &w);
	bool rows = s.gidx != 2 && (G % 128 == 0 || G == K || (rt_backend_cpu_int4_pairs(be) && (G == 32 || G == 64)));
	as_rows(be, simd, what, &w, wref, Ts, nT, rows);
	if (!s.asym) { /* symmetric without zero points (zero_const): every kernel, not only rt_q_zero */
		w.q.zero = NULL;
		w.q.zero_add = 0;
		strncat(what, " no qzeros", sizeof(what) - strlen(what) - 1);
		check(be, simd, what, &w, wref, Ts, nT);
		if (!strcmp(simd, "avx512") || !strcmp(simd, "amx"))
			same_as_avx2(be, simd, what, &w);
		as_rows(be, simd, what, &w, wref, Ts, nT, rows);
	}
	free(qw);
	free(zp);
	free(gi);
	free(nib);
	free(zero);
	free(sc);
	free(sv);
	free(wref);
}


/* attention: nh query heads over nkv KV heads of hd, T queries from pos0 */
struct ashape {
	int nh, nkv, hd, pos0, T, window;
};

static float frand(float a)
{
	return a * ((float)((int32_t)next()) / 2147483648.0f);
}

/* the backend's causal attention against a double-precision softmax, each
 * token's row bitwise equal to the same query alone (decode, T = 1), and a
 * two-sequence attention_batch bitwise equal to each sequence alone */
static void run_att(struct rt_backend *be, const char *simd, struct ashape a)
{
	int ctx = a.pos0 + a.T, qw = a.nh * a.hd, kw = a.nkv * a.hd, bad_ref = 0, bad_one = 0, bad_batch = 0;
	size_t nq = (size_t)a.T * qw, nk = (size_t)ctx * kw;
	float *q = malloc(sizeof(float) * nq * 2), *kc = malloc(sizeof(float) * nk * 2), *vc = malloc(sizeof(float) * nk * 2),
	      *out = malloc(sizeof(float) * nq), *one = malloc(sizeof(float) * qw), *ob = malloc(sizeof(float) * nq * 2);
	double worst = 0, *sc = malloc(sizeof(double) * ctx);

	if (!q || !kc || !vc || !out || !one || !ob || !sc) {
		TAP_OK(0, "%s attention: out of memory", simd);
		goto done;
	}
	for (size_t i = 0; i < nq * 2; i++)
		q[i] = frand(3.0f); /* peaky and flat softmaxes both */
	for (size_t i = 0; i < nk * 2; i++)
		kc[i] = frand(1.0f), vc[i] = frand(1.0f);
	be->ops->attention(be, out, q, kc, vc, a.T, a.pos0, a.nh, a.nkv, a.hd, a.window);
	for (int t = 0; t < a.T; t++) {
		int qpos = a.pos0 + t, lo = a.window > 0 && qpos - a.window + 1 > 0 ? qpos - a.window + 1 : 0;
		be->ops->attention(be, one, q + (size_t)t * qw, kc, vc, 1, qpos, a.nh, a.nkv, a.hd, a.window);
		bad_one += memcmp(one, out + (size_t)t * qw, sizeof(float) * qw) != 0;
		for (int h = 0; h < a.nh; h++) {
			const float *qh = q + (size_t)t * qw + (size_t)h * a.hd;
			int kvh = h / (a.nh / a.nkv);
			double m = -INFINITY, l = 0;
			for (int p = lo; p <= qpos; p++) {
				double d = 0;
				for (int i = 0; i < a.hd; i++)
					d += (double)qh[i] * kc[(size_t)p * kw + (size_t)kvh * a.hd + i];
				sc[p] = d / sqrt((double)a.hd);
				m = sc[p] > m ? sc[p] : m;
			}
			for (int p = lo; p <= qpos; p++)
				l += sc[p] = exp(sc[p] - m);
			for (int i = 0; i < a.hd; i++) {
				double r = 0, e;
				for (int p = lo; p <= qpos; p++)
					r += sc[p] * vc[(size_t)p * kw + (size_t)kvh * a.hd + i];
				e = fabs(out[(size_t)t * qw + (size_t)h * a.hd + i] - r / l);
				worst = e > worst ? e : worst;
				bad_ref += !(e <= 2e-6); /* |v| < 1 */
			}
		}
	}
	/* two sequences: this one, and the second halves of q and the caches */
	struct rt_att_seg seg[2] = {{kc, vc, 0, a.T, a.pos0}, {kc + nk, vc + nk, a.T, a.T, a.pos0}};
	be->ops->attention_batch(be, ob, q, seg, 2, a.nh, a.nkv, a.hd, a.window);
	be->ops->attention(be, out, q + nq, kc + nk, vc + nk, a.T, a.pos0, a.nh, a.nkv, a.hd,
	                   a.window);
	bad_batch = memcmp(ob + nq, out, sizeof(float) * nq) != 0;
	be->ops->attention(be, out, q, kc, vc, a.T, a.pos0, a.nh, a.nkv, a.hd, a.window);
	bad_batch += memcmp(ob, out, sizeof(float) * nq) != 0;
	TAP_OK(!bad_ref && !bad_one && !bad_batch,
	       "%s attention nh=%d nkv=%d hd=%d pos0=%d T=%d window=%d: %d off the reference (worst %.2g), %d tokens "
	       "differ from T=1, %d sequences of attention_batch differ",
	       simd, a.nh, a.nkv, a.hd, a.pos0, a.T, a.window, bad_ref, worst, bad_one, bad_batch);
done:
	free(q), free(kc), free(vc), free(out), free(one), free(ob), free(sc);
}

int main(void)
{
	static const char *simds[] = {"generic", "avx2", "avx512", "amx", NULL};
	static const struct shape shapes[] = {{1, 1}, {5, 7}, {7, 33}, {13, 100}, {37, 64}, {70, 257}, {9, 1000}};
	static const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 23, 24, 25, 49, 50};
	/* quantized: off the AVX-512 passes (8 rows alone, 4 rows x 4 tokens, 128/64/16 columns) and the
	 * AVX2 ones (4 rows, 4 tokens, 64 columns), the 16-row tasks and the partial packed word (K % 8);
	 * groups of 64 and 32 (AVX-512: i4s_pass; AVX2 blocks take 64, not 32) */
	static const struct qshape i4[] = {{37, 200, 128, 0, 0}, {13, 300, 128, 1, 0}, {70, 1000, 256, 1, 0},
	                                   {9, 257, 0, 1, 0},    {20, 333, 0, 0, 0},   {13, 100, 32, 1, 0},
	                                   {21, 450, 64, 1, 0},  {6, 130, 64, 0, 0},   {11, 200, 0, 1, 0}};
	static const struct qshape f8[] = {{37, 200, 128, 128, 0}, {70, 257, 128, 128, 0}, {9, 1000, 16, 16, 0},
	                                   {5, 7, 128, 128, 0},    {13, 100, 16, 20, 0},   {11, 150, 128, 128, 1},
	                                   {10, 90, 128, 128, 2},  {21, 300, 128, 128, 3}, {10, 90, 128, 128, 4},
	                                   {19, 96, 32, 32, 0},    {12, 160, 8, 96, 1},    {14, 200, 1, 200, 0}};
	static const int qTs[] = {1, 2, 3, 4, 5, 7, 9, 17};
	/* GPTQ, AWQ: rows off the 16-row zmm (an 8-row half), the 64-row one-token pass and the 32-row
	 * token passes; one matrix big enough for the thread pool; groups not multiples of 16 */
	static const struct cshape col[] = {
	    {40, 96, 32, 0, 1, 0, RT_F32, 0},  {136, 256, 128, 0, 1, 1, RT_F16, 1}, {72, 200, 40, 0, 1, 2, RT_BF16, 0},
	    {24, 64, 0, 0, 0, 0, RT_F16, 0},   {56, 96, 24, 0, 1, 3, RT_F32, 1},    {8, 24, 8, 0, 1, 1, RT_F32, 0},
	    {40, 96, 32, 1, 1, 0, RT_F32, 0},  {136, 256, 128, 1, 0, 0, RT_F16, 0}, {72, 200, 40, 1, 1, 0, RT_BF16, 0},
	    {24, 64, 0, 1, 1, 0, RT_F16, 0},   {8, 24, 8, 1, 1, 0, RT_F32, 0},      {48, 384, 128, 0, 1, 0, RT_BF16, 0},
	    {16, 256, 0, 1, 1, 0, RT_BF16, 0}, {48, 384, 128, 0, 1, 3, RT_F16, 0},  {40, 256, 128, 0, 0, 3, RT_BF16, 1},
	    {24, 160, 32, 0, 1, 3, RT_F16, 0}, {16, 192, 64, 1, 1, 0, RT_BF16, 0}};
	/* attention: multi-block contexts (128-position blocks), GQA groups of 4, 6 (MQA), 16 and 2 (of 34
	 * heads: the group divides the KV head's heads), head dims the AVX-512 kernel takes (16..128) and
	 * the generic ones (24, 256), a sliding window, tails off the 16-position score groups */
	static const struct ashape att[] = {{8, 2, 64, 0, 37, 0},  {8, 2, 64, 300, 5, 0}, {4, 4, 16, 140, 3, 0},
	                                    {6, 1, 128, 200, 2, 0}, {2, 1, 32, 129, 1, 0}, {8, 2, 24, 50, 4, 0},
	                                    {4, 2, 64, 260, 6, 7},  {32, 2, 16, 5, 3, 0}, {34, 1, 16, 21, 2, 0},
	                                    {4, 1, 256, 17, 2, 0}};
	const char *seen[5];
	int nseen = 0;

	for (size_t si = 0; si < sizeof(simds) / sizeof(simds[0]); si++) {
		struct rt_backend *be;
		const char *name;
		int dup = 0;
		if (rt_backend_cpu_new(2, simds[si], &be) < 0) {
			TAP_OK(0, "rt_backend_cpu_new(%s)", simds[si] ? simds[si] : "default");
			continue;
		}
		name = rt_backend_cpu_simd(be);
		for (int i = 0; i < nseen; i++)
			dup |= !strcmp(seen[i], name);
		if (dup) { /* the CPU lacks that path and fell back to one already run */
			printf("# simd %s: runs %s, already tested\n", simds[si] ? simds[si] : "default", name);
			be->ops->free(be);
			continue;
		}
		seen[nseen++] = name;
		printf("# simd %s: %s kernels\n", simds[si] ? simds[si] : "default", name);
		for (int dt = RT_F32; dt <= RT_BF16; dt++)
			for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]); sh++)
				run(be, name, dt, shapes[sh], Ts, sizeof(Ts) / sizeof(Ts[0]));
		for (size_t sh = 0; sh < sizeof(i4) / sizeof(i4[0]); sh++)
			run_ct_int4(be, name, i4[sh], qTs, sizeof(qTs) / sizeof(qTs[0]));
		for (size_t sh = 0; sh < sizeof(f8) / sizeof(f8[0]); sh++)
			run_fp8(be, name, f8[sh], qTs, sizeof(qTs) / sizeof(qTs[0]));
		for (size_t sh = 0; sh < sizeof(col) / sizeof(col[0]); sh++)
			run_col(be, name, col[sh], qTs, sizeof(qTs) / sizeof(qTs[0]));
		for (size_t sh = 0; sh < sizeof(att) / sizeof(att[0]); sh++)
			run_att(be, name, att[sh]);
		be->ops->free(be);
	}
	/* fp8 on AVX-512 without VBMI and GFNI (the f16 route), where this CPU has them */
	struct rt_backend *be;
	setenv("AGRT_FP8_F16", "1", 1);
	if (rt_backend_cpu_new(2, "avx512", &be) == 0) {
		if (!strcmp(rt_backend_cpu_simd(be), "avx512"))
			for (size_t sh = 0; sh < sizeof(f8) / sizeof(f8[0]); sh++)
				run_fp8(be, "avx512 (AGRT_FP8_F16)", f8[sh], qTs, sizeof(qTs) / sizeof(qTs[0]));
		be->ops->free(be);
	}
	unsetenv("AGRT_FP8_F16");
	return tap_done();
}
