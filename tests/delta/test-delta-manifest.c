/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the delta manifest (format 2.0, docs/FORMAT.md section 12). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bundle/manifest.h"
#include "../tap.h"
#include "../manifest_template.h"

#define H "\"0000000000000000000000000000000000000000000000000000000000000000\""
#define B "\"base\":{\"name\":\"n\",\"channel\":\"c\",\"version\":1,\"manifest_sha256\":" H "},"

/* Two files: f (6 bytes) reused from the base's file a/old, g (4 bytes) carried in the one volume. */
static const char *good =
    "{\"format\":\"agkit-bundle\",\"format_version\":\"2.0\",\"name\":\"n\",\"channel\":\"c\",\"version\":2,"
    "\"created\":\"x\",\"chunk_size\":65536,\"volume_size\":1000," B
    "\"artifacts\":[{\"name\":\"a\",\"type\":\"files\",\"layout\":\"tree\",\"size\":10,\"chunk_first\":0,\"chunk_"
    "count\":2,"
    "\"entries\":[{\"path\":\"f\",\"type\":\"file\",\"mode\":420,\"size\":6,\"offset\":0,\"sha256\":" H "},"
    "{\"path\":\"g\",\"type\":\"file\",\"mode\":420,\"size\":4,\"offset\":6,\"sha256\":" H "}]}],"
    "\"chunks\":[{\"artifact\":0,\"base\":{\"artifact\":\"a\",\"path\":\"old\",\"offset\":5},\"usize\":6,\"coding\":"
    "\"base\",\"sha256\":" H "},"
    "{\"artifact\":0,\"volume\":0,\"offset\":0,\"csize\":13,\"usize\":4,\"coding\":\"zstd\",\"sha256\":" H
    ",\"csha256\":" H "}],"
    "\"volumes\":[{\"name\":\"vol-00001.agv\",\"size\":13,\"sha256\":" H "}]}";

static void refuse(const char *from, const char *to, int want, const char *what)
{
	test_manifest_refuse(good, from, to, want, what);
}

int main(void)
{
	struct bn_error err = {0};
	struct bn_manifest *m = NULL;
	int r = bn_manifest_parse(good, strlen(good), &m, &err);
	TAP_OK(r == 0, "a delta manifest parses (%s)", err.msg);
	if (r == 0) {
		const struct bn_chunk *c = &m->chunks[0];
		TAP_OK(m->format_major == 2 && m->base && m->base->version == 1 && !strcmp(m->base->name, "n"),
		       "the base");
		TAP_OK(bn_chunk_reused(c) && !bn_chunk_reused(&m->chunks[1]), "chunk 0 is reused, chunk 1 carried");
		TAP_OK(m->n_brefs == 1 && !strcmp(m->brefs[c->bref].artifact, "a") &&
		           !strcmp(m->brefs[c->bref].path, "old") && c->boffset == 5 && c->usize == 6,
		       "the reused chunk names base file a/old at offset 5");
		TAP_OK(m->chunks[1].soffset == 6, "the carried chunk follows it in the stream");
		uint64_t carried = 0, reused = 0;
		bn_manifest_delta_bytes(m, &carried, &reused);
		TAP_OK(carried == 4 && reused == 6, "4 bytes carried, 6 reused");
		char *text = NULL, *text2 = NULL;
		size_t len = 0;
		struct bn_manifest *m2 = NULL;
		TAP_OK(bn_manifest_format(m, &text, &len) == 0 && strstr(text, "\"format_version\": \"2.0\""),
		       "formats as 2.0");
		TAP_OK(text && bn_manifest_parse(text, len, &m2, &err) == 0 &&
		           bn_manifest_format(m2, &text2, NULL) == 0 && !strcmp(text, text2),
		       "format is a fixed point");
		free(text);
		free(text2);
		bn_manifest_free(m2);
	}
	bn_manifest_free(m);

	refuse("\"2.0\"", "\"1.1\"", -EBADMSG, "a base in a 1.x manifest");
	refuse(B, "", -EBADMSG, "format 2.0 without a base");
	refuse("\"version\":1,", "", -EBADMSG, "a base without a version");
	refuse("\"path\":\"old\"", "\"path\":\"../old\"", -EBADMSG, "a base path with ..");
	refuse("\"path\":\"old\"", "\"path\":\"/etc/passwd\"", -EBADMSG, "an absolute base path");
	refuse("\"artifact\":\"a\"", "\"artifact\":\".a\"", -EBADMSG, "a bad base artifact name");
	refuse("\"coding\":\"base\"", "\"coding\":\"zstd\"", -EBADMSG, "a reused chunk with another coding");
	refuse("\"usize\":6", "\"usize\":7", -EBADMSG, "reused chunks that do not tile the artifact");
	refuse("\"usize\":6", "\"usize\":70000", -EBADMSG, "a reused chunk above chunk_size");
	refuse("\"size\":13", "\"size\":19", -EBADMSG, "a volume larger than its carried chunks");
	return tap_done();
}
