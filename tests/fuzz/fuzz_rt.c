/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "fuzz_rt.h"

static bool verbose(void)
{
	const char *v = getenv("FUZZ_VERBOSE");
	return v && *v && strcmp(v, "0");
}

bool fuzz_rt_load_and_run(const char *dir)
{
	struct rt_load_opts o = {.n_threads = 1, .backend = RT_BACKEND_CPU};
	struct rt_model *m = NULL;
	struct rt_session *s = NULL;
	struct rt_error e = {0};

	if (rt_model_load(dir, &o, &m, &e) < 0) {
		FUZZ_ASSERT(e.msg[0] && e.code > 0);
		FUZZ_ASSERT(!m);
		if (verbose())
			fprintf(stderr, "load: %s\n", e.msg);
		return false;
	}
	FUZZ_ASSERT(m);
	const struct rt_model_info *in = rt_model_get_info(m);
	FUZZ_ASSERT(in->vocab >= 1 && in->hidden >= 1 && in->n_layers >= 1 && in->n_heads >= 1);
	FUZZ_ASSERT(in->n_kv_heads >= 1 && in->n_heads % in->n_kv_heads == 0 && in->head_dim % 2 == 0);
	FUZZ_ASSERT(in->n_eos >= 0 && in->n_eos <= 8 && in->bos_id >= -1 && in->bos_id < in->vocab);
	if (rt_session_new(m, 0, &s, &e) == 0) {
		int32_t ids[2] = {1 % in->vocab, (in->vocab - 1)};
		float *logits = malloc(2 * (size_t)in->vocab * sizeof *logits);
		FUZZ_ASSERT(logits);
		int r = rt_session_forward(s, ids, 2, true, logits, &e);
		/* only a context shorter than 2 positions refuses the two ids */
		FUZZ_ASSERT(r == 0 || in->max_positions < 2);
		if (r == 0)
			FUZZ_ASSERT(rt_session_pos(s) == 2);
		else if (verbose())
			fprintf(stderr, "forward: %s\n", e.msg);
		free(logits);
		rt_session_free(s);
	} else if (verbose()) {
		fprintf(stderr, "session: %s\n", e.msg);
	}
	rt_model_free(m);
	if (verbose())
		fprintf(stderr, "loaded and ran\n");
	return true;
}
