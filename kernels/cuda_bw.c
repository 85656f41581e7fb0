/* SPDX-License-Identifier: Apache-2.0 */
/* agrt-cuda-bw: device bandwidths for tests/gpu/check.sh.
 *   d2d_gbs          device-to-device cudaMemcpy, (read + write bytes) / s:
 *                    the HBM bandwidth a decode step can use to stream the weights
 *   h2d_pinned_gbs   host-to-device from cudaHostAlloc memory: the ceiling of
 *                    the weight upload (load GB/s)
 * Prints one JSON object.  Exit 0, or 5 when there is no usable device. */
#include <cuda_runtime.h>
#include <stdio.h>

#define CK(call)                                                                                                       \
	do {                                                                                                           \
		cudaError_t e_ = (call);                                                                               \
		if (e_ != cudaSuccess) {                                                                               \
			fprintf(stderr, "agrt-cuda-bw: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,                    \
			        cudaGetErrorString(e_));                                                               \
			return 5;                                                                                      \
		}                                                                                                      \
	} while (0)

static int run(void)
{
	size_t n = (size_t)1 << 30; /* 1 GiB: far past the L2 */
	struct cudaDeviceProp p;
	void *a, *b, *h;
	cudaEvent_t e0, e1;
	float ms_d2d, ms_h2d;
	const int reps_d2d = 20, reps_h2d = 5;

	CK(cudaSetDevice(0));
	CK(cudaGetDeviceProperties(&p, 0));
	CK(cudaMalloc(&a, n));
	CK(cudaMalloc(&b, n));
	CK(cudaHostAlloc(&h, n, cudaHostAllocDefault));
	CK(cudaMemset(a, 1, n));
	CK(cudaEventCreate(&e0));
	CK(cudaEventCreate(&e1));
	CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice)); /* warm-up */
	CK(cudaEventRecord(e0, 0));
	for (int i = 0; i < reps_d2d; i++)
		CK(cudaMemcpyAsync(i & 1 ? a : b, i & 1 ? b : a, n, cudaMemcpyDeviceToDevice, 0));
	CK(cudaEventRecord(e1, 0));
	CK(cudaEventSynchronize(e1));
	CK(cudaEventElapsedTime(&ms_d2d, e0, e1));
	CK(cudaMemcpy(a, h, n, cudaMemcpyHostToDevice)); /* warm-up */
	CK(cudaEventRecord(e0, 0));
	for (int i = 0; i < reps_h2d; i++)
		CK(cudaMemcpyAsync(a, h, n, cudaMemcpyHostToDevice, 0));
	CK(cudaEventRecord(e1, 0));
	CK(cudaEventSynchronize(e1));
	CK(cudaEventElapsedTime(&ms_h2d, e0, e1));
	printf("{\"device\":\"%s\",\"sm\":%d%d,\"d2d_gbs\":%.1f,\"h2d_pinned_gbs\":%.2f}\n", p.name, p.major, p.minor,
	       2.0 * n * reps_d2d / (ms_d2d * 1e6), (double)n * reps_h2d / (ms_h2d * 1e6));
	cudaFree(a);
	cudaFree(b);
	cudaFreeHost(h);
	return 0;
}

int main(void)
{
	return run();
}
