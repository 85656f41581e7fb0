/* SPDX-License-Identifier: Apache-2.0 */
/* Out-of-core weights (stream.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rt_error.h"
#include "stream.h"

struct stream_range {
	uintptr_t lo, hi; /* page-aligned, outward */
	int stage;        /* index into stage[]: 0 embed, 1 + layer, 1 + n_layers head */
};

struct rt_stream {
	struct stream_range *r; /* sorted by stage, then address */
	size_t n_r;
	size_t *first;   /* [n_stages + 1]: stage i's ranges are r[first[i] .. first[i + 1]) */
	uint64_t *bytes; /* [n_stages] tensor bytes of each stage */
	int n_stages, cur;
	bool tied; /* the embedding rows lie in the head's stage */
	struct rt_stream_stats st;
};

static int range_cmp(const void *a, const void *b)
{
	const struct stream_range *x = a, *y = b;
	if (x->stage != y->stage)
		return x->stage < y->stage ? -1 : 1;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The stage of a tensor name, -1 for tensors the forward pass never reads
 * (e.g. multi-token-prediction layers past n_layers). */
static int stage_of(const char *name, int n_layers, bool tied)
{
	if (!strncmp(name, "model.layers.", 13)) {
		char *end;
		long l = strtol(name + 13, &end, 10);
		if (end == name + 13 || *end != '.' || l < 0)
			return 1 + n_layers; /* not a layer index: keep it with the head */
		return l < n_layers ? 1 + (int)l : -1;
	}
	if (!strncmp(name, "model.embed_tokens.", 19))
		return tied ? 1 + n_layers : 0;
	return 1 + n_layers;
}

static void advise(const struct rt_stream *s, int stage, int advice)
{
	for (size_t i = s->first[stage]; i < s->first[stage + 1]; i++)
		madvise((void *)s->r[i].lo, s->r[i].hi - s->r[i].lo, advice);
}

int rt_stream_new(const struct st_set *st, int n_layers, bool tied, uint64_t max_stage, struct rt_stream **ret,
                  struct rt_error *err)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	int n = rt_st_count(st), ns = n_layers + 2;
	struct rt_stream *s = calloc(1, sizeof(*s));
	size_t k = 0;

	if (!s || !(s->r = calloc((size_t)(n ? n : 1), sizeof(*s->r))) ||
	    !(s->first = calloc((size_t)ns + 1, sizeof(*s->first))) ||
	    !(s->bytes = calloc((size_t)ns, sizeof(uint64_t)))) {
		rt_stream_free(s);
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	}
	s->n_stages = ns;
	s->cur = -1;
	s->tied = tied;
	for (int i = 0; i < n; i++) {
		const struct st_tensor *t = rt_st_get(st, i);
		int sg = stage_of(t->name, n_layers, tied);
		uintptr_t a = (uintptr_t)t->data;
		if (sg < 0 || !t->nbytes)
			continue;
		s->bytes[sg] += t->nbytes;
		s->r[k++] = (struct stream_range){a & ~(pg - 1), (a + t->nbytes + pg - 1) & ~(pg - 1), sg};
	}
	qsort(s->r, k, sizeof(*s->r), range_cmp);
	/* merge overlapping or touching ranges of one stage (a layer's tensors lie together) */
	s->n_r = 0;
	for (size_t i = 0; i < k; i++) {
		struct stream_range *p = s->n_r ? &s->r[s->n_r - 1] : NULL;
		if (p && p->stage == s->r[i].stage && s->r[i].lo <= p->hi)
			p->hi = s->r[i].hi > p->hi ? s->r[i].hi : p->hi;
		else
			s->r[s->n_r++] = s->r[i];
	}
	for (size_t i = 0, sg = 0; sg <= (size_t)ns; sg++) {
		while (i < s->n_r && s->r[i].stage < (int)sg)
			i++;
		s->first[sg] = i;
	}
	for (int sg = 0; sg < ns; sg++) {
		if (s->bytes[sg] > s->st.largest_stage)
			s->st.largest_stage = s->bytes[sg];
		if (sg > 0 && s->bytes[sg] > max_stage) {
			char what[32];
			if (sg <= n_layers)
				snprintf(what, sizeof(what), "layer %d", sg - 1);
			else
				snprintf(what, sizeof(what), "the output head");
			rt_fail(err, RT_ERR_USAGE, -E2BIG,
			        "%s takes %.1f MiB, more than the %.1f MiB a streamed stage may take", what,
			        s->bytes[sg] / 1048576.0, max_stage / 1048576.0);
			rt_stream_free(s);
			return -E2BIG;
		}
	}
	/* loading touched the vectors it copied: start with nothing mapped */
	for (int sg = 0; sg < ns; sg++)
		advise(s, sg, MADV_DONTNEED);
	*ret = s;
	return 0;
}

void rt_stream_free(struct rt_stream *s)
{
	if (!s)
		return;
	free(s->r);
	free(s->first);
	free(s->bytes);
	free(s);
}

void rt_stream_enter(struct rt_stream *s, int stage)
{
	int sg;

	if (!s)
		return;
	sg = stage + 1;
	if (sg < 0 || sg >= s->n_stages || sg == s->cur)
		return;
	if (s->cur >= 0)
		advise(s, s->cur == 0 && s->tied ? s->n_stages - 1 : s->cur, MADV_DONTNEED);
	s->cur = sg;
	s->st.entries++;
	if (sg == 0)
		return; /* a few embedding rows: read where they are */
	s->st.bytes_read += s->bytes[sg];
	advise(s, sg, MADV_WILLNEED);
	if (sg + 1 < s->n_stages)
		advise(s, sg + 1, MADV_WILLNEED);
}

void rt_stream_get_stats(const struct rt_stream *s, struct rt_stream_stats *ret)
{
	*ret = s ? s->st : (struct rt_stream_stats){0};
}
