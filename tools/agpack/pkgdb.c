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

enum db { DB_DPKG, DB_PYMETA, DB_APK };

/* The field a line sets, or NULL. */
static char *field_of(struct stanza *s, enum db db, const struct stanza_line *l)
{
	if (db == DB_APK) {
		if (l->key_len != 1)
			return NULL;
		switch (l->key[0]) {
		case 'P': return s->name;
		case 'V': return s->version;
		case 'A': return s->arch;
		case 'L': return s->license;
		default: return NULL;
		}
	}
	if (stanza_key_is(l, db == DB_DPKG ? "Package" : "Name"))
		return s->name;
	if (stanza_key_is(l, "Version"))
		return s->version;
	if (db == DB_DPKG && stanza_key_is(l, "Architecture"))
		return s->arch;
	if (db == DB_DPKG && stanza_key_is(l, "Status"))
		return s->status;
	if (db == DB_PYMETA && stanza_key_is(l, "License"))
		return s->license;
	return NULL;
}

/* Stanzas separated by blank lines (dpkg: "Key: value", CRLF tolerated; apk:
 * "K:value"), or RFC 822 headers ending at the first blank line (Python). */
static int parse(const char *buf, size_t len, enum db db, pkgdb_fn fn, void *ud)
{
	struct stanza s;
	stanza_reset(&s);
	struct stanza_reader rd;
	struct stanza_line l;
	int k, r = stanza_init(&rd, buf, len, db != DB_APK);
	if (r < 0)
		return r;
	while ((k = stanza_next(&rd, &l)) != STANZA_EOF) {
		if (k == STANZA_BLANK) {
			if (db == DB_PYMETA)
				break;
			r = emit(&s, db == DB_DPKG, fn, ud);
			if (r < 0)
				return r;
			continue;
		}
		char *dst = k == STANZA_FIELD ? field_of(&s, db, &l) : NULL; /* continuations, odd lines: skipped */
		if (dst)
			set_field(&s, dst, l.value, l.value_len);
	}
	return emit(&s, db == DB_DPKG, fn, ud);
}

int pkgdb_parse_dpkg(const char *buf, size_t len, pkgdb_fn fn, void *ud)
{
	return parse(buf, len, DB_DPKG, fn, ud);
}

int pkgdb_parse_pymeta(const char *buf, size_t len, pkgdb_fn fn, void *ud)
{
	return parse(buf, len, DB_PYMETA, fn, ud);
}

int pkgdb_parse_apk(const char *buf, size_t len, pkgdb_fn fn, void *ud)
{
	return parse(buf, len, DB_APK, fn, ud);
}
