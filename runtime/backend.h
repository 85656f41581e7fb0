/* Backend interface: the few operations the forward pass needs.  The CPU
 * backend implements them here; a CUDA backend (kernels/) can provide the
 * same table.  All activations are f32, row-major; weights stay in their
 * stored dtype and are converted inside the kernels. */
#ifndef RT_BACKEND_H
#define RT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

/* A weight matrix [rows][cols] in dtype (enum rt_dtype), row-major. */
struct rt_weight {
        const void *data;
        int dtype;
        int rows, cols;
};

struct rt_backend;

struct rt_backend_ops {
        const char *name;
        void (*free)(struct rt_backend *b);
        /* y[T][w.rows] = (accumulate ? y : 0) + x[T][w.cols] . w^T + bias[w.rows] (bias may be NULL) */
        void (*matmul)(struct rt_backend *b, float *y, const float *x, const struct rt_weight *w, const float *bias,
                       int T, bool accumulate);
        /* causal attention for T queries at positions pos0..pos0+T-1 against cache rows [0, pos0+T);
         * q, out: [T][nh*hd]; kc, vc: [ctx][nkv*hd]; window > 0 hides keys with q_pos - k_pos >= window */
        void (*attention)(struct rt_backend *b, float *out, const float *q, const float *kc, const float *vc, int T,
                          int pos0, int nh, int nkv, int hd, int window);
};

struct rt_backend {
        const struct rt_backend_ops *ops;
        int n_threads;
        void *priv;
};

int rt_backend_cpu_new(int n_threads, struct rt_backend **ret_b);
/* Name of the SIMD path picked at runtime ("avx2" or "generic"). */
const char *rt_backend_cpu_simd(void);

#endif
