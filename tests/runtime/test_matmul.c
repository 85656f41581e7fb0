/* The CPU backend's matmul kernels (y[T][N] = x[T][K] . W[N][K]^T + bias,
 * optionally accumulated into y) for f32, f16 and bf16 weights, with every
 * SIMD path this CPU has ("generic", "avx2", "avx512", the default: amx where
 * the CPU has AMX, whose bf16 tiles split x into three bf16 parts): each output
 * against a double-precision reference, and each token's row of a batched
 * call bitwise equal to the same token alone (T = 1), which is what keeps
 * batched serving's greedy output equal to single-stream decode.  Shapes are
 * chosen off the tile sizes (4 rows, 3/6 tokens, 16/32 elements, 48-token
 * blocks, the converted-rows threshold at 24 tokens).  TAP output. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dtype.h"
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

/* one simd path x dtype x shape over a list of T; returns failures */
static void run(struct rt_backend *be, const char *simd, int dt, struct shape s, const int *Ts, int nT)
{
	int N = s.N, K = s.K, Tmax = 0;
	for (int i = 0; i < nT; i++)
		Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
	size_t es = dt == RT_F32 ? 4 : 2;
	void *wd = malloc((size_t)N * K * es);
	double *wref = malloc(sizeof(double) * N * K), *aref = malloc(sizeof(double) * N * K);
	float *x = malloc(sizeof(float) * Tmax * K), *y = malloc(sizeof(float) * Tmax * N),
	      *y1 = malloc(sizeof(float) * N), *bias = malloc(sizeof(float) * N),
	      *y0 = malloc(sizeof(float) * Tmax * N);
	struct rt_weight w = {.data = wd, .dtype = dt, .rows = N, .cols = K};

	if (!wd || !wref || !aref || !x || !y || !y1 || !bias || !y0) {
		TAP_OK(0, "allocation");
		return;
	}
	for (size_t i = 0; i < (size_t)N * K; i++) {
		wref[i] = put(wd, dt, i);
		aref[i] = fabs(wref[i]);
	}
	for (size_t i = 0; i < (size_t)Tmax * K; i++)
		x[i] = (float)((int32_t)next()) / 2147483648.0f;
	for (int n = 0; n < N; n++)
		bias[n] = (float)(n % 7) * 0.25f - 0.5f;
	for (int ti = 0; ti < nT; ti++) {
		int T = Ts[ti], bad_ref = 0, bad_same = 0, bad_acc = 0;
		double worst = 0;
		/* plain, then with bias accumulated onto y0 */
		be->ops->matmul(be, y, x, &w, NULL, T, false);
		for (int t = 0; t < T; t++) {
			be->ops->matmul(be, y1, x + (size_t)t * K, &w, NULL, 1, false);
			if (memcmp(y1, y + (size_t)t * N, sizeof(float) * N))
				bad_same++;
			for (int n = 0; n < N; n++) {
				double ref = 0, mag = 0;
				for (int k = 0; k < K; k++) {
					ref += wref[(size_t)n * K + k] * x[(size_t)t * K + k];
					mag += aref[(size_t)n * K + k] * fabs(x[(size_t)t * K + k]);
				}
				/* the f32 sum's rounding: well inside the worst case K 2^-24 sum |w x| */
				double err = fabs(y[(size_t)t * N + n] - ref),
				       tol = 1.2e-7 * mag * (4 + K / 8.0) + 1e-30;
				if (err > tol)
					bad_ref++;
				if (err / tol > worst)
					worst = err / tol;
			}
		}
		for (size_t i = 0; i < (size_t)T * N; i++)
			y0[i] = (float)(i % 5) - 2.0f;
		be->ops->matmul(be, y0, x, &w, bias, T, true);
		for (int t = 0; t < T; t++)
			for (int n = 0; n < N; n++) {
				size_t i = (size_t)t * N + n;
				float want = ((float)(i % 5) - 2.0f) + (y[i] + bias[n]);
				if (y0[i] != want)
					bad_acc++;
			}
		TAP_OK(
		    !bad_ref && !bad_same && !bad_acc,
		    "%s %s N=%d K=%d T=%d: %d off the reference (worst %.2f of the tolerance), %d tokens differ from "
		    "T=1, %d wrong with bias+accumulate",
		    simd, dt_name[dt], N, K, T, bad_ref, worst, bad_same, bad_acc);
	}
	free(wd);
	free(wref);
	free(aref);
	free(x);
	free(y);
	free(y1);
	free(bias);
	free(y0);
}

int main(void)
{
	static const char *simds[] = {"generic", "avx2", "avx512", NULL};
	static const struct shape shapes[] = {{1, 1}, {5, 7}, {7, 33}, {13, 100}, {37, 64}, {70, 257}, {9, 1000}};
	static const int Ts[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 23, 24, 25, 49, 50};
	const char *seen[4];
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
		be->ops->free(be);
	}
	return tap_done();
}
