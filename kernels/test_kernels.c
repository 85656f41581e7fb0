/* SPDX-License-Identifier: Apache-2.0 */
/* test_kernels: every CUDA kernel against its CPU twin, one at a time, so a
 * failing end-to-end comparison (tests/gpu/check.sh) can be pinned on a
 * kernel.  The twins restate the CPU path's semantics (runtime/model.c,
 * runtime/backend_cpu.c) in plain C on the same inputs.  TAP output; a TAP
 * skip ("1..0 # SKIP", exit 0) when there is no usable CUDA device.
 * Tolerance: max |gpu - cpu| <= tol x max(1, max |cpu|) per kernel: 1e-5 for
 * elementwise f32 work, 1e-4 where f32 sums run in a different order
 * (matvec, RMSNorm, attention). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "dtype.h"
#include "quant.h"

static int n_test, n_fail;

#define CK(call)                                                                                                       \
	do {                                                                                                           \
		cudaError_t e_ = (cudaError_t)(call);                                                                  \
		if (e_ != cudaSuccess) {                                                                               \
			printf("Bail out! %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));        \
			exit(1);                                                                                       \
		}                                                                                                      \
	} while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static uint16_t to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	u += 0x7fff + ((u >> 16) & 1);
	return (uint16_t)(u >> 16);
}

/* f32 -> f16 bits, round to nearest even (rint in the default mode), as
 * __float2half_rn; |f| < 65504 in this test */
static uint16_t to_f16(float f)
{
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	double a = fabs((double)f), q;
	int e;

	if (a < 0x1p-14) /* subnormal: units of 2^-24; q = 1024 is the smallest normal */
		return (uint16_t)(sign | (uint16_t)rint(a * 0x1p24));
	frexp(a, &e);
	e -= 1;                     /* a = 1.m x 2^e */
	q = rint(ldexp(a, 10 - e)); /* 1024..2048 */
	if (q == 2048) {
		q = 1024;
		e++;
	}
	return (uint16_t)(sign | ((e + 15) << 10) | ((int)q - 1024));
}

static void *dev_copy(const void *h, size_t n)
{
	void *d;
	CK(cudaMalloc(&d, n ? n : 1));
	CK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
	return d;
}

static float *rand_vec(size_t n, float scale)
{
	float *v = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++)
		v[i] = frand() * scale;
	return v;
}

/* compare n floats of device d with host ref */
static void check(const char *what, const float *d, const float *ref, size_t n, double tol)
{
	float *g = malloc(n * sizeof(float));
	double mx = 1, err = 0;

	CK(cudaDeviceSynchronize());
	CK(cudaMemcpy(g, d, n * sizeof(float), cudaMemcpyDeviceToHost));
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)g[i] - ref[i]);
		if (!(e <= err)) /* NaN counts as failure */
			err = isnan(e) ? INFINITY : e;
		if (fabs(ref[i]) > mx)
			mx = fabs(ref[i]);
	}
	n_test++;
	if (err <= tol * mx) {
		printf("ok %d - %s: max err %.2e (tol %.0e x %.2g)\n", n_test, what, err, tol, mx);
	} else {
		n_fail++;
		printf("not ok %d - %s: max err %.2e > tol %.0e x %.2g\n", n_test, what, err, tol, mx);
	}
	free(g);
}

static void t_matvec(int dt, int rows, int cols, int acc, int bias)
{
	size_t es = rt_dtype_size(dt), nw = (size_t)rows * cols;
	float *wf = rand_vec(nw, 0.5f), *x = rand_vec(cols, 1), *y0 = rand_vec(rows, 1), *b = rand_vec(rows, 1);
	float *ref = malloc(rows * sizeof(float));
	void *wh = malloc(nw * es);
	char what[128];

	for (size_t i = 0; i < nw; i++) {
		if (dt == RT_BF16)
			((uint16_t *)wh)[i] = to_bf16(wf[i]);
		else if (dt == RT_F16)
			((uint16_t *)wh)[i] = to_f16(wf[i]);
		else
			((float *)wh)[i] = wf[i];
	}
	for (int r = 0; r < rows; r++) {
		double s = 0;
		for (int c = 0; c < cols; c++)
			s += (double)rt_load_elem(wh, dt, (size_t)r * cols + c) * x[c];
		ref[r] = (float)((acc ? y0[r] : 0) + s + (bias ? b[r] : 0));
	}
	{
		void *dw = dev_copy(wh, nw * es);
		float *dx = dev_copy(x, cols * 4), *dy = dev_copy(y0, rows * 4), *db = dev_copy(b, rows * 4);
		CK(agk_matvec(dy, dw, dt, dx, bias ? db : NULL, rows, cols, acc, NULL));
		snprintf(what, sizeof(what), "matvec %s %dx%d acc=%d bias=%d (%s path)",
		         dt == RT_BF16  ? "bf16"
		         : dt == RT_F16 ? "f16"
		                        : "f32",
		         rows, cols, acc, bias, cols % (dt == RT_F32 ? 4 : 8) ? "scalar" : "vector");
		check(what, dy, ref, rows, 1e-4);
		cudaFree(dw);
		cudaFree(dx);
		cudaFree(dy);
		cudaFree(db);
	}
	free(wf);
	free(x);
	free(y0);
	free(b);
	free(ref);
	free(wh);
}

static void t_embed(int dt)
{
	int V = 50, H = 72, T = 5;
	int32_t ids[5] = {0, 49, 7, 7, 23};
	size_t es = rt_dtype_size(dt);
	float *ef = rand_vec((size_t)V * H, 1), *ref = malloc(sizeof(float) * T * H);
	void *eh = malloc((size_t)V * H * es);

	for (int i = 0; i < V * H; i++) {
		if (dt == RT_BF16)
			((uint16_t *)eh)[i] = to_bf16(ef[i]);
		else if (dt == RT_F16)
			((uint16_t *)eh)[i] = to_f16(ef[i]);
		else
			((float *)eh)[i] = ef[i];
	}
	for (int t = 0; t < T; t++)
		for (int i = 0; i < H; i++)
			ref[t * H + i] = rt_load_elem(eh, dt, (size_t)ids[t] * H + i);
	{
		void *de = dev_copy(eh, (size_t)V * H * es);
		int32_t *di = dev_copy(ids, sizeof(ids));
		float *dout;
		CK(cudaMalloc((void **)&dout, sizeof(float) * T * H));
		CK(agk_embed(dout, de, dt, di, T, H, NULL));
		check(dt == RT_BF16 ? "embed bf16" : dt == RT_F16 ? "embed f16" : "embed f32", dout, ref, T * H, 0);
		cudaFree(de);
		cudaFree(di);
		cudaFree(dout);
	}
	free(ef);
	free(ref);
	free(eh);
}

static void t_rmsnorm(int rows, int dim)
{
	float *x = rand_vec((size_t)rows * dim, 3), *w = rand_vec(dim, 1), *ref = malloc(sizeof(float) * rows * dim);
	char what[64];

	for (int r = 0; r < rows; r++) {
		double ss = 0;
		for (int i = 0; i < dim; i++)
			ss += (double)x[r * dim + i] * x[r * dim + i];
		for (int i = 0; i < dim; i++)
			ref[r * dim + i] = w[i] * (x[r * dim + i] * (float)(1.0 / sqrt(ss / dim + 1e-5)));
	}
	{
		float *dx = dev_copy(x, sizeof(float) * rows * dim), *dw = dev_copy(w, sizeof(float) * dim);
		CK(agk_rmsnorm(dx, dx, dw, rows, dim, 1e-5f, NULL)); /* in place, as for q/k norm */
		snprintf(what, sizeof(what), "rmsnorm %dx%d in place", rows, dim);
		check(what, dx, ref, (size_t)rows * dim, 1e-5);
		cudaFree(dx);
		cudaFree(dw);
	}
	free(x);
	free(w);
	free(ref);
}

static void t_rope(void)
{
	int T = 7, nh = 3, hd = 24, half = 12, pos0 = 300, stride = nh * hd + 8;
	float *x = rand_vec((size_t)T * stride, 1), *ref = malloc(sizeof(float) * T * stride), inv[12];

	for (int i = 0; i < half; i++)
		inv[i] = (float)(1.0 / pow(500000.0, 2.0 * i / hd));
	memcpy(ref, x, sizeof(float) * T * stride);
	for (int t = 0; t < T; t++)
		for (int h = 0; h < nh; h++)
			for (int i = 0; i < half; i++) {
				float ang = (float)(pos0 + t) * inv[i], c = cosf(ang), s = sinf(ang);
				float *v = ref + (size_t)t * stride + h * hd, a = v[i], b = v[i + half];
				v[i] = a * c - b * s;
				v[i + half] = b * c + a * s;
			}
	{
		float *dx = dev_copy(x, sizeof(float) * T * stride), *di = dev_copy(inv, sizeof(inv));
		CK(agk_rope(dx, T, nh, hd, stride, pos0, di, NULL));
		check("rope hd 24, 3 heads, row stride > nh*hd, pos 300..306", dx, ref, (size_t)T * stride, 1e-5);
		cudaFree(dx);
		cudaFree(di);
	}
	free(x);
	free(ref);
}

/* kv_store of a chunk + attention (decode or prefill) against a cache that
 * already holds pos0 rows */
static void t_attention(int T, int pos0, int nh, int nkv, int hd, int window)
{
	int ctx = pos0 + T + 3, kvd = nkv * hd, grp = nh / nkv;
	float *q = rand_vec((size_t)T * nh * hd, 1), *kn = rand_vec((size_t)T * kvd, 1),
	      *vn = rand_vec((size_t)T * kvd, 1);
	float *kold = rand_vec((size_t)pos0 * kvd + 1, 1), *vold = rand_vec((size_t)pos0 * kvd + 1, 1);
	uint16_t *kc = calloc((size_t)ctx * kvd, 2), *vc = calloc((size_t)ctx * kvd, 2);
	float *ref = malloc(sizeof(float) * T * nh * hd), *sc = malloc(sizeof(float) * ctx);
	char what[128];

	for (size_t i = 0; i < (size_t)pos0 * kvd; i++) {
		kc[i] = to_bf16(kold[i]);
		vc[i] = to_bf16(vold[i]);
	}
	{
		uint16_t *dk = dev_copy(kc, (size_t)ctx * kvd * 2), *dv = dev_copy(vc, (size_t)ctx * kvd * 2);
		float *dq = dev_copy(q, sizeof(float) * T * nh * hd), *dkn = dev_copy(kn, sizeof(float) * T * kvd),
		      *dvn = dev_copy(vn, sizeof(float) * T * kvd), *dout;
		CK(cudaMalloc((void **)&dout, sizeof(float) * T * nh * hd));
		CK(agk_kv_store(dk, dv, dkn, dvn, T, kvd, pos0, NULL));
		CK(agk_attention(dout, dq, dk, dv, T, pos0, nh, nkv, hd, window, NULL));
		/* the twin: cache rows as the GPU rounds them */
		for (size_t i = 0; i < (size_t)T * kvd; i++) {
			kc[(size_t)pos0 * kvd + i] = to_bf16(kn[i]);
			vc[(size_t)pos0 * kvd + i] = to_bf16(vn[i]);
		}
		for (int t = 0; t < T; t++)
			for (int h = 0; h < nh; h++) {
				int qp = pos0 + t, lo = window > 0 && qp - window + 1 > 0 ? qp - window + 1 : 0;
				const float *qr = q + ((size_t)t * nh + h) * hd;
				double mx = -INFINITY, sum = 0;
				for (int k = lo; k <= qp; k++) {
					double s = 0;
					for (int d = 0; d < hd; d++)
						s += qr[d] * rt_bf16_to_f32(kc[(size_t)k * kvd + (h / grp) * hd + d]);
					sc[k] = (float)(s / sqrt((double)hd));
					if (sc[k] > mx)
						mx = sc[k];
				}
				for (int k = lo; k <= qp; k++)
					sum += exp(sc[k] - mx);
				for (int d = 0; d < hd; d++) {
					double a = 0;
					for (int k = lo; k <= qp; k++)
						a += exp(sc[k] - mx) *
						     rt_bf16_to_f32(vc[(size_t)k * kvd + (h / grp) * hd + d]);
					ref[((size_t)t * nh + h) * hd + d] = (float)(a / sum);
				}
			}
		snprintf(what, sizeof(what), "kv_store + attention T=%d pos0=%d nh=%d nkv=%d hd=%d window=%d", T, pos0,
		         nh, nkv, hd, window);
		check(what, dout, ref, (size_t)T * nh * hd, 1e-4);
		cudaFree(dk);
		cudaFree(dv);
		cudaFree(dq);
		cudaFree(dkn);
		cudaFree(dvn);
		cudaFree(dout);
	}
	free(q);
	free(kn);
	free(vn);
	free(kold);
	free(vold);
	free(kc);
	free(vc);
	free(ref);
	free(sc);
}

static void t_elementwise(void)
{
	size_t n = 100003;
	int T = 9, m = 1001;
	float *g = rand_vec(n, 6), *u = rand_vec(n, 2), *ref = malloc(sizeof(float) * n), *b = rand_vec(m, 1);
	uint16_t *hc = malloc(n * 2);

	for (size_t i = 0; i < n; i++)
		ref[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
	{
		float *dg = dev_copy(g, n * 4), *du = dev_copy(u, n * 4);
		CK(agk_swiglu(dg, du, n, NULL));
		check("swiglu", dg, ref, n, 1e-5);
		CK(cudaMemcpy(dg, g, n * 4, cudaMemcpyHostToDevice));
		CK(agk_add(dg, du, n, NULL));
		for (size_t i = 0; i < n; i++)
			ref[i] = g[i] + u[i];
		check("residual add", dg, ref, n, 1e-6);
		cudaFree(dg);
		cudaFree(du);
	}
	{
		float *dy = dev_copy(g, (size_t)T * m * 4), *db = dev_copy(b, m * 4);
		CK(agk_add_bias(dy, db, T, m, NULL));
		for (int t = 0; t < T; t++)
			for (int i = 0; i < m; i++)
				ref[t * m + i] = g[t * m + i] + b[i];
		check("bias add", dy, ref, (size_t)T * m, 1e-6);
		cudaFree(dy);
		cudaFree(db);
	}
	for (int dt = RT_F16; dt <= RT_BF16; dt++) {
		float *ds = dev_copy(u, n * 4), *back = malloc(n * 4);
		void *dd;
		CK(cudaMalloc(&dd, n * 2));
		CK(agk_convert(dd, dt, ds, n, NULL));
		CK(cudaMemcpy(hc, dd, n * 2, cudaMemcpyDeviceToHost));
		for (size_t i = 0; i < n; i++) {
			back[i] = dt == RT_BF16 ? rt_bf16_to_f32(hc[i]) : rt_f16_to_f32(hc[i]);
			ref[i] = rt_load_elem((uint16_t[]){dt == RT_BF16 ? to_bf16(u[i]) : to_f16(u[i])}, dt, 0);
		}
		CK(cudaMemcpy(ds, back, n * 4, cudaMemcpyHostToDevice));
		check(dt == RT_BF16 ? "convert f32->bf16 (round to nearest even)" : "convert f32->f16", ds, ref, n, 0);
		cudaFree(ds);
		cudaFree(dd);
		free(back);
	}
	free(g);
	free(u);
	free(ref);
	free(b);
	free(hc);
}

/* agk_qmatmul against runtime/quant.h's rt_q_weight (the definition the CPU
 * kernels compute) on random codes, scales, zero points and g_idx.
 * fmt RT_WF_FP8 (layout ignored) or RT_WF_INT4 with layout RT_I4_*; group:
 * fp8 block side, int4 group size; asym: zero points; act: GPTQ g_idx. */
static void t_qmatmul(int have_dev, int fmt, int layout, int rows, int cols, int group, int T, int asym, int act)
{
	struct rt_weight w = {.rows = rows, .cols = cols};
	size_t R = rows, C = cols, ng, nd, nsc, nz = 0;
	uint8_t *data;
	uint16_t *scale;
	uint32_t *zero = NULL;
	int32_t *gi = NULL;
	char what[160];

	w.q.fmt = fmt;
	w.q.layout = layout;
	w.q.scale_dtype = RT_BF16;
	if (fmt == RT_WF_FP8) {
		w.dtype = RT_F8_E4M3;
		w.q.sr = w.q.sc = group;
		ng = (C + group - 1) / group;
		nd = R * C;
		nsc = (R + group - 1) / group * ng;
	} else {
		w.dtype = RT_I32;
		w.q.sc = group;
		ng = (C + group - 1) / group;
		nd = (layout == RT_I4_CT ? R * ((C + 7) / 8) : layout == RT_I4_GPTQ ? C / 8 * R : C * (R / 8)) * 4;
		nsc = R * ng;
		if (asym)
			nz = layout == RT_I4_CT ? (R + 7) / 8 * ng : ng * (R / 8);
		w.q.zero_const = 8;
		w.q.zero_add = layout == RT_I4_GPTQ ? 1 : 0;
	}
	w.q.n_sc = (int)ng;
	data = malloc(nd);
	for (size_t i = 0; i < nd; i++) {
		data[i] = (uint8_t)((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 56);
		if (fmt == RT_WF_FP8 && (data[i] & 0x7f) == 0x7f)
			data[i] ^= 1; /* no NaN codes */
	}
	scale = malloc(nsc * 2);
	for (size_t i = 0; i < nsc; i++)
		scale[i] = to_bf16(0.01f + 0.05f * fabsf(frand()));
	if (nz) {
		zero = malloc(nz * 4);
		for (size_t i = 0; i < nz; i++)
			zero[i] = (uint32_t)((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 32);
	}
	if (act) {
		gi = malloc(C * 4);
		for (size_t k = 0; k < C; k++)
			gi[k] = (int32_t)((k * 7 + 3) % ng);
	}
	w.data = data;
	w.q.scale = scale;
	w.q.zero = zero;
	w.q.g_idx = gi;

	snprintf(what, sizeof(what), "%s %dx%d group %d T=%d%s%s",
	         fmt == RT_WF_FP8       ? "fp8 e4m3 blocks"
	         : layout == RT_I4_CT   ? "int4 compressed-tensors"
	         : layout == RT_I4_GPTQ ? "int4 GPTQ"
	                                : "int4 AWQ",
	         rows, cols, group, T, asym ? " asym" : "", act ? " act-order" : "");
	struct agk_qmat hq = {.data = data,
	                      .scale = scale,
	                      .zero = zero,
	                      .g_idx = gi,
	                      .fmt = fmt,
	                      .code_dtype = w.dtype,
	                      .layout = layout,
	                      .scale_dtype = RT_BF16,
	                      .sr = w.q.sr,
	                      .sc = w.q.sc,
	                      .n_sc = w.q.n_sc,
	                      .zero_const = w.q.zero_const,
	                      .zero_add = w.q.zero_add,
	                      .rows = rows,
	                      .cols = cols};
	{
		/* the kernel's element math (on the host) is rt_q_weight, bit for bit */
		size_t bad = 0;
		for (int r = 0; r < rows; r++)
			for (int k = 0; k < cols; k++) {
				float a = agk_q_weight_host(&hq, r, k), e = rt_q_weight(&w, r, k);
				if (memcmp(&a, &e, 4) && bad++ < 3)
					printf("# (%d, %d): kernel %g, rt_q_weight %g\n", r, k, a, e);
			}
		n_test++;
		if (bad)
			n_fail++;
		printf("%s %d - qweight (host) %s: every element equals rt_q_weight (%zu differ)\n", bad ? "not ok" : "ok",
		       n_test, what, bad);
	}
	if (!have_dev)
		goto out;
	float *x = rand_vec((size_t)T * C, 1), *y0 = rand_vec((size_t)T * R, 1), *b = rand_vec(R, 1);
	float *ref = malloc((size_t)T * R * sizeof(float));
	for (int t = 0; t < T; t++)
		for (int r = 0; r < rows; r++) {
			double s = 0;
			for (int k = 0; k < cols; k++)
				s += (double)rt_q_weight(&w, r, k) * x[(size_t)t * C + k];
			ref[(size_t)t * R + r] = (float)(y0[(size_t)t * R + r] + s + b[r]);
		}
	/* the same matrix with its parts on the device */
	struct agk_qmat q = hq;
	q.data = dev_copy(data, nd);
	q.scale = dev_copy(scale, nsc * 2);
	q.zero = nz ? dev_copy(zero, nz * 4) : NULL;
	q.g_idx = act ? dev_copy(gi, C * 4) : NULL;
	float *dx = dev_copy(x, (size_t)T * C * 4), *dy = dev_copy(y0, (size_t)T * R * 4), *db = dev_copy(b, R * 4);
	CK(agk_qmatmul(dy, &q, dx, db, T, 1, NULL));
	{
		char w2[200];
		snprintf(w2, sizeof(w2), "qmatmul %s", what);
		check(w2, dy, ref, (size_t)T * R, 1e-4);
	}
	cudaFree((void *)q.data);
	cudaFree((void *)q.scale);
	cudaFree((void *)q.zero);
	cudaFree((void *)q.g_idx);
	cudaFree(dx);
	cudaFree(dy);
	cudaFree(db);
	free(x);
	free(y0);
	free(b);
	free(ref);
out:
	free(data);
	free(scale);
	free(zero);
	free(gi);
}

static void t_qmatmul_all(int have_dev)
{
	t_qmatmul(have_dev, RT_WF_FP8, 0, 200, 300, 128, 1, 0, 0); /* partial blocks at both edges */
	t_qmatmul(have_dev, RT_WF_FP8, 0, 77, 130, 32, 11, 0, 0);
	t_qmatmul(have_dev, RT_WF_INT4, RT_I4_CT, 99, 203, 32, 1, 0, 0); /* cols not a multiple of 8 or the group */
	t_qmatmul(have_dev, RT_WF_INT4, RT_I4_CT, 64, 256, 128, 9, 1, 0);
	t_qmatmul(have_dev, RT_WF_INT4, RT_I4_CT, 40, 96, 96, 3, 1, 0); /* channel-wise: one group a row */
	t_qmatmul(have_dev, RT_WF_INT4, RT_I4_GPTQ, 128, 256, 64, 5, 1, 0);
	t_qmatmul(have_dev, RT_WF_INT4, RT_I4_GPTQ, 64, 192, 64, 2, 0, 1);
	t_qmatmul(have_dev, RT_WF_INT4, RT_I4_AWQ, 96, 256, 128, 17, 1, 0);
}

int main(void)
{
	int n = 0;

	if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
		/* the quantized kernels' element math runs on the host; the rest
		 * needs a device */
		t_qmatmul_all(0);
		printf("# no usable CUDA device: the device kernels were not run\n1..%d\n", n_test);
		return n_fail ? 1 : 0;
	}
	CK(cudaSetDevice(0));
	for (int dt = RT_F32; dt <= RT_BF16; dt++)
		t_embed(dt);
	t_rmsnorm(5, 72);
	t_rmsnorm(3, 2048);
	t_rmsnorm(64, 24);
	t_rope();
	for (int dt = RT_F32; dt <= RT_BF16; dt++) {
		t_matvec(dt, 300, 64, 0, 0);
		t_matvec(dt, 257, 2048, 1, 1);
		t_matvec(dt, 100, 72, 1, 0); /* 72: vector for bf16/f16 and f32 */
		t_matvec(dt, 37, 100, 0, 1); /* 100: scalar for 16-bit types */
		t_matvec(dt, 13, 7, 0, 0);   /* scalar everywhere */
	}
	t_attention(1, 0, 4, 2, 16, 0);    /* first decode step */
	t_attention(1, 77, 32, 4, 64, 0);  /* decode, GQA 8:1 */
	t_attention(18, 0, 4, 2, 24, 0);   /* prefill from empty, qwen3's head_dim 24 */
	t_attention(37, 40, 8, 2, 128, 0); /* prefill after a cached prefix */
	t_attention(20, 5, 4, 2, 16, 8);   /* sliding window 8 (mistral) */
	t_attention(1, 30, 4, 4, 256, 8);  /* decode, window, hd 256 */
	t_attention(3, 10, 2, 1, 1024, 0); /* largest head_dim the loader accepts */
	t_elementwise();
	t_qmatmul_all(1);
	printf("1..%d\n", n_test);
	return n_fail ? 1 : 0;
}
