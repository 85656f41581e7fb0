/* SPDX-License-Identifier: Apache-2.0 */
/* Parsers of what a mirror serves before anything is verified (sync.h). */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "bundle/manifest.h"
#include "sync.h"

/* A relative path inside a bundle directory: "NAME" or "signatures/NAME". */
static bool bundle_path_ok(const char *p)
{
	if (!*p || strlen(p) > 255)
		return false;
	const char *s = strchr(p, '/');
	if (s && (strncmp(p, "signatures/", 11) || strchr(s + 1, '/')))
		return false;
	const char *base = s ? s + 1 : p;
	if (!*base || base[0] == '.')
		return false;
	for (const char *c = base; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
		      *c == '_' || *c == '-'))
			return false;
	return true;
}

int sync_sums_parse(char *buf, size_t len, char **names, uint8_t (*hashes)[BN_SHA256_LEN], size_t max, size_t *ret_n,
                    struct bn_error *err)
{
	size_t nf = 0, lineno = 0;
	if (memchr(buf, 0, len))
		return bn_fail(err, -EBADMSG, "SHA256SUMS: a NUL byte");
	char *end = buf + len;
	for (char *line = buf, *next; line < end; line = next) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		next = nl ? nl + 1 : end;
		if (nl)
			*nl = 0; /* the last line needs none: buf[len] is NUL */
		lineno++;
		if (!*line)
			continue;
		char hx[2 * BN_SHA256_LEN + 1] = "";
		size_t ll = strlen(line);
		if (ll >= 67)
			memcpy(hx, line, 2 * BN_SHA256_LEN);
		if (ll < 67 || line[64] != ' ' || line[65] != ' ' || nf == max ||
		    !bn_unhex(hx, hashes[nf], BN_SHA256_LEN) || !bundle_path_ok(line + 66) ||
		    !strcmp(line + 66, "SHA256SUMS"))
			return bn_fail(err, -EBADMSG,
			               "SHA256SUMS: line %zu is not \"SHA256  FILE\" of a bundle directory", lineno);
		names[nf++] = line + 66;
	}
	if (nf == 0)
		return bn_fail(err, -EBADMSG, "SHA256SUMS lists no files");
	*ret_n = nf;
	return 0;
}

int sync_index_load(const char *buf, size_t len, json_t **ret, struct bn_error *err)
{
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j) || !json_is_array(json_object_get(j, "bundles"))) {
		int r = j ? bn_fail(err, -EBADMSG, "not an agsync index (no \"bundles\" array)")
		          : bn_fail(err, -EBADMSG, "not an agsync index (line %d: %s)", je.line, je.text);
		json_decref(j);
		return r;
	}
	*ret = j;
	return 0;
}

int sync_index_newest(const char *buf, size_t len, const char *name, const char *channel, uint64_t *ret_version,
                      struct bn_error *err)
{
	json_t *j = NULL, *v;
	int r = sync_index_load(buf, len, &j, err);
	if (r < 0) {
		bn_error_prefix(err, "index.json");
		return r;
	}
	json_t *arr = json_object_get(j, "bundles");
	bool found = false;
	json_int_t best = 0;
	size_t i;
	json_array_foreach(arr, i, v)
	{
		const char *nm = json_string_value(json_object_get(v, "name"));
		const char *ch = json_string_value(json_object_get(v, "channel"));
		json_t *ver = json_object_get(v, "version");
		if (nm && ch && json_is_integer(ver) && json_integer_value(ver) > 0 && !strcmp(nm, name) &&
		    !strcmp(ch, channel) && (!found || json_integer_value(ver) > best)) {
			best = json_integer_value(ver);
			found = true;
		}
	}
	json_decref(j);
	if (!found)
		return bn_fail(err, -ENOENT, "index.json: no bundle %s in channel %s", name, channel);
	*ret_version = (uint64_t)best;
	return 0;
}
