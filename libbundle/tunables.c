/* SPDX-License-Identifier: Apache-2.0 */
#include <stddef.h>

#include "bundle/tunables.h"

static struct bn_tunables current;

void bn_set_tunables(const struct bn_tunables *t)
{
	current = t ? *t : (struct bn_tunables){0};
}

const struct bn_tunables *bn_tunables(void)
{
	return &current;
}
