/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bn_seckey_parse() on unencrypted keys only: an encrypted key would run
 * scrypt with parameters taken from the input (up to 4 GiB of memory, minutes
 * of CPU), so bn_seckey_needs_passphrase() is asked first and encrypted keys
 * are skipped.  A key that parses must format and re-parse to itself.
 */
#include <string.h>

#include "bundle/minisign.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool needs = true;
	if (bn_seckey_needs_passphrase((const char *)data, size, &needs) < 0 || needs)
		return 0;
	struct bn_seckey sk, sk2;
	struct bn_error err = {0};
	/* With no passphrase an encrypted key must be refused, never derived. */
	if (bn_seckey_parse((const char *)data, size, NULL, &sk, &err) < 0)
		return 0;
	char *text = NULL;
	FUZZ_ASSERT(bn_seckey_format(&sk, NULL, &text) == 0);
	FUZZ_ASSERT(bn_seckey_needs_passphrase(text, strlen(text), &needs) == 0 && !needs);
	FUZZ_ASSERT(bn_seckey_parse(text, strlen(text), NULL, &sk2, &err) == 0);
	FUZZ_ASSERT(memcmp(&sk, &sk2, sizeof sk) == 0);
	free(text);
	bn_seckey_wipe(&sk);
	bn_seckey_wipe(&sk2);
	return 0;
}
