/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every chunk codec (coding.h): plain zstd and byte grouping, encode, check
 * and decode behind one dispatch on the coding.
 *
 * Byte grouping for tensor data.  In a bf16/f16 weight the high byte carries
 * the sign and most of the exponent, which takes few values for normally
 * distributed weights; the low byte is mantissa and close to random.
 * Interleaved, a general-purpose coder sees neither property well; split into
 * one stream per byte position, the exponent stream compresses to a few bits
 * per byte and the mantissa streams are stored raw at memcpy speed.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "bundle/fsutil.h"
#include "bundle/manifest.h"
#include "coding.h"

#define DESC 5 /* method byte + u32le stored length, per stream */
enum { METHOD_RAW = 0, METHOD_ZSTD = 1 };

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Order-0 entropy in bits per byte, estimated from up to 64 evenly spaced
 * 4 KiB samples: a measurement that spares the coder a pass over streams it
 * cannot shrink (mantissa bytes), at a small fraction of a pass itself. */
static double entropy(const uint8_t *p, size_t n)
{
	enum { BLOCK = 4096, SAMPLES = 64 };
	uint32_t h[4][256] = {{0}};
	size_t total = 0;
	size_t step = n / SAMPLES > BLOCK ? n / SAMPLES : BLOCK;
	for (size_t at = 0; at < n; at += step) {
		const uint8_t *b = p + at;
		size_t len = n - at < BLOCK ? n - at : BLOCK, i = 0;
		/* Four tables break the store-to-load dependency on repeated values. */
		for (; i + 4 <= len; i += 4) {
			h[0][b[i]]++;
			h[1][b[i + 1]]++;
			h[2][b[i + 2]]++;
			h[3][b[i + 3]]++;
		}
		for (; i < len; i++)
			h[0][b[i]]++;
		total += len;
	}
	double e = 0;
	for (int s = 0; s < 256; s++) {
		double c = (double)h[0][s] + h[1][s] + h[2][s] + h[3][s];
		if (c > 0)
			e -= c * log2(c / (double)total);
	}
	return total ? e / (double)total : 8.0;
}

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Splits 2-byte elements: s0 gets bytes 0, s1 bytes 1 of each. */
static void gather2(const uint8_t *src, size_t m, uint8_t *s0, uint8_t *s1)
{
	size_t i = 0;
#ifdef __SSE2__
	/* Hot loop (pack): 16 elements per step; mask/shift the 16-bit lanes
	 * and pack them back to bytes. */
	const __m128i lo = _mm_set1_epi16(0x00ff);
	for (; i + 16 <= m; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(src + 2 * i));
		__m128i b = _mm_loadu_si128((const __m128i *)(src + 2 * i + 16));
		_mm_storeu_si128((__m128i *)(s0 + i), _mm_packus_epi16(_mm_and_si128(a, lo), _mm_and_si128(b, lo)));
		_mm_storeu_si128((__m128i *)(s1 + i), _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
	}
#endif
	for (; i < m; i++) {
		s0[i] = src[2 * i];
		s1[i] = src[2 * i + 1];
	}
}

/* The inverse of gather2(). */
static void scatter2(const uint8_t *s0, const uint8_t *s1, size_t m, uint8_t *dst)
{
	size_t i = 0;
#ifdef __SSE2__
	/* Hot loop (extract): interleave 16 + 16 bytes per step. */
	for (; i + 16 <= m; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(s0 + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(s1 + i));
		_mm_storeu_si128((__m128i *)(dst + 2 * i), _mm_unpacklo_epi8(a, b));
		_mm_storeu_si128((__m128i *)(dst + 2 * i + 16), _mm_unpackhi_epi8(a, b));
	}
#endif
	for (; i < m; i++) {
		dst[2 * i] = s0[i];
		dst[2 * i + 1] = s1[i];
	}
}

/* Splits src into k streams of m bytes each in scratch (stream j at j * m). */
static void gather(unsigned k, const uint8_t *src, size_t m, uint8_t *scratch)
{
	if (k == 2) {
		gather2(src, m, scratch, scratch + m);
		return;
	}
	/* Hot loop (pack, F32). */
	uint8_t *s0 = scratch, *s1 = scratch + m, *s2 = scratch + 2 * m, *s3 = scratch + 3 * m;
	for (size_t i = 0; i < m; i++) {
		s0[i] = src[4 * i];
		s1[i] = src[4 * i + 1];
		s2[i] = src[4 * i + 2];
		s3[i] = src[4 * i + 3];
	}
}

/* The inverse of gather(), from streams anywhere in memory. */
static void scatter(unsigned k, const uint8_t *const *s, size_t m, uint8_t *dst)
{
	if (k == 2) {
		scatter2(s[0], s[1], m, dst);
		return;
	}
	/* Hot loop (extract, F32). */
	for (size_t i = 0; i < m; i++) {
		dst[4 * i] = s[0][i];
		dst[4 * i + 1] = s[1][i];
		dst[4 * i + 2] = s[2][i];
		dst[4 * i + 3] = s[3][i];
	}
}

/*
 * Stream coder: an exponent stream has few distinct values and almost no
 * repeats worth a match, so zstd's match finder only costs time (level 3
 * codes it 4x slower and 20% larger than Huffman alone, measured on bf16
 * weights).  The fast strategy with the largest targetLength skips ahead
 * when it finds no match, which leaves zstd's Huffman literal coder doing the
 * work; literal compression must then be forced on, because zstd turns it
 * off by default for a fast strategy with targetLength > 0.  That switch is
 * ZSTD_c_literalCompressionMode, an experimental parameter whose public enum
 * slot is ZSTD_c_experimentalParam5 (value 1 = ZSTD_ps_enable).  A library
 * that refuses it still produces a valid frame, just a larger one.  The
 * bundle's --level applies to plain zstd chunks only.
 */
static void set_stream_params(ZSTD_CCtx *cctx)
{
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_strategy, ZSTD_fast);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_targetLength, 131072);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_experimentalParam5, 1);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
}

int64_t bn_bg_encode(ZSTD_CCtx *cctx, unsigned k, const uint8_t *src, size_t n, uint8_t *scratch,
                     uint8_t *dst, size_t dstcap)
{
	if ((k != 2 && k != 4) || dstcap < n + DESC * k || n / k > UINT32_MAX)
		return -EINVAL;
	size_t m = n / k, pos = DESC * k;
	gather(k, src, m, scratch);
	for (unsigned j = 0; j < k; j++) {
		const uint8_t *s = scratch + j * m;
		uint8_t method = METHOD_RAW;
		size_t len = m;
		if (m > 0 && entropy(s, m) < 7.9) {
			set_stream_params(cctx);
			/* Capacity below m: a frame that does not shrink the stream fails
			 * here and the stream is stored raw. */
			size_t cl = ZSTD_compress2(cctx, dst + pos, m - 1, s, m);
			if (!ZSTD_isError(cl)) {
				method = METHOD_ZSTD;
				len = cl;
			}
		}
		if (method == METHOD_RAW)
			memcpy(dst + pos, s, m);
		dst[DESC * j] = method;
		put_le32(dst + DESC * j + 1, (uint32_t)len);
		pos += len;
	}
	memcpy(dst + pos, src + m * k, n - m * k);
	pos += n - m * k;
	return (int64_t)pos;
}

int bn_bg_check(unsigned k, const uint8_t *src, size_t csize, size_t usize)
{
	if ((k != 2 && k != 4) || csize < DESC * k)
		return -EBADMSG;
	size_t m = usize / k, pos = DESC * k;
	for (unsigned j = 0; j < k; j++) {
		uint8_t method = src[DESC * j];
		size_t len = get_le32(src + DESC * j + 1);
		if (len > csize - pos)
			return -EBADMSG;
		if (method == METHOD_RAW) {
			if (len != m)
				return -EBADMSG;
		} else if (method == METHOD_ZSTD) {
			unsigned long long fcs = ZSTD_getFrameContentSize(src + pos, len);
			size_t fsz = ZSTD_findFrameCompressedSize(src + pos, len);
			if (fcs != m || ZSTD_isError(fsz) || fsz != len)
				return -EBADMSG;
		} else {
			return -EBADMSG;
		}
		pos += len;
	}
	return csize - pos == usize - m * k ? 0 : -EBADMSG;
}

int bn_bg_decode(ZSTD_DCtx *dctx, unsigned k, const uint8_t *src, size_t csize, uint8_t *dst, size_t usize,
                 uint8_t *scratch)
{
	int r = bn_bg_check(k, src, csize, usize);
	if (r < 0)
		return r;
	size_t m = usize / k, pos = DESC * k;
	const uint8_t *streams[4];
	for (unsigned j = 0; j < k; j++) {
		size_t len = get_le32(src + DESC * j + 1);
		if (src[DESC * j] == METHOD_RAW) {
			streams[j] = src + pos; /* interleaved straight from the stored bytes */
		} else {
			/* Output capacity is exactly the stream: a frame cannot write more. */
			size_t d = ZSTD_decompressDCtx(dctx, scratch + j * m, m, src + pos, len);
			if (ZSTD_isError(d) || d != m)
				return -EBADMSG;
			streams[j] = scratch + j * m;
		}
		pos += len;
	}
	scatter(k, streams, m, dst);
	memcpy(dst + m * k, src + pos, usize - m * k);
	return 0;
}

/* ---- safetensors ----------------------------------------------------- */

/* ---- one dispatch over the codings ------------------------------------ */

int64_t bn_coding_encode(ZSTD_CCtx *cctx, int level, unsigned group, const uint8_t *src, size_t n,
                         uint8_t *scratch, uint8_t *dst, size_t dstcap, uint8_t *ret_coding)
{
	if (group > 1 && scratch) {
		int64_t c = bn_bg_encode(cctx, group, src, n, scratch, dst, dstcap);
		if (c > 0) {
			*ret_coding = group == 2 ? BN_CODING_BG2 : BN_CODING_BG4;
			return c;
		}
	}
	/* Independent frames: each chunk decodes on its own (parallel import, resume). */
	ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
	size_t cl = ZSTD_compress2(cctx, dst, dstcap, src, n);
	if (ZSTD_isError(cl))
		return -EIO;
	*ret_coding = BN_CODING_ZSTD;
	return (int64_t)cl;
}

bool bn_coding_check(uint8_t coding, const uint8_t *src, size_t csize, size_t usize)
{
	if (coding == BN_CODING_ZSTD) {
		unsigned long long fcs = ZSTD_getFrameContentSize(src, csize);
		size_t fsz = ZSTD_findFrameCompressedSize(src, csize);
		return fcs == usize && !ZSTD_isError(fsz) && fsz == csize;
	}
	return bn_bg_check(coding == BN_CODING_BG2 ? 2 : 4, src, csize, usize) == 0;
}

int bn_coding_decode(ZSTD_DCtx *dctx, uint8_t coding, const uint8_t *src, size_t csize, uint8_t *dst, size_t usize,
                     uint8_t *scratch)
{
	if (coding == BN_CODING_ZSTD) {
		size_t n = ZSTD_decompressDCtx(dctx, dst, usize, src, csize);
		return !ZSTD_isError(n) && n == usize ? 0 : -EBADMSG;
	}
	return bn_bg_decode(dctx, coding == BN_CODING_BG2 ? 2 : 4, src, csize, dst, usize, scratch) == 0 ? 0 : -EBADMSG;
}

/* ---- where byte grouping applies: the safetensors header --------------- */

static unsigned dtype_group(const char *dt, unsigned *elem)
{
	static const struct { const char *name; unsigned size, group; } t[] = {
		{"BF16", 2, 2}, {"F16", 2, 2}, {"F32", 4, 4},
		{"F64", 8, 1}, {"I64", 8, 1}, {"U64", 8, 1}, {"I32", 4, 1}, {"U32", 4, 1},
		{"I16", 2, 1}, {"U16", 2, 1}, {"I8", 1, 1}, {"U8", 1, 1}, {"BOOL", 1, 1},
		{"F8_E4M3", 1, 1}, {"F8_E5M2", 1, 1},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (!strcmp(dt, t[i].name)) {
			*elem = t[i].size;
			return t[i].group;
		}
	return 0;
}

struct tinfo {
	uint64_t b, e;
	unsigned group;
};

static int cmp_tinfo(const void *a, const void *b)
{
	const struct tinfo *x = a, *y = b;
	return x->b < y->b ? -1 : x->b > y->b;
}

static int push_seg(struct bn_segment **s, size_t *n, size_t *cap, uint64_t off, uint64_t len, unsigned group)
{
	if (len == 0)
		return 0;
	/* Each coded tensor is a segment of its own (its data starts a chunk,
	 * so a tensor keeps its chunks when others change size: delta bundles,
	 * FORMAT.md section 12.3); adjacent plain data becomes one segment. */
	if (*n > 0) {
		struct bn_segment *l = &(*s)[*n - 1];
		if (group == 1 && l->group == 1 && l->off + l->len == off) {
			l->len += len;
			return 0;
		}
	}
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct bn_segment *ns = realloc(*s, nc * sizeof *ns);
		if (!ns)
			return -ENOMEM;
		*s = ns;
		*cap = nc;
	}
	(*s)[(*n)++] = (struct bn_segment){off, len, group};
	return 0;
}

int bn_safetensors_segments(int fd, uint64_t size, struct bn_segment **ret, size_t *n_ret)
{
	uint8_t lb[8];
	if (size < 8 || bn_pread_all(fd, lb, 8, 0) < 0)
		return -EINVAL;
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | lb[i];
	if (hl < 2 || hl > BN_SAFETENSORS_HEADER_MAX || hl > size - 8)
		return -EINVAL;
	char *h = malloc(hl);
	if (!h)
		return -ENOMEM;
	int r = bn_pread_all(fd, h, hl, 8);
	json_t *root = NULL;
	struct tinfo *t = NULL;
	struct bn_segment *segs = NULL;
	size_t nt = 0, ns = 0, cap = 0;
	if (r < 0)
		goto bad;
	json_error_t je;
	root = json_loadb(h, hl, JSON_REJECT_DUPLICATES, &je);
	if (!root || !json_is_object(root))
		goto bad;
	uint64_t base = 8 + hl, dlen = size - base;
	t = calloc(json_object_size(root) + 1, sizeof *t);
	if (!t)
		goto bad;
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v) {
		if (!strcmp(key, "__metadata__"))
			continue;
		json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
		       *offs = json_object_get(v, "data_offsets");
		if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
		    json_array_size(offs) != 2)
			goto bad;
		json_t *jb = json_array_get(offs, 0), *je2 = json_array_get(offs, 1);
		if (!json_is_integer(jb) || !json_is_integer(je2))
			goto bad;
		json_int_t b = json_integer_value(jb), e = json_integer_value(je2);
		if (b < 0 || e < b || (uint64_t)e > dlen)
			goto bad;
		unsigned elem = 0, group = dtype_group(json_string_value(dt), &elem);
		if (!group)
			goto bad;
		/* shape x element size must equal the byte range, without overflow. */
		uint64_t count = 1;
		size_t i;
		json_t *d;
		json_array_foreach(shape, i, d) {
			if (!json_is_integer(d) || json_integer_value(d) < 0)
				goto bad;
			uint64_t x = (uint64_t)json_integer_value(d);
			if (x != 0 && count > UINT64_MAX / 8 / x)
				goto bad;
			count *= x;
		}
		if (count * elem != (uint64_t)(e - b))
			goto bad;
		t[nt++] = (struct tinfo){base + (uint64_t)b, base + (uint64_t)e, group};
	}
	qsort(t, nt, sizeof *t, cmp_tinfo);
	uint64_t at = 0;
	if (push_seg(&segs, &ns, &cap, 0, base, 1) < 0)
		goto bad;
	at = base;
	for (size_t i = 0; i < nt; i++) {
		if (t[i].b < at) /* overlapping tensors */
			goto bad;
		if (push_seg(&segs, &ns, &cap, at, t[i].b - at, 1) < 0 ||
		    push_seg(&segs, &ns, &cap, t[i].b, t[i].e - t[i].b, t[i].group) < 0)
			goto bad;
		at = t[i].e;
	}
	if (push_seg(&segs, &ns, &cap, at, size - at, 1) < 0)
		goto bad;
	/* Every segment boundary ends a chunk: runs of grouped data too short to
	 * pay for that become plain and merge with their neighbours, and a file
	 * cut into too many pieces anyway (crafted headers) is packed plain. */
	size_t out = 0;
	for (size_t i = 0; i < ns; i++) {
		struct bn_segment sg = segs[i];
		if (sg.group > 1 && sg.len < BN_SEGMENT_MIN)
			sg.group = 1;
		if (out > 0 && sg.group == 1 && segs[out - 1].group == 1)
			segs[out - 1].len += sg.len;
		else
			segs[out++] = sg;
	}
	ns = out;
	if (ns > BN_SEGMENTS_MAX)
		goto bad;
	json_decref(root);
	free(t);
	free(h);
	*ret = segs;
	*n_ret = ns;
	return 0;
bad:
	json_decref(root);
	free(t);
	free(h);
	free(segs);
	return -EINVAL;
}
