/* SPDX-License-Identifier: Apache-2.0 */
/* The chat template engine: TEMPLATE [SEP CONTEXT_JSON].  The template is
 * compiled with rt_chat_template_new() and rendered with the given context,
 * or with a fixed one (system, user, assistant with tool calls, tool
 * result, tools, unicode) when none is given.  Invariants: a failure always
 * has a message and no output; a success gives a NUL-terminated text of the
 * reported length within the output limit. */
#include <string.h>

#include "agrt/agrt.h"
#include "fuzz_common.h"

static const char ctx_fixed[] =
	"{\"messages\": ["
	"{\"role\": \"system\", \"content\": \"Be brief. \\u00e9\\u65e5\\ud83d\\ude00\"},"
	"{\"role\": \"user\", \"content\": \"  What's {{ x }} in {% y %}?\\n\"},"
	"{\"role\": \"assistant\", \"content\": \"<think>hm</think>ok\", \"tool_calls\": [{\"id\": \"call12345\","
	" \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [true, null, 2.5]}}}]},"
	"{\"role\": \"tool\", \"tool_call_id\": \"call12345\", \"content\": \"42\"},"
	"{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"more\"}]}],"
	"\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"description\": \"d\","
	" \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}}}],"
	"\"add_generation_prompt\": true, \"enable_thinking\": false}";

static void check_result(int r, char *out, size_t len, const struct rt_error *e)
{
	if (r < 0) {
		FUZZ_ASSERT(e->msg[0] && !out);
		FUZZ_ASSERT(e->code == RT_ERR_USAGE || e->code == RT_ERR_MODEL || e->code == RT_ERR_INTERNAL);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "refused: %s\n", e->msg);
		return;
	}
	FUZZ_ASSERT(out && out[len] == '\0' && len <= (4u << 20));
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *parts[2];
	size_t lens[2];
	size_t n = fuzz_split(data, size, parts, lens, 2);
	struct rt_chat_template *t = NULL;
	struct rt_error e = {0};
	char *out = NULL;
	size_t len = 0;
	int r = rt_chat_template_new((const char *)parts[0], lens[0], "<s>", "</s>", &t, &e);

	if (r < 0) {
		FUZZ_ASSERT(e.msg[0] && !t);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "refused: %s\n", e.msg);
		return 0;
	}
	(void)rt_chat_template_mentions(t, "tools");
	if (n == 2)
		r = rt_chat_template_render(t, (const char *)parts[1], lens[1], &out, &len, &e);
	else
		r = rt_chat_template_render(t, ctx_fixed, sizeof(ctx_fixed) - 1, &out, &len, &e);
	check_result(r, out, len, &e);
	rt_chat_template_free(t);
	return 0;
}
