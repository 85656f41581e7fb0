/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The media-set layout (layout.c, stage.c): a single medium's LABEL.txt and
 * the signed manifest's media description, through bn_bundle_open(),
 * bn_bundle_verify(), per-medium staging (bn_media_stage(), and
 * bn_media_stage_install() when the medium completes the set) and the set
 * view of the same medium as DIR/medium-NN.  Input: MANIFEST SEP LABEL
 * [SEP VOLUME1 [SEP VOLUME2 ...]]; the manifest is signed by the harness's
 * trusted key (fuzz_sign.h) as it is, so seeds cut from real media get past
 * every hash.
 *
 * Invariants checked: a refused medium's label is never taken (a medium
 * number within 1..count when open succeeds as a medium); a failed install
 * leaves no target; nothing appears beside the medium, the set, the work
 * directory and the target.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "fuzz_common.h"
#include "fuzz_sign.h"

#define MAX_VOLUMES 8

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_signer_setup();
	return 0;
}

/* Index of the j-th volume that the manifest's media description puts on
 * the medium the label names (so that seeds of any medium line up), else j. */
static size_t volume_of(const uint8_t *m, size_t ml, const uint8_t *label, size_t ll, size_t j)
{
	char buf[256];
	size_t l = ll < sizeof buf - 1 ? ll : sizeof buf - 1;
	memcpy(buf, label, l);
	buf[l] = '\0';
	const char *p = strstr(buf, "\nmedium ");
	unsigned medium = 0, count = 0;
	if (!p || sscanf(p, "\nmedium %u of %u", &medium, &count) != 2)
		return j;
	json_t *root = json_loadb((const char *)m, ml, 0, NULL);
	json_t *vm = json_object_get(json_object_get(root, "media"), "volumes");
	size_t found = 0, r = j;
	for (size_t i = 0; i < json_array_size(vm); i++)
		if (json_integer_value(json_array_get(vm, i)) == (json_int_t)medium && found++ == j) {
			r = i;
			break;
		}
	json_decref(root);
	return r;
}

static void write_medium(const char *dir, const uint8_t *const *parts, const size_t *lens, size_t n)
{
	FUZZ_ASSERT(mkdir(dir, 0755) == 0);
	free(fuzz_write(dir, "manifest.json", parts[0], lens[0]));
	fuzz_sign(dir, (const char *)parts[0], lens[0]);
	if (n > 1)
		free(fuzz_write(dir, BN_MEDIUM_LABEL, parts[1], lens[1]));
	for (size_t i = 2; i < n; i++) {
		char vn[32];
		bn_volume_name(volume_of(parts[0], lens[0], parts[1], lens[1], i - 2), vn);
		char *p = bn_path_join(dir, vn);
		FUZZ_ASSERT(p);
		if (access(p, F_OK) < 0) /* two parts may map to one name: the first wins */
			free(fuzz_write(dir, vn, parts[i], lens[i]));
		free(p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_signer_setup();
	const uint8_t *parts[2 + MAX_VOLUMES];
	size_t lens[2 + MAX_VOLUMES];
	size_t n = fuzz_split(data, size, parts, lens, 2 + MAX_VOLUMES);
	char *t = fuzz_mkdtemp();
	char *med = bn_path_join(t, "medium"), *set = bn_path_join(t, "set"), *work = bn_path_join(t, "work"),
	     *target = bn_path_join(t, "out");
	FUZZ_ASSERT(med && set && work && target);
	write_medium(med, parts, lens, n);
	struct bn_trust trust = {.keys = &fuzz_pub, .n_keys = 1, .threshold = 1};
	struct bn_bundle *b = NULL;
	struct bn_error err = {0};
	unsigned mi = 0;
	int r = bn_bundle_open(med, &trust, &b, &err);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "open: %s\n", r < 0 ? err.msg : "ok");
	if (r == 0) {
		mi = bn_bundle_medium(b);
		if (mi)
			FUZZ_ASSERT(b->m->media && mi <= b->m->media->count);
		int rv = bn_bundle_verify(b, NULL, NULL, &err);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "verify: %s\n", rv < 0 ? err.msg : "ok");
		struct bn_media_stage_result res;
		int rs = mi ? bn_media_stage(b, work, &res, &err) : -EINVAL;
		if (getenv("FUZZ_VERBOSE") && mi)
			fprintf(stderr, "stage: %s\n", rs < 0 ? err.msg : res.complete ? "complete" : "partial");
		if (rs == 0) {
			FUZZ_ASSERT(res.medium == mi && res.chunks_done <= res.chunks_total);
			if (res.complete) {
				int ri = bn_media_stage_install(b, work, target, &err);
				struct stat st;
				if (ri < 0)
					FUZZ_ASSERT(lstat(target, &st) < 0 && errno == ENOENT);
				else
					FUZZ_ASSERT(lstat(target, &st) == 0 && S_ISDIR(st.st_mode));
			}
		}
		bn_bundle_free(b);
	} else {
		FUZZ_ASSERT(err.msg[0]);
	}
	/* The same medium as part of a set directory. */
	if (mi) {
		char mn[32], *md;
		snprintf(mn, sizeof mn, "medium-%02u", mi);
		FUZZ_ASSERT(mkdir(set, 0755) == 0 && (md = bn_path_join(set, mn)));
		write_medium(md, parts, lens, n);
		free(md);
		struct bn_bundle *sb = NULL;
		r = bn_bundle_open(set, &trust, &sb, &err);
		if (r == 0) {
			int rv = bn_bundle_verify(sb, NULL, NULL, &err);
			if (getenv("FUZZ_VERBOSE"))
				fprintf(stderr, "set verify: %s\n", rv < 0 ? err.msg : "ok");
			bn_bundle_free(sb);
		}
	}
	static const char *const allowed[] = {"medium", "set", "work", "out", NULL};
	fuzz_assert_only(t, allowed);
	free(med);
	free(set);
	free(work);
	free(target);
	fuzz_rmdir(t);
	return 0;
}
