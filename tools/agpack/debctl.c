/* SPDX-License-Identifier: Apache-2.0 */
/* deb-control(5) stanzas of the debs artifact (debs.h), read with the one
 * stanza reader (tools/common/stanza.h); no I/O, fuzzed by
 * tests/fuzz/fuzz-debcontrol.c. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "debs.h"
#include "stanza.h"

bool deb_name_valid(const char *v, const char *allowed_extra, bool lead_alnum)
{
	if (!v[0] || (lead_alnum && !isalnum((unsigned char)v[0])))
		return false;
	for (const char *p = v; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || strchr(allowed_extra, *p)))
			return false;
	return true;
}

void deb_control_free(struct deb_control *c)
{
	if (c) {
		free(c->text);
		c->text = NULL;
	}
}

int deb_control_parse(const char *buf, size_t len, const char *what, struct deb_control *ret, struct bn_error *err)
{
	struct deb_control c = {0};
	if (len > DEB_MAX_CONTROL)
		return bn_fail(err, -EFBIG, "%s: control file larger than %u bytes", what, DEB_MAX_CONTROL);
	if (memchr(buf, 0, len))
		return bn_fail(err, -EBADMSG, "%s: control file contains a NUL byte", what);
	/* drop leading and trailing blank lines; a blank line inside would start a second stanza */
	while (len && (buf[0] == '\n' || buf[0] == '\r'))
		buf++, len--;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (!len)
		return bn_fail(err, -EBADMSG, "%s: empty control file", what);
	c.text = malloc(len + 2);
	if (!c.text)
		return bn_fail(err, -ENOMEM, "out of memory");
	memcpy(c.text, buf, len);
	c.text[len] = '\n';
	c.text[len + 1] = 0;
	struct stanza_reader rd;
	struct stanza_line l;
	int k;
	(void)stanza_init(&rd, c.text, len + 1, true); /* len is below DEB_MAX_CONTROL */
	while ((k = stanza_next(&rd, &l)) != STANZA_EOF) {
		if (k == STANZA_BLANK) {
			deb_control_free(&c);
			return bn_fail(err, -EBADMSG, "%s: control file line %u: a blank line (more than one stanza)",
			               what, l.line);
		}
		if (k == STANZA_OTHER) {
			deb_control_free(&c);
			return bn_fail(err, -EBADMSG, "%s: control file line %u is not 'Field: value'", what, l.line);
		}
		if (k == STANZA_CONT) {
			if (l.line == 1) {
				deb_control_free(&c);
				return bn_fail(err, -EBADMSG, "%s: control file starts with a continuation line", what);
			}
			continue;
		}
		char *dst = NULL;
		size_t cap = 0;
		if (stanza_key_is(&l, "Package"))
			dst = c.package, cap = sizeof c.package;
		else if (stanza_key_is(&l, "Version"))
			dst = c.version, cap = sizeof c.version;
		else if (stanza_key_is(&l, "Architecture"))
			dst = c.arch, cap = sizeof c.arch;
		if (dst) {
			if (dst[0] || l.value_len == 0 || l.value_len >= cap) {
				int r = bn_fail(err, -EBADMSG, "%s: control file line %u: %.*s is repeated, empty or too long",
				                what, l.line, (int)l.key_len, l.key);
				deb_control_free(&c); /* after the message: the key points into c.text */
				return r;
			}
			memcpy(dst, l.value, l.value_len);
			dst[l.value_len] = 0;
		}
	}
	const char *bad =
	    !c.package[0]                                              ? "no Package field"
	    : !deb_name_valid(c.package, "+-.", true) || !c.package[1] ? "Package is not a valid package name"
	    : !c.version[0]                                            ? "no Version field"
	    : !isdigit((unsigned char)c.version[strchr(c.version, ':') ? strcspn(c.version, ":") + 1 : 0]) ||
	            strspn(c.version, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+~:-") !=
	                strlen(c.version)
	        ? "Version is not a valid version"
	    : !c.arch[0]                         ? "no Architecture field"
	    : !deb_name_valid(c.arch, "-", true) ? "Architecture is not valid"
	                                         : NULL;
	if (bad) {
		deb_control_free(&c);
		return bn_fail(err, -EBADMSG, "%s: malformed control data: %s", what, bad);
	}
	*ret = c;
	return 0;
}
