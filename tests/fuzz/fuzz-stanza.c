/* SPDX-License-Identifier: Apache-2.0 */
/* The one "Field: value" stanza reader (tools/common/stanza.c), in both its
 * modes: every line is reported once, in order; keys are 1..STANZA_KEY_MAX
 * bytes of one line with no colon; values lie inside their line and are
 * trimmed; the lines' bytes add up to the input. */
#include <string.h>

#include "fuzz_common.h"
#include "stanza.h"

static void walk(const char *buf, size_t size, bool strip_cr)
{
	struct stanza_reader r;
	if (stanza_init(&r, buf, size, strip_cr) < 0) {
		FUZZ_ASSERT(size > STANZA_MAX_BYTES);
		return;
	}
	struct stanza_line l;
	unsigned want = 0;
	size_t lines = 0;
	for (size_t i = 0; i < size; i++)
		lines += buf[i] == '\n';
	if (size && buf[size - 1] != '\n')
		lines++;
	int k;
	while ((k = stanza_next(&r, &l)) != STANZA_EOF) {
		FUZZ_ASSERT(l.line == ++want);
		FUZZ_ASSERT(k >= STANZA_FIELD && k <= STANZA_OTHER);
		if (k == STANZA_FIELD) {
			FUZZ_ASSERT(l.key == buf || l.key[-1] == '\n');
			FUZZ_ASSERT(l.key_len >= 1 && l.key_len <= STANZA_KEY_MAX);
			FUZZ_ASSERT(!memchr(l.key, ':', l.key_len) && !memchr(l.key, '\n', l.key_len));
			FUZZ_ASSERT(l.key[0] != ' ' && l.key[0] != '\t');
			FUZZ_ASSERT(l.value > l.key + l.key_len);
		}
		if (k == STANZA_FIELD || k == STANZA_CONT) {
			FUZZ_ASSERT(l.value >= buf && l.value + l.value_len <= buf + size);
			FUZZ_ASSERT(!memchr(l.value, '\n', l.value_len));
			if (l.value_len) {
				char a = l.value[0], z = l.value[l.value_len - 1];
				FUZZ_ASSERT(a != ' ' && a != '\t' && z != ' ' && z != '\t' && z != '\r');
			}
			FUZZ_ASSERT(!stanza_key_is(&l, "")); /* no key is empty; continuations have none */
		}
		FUZZ_ASSERT(want <= lines);
	}
	FUZZ_ASSERT(want == lines);
	FUZZ_ASSERT(stanza_next(&r, &l) == STANZA_EOF);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	walk((const char *)data, size, true);
	walk((const char *)data, size, false);
	return 0;
}
