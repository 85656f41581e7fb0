/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internal to libbundle: every chunk codec, encode, header check and decode,
 * behind one dispatch on the manifest's coding (docs/FORMAT.md section 4):
 * plain zstd frames and the byte-grouped codings of format 1.1 (section
 * 4.1), and the safetensors reader that finds where grouping applies.  The
 * codecs know nothing of bundles: the hashes and the error lines that name a
 * chunk are verify.c's and writer.c's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

/* Segment of a file: bytes [off, off + len) coded with `group` (1: plain
 * zstd; 2: 16-bit elements; 4: 32-bit elements). */
struct bn_segment {
	uint64_t off, len;
	unsigned group;
};

#define BN_SAFETENSORS_HEADER_MAX (16u << 20)
#define BN_SEGMENT_MIN (64u << 10) /* shorter grouped runs are packed plain */
#define BN_SEGMENTS_MAX 65536u     /* more segments: the whole file is packed plain */

/* Splits the safetensors file open at fd (size bytes) into segments that
 * cover it exactly, in order.  Any doubt about the header (too big, not
 * JSON, duplicate keys, offsets out of range or overlapping, sizes that do
 * not match shape x dtype) returns -EINVAL: the caller packs the file plain. */
int bn_safetensors_segments(int fd, uint64_t size, struct bn_segment **ret, size_t *n_ret);

/* Encodes n bytes of src as byte groups of k (2 or 4) into dst (capacity
 * dstcap >= n + 5 * k).  scratch holds n bytes.  cctx is reset and set up for
 * each stream.  Returns the stored length or a negative errno. */
int64_t bn_bg_encode(ZSTD_CCtx *cctx, unsigned k, const uint8_t *src, size_t n, uint8_t *scratch,
                     uint8_t *dst, size_t dstcap);
/* Checks the stored layout without decoding anything: descriptor methods,
 * lengths adding up to csize, zstd frame headers declaring the stream size. */
int bn_bg_check(unsigned k, const uint8_t *src, size_t csize, size_t usize);
/* Decodes into dst (exactly usize bytes); scratch holds usize bytes. */
int bn_bg_decode(ZSTD_DCtx *dctx, unsigned k, const uint8_t *src, size_t csize, uint8_t *dst, size_t usize,
                 uint8_t *scratch);

/* ---- one dispatch over the codings (coding: enum bn_coding) ---------- */

/* Codes n bytes of src as one chunk into dst (capacity dstcap, at least
 * ZSTD_compressBound(n)): byte groups of `group` (2 or 4) where that is
 * smaller and scratch (n bytes) was given, else one zstd frame at `level`
 * that declares its content size, without checksum (each chunk decodes on
 * its own: parallel import, resume).  *ret_coding: the coding used.
 * Returns the stored length or a negative errno. */
int64_t bn_coding_encode(ZSTD_CCtx *cctx, int level, unsigned group, const uint8_t *src, size_t n,
                         uint8_t *scratch, uint8_t *dst, size_t dstcap, uint8_t *ret_coding);
/* The stored bytes' headers against the declared sizes, decoding nothing: a
 * zstd chunk is exactly one frame declaring usize; a byte-grouped chunk's
 * stream table adds up. */
bool bn_coding_check(uint8_t coding, const uint8_t *src, size_t csize, size_t usize);
/* Decodes src (csize bytes) into exactly usize bytes of dst.  scratch holds
 * usize bytes (byte-grouped codings only; NULL for zstd).  Returns 0 or a
 * negative errno. */
int bn_coding_decode(ZSTD_DCtx *dctx, uint8_t coding, const uint8_t *src, size_t csize, uint8_t *dst, size_t usize,
                     uint8_t *scratch);
