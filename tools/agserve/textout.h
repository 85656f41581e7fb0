/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Generated ids -> text to send, for streaming and for whole responses:
 * never a partial UTF-8 sequence (a trailing U+FFFD from the detokenizer is
 * held while a following token may still complete it: the last tokens up to
 * 3, and only those whose bytes may combine with later ones; stray bytes
 * that are invalid for good stream as U+FFFD as they come), never a byte of a stop string
 * (a suffix that could begin one is held back until it cannot), and the
 * text ends before the first stop string.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

struct textout {
	struct engine *e;
	char *const *stop;
	size_t n_stop;
	int32_t *ids;
	size_t n, cap;
	size_t prefix, read; /* incremental decoding window, see textout.c */
	char *full;          /* text of ids[0..read] */
	size_t full_len;
	size_t emitted;       /* bytes of full already handed out */
	bool stopped;         /* a stop string was found; no more text */
	const char *stop_hit; /* that string (one of stop[]) */
};

void textout_init(struct textout *to, struct engine *e, char *const *stop, size_t n_stop);
void textout_release(struct textout *to);
/* Adds ids; ret_text, ret_len: the next piece to send (points into the
 * textout, valid until the next call).  final: no more ids follow, flush. */
int textout_push(struct textout *to, const int32_t *ids, size_t n, bool final, const char **ret_text, size_t *ret_len);
