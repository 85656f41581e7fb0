/* SPDX-License-Identifier: Apache-2.0 */
/* bn_trust_parse(): a policy that parses formats and re-parses to itself. */
#include <string.h>

#include "bundle/trust.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The policy is large (64 keys, 256 channels): keep it off the stack. */
	struct bn_trust_policy *p = calloc(2, sizeof *p);
	FUZZ_ASSERT(p);
	struct bn_error err = {0};
	if (bn_trust_parse((const char *)data, size, &p[0], &err) == 0) {
		FUZZ_ASSERT(p[0].n_keys >= 1 && p[0].n_keys <= BN_TRUST_MAX_KEYS);
		FUZZ_ASSERT(p[0].threshold >= 1 && p[0].threshold <= p[0].n_keys);
		FUZZ_ASSERT(p[0].n_channels <= BN_TRUST_MAX_CHANNELS);
		for (size_t i = 0; i < p[0].n_channels; i++)
			(void)bn_trust_min_version(&p[0], p[0].channels[i].name);
		struct bn_trust view = bn_trust_view(&p[0]);
		FUZZ_ASSERT(view.n_keys == p[0].n_keys);
		char *text = NULL;
		FUZZ_ASSERT(bn_trust_format(&p[0], &text) == 0);
		int r = bn_trust_parse(text, strlen(text), &p[1], &err);
		if (r < 0)
			fprintf(stderr, "re-parse failed: %s\n%s\n", err.msg, text);
		FUZZ_ASSERT(r == 0);
		FUZZ_ASSERT(p[1].serial == p[0].serial && p[1].threshold == p[0].threshold &&
		            p[1].n_keys == p[0].n_keys && p[1].max_age_days == p[0].max_age_days &&
		            p[1].n_channels == p[0].n_channels && p[1].max_version_jump == p[0].max_version_jump &&
		            p[1].n_bundles == p[0].n_bundles);
		FUZZ_ASSERT(p[0].n_bundles <= BN_TRUST_MAX_BUNDLES);
		for (size_t i = 0; i < p[0].n_bundles; i++)
			FUZZ_ASSERT(!strcmp(p[1].bundles[i], p[0].bundles[i]) &&
			            bn_trust_accepts_bundle(&p[0], p[0].bundles[i]));
		/* One public key appears once, whatever its key id. */
		for (size_t i = 0; i < p[0].n_keys; i++)
			for (size_t j = 0; j < i; j++)
				FUZZ_ASSERT(!bn_pubkey_same(&p[0].keys[i], &p[0].keys[j]));
		FUZZ_ASSERT(memcmp(p[1].keys, p[0].keys, p[0].n_keys * sizeof p[0].keys[0]) == 0);
		free(text);
	}
	free(p);
	return 0;
}
