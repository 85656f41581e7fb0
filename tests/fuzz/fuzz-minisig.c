/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bn_minisig_parse() and bn_minisig_verify().  Input: SIGNATURE [SEP PUBKEY
 * [SEP DATA]] (FUZZ_SEP between parts), so seeds can be real agpack output
 * whose signature verifies.  A signature that verifies must not verify any
 * more once one byte of its data or trusted comment changes.
 */
#include <errno.h>
#include <string.h>

#include "bundle/minisign.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *parts[3];
	size_t lens[3];
	size_t n = fuzz_split(data, size, parts, lens, 3);
	struct bn_minisig s;
	struct bn_error err = {0};
	if (bn_minisig_parse((const char *)parts[0], lens[0], &s, &err) < 0)
		return 0;
	FUZZ_ASSERT(strlen(s.trusted_comment) < BN_TRUSTED_COMMENT_MAX);
	struct bn_pubkey pk;
	if (n < 2 || bn_pubkey_parse((const char *)parts[1], lens[1], &pk, &err) < 0) {
		/* No usable key in the input: a key built from the signature's id. */
		memset(&pk, 0, sizeof pk);
		memcpy(pk.keyid, s.keyid, BN_KEYID_LEN);
	}
	const uint8_t *msg = n > 2 ? parts[2] : (const uint8_t *)"";
	size_t ml = n > 2 ? lens[2] : 0;
	int r = bn_minisig_verify(&s, &pk, msg, ml);
	FUZZ_ASSERT(r == 0 || r == -ENOKEY || r == -EBADMSG);
	if (r != 0)
		return 0;
	if (ml > 0) {
		uint8_t *alt = malloc(ml);
		FUZZ_ASSERT(alt);
		memcpy(alt, msg, ml);
		alt[ml / 2] ^= 1;
		FUZZ_ASSERT(bn_minisig_verify(&s, &pk, alt, ml) == -EBADMSG);
		free(alt);
	}
	struct bn_minisig s2 = s;
	size_t tcl = strlen(s2.trusted_comment);
	if (tcl > 0)
		s2.trusted_comment[tcl - 1] ^= 1;
	else
		memcpy(s2.trusted_comment, "x", 2);
	FUZZ_ASSERT(bn_minisig_verify(&s2, &pk, msg, ml) == -EBADMSG);
	return 0;
}
