/* SPDX-License-Identifier: Apache-2.0 */
/* agrun's health suite parser (tools/agrun/health_suite.h): the suite, then
 * each prompt against a model of 300 ids (gen_tiny.py's) and 64 positions,
 * the way `agrun check` reads it. */
#include <string.h>

#include "fuzz_common.h"
#include "health_suite.h"

#define VOCAB 300
#define CTX   64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct health_suite s;
	if (health_suite_parse((const char *)data, size, &s) < 0)
		return 0;
	FUZZ_ASSERT(json_is_array(s.prompts) && json_array_size(s.prompts) >= 1 &&
	            json_array_size(s.prompts) <= HEALTH_MAX_PROMPTS);
	FUZZ_ASSERT(s.margin_tol >= 0 && s.kl_tol >= 0);
	(void)json_number_value(json_object_get(s.budgets, "ttft_ms"));
	size_t i;
	json_t *p;
	json_array_foreach(s.prompts, i, p) {
		struct health_prompt hp;
		if (health_prompt_parse(p, VOCAB, CTX, &hp) < 0)
			continue;
		FUZZ_ASSERT(hp.name && hp.text && hp.n >= 1 && hp.n + hp.n_out <= CTX);
		FUZZ_ASSERT(json_array_size(hp.steps) == hp.n_out);
		for (size_t k = 0; k < hp.n; k++)
			FUZZ_ASSERT(hp.ids[k] >= 0 && hp.ids[k] < VOCAB);
		for (size_t k = 0; k < hp.n_out; k++)
			FUZZ_ASSERT(hp.out[k] >= 0 && hp.out[k] < VOCAB);
		(void)strlen(hp.text);
		if (hp.output_text)
			(void)strlen(hp.output_text);
		health_prompt_free(&hp);
	}
	health_suite_free(&s);
	FUZZ_ASSERT(!s.root);
	/* ids against a model that is smaller than the suite's */
	if (health_suite_parse((const char *)data, size, &s) == 0) {
		struct health_prompt hp;
		if (health_prompt_parse(json_array_get(s.prompts, 0), 1, 1, &hp) == 0) {
			FUZZ_ASSERT(hp.n == 1 && hp.n_out == 0 && hp.ids[0] == 0);
			health_prompt_free(&hp);
		}
		health_suite_free(&s);
	}
	return 0;
}
