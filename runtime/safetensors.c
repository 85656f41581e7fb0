/* SPDX-License-Identifier: Apache-2.0 */
/* safetensors loader.  Header validation follows the reference
 * implementation (huggingface/safetensors, lib.rs: validate()):
 * header length <= 100 MB, JSON object, per-tensor byte size equals dtype
 * size times the shape product, data offsets contiguous from 0 when sorted,
 * and the data section ends exactly at the end of the file. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "rt_error.h"
#include "safetensors.h"

#define ST_MAX_HEADER  (100u * 1000u * 1000u)
#define ST_MAX_TENSORS 200000
#define ST_MAX_SHARDS  1024
#define ST_MAX_NAME    1024

struct st_map {
	char *path;
	void *base;
	size_t size;
};

struct st_set {
	struct st_map *maps;
	int n_maps;
	struct st_tensor *t; /* sorted by name */
	int n;
	int cap;
	uint64_t total;
};

void rt_st_close(struct st_set *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->n_maps; i++) {
		if (s->maps[i].base)
			munmap(s->maps[i].base, s->maps[i].size);
		free(s->maps[i].path);
	}
	for (int i = 0; i < s->n; i++)
		free(s->t[i].name);
	free(s->maps);
	free(s->t);
	free(s);
}

static int parse_dtype(const char *s)
{
	for (int i = 0; i < RT_N_DTYPES; i++)
		if (!strcmp(s, rt_dtype_name(i)))
			return i;
	return -1;
}

static int known_dtype(const char *s)
{
	static const char *const names[] = {"BOOL",    "U8",  "I8",      "I16",     "U16",     "I32",
	                                    "U32",     "I64", "U64",     "F64",     "F8_E4M3", "F8_E5M2",
	                                    "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64",     NULL};
	for (int i = 0; names[i]; i++)
		if (!strcmp(s, names[i]))
			return 1;
	return 0;
}

struct span {
	uint64_t begin, end;
	int idx;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static int json_u64(json_t *v, uint64_t *out)
{
	json_int_t i;

	if (!json_is_integer(v))
		return -1;
	i = json_integer_value(v);
	if (i < 0)
		return -1;
	*out = (uint64_t)i;
	return 0;
}

/* Parse and validate one mapped file's header; append its tensors. */
static int parse_file(struct st_set *s, int fi, struct rt_error *err)
{
	const struct st_map *m = &s->maps[fi];
	const unsigned char *p = m->base;
	uint64_t hlen = 0, data_len;
	json_t *root = NULL, *val;
	json_error_t jerr;
	const char *key;
	struct span *spans = NULL;
	int n_spans = 0, first = s->n, r;

	if (m->size < 8) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: file too small for a safetensors header", m->path);
		goto out;
	}
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | p[i];
	if (hlen > ST_MAX_HEADER) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: header length %llu exceeds 100 MB", m->path,
		            (unsigned long long)hlen);
		goto out;
	}
	if (hlen > m->size - 8) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG,
		            "%s: header length %llu runs past the end of the file (%zu bytes)", m->path,
		            (unsigned long long)hlen, m->size);
		goto out;
	}
	if (hlen < 2 || p[8] != '{') {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: header is not a JSON object", m->path);
		goto out;
	}
	data_len = m->size - 8 - hlen;
	/* jansson rejects invalid UTF-8 and, with the flag, duplicate keys */
	root = json_loadb((const char *)p + 8, hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root || !json_is_object(root)) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: invalid header JSON: %s", m->path,
		            root ? "not an object" : jerr.text);
		goto out;
	}
	if (json_object_size(root) > ST_MAX_TENSORS) {
		r = rt_fail(err, RT_ERR_MODEL, -E2BIG, "%s: too many tensors", m->path);
		goto out;
	}
	spans = calloc(json_object_size(root) + 1, sizeof(*spans));
	if (!spans) {
		r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
		goto out;
	}
	json_object_foreach(root, key, val)
	{
		json_t *jdt, *jshape, *joff;
		struct st_tensor *t;
		uint64_t b, e, count = 1;
		size_t i;
		int dt;

		if (!strcmp(key, "__metadata__")) {
			const char *k2;
			json_t *v2;
			if (!json_is_object(val)) {
				r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: __metadata__ is not an object", m->path);
				goto out;
			}
			json_object_foreach(val, k2, v2) if (!json_is_string(v2))
			{
				r = rt_fail(err, RT_ERR_MODEL, -EBADMSG,
				            "%s: __metadata__ value for '%s' is not a string", m->path, k2);
				goto out;
			}
			continue;
		}
		if (strlen(key) >= ST_MAX_NAME || strlen(key) == 0) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor name length out of range", m->path);
			goto out;
		}
		jdt = json_object_get(val, "dtype");
		jshape = json_object_get(val, "shape");
		joff = json_object_get(val, "data_offsets");
		if (!json_is_object(val) || !json_is_string(jdt) || !json_is_array(jshape) || !json_is_array(joff) ||
		    json_array_size(joff) != 2 || json_u64(json_array_get(joff, 0), &b) < 0 ||
		    json_u64(json_array_get(joff, 1), &e) < 0) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s': malformed entry", m->path, key);
			goto out;
		}
		dt = parse_dtype(json_string_value(jdt));
		if (dt < 0) {
			r = rt_fail(err, RT_ERR_MODEL, -EOPNOTSUPP, "%s: tensor '%s': dtype %.32s %s", m->path, key,
			            json_string_value(jdt),
			            known_dtype(json_string_value(jdt))
			                ? "not supported (F32, F16, BF16, F8_E4M3, F8_E5M2, I8, U8, I32, I64 only)"
			                : "unknown");
			goto out;
		}
		if (json_array_size(jshape) > ST_MAX_DIMS) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s': too many dimensions", m->path, key);
			goto out;
		}
		if (s->n == s->cap) {
			int nc = s->cap ? s->cap * 2 : 64;
			struct st_tensor *nt = realloc(s->t, (size_t)nc * sizeof(*nt));
			if (!nt) {
				r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
				goto out;
			}
			s->t = nt;
			s->cap = nc;
		}
		t = &s->t[s->n];
		memset(t, 0, sizeof(*t));
		t->dtype = dt;
		t->ndim = (int)json_array_size(jshape);
		t->file = fi;
		for (i = 0; i < json_array_size(jshape); i++) {
			uint64_t d;
			if (json_u64(json_array_get(jshape, i), &d) < 0 || d > (1ull << 40) ||
			    (d && count > UINT64_MAX / 8 / d)) {
				r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s': bad shape", m->path, key);
				goto out;
			}
			t->shape[i] = (int64_t)d;
			count *= d;
		}
		if (e < b || e - b != count * rt_dtype_size(dt)) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			            "%s: tensor '%s': byte size %llu does not match dtype and shape (%llu)", m->path,
			            key, (unsigned long long)(e - b), (unsigned long long)(count * rt_dtype_size(dt)));
			goto out;
		}
		t->nbytes = e - b;
		t->name = strdup(key);
		if (!t->name) {
			r = rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
			goto out;
		}
		s->n++;
		spans[n_spans++] = (struct span){b, e, s->n - 1};
	}
	qsort(spans, n_spans, sizeof(*spans), cmp_span);
	{
		uint64_t at = 0;
		for (int i = 0; i < n_spans; i++) {
			if (spans[i].begin != at) {
				r = rt_fail(err, RT_ERR_MODEL, -EBADMSG,
				            "%s: tensor '%s': data offsets overlap or leave a gap", m->path,
				            s->t[spans[i].idx].name);
				goto out;
			}
			at = spans[i].end;
		}
		if (at != data_len) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG,
			            "%s: data section is %llu bytes but tensors cover %llu", m->path,
			            (unsigned long long)data_len, (unsigned long long)at);
			goto out;
		}
	}
	for (int i = 0; i < n_spans; i++)
		s->t[spans[i].idx].data = p + 8 + hlen + spans[i].begin;
	s->total += data_len;
	r = 0;
out:
	if (r < 0) {
		/* drop the partially added tensors of this file */
		for (int i = first; i < s->n; i++)
			free(s->t[i].name);
		s->n = first;
	}
	free(spans);
	json_decref(root);
	return r;
}

static int map_file(struct st_set *s, const char *path, struct rt_error *err)
{
	struct st_map *m;
	struct stat st;
	int fd, r;

	if (s->n_maps >= ST_MAX_SHARDS)
		return rt_fail(err, RT_ERR_MODEL, -E2BIG, "%s: too many shards", path);
	m = realloc(s->maps, (size_t)(s->n_maps + 1) * sizeof(*m));
	if (!m)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	s->maps = m;
	m = &s->maps[s->n_maps];
	memset(m, 0, sizeof(*m));
	m->path = strdup(path);
	if (!m->path)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	s->n_maps++;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rt_fail(err, RT_ERR_IO, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return rt_fail(err, RT_ERR_IO, r, "%s: %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return rt_fail(err, RT_ERR_IO, -EINVAL, "%s: not a regular file", path);
	}
	m->size = (size_t)st.st_size;
	if (m->size == 0) {
		close(fd);
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: empty file", path);
	}
	m->base = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
	r = -errno;
	close(fd);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return rt_fail(err, RT_ERR_IO, r, "%s: mmap: %s", path, strerror(-r));
	}
	/* weights are read once sequentially at first use; let readahead work */
	madvise(m->base, m->size, MADV_WILLNEED);
	return parse_file(s, s->n_maps - 1, err);
}

static int cmp_tensor(const void *a, const void *b)
{
	return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

static int shard_name_ok(const char *f)
{
	size_t n = strlen(f);
	return n > 0 && n < 256 && !strchr(f, '/') && strcmp(f, ".") && strcmp(f, "..");
}

static int open_index(struct st_set *s, const char *dir, const char *ipath, struct rt_error *err)
{
	json_t *root, *wm, *v;
	json_error_t jerr;
	const char *key;
	char path[PATH_MAX];
	int r = 0;

	root = json_load_file(ipath, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: invalid JSON: %s", ipath, jerr.text);
	wm = json_object_get(root, "weight_map");
	if (!json_is_object(wm) || json_object_size(wm) == 0 || json_object_size(wm) > ST_MAX_TENSORS) {
		r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: missing or bad weight_map", ipath);
		goto out;
	}
	/* map each distinct shard once, in order of first appearance */
	json_object_foreach(wm, key, v)
	{
		const char *f = json_string_value(v);
		int seen = 0;
		if (!f || !shard_name_ok(f)) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: bad shard file name for '%s'", ipath, key);
			goto out;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, f);
		for (int i = 0; i < s->n_maps && !seen; i++)
			seen = !strcmp(s->maps[i].path, path);
		if (seen)
			continue;
		r = map_file(s, path, err);
		if (r < 0)
			goto out;
	}
	if (s->n)
		qsort(s->t, s->n, sizeof(*s->t), cmp_tensor);
	json_object_foreach(wm, key, v)
	{
		const struct st_tensor *t = rt_st_find(s, key);
		snprintf(path, sizeof(path), "%s/%s", dir, json_string_value(v));
		if (!t || strcmp(s->maps[t->file].path, path)) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' not found in %s", ipath, key,
			            json_string_value(v));
			goto out;
		}
	}
out:
	json_decref(root);
	return r;
}

int rt_st_open_dir(const char *dir, struct st_set **ret_set, struct rt_error *err)
{
	struct st_set *s;
	char path[PATH_MAX];
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	if (access(path, F_OK) == 0) {
		r = map_file(s, path, err);
		if (r < 0)
			goto out;
		/* s->t is NULL when the file holds no tensor ("{}") */
		if (s->n)
			qsort(s->t, s->n, sizeof(*s->t), cmp_tensor);
	} else {
		snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
		if (access(path, F_OK) != 0) {
			r = rt_fail(err, RT_ERR_IO, -ENOENT, "%s: no model.safetensors or model.safetensors.index.json",
			            dir);
			goto out;
		}
		r = open_index(s, dir, path, err);
		if (r < 0)
			goto out;
	}
	for (int i = 1; i < s->n; i++)
		if (!strcmp(s->t[i - 1].name, s->t[i].name)) {
			r = rt_fail(err, RT_ERR_MODEL, -EBADMSG, "%s: tensor '%s' appears twice", dir, s->t[i].name);
			goto out;
		}
	*ret_set = s;
	s = NULL;
	r = 0;
out:
	rt_st_close(s);
	return r;
}

const struct st_tensor *rt_st_find(const struct st_set *s, const char *name)
{
	struct st_tensor key = {.name = (char *)name};
	if (!s->n)
		return NULL;
	return bsearch(&key, s->t, s->n, sizeof(*s->t), cmp_tensor);
}

int rt_st_resident(const struct st_set *s, uint64_t *ret_resident, uint64_t *ret_mapped)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t res = 0, mapped = 0;
	unsigned char vec[4096];

	if (pg <= 0)
		return -EINVAL;
	for (int i = 0; i < s->n_maps; i++) {
		const struct st_map *m = &s->maps[i];
		size_t pages = (m->size + (size_t)pg - 1) / (size_t)pg;
		mapped += m->size;
		/* a bounded vector, a window of the mapping at a time */
		for (size_t p0 = 0; p0 < pages; p0 += sizeof(vec)) {
			size_t np = pages - p0 < sizeof(vec) ? pages - p0 : sizeof(vec);
			size_t len = np * (size_t)pg;
			if (p0 * (size_t)pg + len > m->size)
				len = m->size - p0 * (size_t)pg;
			if (mincore((char *)m->base + p0 * (size_t)pg, len, vec) != 0)
				return -errno;
			for (size_t k = 0; k < np; k++)
				res += (vec[k] & 1) ? (uint64_t)pg : 0;
		}
	}
	*ret_resident = res > mapped ? mapped : res;
	*ret_mapped = mapped;
	return 0;
}

uint64_t rt_st_total_bytes(const struct st_set *s)
{
	return s->total;
}

int rt_st_count(const struct st_set *s)
{
	return s->n;
}

const struct st_tensor *rt_st_get(const struct st_set *s, int i)
{
	return &s->t[i];
}

const char *rt_st_file_name(const struct st_set *s, const struct st_tensor *t)
{
	return s->maps[t->file].path;
}

int rt_st_locate(const struct st_set *s, const struct st_tensor *t, const char **ret_path, uint64_t *ret_off)
{
	const struct st_map *mp = &s->maps[t->file];

	/* data was computed from this mapping's base, so the offset is exact */
	if ((const char *)t->data < (const char *)mp->base ||
	    (const char *)t->data + t->nbytes > (const char *)mp->base + mp->size)
		return -EINVAL;
	*ret_path = mp->path;
	*ret_off = (uint64_t)((const char *)t->data - (const char *)mp->base);
	return 0;
}
