/* Matmul kernel benchmark (not a test): y[T][N] = x[T][K] . W[N][K]^T through
 * the CPU backend for the bench model's two weight widths (K = 768 and
 * 2048), T = 1..64, bf16 weights of about 38 MB, COPIES (6) of them used in
 * turn (228 MB, the bench model's size, more than L2, so the weights stream
 * from L3 or memory as in decode).  COPIES 1 and ROWS_DIVISOR 24 (1.5 MB,
 * L2-resident) measure the tiles' arithmetic alone.  Prints the best of REPS
 * runs per shape: ms, weight GB/s and GFLOP/s.  Best-of is what survives a
 * shared, loaded machine; give the load average with the figures.
 *
 * DTYPE int4 is compressed-tensors int4 (group 128, symmetric), fp8 e4m3 in
 * [128,128] scale blocks, gptq and awq their int4 layouts (group 128,
 * asymmetric, no g_idx): the quantized kernels (backend_quant.c).
 *
 * usage: bench_matmul [THREADS] [REPS] [T,T,...] [DTYPE: bf16|f16|f32|int4|fp8|gptq|awq] [COPIES]
 *                     [ROWS_DIVISOR] */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "dtype.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 20;
	const char *ts = argc > 3 ? argv[3] : "1,2,4,8,16,32,64";
	const char *dts = argc > 4 ? argv[4] : "bf16";
	int dt = !strcmp(dts, "f32") ? RT_F32 : !strcmp(dts, "f16") ? RT_F16 : RT_BF16;
	bool gptq = !strcmp(dts, "gptq"), awq = !strcmp(dts, "awq"), i4 = !strcmp(dts, "int4") || gptq || awq,
	     f8 = !strcmp(dts, "fp8");
	int copies = argc > 5 ? atoi(argv[5]) : 6, div = argc > 6 ? atoi(argv[6]) : 1;
	int shapes[][2] = {{24576, 768}, {9216, 2048}};
	struct rt_backend *be;
	char *tl = strdup(ts);

	if (threads < 1 || reps < 1 || copies < 1 || copies > 64 || div < 1 || div > 9216 || !tl ||
	    rt_backend_cpu_new(threads, getenv("AGRT_SIMD"), &be) < 0) {
		fprintf(stderr, "bench_matmul: bad arguments or no backend\n");
		return 2;
	}
	printf("cpu/%s, %d threads, %s weights x %d copies, best of %d\n", rt_backend_cpu_simd(be), threads, dts,
	       copies, reps);
	printf("%-6s %-12s %10s %10s %10s\n", "T", "N x K", "ms", "GB/s", "GFLOP/s");
	for (char *tok = strtok(tl, ","); tok; tok = strtok(NULL, ",")) {
		int T = atoi(tok);
		if (T < 1 || T > 4096)
			continue;
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
			int N = shapes[s][0] / div, K = shapes[s][1];
			size_t es = rt_dtype_size(dt), nw = (size_t)N * K, mb;
			int ng = (K + 127) / 128;
			unsigned char *wd;
			float *sc = malloc(sizeof(float) * (size_t)N * ng);
			uint32_t *zp = malloc(sizeof(uint32_t) * (size_t)ng * (N / 8 + 1)); /* gptq, awq */
			if (i4 || f8)
				es = 1; /* bytes of codes below; int4 halves them */
			mb = i4 ? (size_t)N * ((K + 7) / 8) * 4 : nw * es;
			wd = malloc(mb * copies);
			float *x = malloc(sizeof(float) * T * K), *y = malloc(sizeof(float) * T * N);
			struct rt_weight w[64];
			double best = 1e9;
			uint32_t r = 12345;
			if (!wd || !x || !y || !sc || !zp)
				return 1;
			for (size_t i = 0; i < (size_t)N * ng; i++)
				sc[i] = (float)(1 + i % 13) / 1024.0f;
			for (size_t i = 0; i < (size_t)ng * (N / 8 + 1); i++)
				zp[i] = (uint32_t)i * 2654435761u;
			for (int c = 0; c < copies; c++) {
				w[c] = (struct rt_weight){.data = wd + mb * c, .dtype = dt, .rows = N, .cols = K};
				if (i4)
					w[c].dtype = RT_I32, w[c].q = (struct rt_wquant){.fmt = RT_WF_INT4,
					                                                 .layout = RT_I4_CT,
					                                                 .scale = sc,
					                                                 .scale_dtype = RT_F32,
					                                                 .sr = 1,
					                                                 .sc = 128,
					                                                 .n_sc = ng,
					                                                 .zero_const = 8};
				if (gptq || awq) /* [groups][N] scales, [groups][N/8] zero points */
					w[c].q.layout = gptq ? RT_I4_GPTQ : RT_I4_AWQ, w[c].q.zero = zp;
				else if (f8)
					w[c].dtype = RT_F8_E4M3, w[c].q = (struct rt_wquant){.fmt = RT_WF_FP8,
					                                                     .scale = sc,
					                                                     .scale_dtype = RT_F32,
					                                                     .sr = 128,
					                                                     .sc = 128,
					                                                     .n_sc = ng};
			}
			for (size_t i = 0; (i4 || f8) && i < mb * copies; i++) {
				r = r * 1664525u + 1013904223u;
				wd[i] = (unsigned char)(r >> 24);
				if (f8 && (wd[i] & 0x7f) == 0x7f) /* no NaN codes */
					wd[i] ^= 1;
			}
			for (size_t i = 0; !i4 && !f8 && i < nw * copies; i++) {
				r = r * 1664525u + 1013904223u;
				float v = (float)(r >> 8) / (1 << 24) - 0.5f;
				uint32_t b;
				memcpy(&b, &v, 4);
				if (dt == RT_F32)
					((float *)wd)[i] = v;
				else if (dt == RT_BF16)
					((uint16_t *)wd)[i] = (uint16_t)(b >> 16);
				else /* f16: sign, exponent 9..14, 10 random mantissa bits */
					((uint16_t *)wd)[i] =
					    (uint16_t)((r >> 31) << 15 | (9 + (r >> 8) % 6) << 10 | (r >> 12 & 1023));
			}
			for (size_t i = 0; i < (size_t)T * K; i++)
				x[i] = (float)(i % 97) / 97.0f - 0.5f;
			for (int i = 0; i < reps + 1; i++) {
				double t0 = now(), dt_s;
				for (int c = 0; c < copies; c++)
					be->ops->matmul(be, y, x, &w[c], NULL, T, false);
				dt_s = (now() - t0) / copies;
				if (i && dt_s < best) /* the first run warms up */
					best = dt_s;
			}
			printf("%-6d %5dx%-6d %10.3f %10.2f %10.1f\n", T, N, K, best * 1e3, mb / best / 1e9,
			       2.0 * nw * T / best / 1e9);
			free(wd);
			free(sc);
			free(zp);
			free(x);
			free(y);
		}
	}
	be->ops->free(be);
	free(tl);
	return 0;
}
