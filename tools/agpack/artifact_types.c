/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "artifact_types.h"
#include "bundle/oci.h"
#include "debs.h"

#ifdef AGPACK_NETWORK
const bool agpack_have_network = true;
#define NET(f) f
#else
/* Built without libcurl (-Dfetch=disabled, or for the spec fuzzer). */
const bool agpack_have_network = false;
static int no_network(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                      json_t **ret_source, struct bn_error *err)
{
	(void)o;
	(void)stage;
	(void)ret_path;
	(void)ret_source;
	return bn_fail(err, -ENOTSUP,
	               "artifact '%s': type '%s' needs network sources, and this agpack was built without libcurl",
	               a->name, a->type);
}
#define NET(f) no_network
#endif

static int pack_oci(const char *path, const char *work, char **ret_path, struct bn_error *err)
{
	return bn_oci_prepare(path, work, ret_path, err);
}

/* clang-format off */
static const struct artifact_type types[] = {
	/* name          bundle type    layout              local  pin    fetch                       pack */
	{"files",        "files",       "tree",             true,  true,  NULL,                       NULL},
	{"oci-archive",  "oci-archive", "oci-image-layout", true,  false, NULL,                       pack_oci},
	{"image",        "oci-archive", "oci-image-layout", false, true,  NET(agpack_fetch_image),    pack_oci},
	{"url",          "files",       "tree",             false, true,  NET(agpack_fetch_url),      NULL},
	{"hf-model",     "files",       "tree",             false, true,  NET(agpack_fetch_hf_model), NULL},
	{"python",       "files",       "tree",             false, false, NET(agpack_fetch_python),   NULL},
	/* local .debs and/or apt's closure of named packages: apt, not libcurl */
	{"debs",         "files",       "tree",             false, false, agpack_fetch_debs,          NULL},
};
/* clang-format on */

const struct artifact_type *artifact_type_find(const char *name)
{
	for (size_t i = 0; name && i < sizeof types / sizeof types[0]; i++)
		if (!strcmp(types[i].name, name))
			return &types[i];
	return NULL;
}

const char *artifact_type_names(void)
{
	static char names[256];
	if (!names[0])
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
			size_t l = strlen(names);
			snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", types[i].name);
		}
	return names;
}
