/* SPDX-License-Identifier: Apache-2.0 */
/* CUDA kernels of the whole-forward device path (issue 10).  Each one has a
 * CPU twin in runtime/model.c or runtime/backend_cpu.c with the same
 * semantics (Hugging Face Llama): tests/gpu/check.sh compares the two paths'
 * logits and greedy tokens.  Activations are f32; weights stay in their
 * stored dtype (bf16/f16/f32) and are widened to f32 in registers; the KV
 * cache is bf16.  Launchers return cudaGetLastError() so the caller can turn
 * a bad launch into an rt_error instead of finding out at the next sync. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "cuda_kernels.h"

enum { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2 };

static __device__ __forceinline__ float bf16_bits(uint32_t h)
{
	return __uint_as_float(h << 16);
}

static __device__ __forceinline__ float f16_bits(unsigned short h)
{
	return __half2float(__ushort_as_half(h));
}

template <int DT> static __device__ __forceinline__ float load_w(const void *p, size_t i)
{
	if (DT == DT_F32)
		return ((const float *)p)[i];
	if (DT == DT_F16)
		return f16_bits(((const unsigned short *)p)[i]);
	return bf16_bits(((const unsigned short *)p)[i]);
}

static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

/* sum over a block of up to 1024 threads; every thread gets the result */
static __device__ float block_sum(float v, float *red /* [32] shared */)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;

	v = warp_sum(v);
	__syncthreads(); /* red may still be read by a previous call */
	if (lane == 0)
		red[warp] = v;
	__syncthreads();
	v = lane < nw ? red[lane] : 0.f;
	return warp_sum(v);
}

/* ---- embedding ---- */

template <int DT> __global__ void embed_k(float *out, const void *embed, const int32_t *ids, int H)
{
	int t = blockIdx.x;
	size_t row = (size_t)ids[t] * H;

	for (int i = threadIdx.x; i < H; i += blockDim.x)
		out[(size_t)t * H + i] = load_w<DT>(embed, row + i);
}

extern "C" int agk_embed(float *out, const void *embed, int dtype, const int32_t *ids, int T, int H, agk_stream st)
{
	if (dtype == DT_BF16)
		embed_k<DT_BF16><<<T, 256, 0, st>>>(out, embed, ids, H);
	else if (dtype == DT_F16)
		embed_k<DT_F16><<<T, 256, 0, st>>>(out, embed, ids, H);
	else
		embed_k<DT_F32><<<T, 256, 0, st>>>(out, embed, ids, H);
	return (int)cudaGetLastError();
}

/* ---- RMSNorm: one block per row ---- */

__global__ void rmsnorm_k(float *y, const float *x, const float *w, int dim, float eps)
{
	__shared__ float red[32];
	const float *xr = x + (size_t)blockIdx.x * dim;
	float *yr = y + (size_t)blockIdx.x * dim;
	float ss = 0.f, inv;

	for (int i = threadIdx.x; i < dim; i += blockDim.x)
		ss += xr[i] * xr[i];
	ss = block_sum(ss, red);
	inv = 1.0f / sqrtf(ss / dim + eps);
	/* each thread rewrites only the elements it read: in place is safe */
	for (int i = threadIdx.x; i < dim; i += blockDim.x)
		yr[i] = w[i] * (xr[i] * inv);
}

extern "C" int agk_rmsnorm(float *y, const float *x, const float *w, int rows, int dim, float eps, agk_stream st)
{
	int threads = dim >= 1024 ? 1024 : dim >= 256 ? 256 : 64;
	rmsnorm_k<<<rows, threads, 0, st>>>(y, x, w, dim, eps);
	return (int)cudaGetLastError();
}

/* ---- RoPE (rotate-half: pairs i and i + hd/2) ---- */

__global__ void rope_k(float *x, int n_heads, int hd, int stride, int pos0, const float *inv_freq)
{
	int t = blockIdx.x, half = hd / 2;
	float *row = x + (size_t)t * stride;

	for (int j = threadIdx.x; j < n_heads * half; j += blockDim.x) {
		int h = j / half, i = j % half;
		/* as HF and the CPU path: the angle is a float32 product */
		float ang = (float)(pos0 + t) * inv_freq[i];
		float c = cosf(ang), s = sinf(ang);
		float *v = row + (size_t)h * hd;
		float a = v[i], b = v[i + half];
		v[i] = a * c - b * s;
		v[i + half] = b * c + a * s;
	}
}

extern "C" int agk_rope(float *x, int T, int n_heads, int hd, int stride, int pos0, const float *inv_freq,
                        agk_stream st)
{
	rope_k<<<T, 256, 0, st>>>(x, n_heads, hd, stride, pos0, inv_freq);
	return (int)cudaGetLastError();
}

/* ---- KV cache store (f32 -> bf16, round to nearest even) ---- */

__global__ void kv_store_k(__nv_bfloat16 *kc, __nv_bfloat16 *vc, const float *k, const float *v, size_t n, size_t off)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		kc[off + i] = __float2bfloat16_rn(k[i]);
		vc[off + i] = __float2bfloat16_rn(v[i]);
	}
}

static unsigned grid_for(size_t n, int threads)
{
	size_t b = (n + threads - 1) / threads;
	return b > 65536 ? 65536 : (unsigned)(b ? b : 1);
}

extern "C" int agk_kv_store(uint16_t *kc, uint16_t *vc, const float *k, const float *v, int T, int kvd, int pos0,
                            agk_stream st)
{
	size_t n = (size_t)T * kvd;
	kv_store_k<<<grid_for(n, 256), 256, 0, st>>>((__nv_bfloat16 *)kc, (__nv_bfloat16 *)vc, k, v, n,
	                                             (size_t)pos0 * kvd);
	return (int)cudaGetLastError();
}

/* ---- attention ----
 * One block per (query, head).  Each warp walks a strided share of the keys
 * with an online softmax (running max m, denominator l, accumulator acc
 * spread over the lanes, NPER elements of the head per lane); the warps are
 * merged at the end.  No score buffer, so any context length works.  Same
 * mask as the CPU: keys [lo, q_pos] with lo = q_pos - window + 1 when a
 * sliding window is set. */

#define ATT_THREADS 256

template <int NPER>
__global__ void attention_k(float *out, const float *q, const __nv_bfloat16 *kc, const __nv_bfloat16 *vc, int pos0,
                            int nh, int nkv, int hd, int window, float scale)
{
	extern __shared__ float sm[]; /* qs[hd], wm[nw], wl[nw], wacc[nw][hd] */
	int t = blockIdx.x, h = blockIdx.y;
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
	int qpos = pos0 + t, kvh = h / (nh / nkv);
	size_t kvd = (size_t)nkv * hd;
	int lo = window > 0 && qpos - window + 1 > 0 ? qpos - window + 1 : 0;
	float *qs = sm, *wm = sm + hd, *wl = wm + nw, *wacc = wl + nw;
	const float *qr = q + ((size_t)t * nh + h) * hd;
	float qv[NPER], acc[NPER], m = -INFINITY, l = 0.f;

	for (int i = threadIdx.x; i < hd; i += blockDim.x)
		qs[i] = qr[i] * scale;
	__syncthreads();
#pragma unroll
	for (int j = 0; j < NPER; j++) {
		int d = lane + 32 * j;
		qv[j] = d < hd ? qs[d] : 0.f;
		acc[j] = 0.f;
	}
	/* hot loop: one key per warp per iteration */
	for (int k = lo + warp; k <= qpos; k += nw) {
		const __nv_bfloat16 *kr = kc + (size_t)k * kvd + (size_t)kvh * hd;
		const __nv_bfloat16 *vr = vc + (size_t)k * kvd + (size_t)kvh * hd;
		float s = 0.f, mn, c, p;
#pragma unroll
		for (int j = 0; j < NPER; j++) {
			int d = lane + 32 * j;
			if (d < hd)
				s += qv[j] * __bfloat162float(kr[d]);
		}
		s = warp_sum(s);
		mn = fmaxf(m, s);
		c = expf(m - mn); /* 0 on the first key (m = -inf) */
		p = expf(s - mn);
		l = l * c + p;
#pragma unroll
		for (int j = 0; j < NPER; j++) {
			int d = lane + 32 * j;
			if (d < hd)
				acc[j] = acc[j] * c + p * __bfloat162float(vr[d]);
		}
		m = mn;
	}
	if (lane == 0) {
		wm[warp] = m;
		wl[warp] = l;
	}
#pragma unroll
	for (int j = 0; j < NPER; j++) {
		int d = lane + 32 * j;
		if (d < hd)
			wacc[(size_t)warp * hd + d] = acc[j];
	}
	__syncthreads();
	{
		float M = -INFINITY, L = 0.f;
		for (int w = 0; w < nw; w++)
			M = fmaxf(M, wm[w]);
		for (int w = 0; w < nw; w++)
			L += wl[w] * expf(wm[w] - M); /* a warp without keys: l = 0 */
		for (int d = threadIdx.x; d < hd; d += blockDim.x) {
			float a = 0.f;
			for (int w = 0; w < nw; w++)
				a += wacc[(size_t)w * hd + d] * expf(wm[w] - M);
			out[((size_t)t * nh + h) * hd + d] = a / L;
		}
	}
}

extern "C" int agk_attention(float *out, const float *q, const uint16_t *kc, const uint16_t *vc, int T, int pos0,
                             int nh, int nkv, int hd, int window, agk_stream st)
{
	dim3 grid(T, nh);
	int nw = ATT_THREADS / 32;
	size_t shm = sizeof(float) * ((size_t)hd + 2 * nw + (size_t)nw * hd);
	float scale = 1.0f / sqrtf((float)hd);
	const __nv_bfloat16 *k = (const __nv_bfloat16 *)kc, *v = (const __nv_bfloat16 *)vc;

	if (hd > 1024 || nh % nkv)
		return (int)cudaErrorInvalidValue;
	/* hd 1024 needs 36 KB of shared memory: under the 48 KB default */
	if (hd <= 64)
		attention_k<2><<<grid, ATT_THREADS, shm, st>>>(out, q, k, v, pos0, nh, nkv, hd, window, scale);
	else if (hd <= 128)
		attention_k<4><<<grid, ATT_THREADS, shm, st>>>(out, q, k, v, pos0, nh, nkv, hd, window, scale);
	else if (hd <= 256)
		attention_k<8><<<grid, ATT_THREADS, shm, st>>>(out, q, k, v, pos0, nh, nkv, hd, window, scale);
	else
		attention_k<32><<<grid, ATT_THREADS, shm, st>>>(out, q, k, v, pos0, nh, nkv, hd, window, scale);
	return (int)cudaGetLastError();
}

/* ---- elementwise ---- */

__global__ void swiglu_k(float *g, const float *u, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		float gv = g[i];
		g[i] = gv / (1.0f + expf(-gv)) * u[i];
	}
}

extern "C" int agk_swiglu(float *g, const float *u, size_t n, agk_stream st)
{
	swiglu_k<<<grid_for(n, 256), 256, 0, st>>>(g, u, n);
	return (int)cudaGetLastError();
}

__global__ void add_bias_k(float *y, const float *b, size_t total, int n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
		y[i] += b[i % n];
}

extern "C" int agk_add_bias(float *y, const float *b, int T, int n, agk_stream st)
{
	size_t total = (size_t)T * n;
	add_bias_k<<<grid_for(total, 256), 256, 0, st>>>(y, b, total, n);
	return (int)cudaGetLastError();
}

__global__ void add_k(float *y, const float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		y[i] += x[i];
}

extern "C" int agk_add(float *y, const float *x, size_t n, agk_stream st)
{
	add_k<<<grid_for(n, 256), 256, 0, st>>>(y, x, n);
	return (int)cudaGetLastError();
}

template <int DT> __global__ void convert_k(void *dst, const float *src, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		if (DT == DT_BF16)
			((__nv_bfloat16 *)dst)[i] = __float2bfloat16_rn(src[i]);
		else
			((__half *)dst)[i] = __float2half_rn(src[i]);
	}
}

extern "C" int agk_convert(void *dst, int dtype, const float *src, size_t n, agk_stream st)
{
	if (dtype == DT_BF16)
		convert_k<DT_BF16><<<grid_for(n, 256), 256, 0, st>>>(dst, src, n);
	else if (dtype == DT_F16)
		convert_k<DT_F16><<<grid_for(n, 256), 256, 0, st>>>(dst, src, n);
	else
		return (int)cudaErrorInvalidValue;
	return (int)cudaGetLastError();
}

/* ---- decode matrix-vector product ----
 * One warp per output row, 8 rows per block.  Decode is bound by reading the
 * weights once, so the vector path loads 16 bytes per lane per step (8
 * bf16/f16 or 4 f32), coalesced along the row; x stays in L1/L2. */

#define MV_ROWS 8

template <int DT>
__global__ void matvec_vec_k(float *y, const void *w, const float *x, const float *bias, int rows, int cols, int acc)
{
	int lane = threadIdx.x & 31, row = blockIdx.x * MV_ROWS + (threadIdx.x >> 5);
	const int per = DT == DT_F32 ? 4 : 8; /* elements per 16-byte load */
	int nv = cols / per;
	const uint4 *wr;
	const float4 *x4 = (const float4 *)x;
	float s = 0.f;

	if (row >= rows)
		return;
	wr = (const uint4 *)w + (size_t)row * nv;
	/* hot loop */
#pragma unroll 4
	for (int i = lane; i < nv; i += 32) {
		uint4 v = __ldg(wr + i);
		if (DT == DT_F32) {
			float4 xv = __ldg(x4 + i);
			s += __uint_as_float(v.x) * xv.x + __uint_as_float(v.y) * xv.y + __uint_as_float(v.z) * xv.z +
			     __uint_as_float(v.w) * xv.w;
		} else {
			float4 xa = __ldg(x4 + 2 * i), xb = __ldg(x4 + 2 * i + 1);
			uint32_t u[4] = {v.x, v.y, v.z, v.w};
			float f[8];
#pragma unroll
			for (int j = 0; j < 4; j++) {
				if (DT == DT_BF16) {
					f[2 * j] = bf16_bits(u[j] & 0xffffu);
					f[2 * j + 1] = bf16_bits(u[j] >> 16);
				} else {
					f[2 * j] = f16_bits((unsigned short)(u[j] & 0xffffu));
					f[2 * j + 1] = f16_bits((unsigned short)(u[j] >> 16));
				}
			}
			s += f[0] * xa.x + f[1] * xa.y + f[2] * xa.z + f[3] * xa.w + f[4] * xb.x + f[5] * xb.y +
			     f[6] * xb.z + f[7] * xb.w;
		}
	}
	s = warp_sum(s);
	if (lane == 0) {
		if (bias)
			s += bias[row];
		y[row] = acc ? y[row] + s : s;
	}
}

template <int DT>
__global__ void matvec_scalar_k(float *y, const void *w, const float *x, const float *bias, int rows, int cols, int acc)
{
	int lane = threadIdx.x & 31, row = blockIdx.x * MV_ROWS + (threadIdx.x >> 5);
	size_t base;
	float s = 0.f;

	if (row >= rows)
		return;
	base = (size_t)row * cols;
	for (int i = lane; i < cols; i += 32) /* hot loop (odd sizes only) */
		s += load_w<DT>(w, base + i) * x[i];
	s = warp_sum(s);
	if (lane == 0) {
		if (bias)
			s += bias[row];
		y[row] = acc ? y[row] + s : s;
	}
}

extern "C" int agk_matvec(float *y, const void *w, int dtype, const float *x, const float *bias, int rows, int cols,
                          int acc, agk_stream st)
{
	unsigned blocks = (unsigned)((rows + MV_ROWS - 1) / MV_ROWS);
	int per = dtype == DT_F32 ? 4 : 8;
	bool vec = cols % per == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;

	if (vec) {
		if (dtype == DT_BF16)
			matvec_vec_k<DT_BF16><<<blocks, 32 * MV_ROWS, 0, st>>>(y, w, x, bias, rows, cols, acc);
		else if (dtype == DT_F16)
			matvec_vec_k<DT_F16><<<blocks, 32 * MV_ROWS, 0, st>>>(y, w, x, bias, rows, cols, acc);
		else
			matvec_vec_k<DT_F32><<<blocks, 32 * MV_ROWS, 0, st>>>(y, w, x, bias, rows, cols, acc);
	} else {
		if (dtype == DT_BF16)
			matvec_scalar_k<DT_BF16><<<blocks, 32 * MV_ROWS, 0, st>>>(y, w, x, bias, rows, cols, acc);
		else if (dtype == DT_F16)
			matvec_scalar_k<DT_F16><<<blocks, 32 * MV_ROWS, 0, st>>>(y, w, x, bias, rows, cols, acc);
		else
			matvec_scalar_k<DT_F32><<<blocks, 32 * MV_ROWS, 0, st>>>(y, w, x, bias, rows, cols, acc);
	}
	return (int)cudaGetLastError();
}

/* ---- quantized matrices (issue 19) ----
 * One warp a row, QT tokens a block column: each lane walks the row's
 * columns with stride 32, dequantizes the weight once and multiplies it
 * into the QT tokens' sums.  The element definitions are runtime/quant.h's
 * (rt_q_weight and its accessors), written again for the device. */
enum { QF_FP8 = 1, QF_INT4 = 2, QL_CT = 0, QL_GPTQ = 1, QL_AWQ = 2, QT = 8, Q_ROWS = 8 };

/* The element math is __host__ __device__ so that test_kernels can check it
 * against rt_q_weight on the CPU of a machine without a GPU. */
static __host__ __device__ __forceinline__ float q_bits(uint32_t u)
{
#ifdef __CUDA_ARCH__
	return __uint_as_float(u);
#else
	float f;
	memcpy(&f, &u, 4);
	return f;
#endif
}

/* f16 bits to f32, exactly (subnormals included) */
static __host__ __device__ __forceinline__ float q_f16(unsigned short h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, man = h & 0x3ffu;
	if (e == 0) {
		float f = (float)man * (1.0f / 16777216.0f);
		return sign ? -f : f;
	}
	return q_bits(e == 31 ? sign | 0x7f800000u | (man << 13) : sign | ((e + 112) << 23) | (man << 13));
}

static __host__ __device__ __forceinline__ float q_f8(uint8_t v, int e4m3)
{
	if (e4m3) {
		if ((v & 0x7f) == 0x7f)
			return q_bits(0x7fc00000u);
		return q_f16((unsigned short)(((v & 0x80u) << 8) | ((v & 0x7fu) << 7))) * 256.0f;
	}
	return q_f16((unsigned short)(v << 8));
}

static __host__ __device__ __forceinline__ float q_scale_at(const agk_qmat &w, size_t i)
{
	if (w.scale_dtype == DT_F32)
		return ((const float *)w.scale)[i];
	if (w.scale_dtype == DT_F16)
		return q_f16(((const unsigned short *)w.scale)[i]);
	return q_bits((uint32_t)((const unsigned short *)w.scale)[i] << 16);
}

static __host__ __device__ __forceinline__ int q_awq_shift(int r)
{
	/* nibble order 0,4,1,5,2,6,3,7: row r%8 sits at bits 4 * pos */
	const int pos[8] = {0, 4, 1, 5, 2, 6, 3, 7};
	return 4 * pos[r & 7];
}

static __host__ __device__ __forceinline__ float q_weight(const agk_qmat &w, int r, int k)
{
	const uint32_t *u32 = (const uint32_t *)w.data;
	if (w.fmt == QF_FP8) {
		uint8_t v = ((const uint8_t *)w.data)[(size_t)r * w.cols + k];
		size_t si = (size_t)(r / w.sr) * w.n_sc + (size_t)(k / w.sc);
		return q_f8(v, w.code_dtype == 3) * q_scale_at(w, si);
	}
	int g = w.g_idx ? ((const int32_t *)w.g_idx)[k] : k / w.sc;
	int nib, z;
	size_t si;
	if (w.layout == QL_CT) {
		nib = (int)((u32[(size_t)r * ((w.cols + 7) / 8) + (size_t)(k / 8)] >> (4 * (k & 7))) & 15);
		si = (size_t)r * w.n_sc + (size_t)g;
		z = w.zero ? (int)((((const uint32_t *)w.zero)[(size_t)(r / 8) * w.n_sc + (size_t)g] >> (4 * (r & 7))) & 15) +
		                 w.zero_add
		           : w.zero_const;
	} else {
		if (w.layout == QL_GPTQ)
			nib = (int)((u32[(size_t)(k / 8) * w.rows + (size_t)r] >> (4 * (k & 7))) & 15);
		else
			nib = (int)((u32[(size_t)k * (w.rows / 8) + (size_t)(r / 8)] >> q_awq_shift(r)) & 15);
		si = (size_t)g * w.rows + (size_t)r;
		if (w.zero) {
			uint32_t zu = ((const uint32_t *)w.zero)[(size_t)g * (w.rows / 8) + (size_t)(r / 8)];
			z = (int)((zu >> (w.layout == QL_AWQ ? q_awq_shift(r) : 4 * (r & 7))) & 15) + w.zero_add;
		} else {
			z = w.zero_const;
		}
	}
	return (float)(nib - z) * q_scale_at(w, si);
}

extern "C" float agk_q_weight_host(const struct agk_qmat *w, int r, int k)
{
	return q_weight(*w, r, k);
}

__global__ void qmatmul_k(float *y, agk_qmat w, const float *x, const float *bias, int T, int acc)
{
	int lane = threadIdx.x & 31;
	int row = blockIdx.x * Q_ROWS + (threadIdx.x >> 5);
	int t0 = blockIdx.y * QT;
	int nt = T - t0 < QT ? T - t0 : QT;
	float s[QT];

	if (row >= w.rows)
		return;
	for (int t = 0; t < QT; t++)
		s[t] = 0.f;
	for (int k = lane; k < w.cols; k += 32) {
		float wv = q_weight(w, row, k);
		for (int t = 0; t < nt; t++)
			s[t] += wv * x[(size_t)(t0 + t) * w.cols + k];
	}
	for (int t = 0; t < nt; t++) {
		float v = warp_sum(s[t]);
		if (lane == 0) {
			if (bias)
				v += bias[row];
			float *o = &y[(size_t)(t0 + t) * w.rows + row];
			*o = acc ? *o + v : v;
		}
	}
}

extern "C" int agk_qmatmul(float *y, const struct agk_qmat *w, const float *x, const float *bias, int T, int acc,
                           agk_stream st)
{
	dim3 grid((unsigned)((w->rows + Q_ROWS - 1) / Q_ROWS), (unsigned)((T + QT - 1) / QT));
	qmatmul_k<<<grid, 32 * Q_ROWS, 0, st>>>(y, *w, x, bias, T, acc);
	return (int)cudaGetLastError();
}
