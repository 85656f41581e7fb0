/* SPDX-License-Identifier: Apache-2.0 */
/* agserve's tool-call parser (tools/agserve/toolcall.c), on model output:
 * the first byte picks the format (and with its top bit, a fixed list of
 * tools whose parameter schemas type MiniMax's values), the rest is the
 * generated text.  Every
 * call found has a name within limits and arguments that are a JSON
 * object; the content is a prefix of the text; and while the text streams
 * in, what goes out as content is never more than the final content. */
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "toolcall.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *tools;
	struct tc_result r;
	if (size < 1 || size > 8192)
		return 0;
	if (!tools)
		tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": "
		                   "\"object\", \"properties\": {\"s\": {\"type\": \"string\"}, \"i\": {\"type\": "
		                   "\"integer\"}, \"b\": {\"type\": \"boolean\"}, \"o\": {\"type\": \"object\"}, \"n\": "
		                   "{\"type\": [\"string\", \"null\"]}, \"x\": {\"type\": [\"number\", \"array\"]}}}}}]",
		                   0, NULL);
	enum tc_format f = (enum tc_format)((data[0] & 0x7f) % TC_N_FORMATS);
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	if (tc_parse_tools(f, text, len, data[0] & 0x80 ? tools : NULL, &r) < 0)
		return 0;
	FUZZ_ASSERT(r.content_len <= len);
	FUZZ_ASSERT(r.n_calls <= TC_MAX_CALLS);
	FUZZ_ASSERT(f != TC_NONE || (r.n_calls == 0 && r.content_len == len));
	for (size_t i = 0; i < r.n_calls; i++) {
		size_t n = strlen(r.calls[i].name);
		FUZZ_ASSERT(n >= 1 && n <= TC_MAX_NAME);
		json_t *a = json_loads(r.calls[i].arguments, 0, NULL);
		FUZZ_ASSERT(json_is_object(a));
		json_decref(a);
	}
	size_t final = r.n_calls ? r.content_len : len, step = len > 512 ? len / 64 : 1;
	for (size_t k = 0; k <= len; k += step)
		FUZZ_ASSERT(tc_stream_safe(f, text, k) <= (r.n_calls ? final : k));
	FUZZ_ASSERT(tc_stream_safe(f, text, len) <= final);
	tc_result_release(&r);
	return 0;
}
