/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers of the python artifact: requirements, simple-index pages, wheel
 * tags (see pyindex.h).  No network, no file system. */
#include "pyindex.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

int py_normalize(const char *name, size_t n, char out[PY_MAX_NAME + 1])
{
	size_t k = 0;
	bool sep = false;
	if (n == 0 || n > PY_MAX_NAME)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '-' || c == '_' || c == '.') {
			sep = true;
			continue;
		}
		if (!isalnum(c))
			return -EINVAL;
		if (sep && k > 0)
			out[k++] = '-';
		sep = false;
		out[k++] = (char)tolower(c);
	}
	if (k == 0)
		return -EINVAL;
	out[k] = 0;
	return 0;
}

static bool is_hex64(const char *s, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static void lower_hex(char out[65], const char *s)
{
	for (int i = 0; i < 64; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[64] = 0;
}

void py_reqs_free(struct py_reqs *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].hashes);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* One logical line (continuations joined, comment removed) into a requirement. */
static int parse_req_line(char *s, const char *file, int line, bool allow_unpinned, struct py_req *q,
                          struct bn_error *err)
{
	char *save = NULL, *tok = strtok_r(s, " \t\r\f\v", &save);
	memset(q, 0, sizeof *q);
	q->line = line;
	if (tok[0] == '-') {
		char opt[40];
		size_t on = strcspn(tok, "= ");
		snprintf(opt, sizeof opt, "%.*s", (int)(on < 30 ? on : 30), tok);
		return bn_fail(err, -EINVAL, "%s:%d: option %s is not supported (only name==version --hash=sha256:...)",
		               file, line, opt);
	}
	if (strpbrk(tok, ";@[") || strstr(tok, "://"))
		return bn_fail(
		    err, -EINVAL,
		    "%s:%d: '%.60s': URLs, extras and environment markers are not supported; pin name==version", file,
		    line, tok);
	char *eq = strstr(tok, "==");
	if (!eq || eq == tok || eq[2] == '=' || !eq[2])
		return bn_fail(err, -EINVAL, "%s:%d: '%.60s' is not pinned to one version (name==version)", file, line,
		               tok);
	if (py_normalize(tok, (size_t)(eq - tok), q->name) < 0)
		return bn_fail(err, -EINVAL, "%s:%d: '%.*s' is not a valid project name", file, line,
		               (int)((eq - tok) < 60 ? (eq - tok) : 60), tok);
	const char *ver = eq + 2;
	size_t vn = strlen(ver);
	if (vn > PY_MAX_NAME ||
	    strspn(ver, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+!_-") != vn)
		return bn_fail(err, -EINVAL, "%s:%d: '%.60s' is not a valid version", file, line, ver);
	memcpy(q->version, ver, vn + 1);
	while ((tok = strtok_r(NULL, " \t\r\f\v", &save))) {
		const char *h = NULL;
		if (!strncmp(tok, "--hash=", 7))
			h = tok + 7;
		else if (!strcmp(tok, "--hash"))
			h = strtok_r(NULL, " \t\r\f\v", &save);
		else if (tok[0] == ';')
			return bn_fail(err, -EINVAL, "%s:%d: environment markers are not supported; pin name==version",
			               file, line);
		else
			return bn_fail(err, -EINVAL,
			               "%s:%d: '%.60s' is not supported after a requirement (only --hash)", file, line,
			               tok);
		if (!h || strncmp(h, "sha256:", 7) || !is_hex64(h + 7, strlen(h + 7)))
			return bn_fail(err, -EINVAL, "%s:%d: --hash must be sha256: and 64 hex digits", file, line);
		if (q->n_hashes == PY_MAX_HASHES)
			return bn_fail(err, -E2BIG, "%s:%d: more than %d hashes", file, line, PY_MAX_HASHES);
		void *nh = realloc(q->hashes, (q->n_hashes + 1) * sizeof *q->hashes);
		if (!nh)
			return bn_fail(err, -ENOMEM, "out of memory");
		q->hashes = nh;
		lower_hex(q->hashes[q->n_hashes++], h + 7);
	}
	if (!q->n_hashes && !allow_unpinned)
		return bn_fail(err, -EINVAL,
		               "%s:%d: %s==%s has no --hash=sha256: pin (or set \"unpinned\": true in the artifact)",
		               file, line, q->name, q->version);
	return 0;
}

int py_reqs_parse(const char *buf, size_t len, const char *file, bool allow_unpinned, struct py_reqs *ret,
                  struct bn_error *err)
{
	struct py_reqs out = {0};
	char *cur = NULL;
	size_t cn = 0;
	int line = 0, start = 1, r = 0;
	if (len > PY_MAX_REQ_BYTES)
		return bn_fail(err, -EFBIG, "%s: larger than %u bytes", file, PY_MAX_REQ_BYTES);
	if (memchr(buf, 0, len))
		return bn_fail(err, -EINVAL, "%s: contains a NUL byte", file);
	cur = malloc(len + 1);
	if (!cur)
		return bn_fail(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i <= len && r == 0; i++) {
		if (i < len && buf[i] != '\n') {
			cur[cn++] = buf[i];
			continue;
		}
		line++;
		/* a backslash at the end continues the line */
		size_t e = cn;
		while (e > 0 && (cur[e - 1] == ' ' || cur[e - 1] == '\t' || cur[e - 1] == '\r'))
			e--;
		if (e > 0 && cur[e - 1] == '\\' && i < len) {
			cur[e - 1] = ' ';
			cn = e;
			continue;
		}
		cur[cn] = 0;
		/* comments: '#' at the start or after whitespace */
		for (size_t k = 0; k < cn; k++)
			if (cur[k] == '#' && (k == 0 || cur[k - 1] == ' ' || cur[k - 1] == '\t')) {
				cur[k] = 0;
				break;
			}
		if (cur[strspn(cur, " \t\r\f\v")]) {
			if (out.n == PY_MAX_REQS) {
				r = bn_fail(err, -E2BIG, "%s: more than %d requirements", file, PY_MAX_REQS);
				break;
			}
			void *nv = realloc(out.v, (out.n + 1) * sizeof *out.v);
			if (!nv) {
				r = bn_fail(err, -ENOMEM, "out of memory");
				break;
			}
			out.v = nv;
			r = parse_req_line(cur, file, start, allow_unpinned, &out.v[out.n], err);
			out.n++;
			for (size_t k = 0; r == 0 && k + 1 < out.n; k++)
				if (!strcmp(out.v[k].name, out.v[out.n - 1].name))
					r = bn_fail(err, -EINVAL, "%s:%d: %s is required twice (line %d)", file, start,
					            out.v[k].name, out.v[k].line);
		}
		cn = 0;
		start = line + 1;
	}
	free(cur);
	if (r == 0 && out.n == 0)
		r = bn_fail(err, -EINVAL, "%s: no requirements", file);
	if (r < 0) {
		py_reqs_free(&out);
		return r;
	}
	*ret = out;
	return 0;
}

/* ---- project pages ---- */

void py_links_free(struct py_links *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].filename);
		free(l->v[i].url);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

/* A name that can be a file in the output directory: not empty, no NUL or
 * '/', not "." or ".." */
static bool plain_name(const char *s, size_t n)
{
	return n > 0 && !memchr(s, 0, n) && !memchr(s, '/', n) && !(n == 1 && s[0] == '.') &&
	       !(n == 2 && s[0] == '.' && s[1] == '.');
}

/* The file name of a link: the url's last path segment, percent-decoded. */
static char *url_filename(const char *url)
{
	size_t end = strcspn(url, "#?");
	size_t b = end;
	while (b > 0 && url[b - 1] != '/')
		b--;
	char *o = malloc(end - b + 1);
	size_t k = 0;
	if (!o)
		return NULL;
	for (size_t i = b; i < end; i++) {
		int h1, h2;
		if (url[i] == '%' && i + 2 < end && (h1 = hexval(url[i + 1])) >= 0 && (h2 = hexval(url[i + 2])) >= 0) {
			o[k++] = (char)(h1 * 16 + h2);
			i += 2;
		} else {
			o[k++] = url[i];
		}
	}
	o[k] = 0;
	if (!plain_name(o, k)) {
		free(o);
		return NULL;
	}
	return o;
}

static int add_link(struct py_links *l, const char *url, const char *sha256, const char *page, struct bn_error *err)
{
	if (l->n == PY_MAX_LINKS)
		return bn_fail(err, -E2BIG, "%s: more than %d files listed", page, PY_MAX_LINKS);
	char *fn = url_filename(url);
	if (!fn)
		return 0; /* not a file link (a directory, "..", an empty name): ignored */
	void *nv = realloc(l->v, (l->n + 1) * sizeof *l->v);
	char *u = strdup(url);
	if (!nv || !u) {
		free(fn);
		free(u);
		if (nv)
			l->v = nv;
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	l->v = nv;
	struct py_link *k = &l->v[l->n++];
	k->filename = fn;
	k->url = u;
	k->sha256[0] = 0;
	if (sha256)
		lower_hex(k->sha256, sha256);
	return 0;
}

/* Decodes the HTML character references real indexes use in attributes. */
static char *html_unescape(const char *s, size_t n)
{
	char *o = malloc(n + 1);
	size_t k = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '&') {
			o[k++] = s[i];
			continue;
		}
		static const struct {
			const char *e;
			char c;
		} ents[] = {{"&amp;", '&'},  {"&lt;", '<'},   {"&gt;", '>'},
		            {"&quot;", '"'}, {"&#39;", '\''}, {"&apos;", '\''}};
		bool done = false;
		for (size_t e = 0; e < sizeof ents / sizeof ents[0]; e++) {
			size_t el = strlen(ents[e].e);
			if (i + el <= n && !strncmp(s + i, ents[e].e, el)) {
				o[k++] = ents[e].c;
				i += el - 1;
				done = true;
				break;
			}
		}
		if (!done && i + 3 < n && s[i + 1] == '#') {
			/* &#NN; / &#xNN; for ASCII only */
			size_t j = i + 2;
			int base = 10, v = 0, d = 0;
			if (s[j] == 'x' || s[j] == 'X')
				base = 16, j++;
			for (; j < n && d < 4; j++, d++) {
				int h = hexval(s[j]);
				if (h < 0 || h >= base)
					break;
				v = v * base + h;
			}
			if (j < n && s[j] == ';' && d > 0 && v > 0 && v < 128) {
				o[k++] = (char)v;
				i = j;
				done = true;
			}
		}
		if (!done)
			o[k++] = '&';
	}
	o[k] = 0;
	return o;
}

static int parse_html(const char *b, size_t len, const char *page, struct py_links *out, struct bn_error *err)
{
	for (size_t i = 0; i + 2 < len; i++) {
		if (b[i] != '<' || (b[i + 1] != 'a' && b[i + 1] != 'A') || !isspace((unsigned char)b[i + 2]))
			continue;
		/* the tag's attributes up to '>' (quotes may hide '>') */
		size_t j = i + 2;
		const char *href = NULL;
		size_t hn = 0;
		while (j < len && b[j] != '>') {
			while (j < len && isspace((unsigned char)b[j]))
				j++;
			size_t ns = j;
			while (j < len && !isspace((unsigned char)b[j]) && b[j] != '=' && b[j] != '>')
				j++;
			size_t nn = j - ns;
			const char *val = NULL;
			size_t vn = 0;
			if (j < len && b[j] == '=') {
				j++;
				if (j < len && (b[j] == '"' || b[j] == '\'')) {
					char q = b[j++];
					val = b + j;
					while (j < len && b[j] != q)
						j++;
					vn = (size_t)(b + j - val);
					if (j < len)
						j++;
				} else {
					val = b + j;
					while (j < len && !isspace((unsigned char)b[j]) && b[j] != '>')
						j++;
					vn = (size_t)(b + j - val);
				}
			}
			if (nn == 4 && !strncasecmp(b + ns, "href", 4) && val) {
				href = val;
				hn = vn;
			}
			if (nn == 0 && j < len && b[j] != '>')
				j++; /* a stray character: step over it */
		}
		i = j;
		if (!href)
			continue;
		char *u = html_unescape(href, hn);
		if (!u)
			return bn_fail(err, -ENOMEM, "out of memory");
		const char *frag = strstr(u, "#sha256=");
		const char *sha = frag && is_hex64(frag + 8, strlen(frag + 8)) ? frag + 8 : NULL;
		int r = add_link(out, u, sha, page, err);
		free(u);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_json(const char *b, size_t len, const char *page, struct py_links *out, struct bn_error *err)
{
	json_error_t je;
	json_t *root = json_loadb(b, len, JSON_REJECT_DUPLICATES, &je);
	json_t *files = json_object_get(root, "files"), *f;
	size_t i;
	int r = 0;
	if (!json_is_array(files)) {
		json_decref(root);
		return bn_fail(err, -EBADMSG, "%s: not a PEP 691 project page (%s)", page,
		               root ? "no \"files\" list" : je.text);
	}
	json_array_foreach(files, i, f)
	{
		const char *url = json_string_value(json_object_get(f, "url"));
		const char *fn = json_string_value(json_object_get(f, "filename"));
		const char *sha = json_string_value(json_object_get(json_object_get(f, "hashes"), "sha256"));
		if (!url || !fn) {
			r = bn_fail(err, -EBADMSG, "%s: file entry %zu lacks url or filename", page, i);
			break;
		}
		size_t before = out->n;
		if ((r = add_link(out, url, sha && is_hex64(sha, strlen(sha)) ? sha : NULL, page, err)) < 0)
			break;
		/* the listed filename is what counts, and it must be a plain name */
		if (out->n > before) {
			struct py_link *k = &out->v[out->n - 1];
			if (!plain_name(fn, strlen(fn))) {
				r = bn_fail(err, -EBADMSG, "%s: file entry %zu has a bad filename", page, i);
				break;
			}
			char *d = strdup(fn);
			if (!d) {
				r = bn_fail(err, -ENOMEM, "out of memory");
				break;
			}
			free(k->filename);
			k->filename = d;
		}
	}
	json_decref(root);
	return r;
}

int py_links_parse(const char *buf, size_t len, bool json, const char *page, struct py_links *ret, struct bn_error *err)
{
	struct py_links out = {0};
	if (len > PY_MAX_PAGE_BYTES)
		return bn_fail(err, -EFBIG, "%s: project page larger than %u bytes", page, PY_MAX_PAGE_BYTES);
	int r = json ? parse_json(buf, len, page, &out, err) : parse_html(buf, len, page, &out, err);
	if (r < 0) {
		py_links_free(&out);
		return r;
	}
	*ret = out;
	return 0;
}

/* ---- wheel tags ---- */

int py_target_parse(const char *python, const char *platform, struct py_target *ret, struct bn_error *err)
{
	int ma, mi, n = 0;
	if (!python || sscanf(python, "%d.%d%n", &ma, &mi, &n) != 2 || python[n] || ma != 3 || mi < 0 || mi > 99)
		return bn_fail(err, -EINVAL, "python \"%s\" is not a Python 3 version like \"3.11\"",
		               python ? python : "");
	if (!platform || !platform[0] || strlen(platform) >= sizeof ret->platform ||
	    strspn(platform, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(platform))
		return bn_fail(err, -EINVAL,
		               "platform \"%s\" is not a wheel platform tag like \"manylinux_2_36_x86_64\"",
		               platform ? platform : "");
	ret->major = ma;
	ret->minor = mi;
	snprintf(ret->platform, sizeof ret->platform, "%s", platform);
	return 0;
}

/* glibc version and arch of a manylinux tag (legacy aliases included). */
static bool manylinux(const char *tag, int *glibc_minor, char *arch, size_t an)
{
	static const struct {
		const char *p;
		int minor;
	} legacy[] = {{"manylinux1_", 5}, {"manylinux2010_", 12}, {"manylinux2014_", 17}};
	for (size_t i = 0; i < 3; i++)
		if (!strncmp(tag, legacy[i].p, strlen(legacy[i].p))) {
			*glibc_minor = legacy[i].minor;
			snprintf(arch, an, "%s", tag + strlen(legacy[i].p));
			return arch[0] != 0;
		}
	int ma, mi, n = 0;
	if (sscanf(tag, "manylinux_%d_%d_%n", &ma, &mi, &n) == 2 && n > 0 && ma == 2 && tag[n]) {
		*glibc_minor = mi;
		snprintf(arch, an, "%s", tag + n);
		return true;
	}
	return false;
}

static int plat_rank(const char *p, const struct py_target *t)
{
	if (!strcmp(p, "any"))
		return 0;
	if (!strcmp(p, t->platform))
		return 4;
	int gw, gt;
	char aw[32], at[32];
	if (manylinux(p, &gw, aw, sizeof aw) && manylinux(t->platform, &gt, at, sizeof at) && !strcmp(aw, at) &&
	    gw <= gt)
		return 3;
	return -1;
}

static int py_rank(const char *p, const struct py_target *t, int *cp_minor)
{
	char want[16];
	*cp_minor = -1;
	if (!strcmp(p, "py3"))
		return 0;
	snprintf(want, sizeof want, "py%d%d", t->major, t->minor);
	if (!strcmp(p, want))
		return 1;
	int mi, n = 0;
	if (sscanf(p, "cp3%d%n", &mi, &n) == 1 && !p[n] && mi <= t->minor) {
		*cp_minor = mi;
		return mi == t->minor ? 2 : 1;
	}
	return -1;
}

static int abi_rank(const char *a, const struct py_target *t, int cp_minor)
{
	char want[16];
	if (!strcmp(a, "none"))
		return 0;
	if (!strcmp(a, "abi3"))
		return cp_minor >= 0 ? 1 : -1; /* stable ABI: a cp3X wheel, X <= target */
	snprintf(want, sizeof want, "cp%d%d", t->major, t->minor);
	return cp_minor == t->minor && !strcmp(a, want) ? 2 : -1;
}

int py_wheel_match(const char *filename, const char *name, const char *version, const struct py_target *t)
{
	char buf[512], *part[7];
	size_t n = strlen(filename), np = 0;
	if (n < 5 || n >= sizeof buf || strcmp(filename + n - 4, ".whl"))
		return -1;
	memcpy(buf, filename, n - 4);
	buf[n - 4] = 0;
	for (char *s = buf, *save = NULL, *tok; (tok = strtok_r(s, "-", &save)) && np < 7; s = NULL)
		part[np++] = tok;
	if (np != 5 && np != 6)
		return -1;
	char norm[PY_MAX_NAME + 1];
	if (py_normalize(part[0], strlen(part[0]), norm) < 0 || strcmp(norm, name) || strcmp(part[1], version))
		return -1;
	char *pyt = part[np - 3], *abit = part[np - 2], *platt = part[np - 1];
	int best = -1;
	char pyc[128], abic[128], plc[256];
	snprintf(pyc, sizeof pyc, "%s", pyt);
	for (char *s1 = pyc, *sv1 = NULL, *p; (p = strtok_r(s1, ".", &sv1)); s1 = NULL) {
		int cpm, rp = py_rank(p, t, &cpm);
		if (rp < 0)
			continue;
		snprintf(abic, sizeof abic, "%s", abit);
		for (char *s2 = abic, *sv2 = NULL, *a; (a = strtok_r(s2, ".", &sv2)); s2 = NULL) {
			int ra = abi_rank(a, t, cpm);
			if (ra < 0)
				continue;
			snprintf(plc, sizeof plc, "%s", platt);
			for (char *s3 = plc, *sv3 = NULL, *pl; (pl = strtok_r(s3, ".", &sv3)); s3 = NULL) {
				int rl = plat_rank(pl, t);
				if (rl >= 0 && rl * 16 + ra * 4 + rp > best)
					best = rl * 16 + ra * 4 + rp;
			}
		}
	}
	return best;
}
