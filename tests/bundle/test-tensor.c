/* SPDX-License-Identifier: Apache-2.0 */
/* Byte-group coding (FORMAT.md 4.1): round trips at every length class,
 * and the stream-table checks that stand between signed bytes and the decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "../tap.h"
#include "coding.h"

static uint64_t rng = 88172645463325252ull;
static uint8_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint8_t)rng;
}

int main(void)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	size_t cap = 1 << 20;
	uint8_t *src = malloc(cap), *dst = malloc(cap + 64), *out = malloc(cap), *scratch = malloc(cap);
	/* bf16-like: random low byte, high byte from a few values. */
	for (size_t i = 0; i < cap; i += 2) {
		src[i] = rnd();
		src[i + 1] = (uint8_t)(0x3c + (rnd() & 3));
	}
	const size_t lens[] = {0, 1, 2, 3, 5, 4096, 4097, 4099, 65536, cap - 3, cap};
	for (unsigned k = 2; k <= 4; k += 2)
		for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
			size_t n = lens[li];
			int64_t c = bn_bg_encode(cc, k, src, n, scratch, dst, cap + 64);
			memset(out, 0xa5, cap);
			int d = c >= 0 ? bn_bg_decode(dc, k, dst, (size_t)c, out, n, scratch) : -1;
			TAP_OK(c >= 0 && d == 0 && memcmp(src, out, n) == 0 && bn_bg_check(k, dst, (size_t)c, n) == 0,
			       "k=%u n=%zu: round trip (%lld stored bytes)", k, n, (long long)c);
		}
	int64_t c = bn_bg_encode(cc, 2, src, cap, scratch, dst, cap + 64);
	TAP_OK(c > 0 && (size_t)c < cap * 3 / 4, "bf16-like data shrinks to %lld of %zu bytes", (long long)c, cap);
	TAP_OK(dst[0] == 0 && dst[5] == 1, "low-byte stream raw, high-byte stream zstd");
	size_t cs = (size_t)c;
	/* Each mutation of the table must be refused before decoding. */
	uint8_t *bad = malloc(cs + 16);
	memcpy(bad, dst, cs);
	bad[0] = 2;
	TAP_OK(bn_bg_check(2, bad, cs, cap) < 0 && bn_bg_decode(dc, 2, bad, cs, out, cap, scratch) < 0,
	       "unknown method refused");
	memcpy(bad, dst, cs);
	bad[1] ^= 1;
	TAP_OK(bn_bg_check(2, bad, cs, cap) < 0, "raw stream length != M refused");
	memcpy(bad, dst, cs);
	bad[6] ^= 1;
	TAP_OK(bn_bg_check(2, bad, cs, cap) < 0, "zstd stream length off by one refused");
	memcpy(bad, dst, cs);
	bad[9] = 0xff;
	TAP_OK(bn_bg_check(2, bad, cs, cap) < 0, "stream length past the chunk refused");
	TAP_OK(bn_bg_check(2, dst, cs - 1, cap) < 0, "truncated chunk refused");
	memcpy(bad, dst, cs);
	bad[cs] = 0;
	TAP_OK(bn_bg_check(2, bad, cs + 1, cap) < 0, "trailing byte refused");
	TAP_OK(bn_bg_check(2, dst, cs, cap - 2) < 0, "wrong usize refused");
	TAP_OK(bn_bg_check(2, dst, 9, cap) < 0 && bn_bg_check(4, dst, 19, 8) < 0, "chunk shorter than its table refused");
	TAP_OK(bn_bg_check(3, dst, cs, cap) < 0, "group size 3 refused");
	/* A frame whose header declares the right size but whose body is damaged
	 * passes the table check and must fail in the decoder, not overrun. */
	memcpy(bad, dst, cs);
	size_t l0 = (size_t)bad[1] | (size_t)bad[2] << 8 | (size_t)bad[3] << 16 | (size_t)bad[4] << 24;
	for (size_t i = 10 + l0 + 20; i < cs; i += 97)
		bad[i] ^= 0x5a;
	memset(out, 0, cap);
	int d = bn_bg_decode(dc, 2, bad, cs, out, cap, scratch);
	TAP_OK(d < 0 || memcmp(out, src, cap) != 0, "damaged frame body: decode fails or differs (hash catches it)");
	free(bad);
	free(src);
	free(dst);
	free(out);
	free(scratch);
	ZSTD_freeCCtx(cc);
	ZSTD_freeDCtx(dc);
	return tap_done();
}
