/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the one "Field: value" stanza reader (tools/common/stanza.c)
 * and of the parsers over it: deb_control_parse (tools/agpack/debctl.c) and
 * the SBOM's dpkg, apk and Python metadata readers (tools/agpack/pkgdb.c).
 * Expected values are written from deb822(5), apk's installed-database
 * format and the core metadata specification.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "debs.h"
#include "pkgdb.h"
#include "stanza.h"

static bool is(const struct stanza_line *l, const char *key, const char *value)
{
	return (key ? l->key_len == strlen(key) && !memcmp(l->key, key, l->key_len) : !l->key) &&
	       l->value_len == strlen(value) && !memcmp(l->value, value, l->value_len);
}

static void test_reader(void)
{
	const char *t = "Package: a\r\nVersion:  1.0 \t\r\n\r\n cont line \n\tx\nno colon\n:empty key\nKey:\nLast: z";
	struct stanza_reader r;
	struct stanza_line l;
	TAP_OK(stanza_init(&r, t, strlen(t), true) == 0, "init");
	TAP_OK(stanza_next(&r, &l) == STANZA_FIELD && is(&l, "Package", "a") && l.line == 1, "a field, CR stripped");
	TAP_OK(stanza_next(&r, &l) == STANZA_FIELD && is(&l, "Version", "1.0"), "a value trimmed of spaces and tabs");
	TAP_OK(stanza_next(&r, &l) == STANZA_BLANK && l.line == 3, "a CRLF blank line ends the stanza");
	TAP_OK(stanza_next(&r, &l) == STANZA_CONT && is(&l, NULL, "cont line"), "a continuation (space)");
	TAP_OK(stanza_next(&r, &l) == STANZA_CONT && is(&l, NULL, "x") && !stanza_key_is(&l, ""),
	       "a continuation (tab) has no key");
	TAP_OK(stanza_next(&r, &l) == STANZA_OTHER, "a line without a colon");
	TAP_OK(stanza_next(&r, &l) == STANZA_OTHER, "a line with an empty key");
	TAP_OK(stanza_next(&r, &l) == STANZA_FIELD && is(&l, "Key", ""), "an empty value");
	TAP_OK(stanza_next(&r, &l) == STANZA_FIELD && is(&l, "Last", "z") && l.line == 9, "a last line without newline");
	TAP_OK(stanza_next(&r, &l) == STANZA_EOF && stanza_next(&r, &l) == STANZA_EOF, "then EOF, and EOF again");

	const char *u = "A: 1\r\n\r\n";
	TAP_OK(stanza_init(&r, u, strlen(u), false) == 0 && stanza_next(&r, &l) == STANZA_FIELD && is(&l, "A", "1") &&
	               stanza_next(&r, &l) == STANZA_OTHER,
	       "without CR stripping a CR line is no blank line");

	char key[300];
	memset(key, 'k', sizeof key);
	memcpy(key + STANZA_KEY_MAX, ": v", 4);
	TAP_OK(stanza_init(&r, key, strlen(key), true) == 0 && stanza_next(&r, &l) == STANZA_FIELD &&
	               l.key_len == STANZA_KEY_MAX,
	       "a key of %u bytes", STANZA_KEY_MAX);
	memset(key, 'k', sizeof key);
	memcpy(key + STANZA_KEY_MAX + 1, ": v", 4);
	TAP_OK(stanza_init(&r, key, strlen(key), true) == 0 && stanza_next(&r, &l) == STANZA_OTHER,
	       "a key of %u bytes is no field", STANZA_KEY_MAX + 1);
	TAP_OK(stanza_init(&r, key, (size_t)STANZA_MAX_BYTES + 1, true) == -EFBIG, "input over %u MiB refused",
	       STANZA_MAX_BYTES >> 20);
	const char *c = "pAcKaGe: x";
	TAP_OK(stanza_init(&r, c, strlen(c), true) == 0 && stanza_next(&r, &l) == STANZA_FIELD &&
	               stanza_key_is(&l, "Package") && !stanza_key_is(&l, "Packag"),
	       "keys compare without case, whole");
}

static int control(const char *text, struct deb_control *c, struct bn_error *err)
{
	return deb_control_parse(text, strlen(text), "x.deb", c, err);
}

static void test_control(void)
{
	struct deb_control c;
	struct bn_error err = {0};
	int r = control("\n\nPackage: hello\r\nVersion: 1:2.10-3\r\nArchitecture: amd64\t\r\nDescription: hi\r\n there\r\n\n\n",
	                &c, &err);
	TAP_OK(r == 0 && !strcmp(c.package, "hello") && !strcmp(c.version, "1:2.10-3") && !strcmp(c.arch, "amd64"),
	       "a CRLF control file with blank lines around it (%s)", err.msg);
	if (r == 0)
		deb_control_free(&c);
	r = control("Package: a1\nVersion: 1\nArchitecture: all\n\nPackage: b\n", &c, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "line 4: a blank line"), "two stanzas refused (%s)", err.msg);
	r = control(" Package: a1\nVersion: 1\nArchitecture: all\n", &c, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "continuation"), "a leading continuation refused (%s)", err.msg);
	r = control("Package: a1\nVersion: 1\nPackage: a2\nArchitecture: all\n", &c, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "line 3: Package is repeated"), "a repeated field named (%s)", err.msg);
	r = control("Package: a1\nVersion 1\nArchitecture: all\n", &c, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "line 2 is not 'Field: value'"), "a line without a colon (%s)", err.msg);
	r = control("Package: A1\nVersion: 1\nArchitecture: all\n", &c, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "Package is not a valid"), "an upper-case package name (%s)", err.msg);
}

static char seen[4096];
static int collect(void *ud, const struct pkgdb_pkg *p)
{
	(void)ud;
	size_t l = strlen(seen);
	snprintf(seen + l, sizeof seen - l, "%s %s %s %s;", p->name, p->version, p->arch, p->license);
	return 0;
}

/* What parse reports of text, "NAME VERSION ARCH LICENSE;" per package. */
static const char *pkgs(int (*parse)(const char *, size_t, pkgdb_fn, void *), const char *text)
{
	seen[0] = 0;
	return parse(text, strlen(text), collect, NULL) == 0 ? seen : "(failed)";
}

static void test_pkgdb(void)
{
	const char *dpkg = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n"
	                   "Description: x\n multi\n\n"
	                   "Package: gone\nStatus: deinstall ok config-files\nVersion: 2\n\n"
	                   "Package: b\r\nVersion: 3\r\n";
	const char *r = pkgs(pkgdb_parse_dpkg, dpkg);
	TAP_OK(!strcmp(r, "a 1 amd64 ;b 3  ;"), "dpkg: installed packages and status.d entries, not removed ones (%s)", r);
	r = pkgs(pkgdb_parse_apk, "C:Q1x=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nPx:no\n\nP:busybox\nV:1.36\n");
	TAP_OK(!strcmp(r, "musl 1.2.4-r2 x86_64 MIT;busybox 1.36  ;"), "apk: one package per stanza, one-letter keys only (%s)",
	       r);
	r = pkgs(pkgdb_parse_pymeta, "Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\nLicense: BSD\n\nName: body\n");
	TAP_OK(!strcmp(r, "numpy 1.26.4  BSD;"), "Python metadata: headers up to the first blank line (%s)", r);
	r = pkgs(pkgdb_parse_dpkg, "Package: a\nVersion: 1\nVersion: 2\n\nPackage: b\nVersion: 1\n");
	TAP_OK(!strcmp(r, "b 1  ;"), "a stanza with a repeated field is skipped (%s)", r);
}

int main(void)
{
	test_reader();
	test_control();
	test_pkgdb();
	return tap_done();
}
