/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <string.h>

#include "pkgdb.h"
#include "stanza.h"

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

/* Copies a value (the stanza reader trimmed it) into a field; too long,
 * repeated or holding a NUL marks the stanza bad. */
static void set_field(struct stanza *s, char *dst, const char *v, size_t n)
{
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

/* Parses "Key: value" stanzas separated by blank lines (dpkg) or, with
 * !dpkg, RFC 822 headers ending at the first blank line (Python). */
static int parse_rfc822(const char *buf, size_t len, bool dpkg, pkgdb_fn fn, void *ud)
{
	struct stanza s;
	stanza_reset(&s);
	struct stanza_reader rd;
	struct stanza_line l;
	int k, r = stanza_init(&rd, buf, len, true);
	if (r < 0)
		return r;
	while ((k = stanza_next(&rd, &l)) != STANZA_EOF) {
		if (k == STANZA_BLANK) {
			if (!dpkg)
				break;
			r = emit(&s, 1, fn, ud);
			if (r < 0)
				return r;
			continue;
		}
		if (k != STANZA_FIELD)
			continue; /* continuations of multi-line fields, odd lines */
		if (stanza_key_is(&l, dpkg ? "Package" : "Name"))
			set_field(&s, s.name, l.value, l.value_len);
		else if (stanza_key_is(&l, "Version"))
			set_field(&s, s.version, l.value, l.value_len);
		else if (dpkg && stanza_key_is(&l, "Architecture"))
			set_field(&s, s.arch, l.value, l.value_len);
		else if (dpkg && stanza_key_is(&l, "Status"))
			set_field(&s, s.status, l.value, l.value_len);
		else if (!dpkg && stanza_key_is(&l, "License"))
			set_field(&s, s.license, l.value, l.value_len);
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
	struct stanza_reader rd;
	struct stanza_line l;
	int k, r = stanza_init(&rd, buf, len, false);
	if (r < 0)
		return r;
	while ((k = stanza_next(&rd, &l)) != STANZA_EOF) {
		if (k == STANZA_BLANK) {
			r = emit(&s, 0, fn, ud);
			if (r < 0)
				return r;
			continue;
		}
		if (k != STANZA_FIELD || l.key_len != 1)
			continue;
		switch (l.key[0]) {
		case 'P': set_field(&s, s.name, l.value, l.value_len); break;
		case 'V': set_field(&s, s.version, l.value, l.value_len); break;
		case 'A': set_field(&s, s.arch, l.value, l.value_len); break;
		case 'L': set_field(&s, s.license, l.value, l.value_len); break;
		default: break;
		}
	}
	return emit(&s, 0, fn, ud);
}
