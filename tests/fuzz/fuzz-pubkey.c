/* SPDX-License-Identifier: Apache-2.0 */
/* bn_pubkey_parse(): a key that parses formats and re-parses to itself. */
#include <string.h>

#include "bundle/minisign.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bn_pubkey pk, pk2;
	struct bn_error err = {0};
	if (bn_pubkey_parse((const char *)data, size, &pk, &err) < 0)
		return 0;
	char *text = NULL;
	FUZZ_ASSERT(bn_pubkey_format(&pk, &text) == 0);
	FUZZ_ASSERT(bn_pubkey_parse(text, strlen(text), &pk2, &err) == 0);
	FUZZ_ASSERT(memcmp(&pk, &pk2, sizeof pk) == 0);
	free(text);
	return 0;
}
