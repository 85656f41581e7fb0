/* SPDX-License-Identifier: Apache-2.0 */
/* The debs artifact's control-file parser (tools/agpack/debctl.c): an
 * accepted stanza has a valid Package, Version and Architecture and ends in
 * one newline; a refusal says why. */
#include <string.h>

#include "debs.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bn_error err = {0};
	struct deb_control c;
	if (deb_control_parse((const char *)data, size, "fuzz", &c, &err) < 0) {
		FUZZ_ASSERT(err.msg[0]);
		return 0;
	}
	FUZZ_ASSERT(c.package[0] && c.version[0] && c.arch[0]);
	FUZZ_ASSERT(deb_name_valid(c.package, "+-.", true) && deb_name_valid(c.arch, "-", true));
	size_t n = strlen(c.text);
	FUZZ_ASSERT(n >= 2 && c.text[n - 1] == '\n' && c.text[n - 2] != '\n');
	deb_control_free(&c);
	return 0;
}
