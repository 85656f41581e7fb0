/* SPDX-License-Identifier: Apache-2.0 */
/* agserve's request parser (tools/agserve/request.c).  The first byte picks
 * the endpoint (chat, completions, messages, apply-template), the rest is
 * the body.  An accepted request must satisfy request.h's invariants; a
 * refused one must say why. */
#include <string.h>

#include "fuzz_common.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct req_limits lim;
	struct req r;
	char msg[512], param[64];
	if (size < 1)
		return 0;
	enum req_kind kind = (enum req_kind)(data[0] % 4);
	req_limits_default(&lim);
	msg[0] = 0;
	int rc = req_parse(kind, (const char *)data + 1, size - 1, &lim, &r, msg, sizeof(msg), param, sizeof(param));
	if (rc < 0) {
		FUZZ_ASSERT(msg[0]);
		return 0;
	}
	FUZZ_ASSERT(r.kind == kind);
	FUZZ_ASSERT(r.n_stop <= REQ_MAX_STOP);
	for (size_t i = 0; i < r.n_stop; i++)
		FUZZ_ASSERT(r.stop[i][0] && strlen(r.stop[i]) <= lim.max_stop_len);
	if (kind == REQ_COMPLETION) {
		FUZZ_ASSERT(!r.messages && !!r.prompt != !!r.prompt_ids);
		FUZZ_ASSERT(!r.prompt || strlen(r.prompt) == r.prompt_len);
		FUZZ_ASSERT(!r.prompt_ids || (r.n_prompt_ids >= 1 && r.n_prompt_ids <= (size_t)lim.max_tokens_cap));
		for (size_t i = 0; i < r.n_prompt_ids; i++)
			FUZZ_ASSERT(r.prompt_ids[i] >= 0);
		FUZZ_ASSERT(r.max_tokens != 0 || (r.echo && !r.stream));
	} else {
		size_t i;
		json_t *m;
		FUZZ_ASSERT(json_is_array(r.messages) && !r.prompt);
		FUZZ_ASSERT(json_array_size(r.messages) <= lim.max_messages + 1);
		json_array_foreach(r.messages, i, m) {
			FUZZ_ASSERT(json_is_string(json_object_get(m, "role")));
			FUZZ_ASSERT(json_is_string(json_object_get(m, "content")));
		}
		FUZZ_ASSERT(!r.tools || json_is_array(r.tools));
	}
	if (kind != REQ_TEMPLATE) {
		FUZZ_ASSERT(r.max_tokens == -1 ||
		            (r.max_tokens >= (kind == REQ_COMPLETION ? 0 : 1) && r.max_tokens <= lim.max_tokens_cap));
		FUZZ_ASSERT(kind != REQ_MESSAGES || r.max_tokens >= 1);
		FUZZ_ASSERT(r.temperature >= 0 && r.temperature <= 2 && r.top_p > 0 && r.top_p <= 1);
		FUZZ_ASSERT(r.top_logprobs >= -1 && r.top_logprobs <= REQ_MAX_LOGPROBS);
		FUZZ_ASSERT(r.logprobs == (r.top_logprobs >= 0));
	}
	req_release(&r);
	return 0;
}
