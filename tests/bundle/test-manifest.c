/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: manifest validation rules and helpers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/fsutil.h"
#include "bundle/manifest.h"
#include "../tap.h"
#include "../manifest_template.h"

#define H "\"0000000000000000000000000000000000000000000000000000000000000000\""

/* A valid manifest with one artifact (a dir, two files, a symlink), one chunk, one volume. */
static const char *good =
	"{\"format\":\"agkit-bundle\",\"format_version\":\"1.0\",\"name\":\"n\",\"channel\":\"c\",\"version\":1,"
	"\"created\":\"x\",\"chunk_size\":65536,\"volume_size\":1000,"
	"\"artifacts\":[{\"name\":\"a\",\"type\":\"files\",\"layout\":\"tree\",\"size\":10,\"chunk_first\":0,\"chunk_count\":1,"
	"\"entries\":[{\"path\":\"d\",\"type\":\"dir\",\"mode\":493},"
	"{\"path\":\"d/f\",\"type\":\"file\",\"mode\":420,\"size\":4,\"offset\":0,\"sha256\":" H "},"
	"{\"path\":\"d/g\",\"type\":\"file\",\"mode\":493,\"size\":6,\"offset\":4,\"sha256\":" H "},"
	"{\"path\":\"d/l\",\"type\":\"symlink\",\"target\":\"f\"}]}],"
	"\"chunks\":[{\"artifact\":0,\"volume\":0,\"offset\":0,\"csize\":19,\"usize\":10,\"coding\":\"zstd\",\"sha256\":" H ",\"csha256\":" H "}],"
	"\"volumes\":[{\"name\":\"vol-00001.agv\",\"size\":19,\"sha256\":" H "}]}";

static void refuse(const char *from, const char *to, int want, const char *what)
{
	test_manifest_refuse(good, from, to, want, what);
}

int main(void)
{
	struct bn_error err = {0};
	struct bn_manifest *m = NULL;
	int r = bn_manifest_parse(good, strlen(good), &m, &err);
	TAP_OK(r == 0, "good manifest parses (%s)", err.msg);
	if (r == 0) {
		TAP_OK(m->n_artifacts == 1 && m->artifacts[0].n_entries == 4 && m->n_chunks == 1, "counts");
		TAP_OK(bn_artifact_file_at(&m->artifacts[0], 5) == 2, "file_at finds the second file");
		TAP_OK(bn_artifact_file_at(&m->artifacts[0], 0) == 1, "file_at finds the first file");
		char *text = NULL;
		size_t len = 0;
		TAP_OK(bn_manifest_format(m, &text, &len) == 0, "format");
		struct bn_manifest *m2 = NULL;
		TAP_OK(text && bn_manifest_parse(text, len, &m2, &err) == 0, "formatted manifest parses again");
		char *text2 = NULL;
		TAP_OK(m2 && bn_manifest_format(m2, &text2, NULL) == 0 && !strcmp(text, text2), "format is a fixed point");
		free(text);
		free(text2);
		bn_manifest_free(m2);
	}
	bn_manifest_free(m);

	refuse("\"1.0\"", "\"3.0\"", -EPROTO, "major format version 3");
	refuse("\"1.0\"", "\"2.0\"", -EBADMSG, "major format version 2 without a base (a delta)");
	refuse("\"1.0\"", "\"1\"", -EBADMSG, "malformed format version");
	refuse("\"d/f\"", "\"../f\"", -EBADMSG, "path with ..");
	refuse("\"d/f\"", "\"/d/f\"", -EBADMSG, "absolute path");
	refuse("\"d/f\"", "\"d//f\"", -EBADMSG, "empty path component");
	refuse("\"d/f\"", "\"d/./f\"", -EBADMSG, "dot component");
	refuse("\"d/f\"", "\"d/f\\u0000x\"", -EBADMSG, "NUL in path");
	refuse("\"d/f\"", "\"e/f\"", -EBADMSG, "missing parent directory");
	refuse("\"d/g\"", "\"d/a\"", -EBADMSG, "entries out of order");
	refuse("\"d/g\"", "\"d/f\"", -EBADMSG, "duplicate entries");
	refuse("\"target\":\"f\"", "\"target\":\"../../x\"", -EBADMSG, "symlink escaping");
	refuse("\"target\":\"f\"", "\"target\":\"/etc\"", -EBADMSG, "absolute symlink");
	refuse("\"target\":\"f\"", "\"target\":\"../f\"", 0, "symlink to a sibling directory stays inside");
	refuse("\"mode\":420", "\"mode\":2468", -EBADMSG, "setuid mode");
	refuse("\"mode\":420", "\"mode\":-1", -EBADMSG, "negative mode");
	refuse("\"type\":\"dir\"", "\"type\":\"blockdev\"", -EBADMSG, "device node");
	refuse("\"offset\":4", "\"offset\":5", -EBADMSG, "files do not tile the stream");
	refuse("\"size\":6", "\"size\":7", -EBADMSG, "file sizes disagree with the artifact");
	refuse("\"usize\":10", "\"usize\":11", -EBADMSG, "chunk sizes disagree with the artifact");
	refuse("\"csize\":19", "\"csize\":18", -EBADMSG, "chunks do not fill the volume");
	refuse("\"csize\":19", "\"csize\":99999999", -EBADMSG, "compressed size beyond bound");
	refuse("\"volume\":0", "\"volume\":1", -EBADMSG, "chunk in a volume that does not exist");
	refuse("\"vol-00001.agv\"", "\"../vol\"", -EBADMSG, "volume name not canonical");
	refuse("\"chunk_size\":65536", "\"chunk_size\":1099511627776", -EBADMSG, "absurd chunk size");
	refuse("\"chunk_size\":65536", "\"chunk_size\":5", -EBADMSG, "tiny chunk size");
	refuse("\"volume_size\":1000", "\"volume_size\":10", -EBADMSG, "volume larger than volume_size");
	refuse("\"coding\":\"zstd\"", "\"coding\":\"lz4\"", -EBADMSG, "unknown coding");
	refuse("\"name\":\"a\"", "\"name\":\"../a\"", -EBADMSG, "artifact name with a slash");
	refuse("\"name\":\"n\"", "\"name\":\"n\",\"name\":\"m\"", -EBADMSG, "duplicate JSON keys");
	refuse("\"chunk_count\":1", "\"chunk_count\":2", -EBADMSG, "chunk range past the end");
	refuse("\"size\":4,\"offset\":0,\"sha256\":" H, "\"size\":4,\"offset\":0,\"sha256\":\"xyz\"", -EBADMSG, "bad hash");
	refuse("\"type\":\"files\"", "\"type\":\"script\"", -EBADMSG, "unknown artifact type");

	struct bn_manifest *m3 = NULL;
	TAP_OK(bn_manifest_parse("[", 1, &m3, &err) == -EBADMSG, "truncated JSON refused");
	size_t deep = 200000;
	char *d = malloc(deep * 2 + 1);
	memset(d, '[', deep);
	memset(d + deep, ']', deep);
	d[deep * 2] = '\0';
	TAP_OK(bn_manifest_parse(d, deep * 2, &m3, &err) == -EBADMSG, "deep nesting refused");
	free(d);

	TAP_OK(bn_symlink_inside("a/b/l", "../x") && !bn_symlink_inside("a/l", "../../x") &&
	               bn_symlink_inside("l", "./x/../y") && !bn_symlink_inside("l", "x/../../y"),
	       "symlink containment");
	uint64_t v = 0;
	TAP_OK(bn_parse_size("700M", &v) == 0 && v == 700ull << 20, "700M");
	TAP_OK(bn_parse_size("4G", &v) == 0 && v == 4ull << 30, "4G");
	TAP_OK(bn_parse_size("25GiB", &v) == 0 && v == 25ull << 30, "25GiB");
	TAP_OK(bn_parse_size("12Q", &v) < 0 && bn_parse_size("", &v) < 0 && bn_parse_size("-1", &v) < 0, "bad sizes");
	return tap_done();
}
