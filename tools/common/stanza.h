/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The one reader of "Field: value" stanzas: deb822 / deb-control(5) control
 * files and dpkg status databases, RFC 822 style headers (Python core
 * metadata) and apk's installed database ("P:name").  It only cuts lines;
 * what a field means, and whether a line the reader reports as odd is an
 * error, is the caller's (tools/agpack/debctl.c, tools/agpack/pkgdb.c).  No
 * I/O, no allocation; fuzzed by tests/fuzz/fuzz-stanza.c.
 *
 * Limits: the input is at most STANZA_MAX_BYTES (stanza_init refuses more);
 * a key is 1..STANZA_KEY_MAX bytes (a longer one makes the line
 * STANZA_OTHER).  Values are unbounded here: callers copy them into bounded
 * fields and refuse or skip longer ones.  Values may hold NUL bytes; callers
 * that copy them check.
 */
#include <stdbool.h>
#include <stddef.h>

#define STANZA_MAX_BYTES (64u << 20)
#define STANZA_KEY_MAX 255u

enum stanza_kind {
	STANZA_EOF = 0,   /* no more lines */
	STANZA_FIELD = 1, /* "Key: value": key and value set */
	STANZA_BLANK = 2, /* an empty line: the end of a stanza */
	STANZA_CONT = 3,  /* a continuation line (starts with a space or tab): value is the rest of it */
	STANZA_OTHER = 4, /* anything else: no colon, an empty or over-long key */
};

struct stanza_line {
	unsigned line;               /* 1-based line number */
	const char *key, *value;     /* into the buffer; not NUL-terminated */
	size_t key_len, value_len;   /* value: without leading spaces and tabs nor trailing spaces, tabs and CRs */
};

struct stanza_reader {
	const char *buf;
	size_t len, pos;
	unsigned line;
	bool strip_cr; /* a line's trailing CR is dropped before anything else (CRLF input) */
};

/* -EFBIG when len is above STANZA_MAX_BYTES. */
int stanza_init(struct stanza_reader *r, const char *buf, size_t len, bool strip_cr);
/* The next line's kind (enum stanza_kind) and, for fields and continuations, *l. */
int stanza_next(struct stanza_reader *r, struct stanza_line *l);
/* True when l has the key key, ignoring ASCII case (a continuation has none). */
bool stanza_key_is(const struct stanza_line *l, const char *key);
