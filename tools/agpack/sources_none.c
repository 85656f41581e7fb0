/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>

#include "sources.h"

const bool agpack_have_network = false;

int agpack_fetch(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                 const char **ret_type, json_t **ret_source, struct bn_error *err)
{
	(void)o;
	(void)stage;
	(void)ret_path;
	(void)ret_type;
	(void)ret_source;
	return bn_fail(err, -ENOTSUP, "artifact '%s': type '%s' needs network sources, and this agpack was built without libcurl",
	               a->name, a->type);
}
