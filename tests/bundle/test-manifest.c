/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: manifest validation rules and helpers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/fsutil.h"
#include "bundle/manifest.h"
#include "../tap.h"
#include "../manifest_template.h"

#define C16 "cccccccccccccccc"
#define C255 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 "ccccccccccccccc"
#define C256 C255 "c"
#define C254 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 C16 "cccccccccccccc"
#define N128 C16 C16 C16 C16 C16 C16 C16 C16
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

/* The template with every FROM, TO pair of the NULL-terminated list applied in turn. */
static void refuse_all(const char *const *pairs, int want, const char *what)
{
	char *t = strdup(good);
	for (size_t i = 0; pairs[i]; i += 2) {
		char *n = test_subst(t, pairs[i], pairs[i + 1]);
		free(t);
		t = n;
	}
	struct bn_error err = {0};
	int r = test_manifest_parse(t, &err);
	TAP_OK(r == want, "%s: %s (%d: %s)", want ? "refused" : "accepted", what, r, err.msg);
	free(t);
}

static void refuse(const char *from, const char *to, int want, const char *what)
{
	const char *pairs[] = {from, to, NULL};
	refuse_all(pairs, want, what);
}

/* Each case: the template with `from` replaced by `to` parses with result `want`. */
static const struct {
	const char *from, *to;
	int want;
	const char *what;
} cases[] = {
	{"\"1.0\"", "\"3.0\"", -EPROTO, "major format version 3"},
	{"\"1.0\"", "\"2.0\"", -EBADMSG, "major format version 2 without a base (a delta)"},
	{"\"1.0\"", "\"1\"", -EBADMSG, "malformed format version"},
	{"\"d/f\"", "\"../f\"", -EBADMSG, "path with .."},
	{"\"d/f\"", "\"/d/f\"", -EBADMSG, "absolute path"},
	{"\"d/f\"", "\"d//f\"", -EBADMSG, "empty path component"},
	{"\"d/f\"", "\"d/./f\"", -EBADMSG, "dot component"},
	{"\"d/f\"", "\"d/f\\u0000x\"", -EBADMSG, "NUL in path"},
	{"\"d/f\"", "\"e/f\"", -EBADMSG, "missing parent directory"},
	{"\"d/g\"", "\"d/a\"", -EBADMSG, "entries out of order"},
	{"\"d/g\"", "\"d/f\"", -EBADMSG, "duplicate entries"},
	{"\"target\":\"f\"", "\"target\":\"../../x\"", -EBADMSG, "symlink escaping"},
	{"\"target\":\"f\"", "\"target\":\"/etc\"", -EBADMSG, "absolute symlink"},
	{"\"target\":\"f\"", "\"target\":\"../f\"", 0, "symlink to a sibling directory stays inside"},
	{"\"mode\":420", "\"mode\":2468", -EBADMSG, "setuid mode"},
	{"\"mode\":420", "\"mode\":-1", -EBADMSG, "negative mode"},
	{"\"type\":\"dir\"", "\"type\":\"blockdev\"", -EBADMSG, "device node"},
	{"\"offset\":4", "\"offset\":5", -EBADMSG, "files do not tile the stream"},
	{"\"size\":6", "\"size\":7", -EBADMSG, "file sizes disagree with the artifact"},
	{"\"usize\":10", "\"usize\":11", -EBADMSG, "chunk sizes disagree with the artifact"},
	{"\"csize\":19", "\"csize\":18", -EBADMSG, "chunks do not fill the volume"},
	{"\"csize\":19", "\"csize\":99999999", -EBADMSG, "compressed size beyond bound"},
	{"\"volume\":0", "\"volume\":1", -EBADMSG, "chunk in a volume that does not exist"},
	{"\"vol-00001.agv\"", "\"../vol\"", -EBADMSG, "volume name not canonical"},
	{"\"chunk_size\":65536", "\"chunk_size\":1099511627776", -EBADMSG, "absurd chunk size"},
	{"\"chunk_size\":65536", "\"chunk_size\":5", -EBADMSG, "tiny chunk size"},
	{"\"volume_size\":1000", "\"volume_size\":10", -EBADMSG, "volume larger than volume_size"},
	{"\"coding\":\"zstd\"", "\"coding\":\"lz4\"", -EBADMSG, "unknown coding"},
	{"\"name\":\"a\"", "\"name\":\"../a\"", -EBADMSG, "artifact name with a slash"},
	{"\"name\":\"n\"", "\"name\":\"n\",\"name\":\"m\"", -EBADMSG, "duplicate JSON keys"},
	{"\"chunk_count\":1", "\"chunk_count\":2", -EBADMSG, "chunk range past the end"},
	{"\"size\":4,\"offset\":0,\"sha256\":" H, "\"size\":4,\"offset\":0,\"sha256\":\"xyz\"", -EBADMSG, "bad hash"},
	{"\"type\":\"files\"", "\"type\":\"script\"", -EBADMSG, "unknown artifact type"},

	/* The rest of FORMAT.md section 3, rule by rule. */
	{"\"agkit-bundle\"", "\"agkit-bundles\"", -EBADMSG, "another format name"},
	{"\"1.0\"", "\"1.9\"", 0, "any minor version is read"},
	{"\"name\":\"n\"", "\"name\":\"n!\"", -EBADMSG, "bundle name outside [A-Za-z0-9._-]"},
	{"\"name\":\"n\"", "\"name\":\".n\"", -EBADMSG, "bundle name not starting with a letter or digit"},
	{"\"name\":\"n\"", "\"name\":\"\"", -EBADMSG, "empty bundle name"},
	{"\"name\":\"n\"", "\"name\":\"" N128 "\"", 0, "128-byte bundle name"},
	{"\"name\":\"n\"", "\"name\":\"" N128 "x\"", -EBADMSG, "129-byte bundle name"},
	{"\"channel\":\"c\"", "\"channel\":\"c/d\"", -EBADMSG, "channel with a slash"},
	{"\"version\":1", "\"version\":-1", -EBADMSG, "negative version"},
	{"\"version\":1", "\"version\":\"1\"", -EBADMSG, "version as a string"},
	{"\"version\":1", "\"version\":1.5", -EBADMSG, "fractional version"},
	{"\"version\":1", "\"version\":9223372036854775808", -EBADMSG, "version beyond int64"},
	{"\"chunk_size\":65536", "\"chunk_size\":4096", 0, "chunk size 4096 (the minimum)"},
	{"\"chunk_size\":65536", "\"chunk_size\":4095", -EBADMSG, "chunk size 4095"},
	{"\"chunk_size\":65536", "\"chunk_size\":67108864", 0, "chunk size 64 MiB (the maximum)"},
	{"\"chunk_size\":65536", "\"chunk_size\":67108865", -EBADMSG, "chunk size above 64 MiB"},
	{"\"type\":\"files\"", "\"type\":\"oci-archive\"", 0, "artifact type oci-archive"},
	{"\"name\":\"a\"", "\"name\":\"-a\"", -EBADMSG, "artifact name starting with '-'"},
	{"\"path\":\"d\",\"type\":\"dir\",\"mode\":493}", "\"path\":\"d\",\"type\":\"dir\",\"mode\":493,\"mode\":420}", -EBADMSG, "duplicate key inside an entry"},
	{"\"format\":", "\"future_key\":{\"x\":1},\"format\":", 0, "unknown keys are ignored"},
	{"\"d/f\"", "\"d/" C256 "\"", -EBADMSG, "path component of 256 bytes"},
	{"\"d/g\"", "\"d/g" C254 "\"", 0, "path component of 255 bytes"},
	{"\"mode\":420", "\"mode\":1444", -EBADMSG, "setgid mode (02644)"},
	{"\"mode\":420", "\"mode\":932", -EBADMSG, "sticky mode (01644)"},
	{"\"mode\":420", "\"mode\":4096", -EBADMSG, "file-type bits in mode"},
	{"\"target\":\"f\"", "\"target\":\"\"", -EBADMSG, "empty symlink target"},
	{"\"target\":\"f\"", "\"target\":\"./../d/f\"", 0, "symlink through .. and back stays inside"},
	{"\"target\":\"f\"", "\"target\":\"../../d/f\"", -EBADMSG, "symlink leaving the root and coming back"},
	{"\"size\":4,\"offset\":0", "\"size\":4,\"offset\":1", -EBADMSG, "first file not at offset 0"},
	{"\"artifact\":0", "\"artifact\":1", -EBADMSG, "chunk of an artifact that does not exist"},
	{"\"volume\":0,\"offset\":0", "\"volume\":0,\"offset\":1", -EBADMSG, "first chunk not at volume offset 0"},
	{"\"usize\":10", "\"usize\":0", -EBADMSG, "empty chunk"},
	{"\"csize\":19", "\"csize\":0", -EBADMSG, "chunk of no stored bytes"},
	{"\"vol-00001.agv\"", "\"vol-00002.agv\"", -EBADMSG, "volume name of another index"},
	{"\"vol-00001.agv\"", "\"vol-1.agv\"", -EBADMSG, "volume name not zero-padded"},
	{"\"chunk_first\":0", "\"chunk_first\":1", -EBADMSG, "artifact chunk range not where its chunks are"},
	{"\"chunks\":[", "\"chunks\":{},\"x\":[", -EBADMSG, "chunks not an array"},
	{"\"format\":\"agkit-bundle\",", "", -EBADMSG, "no format key"},
	{"\"d/g\"", "\"d/f/x\"", -EBADMSG, "a path whose parent is a file"},
};

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

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		refuse(cases[i].from, cases[i].to, cases[i].want, cases[i].what);

	/* usize at most chunk_size: one chunk of 4097 bytes under chunk_size 4096 (and 4097). */
	const char *big_chunk[] = {"\"chunk_size\":65536", "\"chunk_size\":4096", "\"size\":6", "\"size\":4093",
	                           "\"size\":10", "\"size\":4097", "\"usize\":10", "\"usize\":4097", NULL};
	refuse_all(big_chunk, -EBADMSG, "a chunk larger than chunk_size");
	const char *fit_chunk[] = {"\"chunk_size\":65536", "\"chunk_size\":4097", "\"size\":6", "\"size\":4093",
	                           "\"size\":10", "\"size\":4097", "\"usize\":10", "\"usize\":4097", NULL};
	refuse_all(fit_chunk, 0, "the same chunk under chunk_size 4097");
	/* A symlink target over 4096 bytes that would stay inside. */
	char *tgt = malloc(4200 + 32), *q0 = tgt;
	q0 += sprintf(q0, "\"target\":\"");
	for (int i = 0; i < 2048; i++)
		q0 += sprintf(q0, "./");
	sprintf(q0, "f\"");
	const char *long_target[] = {"\"target\":\"f\"", tgt, NULL};
	refuse_all(long_target, -EBADMSG, "a symlink target of 4097 bytes");
	sprintf(tgt, "\"target\":\"");
	for (int i = 0; i < 2047; i++)
		strcat(tgt, "./");
	strcat(tgt, "f\"");
	const char *ok_target[] = {"\"target\":\"f\"", tgt, NULL};
	refuse_all(ok_target, 0, "a symlink target of 4095 bytes");
	free(tgt);

	/* At most 1024 artifacts: 1025 empty ones. */
	size_t cap = 1100 * 160 + 1024;
	char *many = malloc(cap), *q = many;
	q += sprintf(q, "{\"format\":\"agkit-bundle\",\"format_version\":\"1.0\",\"name\":\"n\",\"channel\":\"c\","
	                "\"version\":1,\"created\":\"x\",\"chunk_size\":65536,\"volume_size\":1000,\"artifacts\":[");
	for (int i = 0; i < 1025; i++)
		q += sprintf(q, "%s{\"name\":\"a%d\",\"type\":\"files\",\"layout\":\"tree\",\"size\":0,"
		                "\"chunk_first\":0,\"chunk_count\":0,\"entries\":[]}", i ? "," : "", i);
	sprintf(q, "],\"chunks\":[],\"volumes\":[]}");
	TAP_OK(test_manifest_parse(many, &err) == -EBADMSG, "1025 artifacts refused (%s)", err.msg);
	char *cut = strstr(many, ",{\"name\":\"a1024\"");
	memmove(cut, strstr(cut, "],\"chunks\""), strlen(strstr(cut, "],\"chunks\"")) + 1);
	TAP_OK(test_manifest_parse(many, &err) == 0, "1024 empty artifacts accepted (%s)", err.msg);
	cut = strstr(many, "\"a1\"");
	memcpy(cut, "\"a2\"", 4);
	TAP_OK(test_manifest_parse(many, &err) == -EBADMSG, "two artifacts of one name refused (%s)", err.msg);
	free(many);
	char *longp = malloc(BN_MAX_PATH + 10);
	for (size_t i = 0; i < BN_MAX_PATH + 1; i++)
		longp[i] = i % 100 == 99 ? '/' : 'p';
	longp[BN_MAX_PATH + 1] = '\0';
	TAP_OK(!bn_path_valid(longp), "a path of 4097 bytes is not valid");
	longp[BN_MAX_PATH] = '\0';
	longp[BN_MAX_PATH - 1] = 'p';
	TAP_OK(bn_path_valid(longp), "a path of 4096 bytes is");
	free(longp);

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
