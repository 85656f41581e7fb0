/* SPDX-License-Identifier: Apache-2.0 */
/* CUDA whole-forward backend (issue 10): uploads a model bound by
 * runtime/model.c to device 0 and runs complete forward chunks there.
 *
 * Memory (device):
 *  - weight matrices in their stored dtype (bf16, f16 or f32) in one arena,
 *    each 256-byte aligned; a tied lm_head shares the embedding;
 *  - norm weights, biases and the RoPE frequencies as f32 (model.c's copies);
 *  - per session: the KV cache in bf16 [layer][k|v][ctx][kv_heads*head_dim]
 *    and f32 activations for RT_DEV_CHUNK tokens.
 * Decode (T = 1) uses agk_matvec; a prompt chunk converts the activations to
 * the weight's 16-bit type and runs cublasGemmEx with f32 accumulation and f32
 * output (plain SGEMM for f32 weights, no TF32).
 *
 * Every CUDA and cuBLAS call is checked: a failure becomes an rt_error of
 * class RT_ERR_DEVICE naming file:line, the call and CUDA's error string.
 * Running out of device memory says how much was needed and how much was
 * free (cudaMemGetInfo).  Nothing here prints or aborts. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"
#include "cuda_kernels.h"
#include "dtype.h"
#include "rt_error.h"
#include "safetensors.h"

#define DEV             0           /* device used (the first one) */
#define PIECE           (16u << 20) /* bytes per pread / H2D copy */
#define DEFAULT_READERS 4
#define MAX_READERS     16
#define ALIGN           256

static int cu_fail(struct rt_error *err, cudaError_t e, const char *what, const char *file, int line)
{
	return rt_fail(err, RT_ERR_DEVICE, e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO, "%s:%d: %s: %s (%s)", file,
	               line, what, cudaGetErrorString(e), cudaGetErrorName(e));
}

static int cb_fail(struct rt_error *err, cublasStatus_t s, const char *what, const char *file, int line)
{
	return rt_fail(err, RT_ERR_DEVICE, -EIO, "%s:%d: %s: %s", file, line, what, cublasGetStatusString(s));
}

/* Check a CUDA runtime call (or a launcher's int result); return an rt_error. */
#define CK(call)                                                                                                       \
	do {                                                                                                           \
		cudaError_t ck_e_ = (cudaError_t)(call);                                                               \
		if (ck_e_ != cudaSuccess)                                                                              \
			return cu_fail(err, ck_e_, #call, __FILE__, __LINE__);                                         \
	} while (0)
#define CB(call)                                                                                                       \
	do {                                                                                                           \
		cublasStatus_t cb_s_ = (call);                                                                         \
		if (cb_s_ != CUBLAS_STATUS_SUCCESS)                                                                    \
			return cb_fail(err, cb_s_, #call, __FILE__, __LINE__);                                         \
	} while (0)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* cudaMalloc with the out-of-memory message the issue asks for. */
static int dev_alloc(void **p, size_t n, const char *what, struct rt_error *err)
{
	cudaError_t e = cudaMalloc(p, n ? n : 1);
	size_t fr = 0, tot = 0;

	if (e == cudaSuccess)
		return 0;
	(void)cudaGetLastError(); /* allocation errors are not sticky; clear it */
	if (e != cudaErrorMemoryAllocation)
		return cu_fail(err, e, "cudaMalloc", __FILE__, __LINE__);
	cudaMemGetInfo(&fr, &tot);
	return rt_fail(err, RT_ERR_DEVICE, -ENOMEM,
	               "CUDA out of memory: %s needs %.1f MiB, %.1f MiB free of %.1f MiB on device %d", what,
	               n / 1048576.0, fr / 1048576.0, tot / 1048576.0, DEV);
}

/* ---- model ---- */

struct dmat {
	void *d; /* [rows][cols] in dtype, device */
	int dtype, rows, cols;
	bool quant;        /* quantized: q describes it (its parts in the weight arena) */
	struct agk_qmat q;
};

struct dlayer {
	float *attn_norm, *ffn_norm; /* [hidden] */
	float *q_norm, *k_norm;      /* [head_dim] or NULL */
	float *bq, *bk, *bv, *bo;    /* [nh*hd], [nkv*hd], [nkv*hd], [hidden] or NULL */
	struct dmat wq, wk, wv, wo, wg, wu, wd;
};

struct cuda_model {
	struct rt_config cfg;
	char *warena;     /* all weight matrices */
	float *varena;    /* all f32 vectors */
	struct dlayer *L; /* [n_layers] */
	struct dmat embed, lm_head;
	float *final_norm; /* [hidden] */
	float *inv_freq;   /* [head_dim/2] */
	cublasHandle_t blas;
	int max_conv_cols; /* widest GEMM input, for the 16-bit conversion buffer */
};

static int device_count(char *why, size_t len)
{
	struct cudaDeviceProp p;
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);

	if (e != cudaSuccess) {
		(void)cudaGetLastError();
		if (why && len)
			snprintf(why, len, "%s", cudaGetErrorString(e));
		return 0;
	}
	if (n <= 0) {
		if (why && len)
			snprintf(why, len, "no CUDA device");
		return 0;
	}
	if (cudaGetDeviceProperties(&p, DEV) != cudaSuccess) {
		(void)cudaGetLastError();
		if (why && len)
			snprintf(why, len, "cannot query CUDA device %d", DEV);
		return 0;
	}
	/* the fat binary has sm_80 and sm_90 code and compute_90 PTX */
	if (p.major < 8) {
		if (why && len)
			snprintf(why, len, "CUDA device %d (%s) is sm_%d%d; this build needs sm_80 or newer", DEV,
			         p.name, p.major, p.minor);
		return 0;
	}
	return n;
}

static void model_free(void *dmv)
{
	struct cuda_model *m = dmv;

	if (!m)
		return;
	if (m->blas)
		cublasDestroy(m->blas);
	cudaFree(m->warena);
	cudaFree(m->varena);
	free(m->L);
	free(m);
}

/* A quantized matrix's parts (codes, scales, zero points, g_idx) as the
 * checkpoint stores them, copied from the host mapping to the arena. */
struct qupload {
	const struct rt_weight *w;
	struct dmat *dst;
	size_t off[4], n[4]; /* in the weight arena; n 0: part absent */
};

/* Byte sizes of w's parts, as runtime/quant.c validated them (GPTQ and AWQ
 * need rows and cols multiples of 8). */
static void qparts(const struct rt_weight *w, size_t n[4])
{
	const struct rt_wquant *q = &w->q;
	size_t R = (size_t)w->rows, C = (size_t)w->cols, ng = (size_t)q->n_sc, es = rt_dtype_size(q->scale_dtype);
	if (q->fmt == RT_WF_FP8) {
		n[0] = R * C;
		n[1] = (R + q->sr - 1) / q->sr * ng * es;
		n[2] = 0;
	} else if (q->layout == RT_I4_CT) {
		n[0] = R * ((C + 7) / 8) * 4;
		n[1] = R * ng * es;
		n[2] = q->zero ? (R + 7) / 8 * ng * 4 : 0;
	} else {
		n[0] = (q->layout == RT_I4_GPTQ ? C / 8 * R : C * (R / 8)) * 4;
		n[1] = ng * R * es;
		n[2] = q->zero ? ng * (R / 8) * 4 : 0;
	}
	n[3] = q->fmt == RT_WF_INT4 && q->g_idx ? C * 4 : 0;
}

/* One matrix to upload: host description and where it goes. */
struct upload {
	const struct rt_weight *w;
	struct dmat *dst;
	size_t off; /* in the weight arena */
};

struct piece {
	int fd;
	uint64_t foff;
	size_t n;
	char *dst; /* device */
	const char *path;
};

struct loader {
	struct piece *p;
	int np;
	atomic_int next;
	atomic_int failed;
	char *pinned; /* [n_threads][2][PIECE], cudaHostAlloc */
	pthread_mutex_t mu;
	struct rt_error err; /* first failure */
};

struct reader_arg {
	struct loader *ld;
	int idx;
	pthread_t th;
	bool started;
};

static void loader_fail(struct loader *ld, const struct rt_error *e)
{
	pthread_mutex_lock(&ld->mu);
	if (!atomic_load(&ld->failed))
		ld->err = *e;
	atomic_store(&ld->failed, 1);
	pthread_mutex_unlock(&ld->mu);
}

/* Reader thread: pread a piece into one of its two pinned buffers and queue
 * its H2D copy on the thread's own stream, then read the next piece into the
 * other buffer while that copy runs.  Several readers keep the disk (page
 * cache) and PCIe busy at once. */
static int reader_run(struct loader *ld, int idx, struct rt_error *err)
{
	char *buf[2] = {ld->pinned + (size_t)idx * 2 * PIECE, ld->pinned + ((size_t)idx * 2 + 1) * PIECE};
	cudaStream_t st = NULL;
	cudaEvent_t ev[2] = {NULL, NULL};
	int r = 0;

	CK(cudaSetDevice(DEV));
	CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
	if (cudaEventCreateWithFlags(&ev[0], cudaEventDisableTiming) != cudaSuccess ||
	    cudaEventCreateWithFlags(&ev[1], cudaEventDisableTiming) != cudaSuccess) {
		r = cu_fail(err, cudaGetLastError(), "cudaEventCreateWithFlags", __FILE__, __LINE__);
		goto out;
	}
	for (int k = 0; !atomic_load(&ld->failed); k++) {
		int i = atomic_fetch_add(&ld->next, 1), b = k & 1;
		const struct piece *p;
		size_t got = 0;
		cudaError_t e;

		if (i >= ld->np)
			break;
		p = &ld->p[i];
		/* the copy that last used this buffer must be done */
		if (k >= 2 && (e = cudaEventSynchronize(ev[b])) != cudaSuccess) {
			r = cu_fail(err, e, "cudaEventSynchronize", __FILE__, __LINE__);
			goto out;
		}
		while (got < p->n) {
			ssize_t n = pread(p->fd, buf[b] + got, p->n - got, (off_t)(p->foff + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = rt_fail(err, RT_ERR_IO, n < 0 ? -errno : -EIO, "%s: read at offset %llu: %s",
				            p->path, (unsigned long long)(p->foff + got),
				            n < 0 ? strerror(errno) : "unexpected end of file");
				goto out;
			}
			got += (size_t)n;
		}
		if ((e = cudaMemcpyAsync(p->dst, buf[b], p->n, cudaMemcpyHostToDevice, st)) != cudaSuccess ||
		    (e = cudaEventRecord(ev[b], st)) != cudaSuccess) {
			r = cu_fail(err, e, "cudaMemcpyAsync(weights)", __FILE__, __LINE__);
			goto out;
		}
	}
out:
	if (st) {
		cudaError_t e = cudaStreamSynchronize(st);
		if (e != cudaSuccess && r == 0)
			r = cu_fail(err, e, "cudaStreamSynchronize(upload)", __FILE__, __LINE__);
		cudaStreamDestroy(st);
	}
	if (ev[0])
		cudaEventDestroy(ev[0]);
	if (ev[1])
		cudaEventDestroy(ev[1]);
	return r;
}

static void *reader_main(void *arg)
{
	struct reader_arg *a = arg;
	struct rt_error e = {0};

	if (reader_run(a->ld, a->idx, &e) < 0)
		loader_fail(a->ld, &e);
	return NULL;
}

/* *ret_ms: wall time from the first read to the last copy done (the
 * staging allocation before it is not counted) */
static int upload_matrices(const struct rt_dev_model_desc *d, struct cuda_model *m, struct upload *up, int nup,
                           int n_readers, double *ret_ms, struct rt_error *err)
{
	struct loader ld = {0};
	struct reader_arg ra[MAX_READERS] = {0};
	const char *paths[64];
	double t0;
	int fds[64], nfd = 0, np = 0, r = 0;

	for (int i = 0; i < 64; i++)
		fds[i] = -1;
	pthread_mutex_init(&ld.mu, NULL);
	for (int i = 0; i < nup; i++)
		np +=
		    (int)(((size_t)up[i].w->rows * up[i].w->cols * rt_dtype_size(up[i].w->dtype) + PIECE - 1) / PIECE);
	ld.p = calloc(np ? np : 1, sizeof(*ld.p));
	if (!ld.p) {
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < nup; i++) {
		const char *path;
		uint64_t foff;
		size_t n = (size_t)up[i].w->rows * up[i].w->cols * rt_dtype_size(up[i].w->dtype);
		int fd = -1;

		if (d->locate(d->st, up[i].w->src, &path, &foff) < 0) {
			r = rt_fail(err, RT_ERR_INTERNAL, -EINVAL, "weight outside its file mapping");
			goto out;
		}
		/* shards: one descriptor per file (the mapping's path string identifies it) */
		for (int j = 0; j < nfd; j++)
			if (paths[j] == path)
				fd = fds[j];
		if (fd < 0) {
			if (nfd == 64) {
				/* more shards than cached descriptors: reuse the oldest slot */
				close(fds[0]);
				memmove(fds, fds + 1, sizeof(int) * 63);
				memmove(paths, paths + 1, sizeof(char *) * 63);
				nfd--;
				fds[63] = -1;
			}
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				r = rt_fail(err, RT_ERR_IO, -errno, "%s: %s", path, strerror(errno));
				goto out;
			}
			posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
			paths[nfd] = path;
			fds[nfd++] = fd;
		}
		for (size_t o = 0; o < n; o += PIECE) {
			struct piece *p = &ld.p[ld.np++];
			p->fd = fd;
			p->foff = foff + o;
			p->n = n - o < PIECE ? n - o : PIECE;
			p->dst = m->warena + up[i].off + o;
			p->path = path;
		}
	}
	if (n_readers > ld.np)
		n_readers = ld.np ? ld.np : 1;
	{
		cudaError_t e = cudaHostAlloc((void **)&ld.pinned, (size_t)n_readers * 2 * PIECE, cudaHostAllocDefault);
		if (e != cudaSuccess) {
			(void)cudaGetLastError();
			ld.pinned = NULL;
			r = cu_fail(err, e, "cudaHostAlloc(staging buffers)", __FILE__, __LINE__);
			goto out;
		}
	}
	t0 = now_ms();
	for (int i = 0; i < n_readers; i++) {
		ra[i].ld = &ld;
		ra[i].idx = i;
		if (pthread_create(&ra[i].th, NULL, reader_main, &ra[i]) != 0) {
			struct rt_error e;
			rt_fail(&e, RT_ERR_INTERNAL, -EAGAIN, "cannot start upload thread");
			loader_fail(&ld, &e);
			break;
		}
		ra[i].started = true;
	}
	for (int i = 0; i < n_readers; i++)
		if (ra[i].started)
			pthread_join(ra[i].th, NULL);
	*ret_ms = now_ms() - t0;
	if (atomic_load(&ld.failed)) {
		if (err)
			*err = ld.err;
		r = ld.err.code == RT_ERR_IO ? -EIO : ld.err.code == RT_ERR_INTERNAL ? -EAGAIN : -ENODEV;
	}
out:
	if (ld.pinned)
		cudaFreeHost(ld.pinned);
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	free(ld.p);
	pthread_mutex_destroy(&ld.mu);
	return r;
}

/* f32 host vectors -> slots in one device arena.  `n` counts floats. */
struct vslot {
	const float *h;
	float **dst;
	size_t n, off;
};

static int model_new(const struct rt_dev_model_desc *d, void **ret_dm, struct rt_dev_load_stats *stats,
                     struct rt_error *err)
{
	const struct rt_config *c = d->cfg;
	struct cuda_model *m;
	struct upload *up = NULL;
	struct qupload *qu = NULL;
	struct vslot *vs = NULL;
	float *hv = NULL;
	struct cudaDeviceProp prop;
	char why[200];
	int nup = 0, nqu = 0, nvs = 0, r, n_readers;
	size_t wbytes = 0, vfloats = 0, upbytes = 0;

	if (device_count(why, sizeof(why)) <= 0)
		return rt_fail(err, RT_ERR_DEVICE, -ENODEV, "no usable CUDA device: %s", why);
	/* quantized matrices (issue 19) run through agk_qmatmul; the embedding
	 * is looked up by row and must be dense (model.c refuses it earlier) */
	if (d->embed->q.fmt != RT_WF_DENSE)
		return rt_fail(err, RT_ERR_DEVICE, -EOPNOTSUPP, "the CUDA backend does not run quantized embeddings");
	CK(cudaSetDevice(DEV));
	CK(cudaGetDeviceProperties(&prop, DEV));
	m = calloc(1, sizeof(*m));
	up = calloc(2 + 7 * (size_t)c->n_layers, sizeof(*up));
	qu = calloc(2 + 7 * (size_t)c->n_layers, sizeof(*qu));
	vs = calloc(2 + 10 * (size_t)c->n_layers, sizeof(*vs));
	if (!m || !up || !vs || !qu) {
		free(m);
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		goto fail_nomodel;
	}
	m->cfg = *c;
	m->L = calloc(c->n_layers, sizeof(*m->L));
	if (!m->L) {
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		goto fail;
	}

	/* plan the arenas */
#define MAT(hw, dm)                                                                                                    \
	do {                                                                                                           \
		if ((hw)->q.fmt != RT_WF_DENSE) {                                                                      \
			struct qupload *qp = &qu[nqu++];                                                               \
			qp->w = (hw);                                                                                  \
			qp->dst = (dm);                                                                                \
			qparts((hw), qp->n);                                                                           \
			for (int p_ = 0; p_ < 4; p_++) {                                                               \
				qp->off[p_] = wbytes;                                                                  \
				wbytes += (qp->n[p_] + ALIGN - 1) / ALIGN * ALIGN;                                     \
			}                                                                                              \
			break;                                                                                         \
		}                                                                                                      \
		up[nup].w = (hw);                                                                                      \
		up[nup].dst = (dm);                                                                                    \
		up[nup].off = wbytes;                                                                                  \
		wbytes += ((size_t)(hw)->rows * (hw)->cols * rt_dtype_size((hw)->dtype) + ALIGN - 1) / ALIGN * ALIGN;  \
		nup++;                                                                                                 \
	} while (0)
#define VEC(hp, dp, count)                                                                                             \
	do {                                                                                                           \
		if (hp) {                                                                                              \
			vs[nvs].h = (hp);                                                                              \
			vs[nvs].dst = (dp);                                                                            \
			vs[nvs].n = (count);                                                                           \
			vs[nvs].off = vfloats;                                                                         \
			vfloats += ((count) + 63) / 64 * 64;                                                           \
			nvs++;                                                                                         \
		}                                                                                                      \
	} while (0)
	{
		size_t H = c->hidden, hd = c->head_dim, qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
		MAT(d->embed, &m->embed);
		/* tied: same bytes, one copy */
		if (d->lm_head->data != d->embed->data)
			MAT(d->lm_head, &m->lm_head);
		VEC(d->final_norm, &m->final_norm, H);
		VEC(d->inv_freq, &m->inv_freq, hd / 2);
		for (int l = 0; l < c->n_layers; l++) {
			const struct rt_layer *hl = &d->layers[l];
			struct dlayer *dl = &m->L[l];
			MAT(&hl->wq, &dl->wq);
			MAT(&hl->wk, &dl->wk);
			MAT(&hl->wv, &dl->wv);
			MAT(&hl->wo, &dl->wo);
			MAT(&hl->wg, &dl->wg);
			MAT(&hl->wu, &dl->wu);
			MAT(&hl->wd, &dl->wd);
			VEC(hl->attn_norm, &dl->attn_norm, H);
			VEC(hl->ffn_norm, &dl->ffn_norm, H);
			VEC(hl->q_norm, &dl->q_norm, hd);
			VEC(hl->k_norm, &dl->k_norm, hd);
			VEC(hl->bq, &dl->bq, qd);
			VEC(hl->bk, &dl->bk, kvd);
			VEC(hl->bv, &dl->bv, kvd);
			VEC(hl->bo, &dl->bo, H);
		}
	}
#undef MAT
#undef VEC
	{
		size_t fr = 0, tot = 0;
		cudaError_t e = cudaMemGetInfo(&fr, &tot);
		if (e != cudaSuccess) {
			r = cu_fail(err, e, "cudaMemGetInfo", __FILE__, __LINE__);
			goto fail;
		}
		if (wbytes + vfloats * 4 > fr) {
			r = rt_fail(err, RT_ERR_DEVICE, -ENOMEM,
			            "CUDA out of memory: the weights need %.1f MiB, %.1f MiB free of %.1f MiB on "
			            "device %d (%s)",
			            (wbytes + vfloats * 4) / 1048576.0, fr / 1048576.0, tot / 1048576.0, DEV,
			            prop.name);
			goto fail;
		}
	}
	if ((r = dev_alloc((void **)&m->warena, wbytes, "the weight matrices", err)) < 0 ||
	    (r = dev_alloc((void **)&m->varena, vfloats * 4, "the norm weights and biases", err)) < 0)
		goto fail;
	for (int i = 0; i < nup; i++) {
		struct dmat *dm = up[i].dst;
		dm->d = m->warena + up[i].off;
		dm->dtype = up[i].w->dtype;
		dm->rows = up[i].w->rows;
		dm->cols = up[i].w->cols;
		upbytes += (size_t)dm->rows * dm->cols * rt_dtype_size(dm->dtype);
	}
	for (int i = 0; i < nqu; i++) {
		const struct rt_weight *w = qu[i].w;
		const void *src[4] = {w->data, w->q.scale, w->q.zero, w->q.g_idx};
		void *dst[4];
		struct dmat *dm = qu[i].dst;
		for (int p = 0; p < 4; p++) {
			dst[p] = qu[i].n[p] ? m->warena + qu[i].off[p] : NULL;
			if (qu[i].n[p] && cudaMemcpy(dst[p], src[p], qu[i].n[p], cudaMemcpyHostToDevice) != cudaSuccess) {
				r = cu_fail(err, cudaGetLastError(), "cudaMemcpy(quantized weights)", __FILE__, __LINE__);
				goto fail;
			}
			upbytes += qu[i].n[p];
		}
		dm->d = dst[0];
		dm->dtype = w->dtype;
		dm->rows = w->rows;
		dm->cols = w->cols;
		dm->quant = true;
		dm->q = (struct agk_qmat){.data = dst[0],
		                          .scale = dst[1],
		                          .zero = dst[2],
		                          .g_idx = dst[3],
		                          .fmt = w->q.fmt,
		                          .code_dtype = w->dtype,
		                          .layout = w->q.layout,
		                          .scale_dtype = w->q.scale_dtype,
		                          .sr = w->q.sr,
		                          .sc = w->q.sc,
		                          .n_sc = w->q.n_sc,
		                          .zero_const = w->q.zero_const,
		                          .zero_add = w->q.zero_add,
		                          .rows = w->rows,
		                          .cols = w->cols};
	}
	if (d->lm_head->data == d->embed->data)
		m->lm_head = m->embed;
	/* vectors: one staging copy, one memcpy */
	hv = calloc(vfloats ? vfloats : 1, sizeof(float));
	if (!hv) {
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < nvs; i++) {
		memcpy(hv + vs[i].off, vs[i].h, vs[i].n * sizeof(float));
		*vs[i].dst = m->varena + vs[i].off;
	}
	if (cudaMemcpy(m->varena, hv, vfloats * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) {
		r = cu_fail(err, cudaGetLastError(), "cudaMemcpy(vectors)", __FILE__, __LINE__);
		goto fail;
	}
	m->max_conv_cols = c->hidden;
	if (c->intermediate > m->max_conv_cols)
		m->max_conv_cols = c->intermediate;
	if (c->n_heads * c->head_dim > m->max_conv_cols)
		m->max_conv_cols = c->n_heads * c->head_dim;

	n_readers = d->n_threads > 0 ? d->n_threads : DEFAULT_READERS;
	if (n_readers > MAX_READERS)
		n_readers = MAX_READERS;
	r = upload_matrices(d, m, up, nup, n_readers, &stats->load_ms, err);
	if (r < 0)
		goto fail;
	{
		cublasStatus_t s = cublasCreate(&m->blas);
		if (s != CUBLAS_STATUS_SUCCESS) {
			m->blas = NULL;
			r = cb_fail(err, s, "cublasCreate", __FILE__, __LINE__);
			goto fail;
		}
	}
	snprintf(stats->name, sizeof(stats->name), "cuda/%.26s", prop.name);
	stats->upload_bytes = upbytes;
	stats->device_bytes = wbytes + vfloats * 4;
	stats->n_threads = n_readers;
	free(up);
	free(qu);
	free(vs);
	free(hv);
	*ret_dm = m;
	return 0;
fail:
	model_free(m);
fail_nomodel:
	free(up);
	free(qu);
	free(vs);
	free(hv);
	return r;
}

/* ---- session ---- */

struct cuda_session {
	struct cuda_model *m;
	int max_ctx;
	cudaStream_t st;
	uint16_t *kv;   /* bf16 [n_layers][2][max_ctx][kvd] */
	float *x, *xn;  /* [CHUNK][hidden] */
	float *q, *att; /* [CHUNK][nh*hd] */
	float *k, *v;   /* [CHUNK][kvd] */
	float *g, *u;   /* [CHUNK][inter] */
	float *logits;  /* [CHUNK][vocab] */
	void *xc;       /* [CHUNK][max_conv_cols] f16/bf16 GEMM operand */
	int32_t *ids;   /* [CHUNK] */
	size_t bytes;
};

static void session_free(void *dsv)
{
	struct cuda_session *s = dsv;

	if (!s)
		return;
	if (s->st)
		cudaStreamSynchronize(s->st);
	cudaFree(s->kv);
	cudaFree(s->x);
	if (s->st)
		cudaStreamDestroy(s->st);
	free(s);
}

static int session_new(void *dmv, int max_ctx, void **ret_ds, struct rt_error *err)
{
	struct cuda_model *m = dmv;
	const struct rt_config *c = &m->cfg;
	struct cuda_session *s;
	size_t CH = RT_DEV_CHUNK, kvd = (size_t)c->n_kv_heads * c->head_dim, qd = (size_t)c->n_heads * c->head_dim;
	size_t kvbytes = (size_t)c->n_layers * 2 * max_ctx * kvd * 2;
	size_t nf[9] = {CH * c->hidden,       CH * c->hidden,       CH * qd,      CH * qd, CH * kvd, CH * kvd,
	                CH * c->intermediate, CH * c->intermediate, CH * c->vocab};
	float **dst[9];
	size_t act = 0;
	char *base;
	char what[96];
	int r;

	CK(cudaSetDevice(DEV));
	s = calloc(1, sizeof(*s));
	if (!s)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	s->m = m;
	s->max_ctx = max_ctx;
	dst[0] = &s->x;
	dst[1] = &s->xn;
	dst[2] = &s->q;
	dst[3] = &s->att;
	dst[4] = &s->k;
	dst[5] = &s->v;
	dst[6] = &s->g;
	dst[7] = &s->u;
	dst[8] = &s->logits;
	for (int i = 0; i < 9; i++)
		act += (nf[i] * 4 + ALIGN - 1) / ALIGN * ALIGN;
	act += (CH * m->max_conv_cols * 2 + ALIGN - 1) / ALIGN * ALIGN + CH * 4;
	snprintf(what, sizeof(what), "a %d-token KV cache (%.1f MiB)", max_ctx, kvbytes / 1048576.0);
	if ((r = dev_alloc((void **)&s->kv, kvbytes, what, err)) < 0)
		goto fail;
	if ((r = dev_alloc((void **)&base, act, "the session's activations", err)) < 0)
		goto fail;
	/* s->x owns the activation block (freed through it) */
	for (int i = 0; i < 9; i++) {
		*dst[i] = (float *)base;
		base += (nf[i] * 4 + ALIGN - 1) / ALIGN * ALIGN;
	}
	s->xc = base;
	base += (CH * m->max_conv_cols * 2 + ALIGN - 1) / ALIGN * ALIGN;
	s->ids = (int32_t *)base;
	s->bytes = kvbytes + act;
	if (cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking) != cudaSuccess) {
		s->st = NULL;
		r = cu_fail(err, cudaGetLastError(), "cudaStreamCreateWithFlags", __FILE__, __LINE__);
		goto fail;
	}
	*ret_ds = s;
	return 0;
fail:
	session_free(s);
	return r;
}

/* y[T][w.rows] = (acc ? y : 0) + x[T][w.cols] . w^T + bias */
static int mm(struct cuda_session *s, float *y, const float *x, const struct dmat *w, const float *bias, int T,
              bool acc, struct rt_error *err)
{
	static const float one = 1.0f, zero = 0.0f;
	cudaDataType dt;
	const void *B = x;

	if (w->quant) {
		CK(agk_qmatmul(y, &w->q, x, bias, T, acc, s->st));
		return 0;
	}
	if (T == 1) {
		CK(agk_matvec(y, w->d, w->dtype, x, bias, w->rows, w->cols, acc, s->st));
		return 0;
	}
	if (w->dtype == RT_F32) {
		dt = CUDA_R_32F;
	} else {
		dt = w->dtype == RT_BF16 ? CUDA_R_16BF : CUDA_R_16F;
		CK(agk_convert(s->xc, w->dtype, x, (size_t)T * w->cols, s->st));
		B = s->xc;
	}
	/* row-major y[T][rows] is column-major rows x T: y = W (rows x cols) . x^T,
	 * W row-major is the column-major cols x rows matrix, hence OP_T */
	CB(cublasGemmEx(s->m->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, T, w->cols, &one, w->d, dt, w->cols, B, dt,
	                w->cols, acc ? &one : &zero, y, CUDA_R_32F, w->rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
	if (bias)
		CK(agk_add_bias(y, bias, T, w->rows, s->st));
	return 0;
}

static int forward(void *dsv, const int32_t *ids, int T, int pos0, float *logits, bool all, struct rt_error *err)
{
	struct cuda_session *s = dsv;
	struct cuda_model *m = s->m;
	const struct rt_config *c = &m->cfg;
	int H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, V = c->vocab;
	size_t qd = (size_t)nh * hd, kvd = (size_t)nkv * hd;
	float eps = (float)c->rms_eps;
	int r;

	if (T < 1 || T > RT_DEV_CHUNK || pos0 < 0 || pos0 + T > s->max_ctx)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "bad device forward range");
	CK(cudaSetDevice(DEV));
	CB(cublasSetStream(m->blas, s->st));
	CK(cudaMemcpyAsync(s->ids, ids, sizeof(int32_t) * T, cudaMemcpyHostToDevice, s->st));
	CK(agk_embed(s->x, m->embed.d, m->embed.dtype, s->ids, T, H, s->st));
	for (int l = 0; l < c->n_layers; l++) {
		const struct dlayer *L = &m->L[l];
		uint16_t *kc = s->kv + (size_t)l * 2 * s->max_ctx * kvd; /* [max_ctx][kvd] */
		uint16_t *vc = kc + (size_t)s->max_ctx * kvd;            /* [max_ctx][kvd] */

		CK(agk_rmsnorm(s->xn, s->x, L->attn_norm, T, H, eps, s->st));
		if ((r = mm(s, s->q, s->xn, &L->wq, L->bq, T, false, err)) < 0 ||
		    (r = mm(s, s->k, s->xn, &L->wk, L->bk, T, false, err)) < 0 ||
		    (r = mm(s, s->v, s->xn, &L->wv, L->bv, T, false, err)) < 0)
			return r;
		if (L->q_norm) {
			CK(agk_rmsnorm(s->q, s->q, L->q_norm, T * nh, hd, eps, s->st));
			CK(agk_rmsnorm(s->k, s->k, L->k_norm, T * nkv, hd, eps, s->st));
		}
		CK(agk_rope(s->q, T, nh, hd, (int)qd, pos0, m->inv_freq, s->st));
		CK(agk_rope(s->k, T, nkv, hd, (int)kvd, pos0, m->inv_freq, s->st));
		CK(agk_kv_store(kc, vc, s->k, s->v, T, (int)kvd, pos0, s->st));
		CK(agk_attention(s->att, s->q, kc, vc, T, pos0, nh, nkv, hd, c->sliding_window, s->st));
		/* residual: the projection accumulates into x */
		if ((r = mm(s, s->x, s->att, &L->wo, L->bo, T, true, err)) < 0)
			return r;
		CK(agk_rmsnorm(s->xn, s->x, L->ffn_norm, T, H, eps, s->st));
		if ((r = mm(s, s->g, s->xn, &L->wg, NULL, T, false, err)) < 0 ||
		    (r = mm(s, s->u, s->xn, &L->wu, NULL, T, false, err)) < 0)
			return r;
		CK(agk_swiglu(s->g, s->u, (size_t)T * c->intermediate, s->st));
		if ((r = mm(s, s->x, s->g, &L->wd, NULL, T, true, err)) < 0)
			return r;
	}
	if (logits) {
		int rows = all ? T : 1;
		const float *xl = all ? s->x : s->x + (size_t)(T - 1) * H;
		CK(agk_rmsnorm(s->xn, xl, m->final_norm, rows, H, eps, s->st));
		if ((r = mm(s, s->logits, s->xn, &m->lm_head, NULL, rows, false, err)) < 0)
			return r;
		CK(cudaMemcpyAsync(logits, s->logits, sizeof(float) * rows * (size_t)V, cudaMemcpyDeviceToHost, s->st));
	}
	/* kernel faults surface here at the latest */
	CK(cudaStreamSynchronize(s->st));
	return 0;
}

static const struct rt_dev_ops cuda_ops = {
    .device_count = device_count,
    .model_new = model_new,
    .model_free = model_free,
    .session_new = session_new,
    .session_free = session_free,
    .forward = forward,
};

/* The plugin's one export (backend.h): the table, if this plugin was built
 * from the same tree as the runtime that loads it. */
__attribute__((visibility("default"))) const struct rt_dev_ops *agrt_dev_plugin(int abi, size_t config_size,
                                                                                size_t layer_size, size_t desc_size);
const struct rt_dev_ops *agrt_dev_plugin(int abi, size_t config_size, size_t layer_size, size_t desc_size)
{
	if (abi != RT_DEV_ABI || config_size != sizeof(struct rt_config) || layer_size != sizeof(struct rt_layer) ||
	    desc_size != sizeof(struct rt_dev_model_desc))
		return NULL;
	return &cuda_ops;
}
