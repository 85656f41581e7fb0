/* SPDX-License-Identifier: Apache-2.0 */
/* Quantized checkpoints: config.json's quantization_config and the binding of
 * quantized matrices to struct rt_weight (docs/RUNTIME.md "Quantized
 * weights").  Every tensor of a quantized matrix is checked against the
 * format before a kernel reads it: dtype, shape against the matrix's
 * [rows][cols] and the group or block size, and every scale finite; zero
 * points and g_idx are range-checked.  Nothing is copied: the weight points
 * into the mapping. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"
#include "rt_error.h"
#include "safetensors.h"

#define Q_MAX_LIST    256 /* ignore / modules_to_not_convert / targets entries */
#define Q_MAX_PATTERN 512
#define Q_MAX_SCHEMES 16
#define Q_MAX_GROUP   (1 << 20)

enum { QM_FP8, QM_CT, QM_AWQ, QM_GPTQ };

struct qlist {
	char **v;
	pcre2_code **re; /* entries written "re:PATTERN", else NULL */
	int n;
};

struct qscheme {
	int bits;     /* 4 (int, pack-quantized) or 8 (float, float-quantized) */
	bool sym;     /* int4: no zero points */
	int strategy; /* QS_* */
	int group;    /* group strategy */
	int br, bc;   /* block strategy */
	bool g_idx;   /* actorder: weight_g_idx present */
	struct qlist targets;
};

enum { QS_TENSOR, QS_CHANNEL, QS_GROUP, QS_BLOCK };

struct rt_quant {
	int method;
	char name[32];
	/* fp8: weight_block_size, 0: one scale per tensor */
	int br, bc;
	/* awq, gptq */
	int group; /* -1 in the file (gptq): one group per row */
	bool desc_act, gptq_v1;
	/* compressed-tensors */
	struct qscheme sch[Q_MAX_SCHEMES];
	int n_sch;
	struct qlist ignore; /* ct ignore (exact or re:), others modules_to_not_convert (substring) */
};

static void list_free(struct qlist *l)
{
	for (int i = 0; i < l->n; i++) {
		free(l->v[i]);
		if (l->re[i])
			pcre2_code_free(l->re[i]);
	}
	free(l->v);
	free(l->re);
	memset(l, 0, sizeof(*l));
}

void rt_quant_free(struct rt_quant *q)
{
	if (!q)
		return;
	list_free(&q->ignore);
	for (int i = 0; i < q->n_sch; i++)
		list_free(&q->sch[i].targets);
	free(q);
}

const char *rt_quant_method(const struct rt_quant *q)
{
	return q ? q->name : "none";
}

static int list_parse(json_t *a, const char *key, struct qlist *l, const char *path, struct rt_error *err)
{
	size_t i;
	json_t *v;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > Q_MAX_LIST)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		               "%s: quantization_config '%s' is not a list of at most %d strings", path, key,
		               Q_MAX_LIST);
	l->v = calloc(json_array_size(a) + 1, sizeof(*l->v));
	l->re = calloc(json_array_size(a) + 1, sizeof(*l->re));
	if (!l->v || !l->re)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	json_array_foreach(a, i, v)
	{
		const char *s = json_string_value(v);
		if (!s || !*s || strlen(s) > Q_MAX_PATTERN)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			               "%s: quantization_config '%s' entry %zu is not a string of 1-%d bytes", path,
			               key, i, Q_MAX_PATTERN);
		if (!(l->v[l->n] = strdup(s)))
			return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		if (!strncmp(s, "re:", 3)) {
			int ec;
			PCRE2_SIZE eo;
			/* Python's re.match: anchored at the start only */
			l->re[l->n] = pcre2_compile((PCRE2_SPTR)(s + 3), PCRE2_ZERO_TERMINATED,
			                            PCRE2_ANCHORED | PCRE2_UTF, &ec, &eo, NULL);
			if (!l->re[l->n]) {
				l->n++;
				return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
				               "%s: quantization_config '%s': bad regular expression '%.80s'", path,
				               key, s + 3);
			}
		}
		l->n++;
	}
	return 0;
}

/* every matrix the runtime binds is an nn.Linear but the embeddings */
static bool is_embedding(const char *module)
{
	size_t n = strlen(module);
	return n >= 12 && !strcmp(module + n - 12, "embed_tokens");
}

/* ct: exact name (or, for targets, the class "Linear"), or re: match;
 * substr (modules_to_not_convert): the entry occurs in the name */
static bool list_match(const struct qlist *l, const char *module, bool substr)
{
	for (int i = 0; i < l->n; i++) {
		if (l->re[i]) {
			pcre2_match_data *md = pcre2_match_data_create_from_pattern(l->re[i], NULL);
			int rc = md ? pcre2_match(l->re[i], (PCRE2_SPTR)module, strlen(module), 0, 0, md, NULL) : -1;
			pcre2_match_data_free(md);
			if (rc >= 0)
				return true;
		} else if (substr ? strstr(module, l->v[i]) != NULL
		                  : !strcmp(module, l->v[i]) || (!strcmp(l->v[i], "Linear") && !is_embedding(module))) {
			return true;
		}
	}
	return false;
}

static int q_int(json_t *o, const char *key, int def, int lo, int hi, int *out, const char *path, struct rt_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		if (def == INT_MIN)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: quantization_config: missing '%s'", path, key);
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return rt_fail(err, RT_ERR_MODEL, -ERANGE,
		               "%s: quantization_config: '%s' is not an integer in [%d, %d]", path, key, lo, hi);
	*out = (int)json_integer_value(v);
	return 0;
}

static int q_bool(json_t *o, const char *key, bool def, bool *out, const char *path, struct rt_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: quantization_config: '%s' is not a boolean", path,
		               key);
	*out = json_is_true(v);
	return 0;
}

static const char *q_str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* [a, b] of positive integers (weight_block_size, block_structure) */
static int q_pair(json_t *a, int *x, int *y, const char *key, const char *path, struct rt_error *err)
{
	json_t *u = json_array_get(a, 0), *v = json_array_get(a, 1);
	if (json_array_size(a) != 2 || !json_is_integer(u) || !json_is_integer(v) || json_integer_value(u) < 1 ||
	    json_integer_value(v) < 1 || json_integer_value(u) > Q_MAX_GROUP || json_integer_value(v) > Q_MAX_GROUP)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		               "%s: quantization_config: '%s' is not two integers in [1, %d]", path, key, Q_MAX_GROUP);
	*x = (int)json_integer_value(u);
	*y = (int)json_integer_value(v);
	return 0;
}

static int parse_ct_scheme(struct rt_quant *q, const char *gname, json_t *g, const char *fmt, const char *path,
                           struct rt_error *err)
{
	struct qscheme *s = &q->sch[q->n_sch];
	json_t *w = json_object_get(g, "weights");
	const char *type, *strat, *gfmt = q_str(g, "format") ? q_str(g, "format") : fmt;
	int r;

	if (q->n_sch >= Q_MAX_SCHEMES)
		return rt_fail(err, RT_ERR_MODEL, -E2BIG, "%s: quantization_config: more than %d config_groups", path,
		               Q_MAX_SCHEMES);
	memset(s, 0, sizeof(*s));
	q->n_sch++;
	if (!json_is_object(g) || !json_is_object(w))
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		               "%s: quantization_config: config group '%.40s' has no weights", path, gname);
	if ((r = list_parse(json_object_get(g, "targets"), "targets", &s->targets, path, err)) < 0 ||
	    (r = q_int(w, "num_bits", INT_MIN, 1, 64, &s->bits, path, err)) < 0 ||
	    (r = q_bool(w, "symmetric", true, &s->sym, path, err)) < 0)
		return r;
	type = q_str(w, "type") ? q_str(w, "type") : "int";
	strat = q_str(w, "strategy") ? q_str(w, "strategy") : "tensor";
	if (!gfmt)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: quantization_config: no 'format'", path);
	if (!strcmp(type, "int") && s->bits == 4 && !strcmp(gfmt, "pack-quantized")) {
		if (!strcmp(strat, "group")) {
			const char *ao = q_str(w, "actorder");
			s->strategy = QS_GROUP;
			if ((r = q_int(w, "group_size", INT_MIN, 1, Q_MAX_GROUP, &s->group, path, err)) < 0)
				return r;
			s->g_idx = ao && !strcmp(ao, "group");
		} else if (!strcmp(strat, "channel")) {
			s->strategy = QS_CHANNEL;
		} else {
			return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
			               "%s: quantization_config: int4 strategy '%.20s' not supported (group, channel)",
			               path, strat);
		}
	} else if (!strcmp(type, "float") && s->bits == 8 && !strcmp(gfmt, "float-quantized")) {
		s->strategy = !strcmp(strat, "channel")  ? QS_CHANNEL
		              : !strcmp(strat, "tensor") ? QS_TENSOR
		              : !strcmp(strat, "block")  ? QS_BLOCK
		                                         : -1;
		if (s->strategy < 0)
			return rt_fail(
			    err, RT_ERR_MODEL, -EOPNOTSUPP,
			    "%s: quantization_config: fp8 strategy '%.20s' not supported (channel, tensor, block)",
			    path, strat);
		if (s->strategy == QS_BLOCK && (r = q_pair(json_object_get(w, "block_structure"), &s->br, &s->bc,
		                                           "block_structure", path, err)) < 0)
			return r;
	} else {
		return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
		               "%s: quantization_config: %d-bit %.10s weights in format '%.40s' not supported "
		               "(4-bit int pack-quantized, 8-bit float float-quantized)",
		               path, s->bits, type, gfmt);
	}
	return 0;
}

static int parse_qc(struct rt_quant *q, json_t *qc, const char *path, struct rt_error *err)
{
	const char *m = q_str(qc, "quant_method");
	int r, bits;

	if (!m)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: quantization_config has no quant_method", path);
	snprintf(q->name, sizeof(q->name), "%.31s", m);
	if (!strcmp(m, "fp8")) {
		json_t *bs = json_object_get(qc, "weight_block_size");
		const char *fmt = q_str(qc, "fmt");
		q->method = QM_FP8;
		if (fmt && strcmp(fmt, "e4m3") && strcmp(fmt, "float8_e4m3fn"))
			return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
			               "%s: quantization_config: fp8 fmt '%.20s' not supported (e4m3)", path, fmt);
		if (bs && !json_is_null(bs) && (r = q_pair(bs, &q->br, &q->bc, "weight_block_size", path, err)) < 0)
			return r;
		return list_parse(json_object_get(qc, "modules_to_not_convert"), "modules_to_not_convert", &q->ignore,
		                  path, err);
	}
	if (!strcmp(m, "awq") || !strcmp(m, "gptq")) {
		const char *ver = q_str(qc, m[0] == 'a' ? "version" : "checkpoint_format");
		bool zp = true;
		q->method = m[0] == 'a' ? QM_AWQ : QM_GPTQ;
		/* transformers' keys; AutoAWQ's own quant_config.json says w_bit and q_group_size */
		if ((r = q_int(qc, json_object_get(qc, "bits") ? "bits" : "w_bit", INT_MIN, 1, 64, &bits, path, err)) <
		    0)
			return r;
		if (bits != 4)
			return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
			               "%s: quantization_config: %d-bit %s not supported (4)", path, bits, m);
		if ((r = q_int(qc, json_object_get(qc, "group_size") ? "group_size" : "q_group_size", INT_MIN, -1,
		               Q_MAX_GROUP, &q->group, path, err)) < 0)
			return r;
		if (q->group == 0 || (q->group < 0 && q->method == QM_AWQ))
			return rt_fail(err, RT_ERR_MODEL, -ERANGE, "%s: quantization_config: group_size %d", path,
			               q->group);
		if (q->method == QM_AWQ) {
			if (ver && strcasecmp(ver, "gemm"))
				return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
				               "%s: quantization_config: AWQ version '%.20s' not supported (gemm)",
				               path, ver);
			if ((r = q_bool(qc, "zero_point", true, &zp, path, err)) < 0)
				return r;
			if (!zp)
				return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
				               "%s: quantization_config: AWQ without zero_point not supported", path);
		} else {
			if (ver && strcmp(ver, "gptq") && strcmp(ver, "gptq_v2"))
				return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
				               "%s: quantization_config: GPTQ checkpoint_format '%.20s' not supported",
				               path, ver);
			q->gptq_v1 = !ver || !strcmp(ver, "gptq");
			if ((r = q_bool(qc, "desc_act", false, &q->desc_act, path, err)) < 0)
				return r;
		}
		return list_parse(json_object_get(qc, "modules_to_not_convert"), "modules_to_not_convert", &q->ignore,
		                  path, err);
	}
	if (!strcmp(m, "compressed-tensors")) {
		json_t *groups = json_object_get(qc, "config_groups"), *g;
		const char *gname, *fmt = q_str(qc, "format");
		q->method = QM_CT;
		if (!json_is_object(groups) || json_object_size(groups) == 0)
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: quantization_config: no config_groups", path);
		json_object_foreach(groups, gname,
		                    g) if ((r = parse_ct_scheme(q, gname, g, fmt, path, err)) < 0) return r;
		return list_parse(json_object_get(qc, "ignore"), "ignore", &q->ignore, path, err);
	}
	return rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP,
	               "%s: quant_method '%.30s' not supported (fp8, compressed-tensors, awq, gptq)", path, m);
}

int rt_quant_load(const char *dir, struct rt_quant **ret, struct rt_error *err)
{
	char path[PATH_MAX];
	json_t *root, *qc;
	json_error_t jerr;
	struct rt_quant *q;
	int r;

	snprintf(path, sizeof(path), "%s/config.json", dir);
	/* rt_config_load has read and checked this file already */
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: invalid JSON: %s", path, jerr.text);
	qc = json_object_get(root, "quantization_config");
	if (!qc || json_is_null(qc)) {
		json_decref(root);
		*ret = NULL;
		return 0;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		json_decref(root);
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	}
	r = json_is_object(qc) ? parse_qc(q, qc, path, err)
	                       : rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: quantization_config is not an object", path);
	json_decref(root);
	if (r < 0) {
		rt_quant_free(q);
		return r;
	}
	*ret = q;
	return 0;
}

/* ---- binding ---- */

struct bctx {
	const struct st_set *st;
	const char *dir, *module;
	struct rt_error *err;
	int rows, cols;
};

static int shape_str(char *b, size_t n, const struct st_tensor *t)
{
	size_t o = 0;
	o += (size_t)snprintf(b + o, n - o, "[");
	for (int i = 0; i < t->ndim && o < n; i++)
		o += (size_t)snprintf(b + o, n - o, "%s%lld", i ? "," : "", (long long)t->shape[i]);
	if (o < n)
		snprintf(b + o, n - o, "]");
	return 0;
}

/* tensor MODULE.SUFFIX with one of the dtypes in mask (bit per enum rt_dtype)
 * and shape [d0] (nd 1) or [d0][d1] (nd 2); d < 0 matches any */
static int need(const struct bctx *b, const char *suffix, unsigned mask, int nd, int64_t d0, int64_t d1,
                const char *why, const struct st_tensor **ret)
{
	char n[1100], sh[128];
	const struct st_tensor *t;

	snprintf(n, sizeof(n), "%s.%s", b->module, suffix);
	t = rt_st_find(b->st, n);
	if (!t)
		return rt_fail(b->err, RT_ERR_MODEL, -ENOENT, "%s: missing tensor '%s' (%s)", b->dir, n, why);
	if (!(mask & (1u << t->dtype)))
		return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' has dtype %s, not one %s takes",
		               rt_st_file_name(b->st, t), n, rt_dtype_name(t->dtype), why);
	if (t->ndim != nd || (d0 >= 0 && t->shape[0] != d0) || (nd > 1 && d1 >= 0 && t->shape[1] != d1)) {
		shape_str(sh, sizeof(sh), t);
		return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG,
		               "%s: tensor '%s' has shape %s, expected [%lld%s%lld%s] (%s)", rt_st_file_name(b->st, t),
		               n, sh, (long long)d0, nd > 1 ? "," : "", nd > 1 ? (long long)d1 : 0LL, nd > 1 ? "" : "",
		               why);
	}
	*ret = t;
	return 0;
}

#define M_FLOAT ((1u << RT_F32) | (1u << RT_F16) | (1u << RT_BF16))
#define M_I32   (1u << RT_I32)

/* every scale finite (a NaN or infinite scale poisons every row it touches) */
static int check_scales(const struct bctx *b, const struct st_tensor *t)
{
	uint64_t n = t->nbytes / rt_dtype_size(t->dtype);
	for (uint64_t i = 0; i < n; i++) {
		float v = rt_load_elem(t->data, t->dtype, i);
		if (!isfinite(v))
			return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s': scale %llu is %s",
			               rt_st_file_name(b->st, t), t->name, (unsigned long long)i,
			               isnan(v) ? "NaN" : "infinite");
	}
	return 0;
}

/* MODULE.weight (codes) and MODULE.SUFFIX (scales) over [br][bc] blocks;
 * br 0: one scale for the tensor */
static int bind_fp8(const struct bctx *b, const struct st_tensor *wt, const char *suffix, int br, int bc,
                    struct rt_weight *w)
{
	const struct st_tensor *st;
	int R = b->rows, C = b->cols, nr, nc, r;
	char why[96], n[1100];

	if (wt->dtype != RT_F8_E4M3 && wt->dtype != RT_F8_E5M2)
		return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG,
		               "%s: tensor '%s' has dtype %s, expected F8_E4M3 or F8_E5M2", rt_st_file_name(b->st, wt),
		               wt->name, rt_dtype_name(wt->dtype));
	if (br <= 0) {
		br = R;
		bc = C;
	}
	nr = (R + br - 1) / br;
	nc = (C + bc - 1) / bc;
	snprintf(why, sizeof(why), "fp8 scales of [%d,%d] blocks over [%d,%d]", br, bc, R, C);
	snprintf(n, sizeof(n), "%s.%s", b->module, suffix);
	st = rt_st_find(b->st, n);
	if (st && nc == 1 && st->ndim <= 1 && (st->ndim == 0 || st->shape[0] == nr)) {
		/* per tensor [] or [1], per channel [rows] */
		if (!(M_FLOAT & (1u << st->dtype)))
			return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' has dtype %s, not one %s takes",
			               rt_st_file_name(b->st, st), n, rt_dtype_name(st->dtype), why);
	} else if ((r = need(b, suffix, M_FLOAT, 2, nr, nc, why, &st)) < 0) {
		return r;
	}
	if ((r = check_scales(b, st)) < 0)
		return r;
	w->data = wt->data;
	w->dtype = wt->dtype;
	w->src = wt;
	w->q = (struct rt_wquant){
	    .fmt = RT_WF_FP8, .scale = st->data, .scale_dtype = st->dtype, .sr = br, .sc = bc, .n_sc = nc};
	return 0;
}

/* zero points: every stored value + add in [0, 15] is a valid nibble anyway;
 * g_idx values must name a group */
static int check_gidx(const struct bctx *b, const struct st_tensor *t, int ng)
{
	for (int k = 0; k < b->cols; k++) {
		int32_t g;
		memcpy(&g, (const char *)t->data + 4 * (size_t)k, 4);
		if (g < 0 || g >= ng)
			return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG,
			               "%s: tensor '%s': column %d has group %d, not in [0, %d)",
			               rt_st_file_name(b->st, t), t->name, k, (int)g, ng);
	}
	return 0;
}

static int bind_int4(const struct bctx *b, int layout, int group, bool sym, bool want_gidx, bool opt_gidx, int zero_add,
                     struct rt_weight *w)
{
	const struct st_tensor *qw, *sc, *zp = NULL, *gi = NULL, *shp;
	int R = b->rows, C = b->cols, G = group > 0 ? group : C, ng, r;
	char why[128];

	if (layout == RT_I4_CT) {
		ng = (C + G - 1) / G;
		snprintf(why, sizeof(why), "compressed-tensors int4, group %d, over [%d,%d]", G, R, C);
		if ((r = need(b, "weight_packed", M_I32, 2, R, (C + 7) / 8, why, &qw)) < 0 ||
		    (r = need(b, "weight_scale", M_FLOAT, 2, R, ng, why, &sc)) < 0 ||
		    (!sym && (r = need(b, "weight_zero_point", M_I32, 2, (R + 7) / 8, ng, why, &zp)) < 0) ||
		    (r = need(b, "weight_shape", M_I32 | (1u << RT_I64), 1, 2, -1, why, &shp)) < 0)
			return r;
		{
			int64_t d[2];
			for (int i = 0; i < 2; i++) {
				if (shp->dtype == RT_I64) {
					memcpy(&d[i], (const char *)shp->data + 8 * i, 8);
				} else {
					int32_t v;
					memcpy(&v, (const char *)shp->data + 4 * i, 4);
					d[i] = v;
				}
			}
			if (d[0] != R || d[1] != C)
				return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG,
				               "%s: tensor '%s' says [%lld,%lld], expected [%d,%d]",
				               rt_st_file_name(b->st, shp), shp->name, (long long)d[0], (long long)d[1],
				               R, C);
		}
		if (want_gidx && (r = need(b, "weight_g_idx", M_I32, 1, C, -1, why, &gi)) < 0)
			return r;
	} else {
		const char *kind = layout == RT_I4_AWQ ? "AWQ" : "GPTQ";
		if (R % 8 || C % 8)
			return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG,
			               "%s: %s.qweight: %s needs both dimensions of [%d,%d] to be multiples of 8",
			               b->dir, b->module, kind, R, C);
		if (C % G)
			return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG,
			               "%s: %s.qweight: group size %d does not divide the %d input columns", b->dir,
			               b->module, G, C);
		ng = C / G;
		snprintf(why, sizeof(why), "%s int4, group %d, over [%d,%d]", kind, G, R, C);
		if ((r = need(b, "qweight", M_I32, 2, layout == RT_I4_AWQ ? C : C / 8, layout == RT_I4_AWQ ? R / 8 : R,
		              why, &qw)) < 0 ||
		    (r = need(b, "scales", M_FLOAT, 2, ng, R, why, &sc)) < 0 ||
		    (r = need(b, "qzeros", M_I32, 2, ng, R / 8, why, &zp)) < 0)
			return r;
		if (layout == RT_I4_GPTQ) {
			char n[1100];
			snprintf(n, sizeof(n), "%s.g_idx", b->module);
			if ((want_gidx || (opt_gidx && rt_st_find(b->st, n))) &&
			    (r = need(b, "g_idx", M_I32, 1, C, -1, why, &gi)) < 0)
				return r;
		}
	}
	if ((r = check_scales(b, sc)) < 0 || (gi && (r = check_gidx(b, gi, ng)) < 0))
		return r;
	w->data = qw->data;
	w->dtype = RT_I32;
	w->src = qw;
	w->q = (struct rt_wquant){.fmt = RT_WF_INT4,
	                          .layout = layout,
	                          .scale = sc->data,
	                          .scale_dtype = sc->dtype,
	                          .sr = 1,
	                          .sc = G,
	                          .n_sc = ng,
	                          .zero = zp ? zp->data : NULL,
	                          .zero_const = 8,
	                          .zero_add = zero_add,
	                          .g_idx = gi ? gi->data : NULL};
	return 0;
}

static int check_2d(const struct bctx *b, const struct st_tensor *t, const char *name)
{
	char sh[128];

	if (t->ndim == 2 && t->shape[0] == b->rows && t->shape[1] == b->cols)
		return 0;
	shape_str(sh, sizeof(sh), t);
	return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' has shape %s, expected [%d,%d]",
	               rt_st_file_name(b->st, t), name, sh, b->rows, b->cols);
}

static int bind_dense(const struct bctx *b, const struct st_tensor *t, const char *name, const char *why,
                      struct rt_weight *w)
{
	int r;

	if (!t)
		return rt_fail(b->err, RT_ERR_MODEL, -ENOENT, "%s: missing tensor '%s'%s", b->dir, name, why);
	if (!rt_dtype_is_float(t->dtype))
		return rt_fail(b->err, RT_ERR_MODEL, -EBADMSG,
		               "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16%s", rt_st_file_name(b->st, t),
		               name, rt_dtype_name(t->dtype), why);
	if ((r = check_2d(b, t, name)) < 0)
		return r;
	w->data = t->data;
	w->dtype = t->dtype;
	w->src = t;
	return 0;
}

int rt_quant_bind(const struct rt_quant *q, const struct st_set *st, const char *dir, const char *name, int rows,
                  int cols, struct rt_weight *w, struct rt_error *err)
{
	const struct st_tensor *t = rt_st_find(st, name);
	char module[1024], n[1100];
	size_t len = strlen(name);
	struct bctx b = {st, dir, module, err, rows, cols};
	int r;

	memset(w, 0, sizeof(*w));
	w->rows = rows;
	w->cols = cols;
	if (len < 8 || len - 7 >= sizeof(module) || strcmp(name + len - 7, ".weight"))
		return bind_dense(&b, t, name, "", w);
	memcpy(module, name, len - 7);
	module[len - 7] = 0;
	if (!q) {
		if (t && (t->dtype == RT_F8_E4M3 || t->dtype == RT_F8_E5M2))
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			               "%s: tensor '%s' is %s but config.json has no quantization_config",
			               rt_st_file_name(st, t), name, rt_dtype_name(t->dtype));
		return bind_dense(&b, t, name, "", w);
	}
	switch (q->method) {
	case QM_FP8:
		if (t && rt_dtype_is_float(t->dtype)) /* not an nn.Linear (e.g. DeepSeek's router), or not converted */
			return bind_dense(&b, t, name, "", w);
		if (list_match(&q->ignore, module, true))
			return bind_dense(&b, t, name, " (listed in modules_to_not_convert)", w);
		if (!t)
			return bind_dense(&b, t, name, "", w);
		if ((r = check_2d(&b, t, name)) < 0)
			return r;
		return bind_fp8(&b, t, "weight_scale_inv", q->br, q->bc, w);
	case QM_AWQ:
	case QM_GPTQ: {
		snprintf(n, sizeof(n), "%s.qweight", module);
		if (list_match(&q->ignore, module, true) || !rt_st_find(st, n))
			return bind_dense(&b, t, name, "", w); /* lm_head, embeddings: kept as they were */
		return bind_int4(&b, q->method == QM_AWQ ? RT_I4_AWQ : RT_I4_GPTQ, q->group, false,
		                 q->method == QM_GPTQ && q->desc_act, true, q->method == QM_GPTQ && q->gptq_v1 ? 1 : 0,
		                 w);
	}
	default: {
		const struct qscheme *s = NULL;
		if (list_match(&q->ignore, module, false))
			return bind_dense(&b, t, name, " (listed in the quantization_config's ignore)", w);
		for (int i = 0; i < q->n_sch && !s; i++)
			if (list_match(&q->sch[i].targets, module, false))
				s = &q->sch[i];
		if (!s) {
			/* not a target: embeddings, or a module no group names */
			return bind_dense(&b, t, name, "", w);
		}
		if (s->bits == 4) {
			if (t)
				return rt_fail(
				    err, RT_ERR_MODEL, -EBADMSG,
				    "%s: tensor '%s' is stored unquantized but quantization_config quantizes '%s' "
				    "(not in its ignore list)",
				    rt_st_file_name(st, t), name, module);
			return bind_int4(&b, RT_I4_CT, s->strategy == QS_GROUP ? s->group : cols, s->sym, s->g_idx,
			                 false, 0, w);
		}
		if (!t)
			return bind_dense(&b, t, name, " (fp8 codes)", w);
		if (rt_dtype_is_float(t->dtype))
			return rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			               "%s: tensor '%s' is stored unquantized but quantization_config quantizes '%s' "
			               "(not in its ignore list)",
			               rt_st_file_name(st, t), name, module);
		if ((r = check_2d(&b, t, name)) < 0)
			return r;
		return bind_fp8(&b, t, "weight_scale",
		                s->strategy == QS_BLOCK     ? s->br
		                : s->strategy == QS_CHANNEL ? 1
		                                            : 0,
		                s->strategy == QS_BLOCK ? s->bc : cols, w);
	}
	}
}

/* ---- GPTQ and AWQ into the rows of compressed-tensors (rt_quant_to_rows) ----
 * GPTQ packs 8 input columns of one output row in a word, the words of a
 * column block row after row ([cols/8][rows]); AWQ packs 8 output rows of one
 * column ([cols][rows/8], nibbles in its 0,2,4,6,1,3,5,7 order); scales and
 * zero points are [groups][rows].  compressed-tensors keeps a row's words
 * together ([rows][cols/8], nibble k % 8 at bit 4 (k % 8)), scales [rows]
 * [groups] and zero points [rows/8][groups] (nibble r % 8 at 4 (r % 8)),
 * which is what the row kernels stream.  The repack moves nibbles and scales
 * and changes no value: every rt_q_weight(w, r, k) is the same after it. */

static int awq_nib(uint32_t u, int r)
{
	return (int)(u >> rt_awq_shift(r) & 15);
}

/* g_idx that is k / sc for every column (what GPTQ writes without act-order) */
static bool trivial_gidx(const struct rt_weight *w)
{
	for (int k = 0; k < w->cols; k++)
		if (rt_q_group(w, k) != k / w->q.sc)
			return false;
	return true;
}

/* GPTQ act-order that the rows can take with its columns sorted by group:
 * every group holds exactly sc columns (so that group g becomes stored
 * columns g * sc .. g * sc + sc - 1), as GPTQ's desc_act writes them */
static bool sortable_gidx(const struct rt_weight *w)
{
	const struct rt_wquant *q = &w->q;
	int ng = q->n_sc, *cnt;
	bool ok;

	if ((q->layout != RT_I4_GPTQ && q->layout != RT_I4_CT) || (size_t)ng * q->sc != (size_t)w->cols ||
	    w->rows % 8 || !(cnt = calloc(ng, sizeof(int))))
		return false;
	ok = true;
	for (int k = 0; ok && k < w->cols; k++) {
		int g = rt_q_group(w, k);
		ok = g >= 0 && g < ng && ++cnt[g] <= q->sc;
	}
	free(cnt);
	return ok; /* cols = ng * sc columns, none over sc in a group: all exactly sc */
}

size_t rt_quant_rows_bytes(const struct rt_weight *w, bool small)
{
	const struct rt_wquant *q = &w->q;
	size_t R = (size_t)w->rows, ng = (size_t)q->n_sc, n;
	bool perm;

	if (q->fmt != RT_WF_INT4 || (q->sc % 128 && q->sc < w->cols && !(small && (q->sc == 32 || q->sc == 64))))
		return 0;
	/* compressed-tensors' own rows only to sort act-order columns */
	perm = rt_quant_rows_perm(w);
	if ((q->layout == RT_I4_CT && !perm) || (perm && !sortable_gidx(w)))
		return 0;
	/* bind_int4 took rows and columns that are multiples of 8, groups that divide the columns */
	n = R * (size_t)(w->cols / 8) * 4 + R * ng * rt_dtype_size(q->scale_dtype) + (q->zero ? R / 8 * ng * 4 : 0);
	n = (n + 63) / 64 * 64;
	return n + (perm ? ((size_t)w->cols * sizeof(int32_t) + 63) / 64 * 64 : 0);
}

bool rt_quant_rows_perm(const struct rt_weight *w)
{
	return w->q.g_idx && !trivial_gidx(w);
}

/* act-order into rows: stored column k of row r gets input column perm[k]'s
 * nibble (GPTQ: the source words of 64 rows at a time stay in cache) */
static void perm_rows(const struct rt_weight *w, const int32_t *perm, uint32_t *d)
{
	int R = w->rows, W = w->cols / 8;

	if (w->q.layout == RT_I4_CT) {
		for (int r = 0; r < R; r++)
			for (int j = 0; j < W; j++) {
				uint32_t v = 0;
				for (int c = 0; c < 8; c++) {
					int k = perm[8 * j + c];
					v |= (rt_q_u32(w->data, (size_t)r * W + (size_t)(k / 8)) >> 4 * (k % 8) & 15u)
					     << 4 * c;
				}
				d[(size_t)r * W + j] = v;
			}
		return;
	}
	for (int r0 = 0; r0 < R; r0 += 64)
		for (int j = 0; j < W; j++) {
			int r1 = r0 + 64 < R ? r0 + 64 : R;
			for (int r = r0; r < r1; r++)
				d[(size_t)r * W + j] = 0;
			for (int c = 0; c < 8; c++) {
				int k = perm[8 * j + c];
				for (int r = r0; r < r1; r++)
					d[(size_t)r * W + j] |=
					    (rt_q_u32(w->data, (size_t)(k / 8) * R + r) >> 4 * (k % 8) & 15u) << 4 * c;
			}
		}
}

void rt_quant_to_rows(struct rt_weight *w, void *dst)
{
	struct rt_wquant *q = &w->q;
	int R = w->rows, C = w->cols, W = C / 8, ng = q->n_sc, layout = q->layout;
	size_t es = rt_dtype_size(q->scale_dtype), nd = (size_t)R * W * 4, ns = (size_t)R * ng * es;
	const void *src = w->data;
	uint32_t *d = dst, *z;
	char *s;

	s = (char *)d + nd;
	z = (uint32_t *)(s + ns);
	if (rt_quant_rows_perm(w)) {
		/* act-order (rt_quant_rows_bytes took it: each group exactly sc
		 * columns): the columns sorted by group, stable, after the zero
		 * points; the codes' space counts each group's columns first */
		size_t nz = q->zero ? (size_t)R / 8 * ng * 4 : 0;
		int32_t *perm = (int32_t *)((char *)d + (nd + ns + nz + 63) / 64 * 64);
		int *fill = (int *)d; /* ng counters: nd = R * C / 2 bytes hold them */
		memset(fill, 0, sizeof(int) * (size_t)ng);
		for (int k = 0; k < C; k++) {
			int g = rt_q_group(w, k);
			perm[(size_t)g * q->sc + (size_t)fill[g]++] = k;
		}
		perm_rows(w, perm, d);
		q->perm = perm;
	} else if (layout == RT_I4_GPTQ) {
		/* the same words, transposed, in blocks that stay in cache */
		for (int r0 = 0; r0 < R; r0 += 64)
			for (int j = 0; j < W; j++)
				for (int r = r0; r < R && r < r0 + 64; r++)
					d[(size_t)r * W + j] = rt_q_u32(src, (size_t)j * R + r);
	} else {
		/* 8 x 8 nibbles at a time: 8 words of 8 rows (columns 8j..8j+7)
		 * into 8 words of 8 columns (rows 8i..8i+7) */
		for (int i = 0; i < R / 8; i++)
			for (int j = 0; j < W; j++) {
				uint32_t a[8], b[8] = {0};
				for (int c = 0; c < 8; c++)
					a[c] = rt_q_u32(src, (size_t)(8 * j + c) * (R / 8) + i);
				for (int r = 0; r < 8; r++)
					for (int c = 0; c < 8; c++)
						b[r] |= (uint32_t)awq_nib(a[c], r) << 4 * c;
				for (int r = 0; r < 8; r++)
					d[(size_t)(8 * i + r) * W + j] = b[r];
			}
	}
	if (layout == RT_I4_CT) {
		/* compressed-tensors' scales and zero points are in rows already */
		memcpy(s, q->scale, ns);
		if (q->zero)
			memcpy(z, q->zero, (size_t)R / 8 * ng * 4);
	} else
		for (int g = 0; g < ng; g++)
			for (int r = 0; r < R; r++)
				memcpy(s + ((size_t)r * ng + g) * es, (const char *)q->scale + ((size_t)g * R + r) * es,
				       es);
	for (int g = 0; q->zero && layout != RT_I4_CT && g < ng; g++)
		for (int i = 0; i < R / 8; i++) {
			uint32_t u = rt_q_u32(q->zero, (size_t)g * (R / 8) + i), v = u;
			if (layout == RT_I4_AWQ) {
				v = 0;
				for (int r = 0; r < 8; r++)
					v |= (uint32_t)awq_nib(u, r) << 4 * r;
			}
			z[(size_t)i * ng + g] = v;
		}
	w->data = d;
	q->layout = RT_I4_CT;
	q->scale = s;
	q->g_idx = NULL;
	if (q->zero) {
		/* every zero point 8 (GPTQ's symmetric checkpoints store them): the
		 * symmetric kernels, which need none */
		bool all8 = true;
		for (size_t i = 0; all8 && i < (size_t)(R / 8) * ng; i++)
			for (int r = 0; all8 && r < 8; r++)
				all8 = (int)(z[i] >> 4 * r & 15) + q->zero_add == 8;
		q->zero = all8 ? NULL : z;
		if (all8) {
			q->zero_const = 8;
			q->zero_add = 0;
		}
	}
}

/* ---- (scale, zero * scale) in f32 (rt_quant_pairs) ----
 * Each int4 weight is (n - zero) * scale in f32 (rt_q_weight).  With an f16
 * or bf16 scale that is fma(n, scale, -(zero * scale)) bit for bit: the
 * scale has at most 11 significant bits and n and zero (0..16) at most 5,
 * so zero * scale and (n - zero) * scale are exact in f32 (subnormals
 * included: both are multiples of the scale's last bit) and the fma rounds
 * nothing, as long as 16 * scale is finite.  The AVX-512 row kernels then
 * make a group's table of 16 values with one fma from two f32 loads instead
 * of unpacking a zero point and converting a scale for every row and group
 * (asymmetric GPTQ/AWQ decode about 1.3x faster: PERFORMANCE.md, session 12).
 * Not for f32 scales: zero * scale would round. */

size_t rt_quant_pairs_bytes(const struct rt_weight *w)
{
	const struct rt_wquant *q = &w->q;
	size_t n;

	if (q->fmt != RT_WF_INT4 || !q->zero || (q->scale_dtype != RT_F16 && q->scale_dtype != RT_BF16) ||
	    (q->sc % 128 && q->sc < w->cols))
		return 0;
	/* in rows already, or to be copied into them (GPTQ, AWQ; act-order) */
	if (q->layout == RT_I4_CT && !q->g_idx ? false : rt_quant_rows_bytes(w, false) == 0)
		return 0;
	n = (size_t)w->rows * (size_t)q->n_sc * 2 * sizeof(float);
	return (n + 63) / 64 * 64;
}

bool rt_quant_pairs(struct rt_weight *w, float *dst)
{
	struct rt_wquant *q = &w->q;
	int R = w->rows, ng = q->n_sc;

	if (q->layout != RT_I4_CT || !q->zero || !rt_quant_pairs_bytes(w))
		return false;
	for (int r = 0; r < R; r++)
		for (int g = 0; g < ng; g++) {
			float s = rt_load_elem(q->scale, q->scale_dtype, (size_t)r * ng + (size_t)g);
			if (!(fabsf(s) * 16.0f <= FLT_MAX))
				return false;
			dst[2 * ((size_t)r * ng + (size_t)g)] = s;
			dst[2 * ((size_t)r * ng + (size_t)g) + 1] = (float)rt_q_zero(w, r, g) * s;
		}
	q->sz = dst;
	return true;
}
