/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
#include <stddef.h>

#include "bundle/minisign.h"

/* The fixed trusted key (public half), valid after fuzz_signer_setup(). */
extern struct bn_pubkey fuzz_pub;
void fuzz_signer_setup(void);
/* Writes bdir/signatures/KEYID.minisig over manifest bytes m, the way agpack does. */
void fuzz_sign(const char *bdir, const char *m, size_t ml);
