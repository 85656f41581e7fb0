/* SPDX-License-Identifier: Apache-2.0 */
/* TAP unit test of tools/agserve/textout.c over a byte-level "tokenizer"
 * (id = byte, decoded as from_utf8_lossy does: one U+FFFD per maximal
 * invalid subpart): streamed pieces concatenate to the text of the whole
 * sequence, never split a character, and stray bytes that can no longer
 * form a character stream as they come instead of being held to the end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textout.h"

static size_t seq_len(const unsigned char *b, size_t n)
{
	unsigned c = b[0];
	size_t want;
	unsigned lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		want = 2;
	else if (c >= 0xe0 && c <= 0xef)
		want = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		want = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0; /* invalid, one byte */
	for (size_t i = 1; i < want; i++) {
		if (i >= n)
			return 0; /* incomplete at the end */
		unsigned x = b[i];
		if (x < (i == 1 ? lo : 0x80) || x > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return want;
}

/* from_utf8_lossy: the maximal valid prefix of an invalid sequence is one U+FFFD */
static size_t bad_len(const unsigned char *b, size_t n)
{
	size_t k = 1;
	unsigned c = b[0];
	if (c < 0xc2 || c > 0xf4)
		return 1;
	unsigned lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80, hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
	size_t want = c <= 0xdf ? 2 : c <= 0xef ? 3 : 4;
	while (k < want && k < n && b[k] >= (k == 1 ? lo : 0x80) && b[k] <= (k == 1 ? hi : 0xbf))
		k++;
	return k;
}

static char *lossy(const int32_t *ids, size_t n, size_t *ret_len)
{
	unsigned char *b = malloc(n + 1);
	char *out = malloc(3 * n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)ids[i];
	for (size_t i = 0; i < n;) {
		size_t l = seq_len(b + i, n - i);
		if (l) {
			memcpy(out + o, b + i, l);
			o += l;
			i += l;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i += bad_len(b + i, n - i);
		}
	}
	out[o] = 0;
	free(b);
	*ret_len = o;
	return out;
}

int engine_detokenize(struct engine *e, const int32_t *ids, size_t n, char **ret_text, size_t *ret_len)
{
	(void)e;
	*ret_text = lossy(ids, n, ret_len);
	return 0;
}

static int n_test, n_fail;
static void ok(int cond, const char *what)
{
	printf("%sok %d - %s\n", cond ? "" : "not ", ++n_test, what);
	n_fail += !cond;
}

/* Pushes bytes one at a time; checks each piece extends a prefix of the
 * whole text; returns how many pieces had text; lag[i]: bytes of text
 * out after push i. */
static int run(const unsigned char *b, size_t n, size_t *lag, int *ret_ok)
{
	struct textout to;
	int32_t ids[4096];
	size_t wl, got = 0;
	int pieces = 0, good = 1;
	for (size_t i = 0; i < n; i++)
		ids[i] = b[i];
	char *want = lossy(ids, n, &wl);
	char *acc = malloc(wl + 1);
	textout_init(&to, NULL, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		const char *t;
		size_t l;
		textout_push(&to, ids + i, 1, i + 1 == n, &t, &l);
		if (got + l > wl || memcmp(want + got, t, l))
			good = 0;
		else
			memcpy(acc + got, t, l);
		got += l;
		pieces += l > 0;
		if (lag)
			lag[i] = got;
	}
	good = good && got == wl;
	textout_release(&to);
	free(want);
	free(acc);
	*ret_ok = good;
	return pieces;
}

int main(void)
{
	int good;
	size_t lag[64];
	/* a character split over two and four tokens */
	const unsigned char e_acute[] = {'a', 0xc3, 0xa9, 'b'};
	run(e_acute, 4, lag, &good);
	ok(good && lag[1] == 1 && lag[2] == 3, "a 2-byte character split over two tokens is held, then sent whole");
	const unsigned char emoji[] = {0xf0, 0x9f, 0x98, 0x80, 'x'};
	run(emoji, 5, lag, &good);
	ok(good && lag[0] == 0 && lag[1] == 0 && lag[2] == 0 && lag[3] == 4,
	   "a 4-byte character split over four tokens is held until complete");
	/* stray continuation bytes: invalid for good, each streams one token behind at most */
	unsigned char stray[40];
	memset(stray, 0x80, sizeof(stray));
	int pieces = run(stray, sizeof(stray), lag, &good);
	int behind = 1;
	for (size_t i = 0; i < sizeof(stray); i++)
		if (lag[i] + 3 < 3 * i)
			behind = 0;
	ok(good && behind && pieces >= 38,
	   "40 stray continuation bytes stream as U+FFFD one token behind (were held to the end)");
	/* stray lead bytes followed by ASCII, and lead bytes followed by lead bytes */
	const unsigned char leads[] = {0xc3, 0xc3, 0xc3, 0xe2, 0xe2, 0xf0, 0xf0,
	                               0x41, 0xe2, 0x82, 0x41, 0xe2, 0x82, 0xac};
	run(leads, sizeof(leads), lag, &good);
	ok(good && lag[5] >= 12,
	   "stray lead bytes: sent once a following byte rules them out; text equals the whole decode");
	/* random bytes: pieces always concatenate to the whole text */
	unsigned seed = 12345;
	int all = 1;
	for (int round = 0; round < 2000; round++) {
		unsigned char r[64];
		size_t n = 1 + (seed = seed * 1103515245u + 12345u) % 63;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			unsigned v = (seed >> 16) & 0xff;
			static const unsigned char pick[] = {'a',  ' ',  0x80, 0xbf, 0xc3, 0xa9, 0xe2, 0x82, 0xac,
			                                     0xf0, 0x9f, 0x98, 0xed, 0xa0, 0xf4, 0x90, 0xff, 0xe0};
			r[i] = v < 128 ? pick[v % sizeof(pick)] : (unsigned char)v;
		}
		run(r, n, NULL, &good);
		all &= good;
	}
	ok(all, "2000 random byte sequences: the streamed pieces are exactly the whole decode");
	printf("1..%d\n", n_test);
	return n_fail != 0;
}
