/* SPDX-License-Identifier: Apache-2.0 */
/* Prints every schema's keys, one "SCHEMA<TAB>KEY<TAB>TYPES<TAB>MIN<TAB>MAX<TAB>DOC" line, for
 * schema-docs.sh, which compares them with the documentation. */
#include <stdio.h>

#include "bundle/schema.h"
#include "spec.h"

static void types(unsigned t, char *out, size_t n)
{
	static const char *const names[] = {"string", "integer", "number", "boolean", "array", "object", "null"};
	size_t k = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < 7; i++)
		if (t & (1u << i))
			k += (size_t)snprintf(out + k, n - k, "%s%s", k ? " or " : "", names[i]);
}

static void dump(const struct bn_schema *s)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		char t[128];
		types(s->keys[i].types, t, sizeof t);
		printf("%s\t%s\t%s\t%.15g\t%.15g\t%s\n", s->what, s->keys[i].key, t, s->keys[i].min, s->keys[i].max,
		       s->keys[i].doc);
	}
}

int main(void)
{
	for (size_t i = 0; spec_schemas[i].what; i++)
		dump(&spec_schemas[i]);
	dump(&bn_trust_schema);
	dump(&bn_trust_key_schema);
	dump(&bn_trust_channel_schema);
	dump(&bn_config_schema);
	return 0;
}
