/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "pkgdb.h"

struct stanza {
	char name[PKGDB_FIELD_MAX + 1], version[PKGDB_FIELD_MAX + 1], arch[PKGDB_FIELD_MAX + 1],
	    license[PKGDB_FIELD_MAX + 1], status[PKGDB_FIELD_MAX + 1];
	int bad; /* a field was too long or repeated */
};

static void stanza_reset(struct stanza *s)
{
	s->name[0] = s->version[0] = s->arch[0] = s->license[0] = s->status[0] = 0;
	s->bad = 0;
}

/* Copies value (trimmed of surrounding blanks) into a field; too long or
 * repeated marks the stanza bad. */
static void set_field(struct stanza *s, char *dst, const char *v, size_t n)
{
	while (n && (*v == ' ' || *v == '\t'))
		v++, n--;
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
		n--;
	if (n > PKGDB_FIELD_MAX || dst[0] || memchr(v, 0, n)) {
		s->bad = 1;
		return;
	}
	memcpy(dst, v, n);
	dst[n] = 0;
}

static int emit(struct stanza *s, int need_installed, pkgdb_fn fn, void *ud)
{
	int r = 0;
	if (!s->bad && s->name[0] && s->version[0]) {
		size_t sl = strlen(s->status);
		bool ok = !need_installed || !s->status[0] || (sl >= 10 && !strcmp(s->status + sl - 10, " installed"));
		if (ok) {
			struct pkgdb_pkg p = {s->name, s->version, s->arch, s->license};
			r = fn(ud, &p);
		}
	}
	stanza_reset(s);
	return r;
}

static bool field_is(const char *line, size_t n, const char *key, size_t *ret_vo)
{
	size_t k = strlen(key);
	if (n <= k || line[k] != ':' || strncasecmp(line, key, k) != 0)
		return false;
	*ret_vo = k + 1;
	return true;
}

/* Parses "Key: value" stanzas separated by blank lines (dpkg) or, with
 * !dpkg, RFC 822 headers ending at the first blank line (Python). */
static int parse_rfc822(const char *buf, size_t len, bool dpkg, pkgdb_fn fn, void *ud)
{
	struct stanza s;
	stanza_reset(&s);
	size_t i = 0;
	int r = 0;
	while (i < len) {
		const char *line = buf + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t n = nl ? (size_t)(nl - line) : len - i;
		i += n + (nl ? 1 : 0);
		if (n && line[n - 1] == '\r')
			n--;
		if (n == 0) {
			if (!dpkg)
				break;
			r = emit(&s, 1, fn, ud);
			if (r < 0)
				return r;
			continue;
		}
		if (line[0] == ' ' || line[0] == '\t')
			continue; /* continuation of a multi-line field */
		size_t vo;
		if (field_is(line, n, dpkg ? "Package" : "Name", &vo))
			set_field(&s, s.name, line + vo, n - vo);
		else if (field_is(line, n, "Version", &vo))
			set_field(&s, s.version, line + vo, n - vo);
		else if (dpkg && field_is(line, n, "Architecture", &vo))
			set_field(&s, s.arch, line + vo, n - vo);
		else if (dpkg && field_is(line, n, "Status", &vo))
			set_field(&s, s.status, line + vo, n - vo);
		else if (!dpkg && field_is(line, n, "License", &vo))
			set_field(&s, s.license, line + vo, n - vo);
	}
	return emit(&s, dpkg, fn, ud);
}

int pkgdb_parse_dpkg(const char *buf, size_t len, pkgdb_fn fn, void *ud)
{
	return parse_rfc822(buf, len, true, fn, ud);
}

int pkgdb_parse_pymeta(const char *buf, size_t len, pkgdb_fn fn, void *ud)
{
	return parse_rfc822(buf, len, false, fn, ud);
}

int pkgdb_parse_apk(const char *buf, size_t len, pkgdb_fn fn, void *ud)
{
	struct stanza s;
	stanza_reset(&s);
	size_t i = 0;
	int r = 0;
	while (i < len) {
		const char *line = buf + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t n = nl ? (size_t)(nl - line) : len - i;
		i += n + (nl ? 1 : 0);
		if (n == 0) {
			r = emit(&s, 0, fn, ud);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 2 || line[1] != ':')
			continue;
		switch (line[0]) {
		case 'P': set_field(&s, s.name, line + 2, n - 2); break;
		case 'V': set_field(&s, s.version, line + 2, n - 2); break;
		case 'A': set_field(&s, s.arch, line + 2, n - 2); break;
		case 'L': set_field(&s, s.license, line + 2, n - 2); break;
		default: break;
		}
	}
	return emit(&s, 0, fn, ud);
}
