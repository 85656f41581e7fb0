/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper for sec-swap.sh: stages the complete one-medium set A into
 * WORK, then asks bn_media_stage_install() to install it as bundle B (which
 * must be refused: the tree was staged from A's manifest), then as A.
 * usage: stageswap MEDIUM_A MEDIUM_B KEY.pub WORK TARGET
 * Prints one line per step; exit 0 when B was refused and A installed.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "bundle/bundle.h"
#include "bundle/media.h"

int main(int argc, char **argv)
{
	if (argc != 6)
		return 2;
	struct bn_error err = {0};
	struct bn_pubkey pk;
	if (bn_crypto_init() < 0 || bn_pubkey_load(argv[3], &pk, &err) < 0) {
		fprintf(stderr, "stageswap: %s\n", err.msg);
		return 2;
	}
	struct bn_trust trust = {.keys = &pk, .n_keys = 1};
	struct bn_bundle *a = NULL, *b = NULL;
	if (bn_bundle_open(argv[1], &trust, &a, &err) < 0 || bn_bundle_open(argv[2], &trust, &b, &err) < 0) {
		fprintf(stderr, "stageswap: %s\n", err.msg);
		return 3;
	}
	struct bn_media_stage_result res;
	int r = bn_media_stage(a, argv[4], &res, &err);
	printf("stage A: %s\n", r < 0 ? err.msg : res.complete ? "complete" : "incomplete");
	int rb = r == 0 && res.complete ? bn_media_stage_install(b, argv[4], argv[5], &err) : -EINVAL;
	struct stat st;
	bool absent = lstat(argv[5], &st) < 0;
	printf("install as B: %s%s\n", rb < 0 ? err.msg : "installed", absent ? "" : " (target exists)");
	int ra = rb == -EBADMSG && absent ? bn_media_stage_install(a, argv[4], argv[5], &err) : -EINVAL;
	printf("install as A: %s\n", ra < 0 ? err.msg : "installed");
	bn_bundle_free(a);
	bn_bundle_free(b);
	return rb == -EBADMSG && absent && ra == 0 ? 0 : 1;
}
