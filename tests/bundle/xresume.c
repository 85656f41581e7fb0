/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test helper: extract BUNDLE with a fixed work dir, the way bn_deploy_import
 * does, and print how many chunks a previous (killed) run had checkpointed.
 * usage: xresume BUNDLE KEY.pub TARGET WORKDIR [THREADS]
 */
#include <stdio.h>
#include <stdlib.h>

#include "bundle/bundle.h"
#include "bundle/tunables.h"

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	/* the library reads no environment: this helper passes the tests' knobs
	 * in, as the tools' tool_init() does */
	const char *cpb = getenv("AGKIT_CHECKPOINT_BYTES");
	bn_set_tunables(&(struct bn_tunables){.crash_at = getenv("AGKIT_CRASH_AT"),
	                                      .checkpoint_bytes = cpb ? strtoull(cpb, NULL, 10) : 0});
	struct bn_error err = {0};
	struct bn_pubkey pk;
	if (bn_crypto_init() < 0 || bn_pubkey_load(argv[2], &pk, &err) < 0) {
		fprintf(stderr, "xresume: %s\n", err.msg);
		return 2;
	}
	struct bn_trust trust = {.keys = &pk, .n_keys = 1};
	struct bn_bundle *b = NULL;
	if (bn_bundle_open(argv[1], &trust, &b, &err) < 0) {
		fprintf(stderr, "xresume: %s\n", err.msg);
		return 3;
	}
	b->threads = argc > 5 ? (unsigned)atoi(argv[5]) : 0;
	struct bn_extract_opts o = {.work_dir = argv[4]};
	int r = bn_bundle_extract(b, argv[3], &o, &err);
	if (r < 0)
		fprintf(stderr, "xresume: %s\n", err.msg);
	else
		printf("resumed_chunks %zu\n", o.resumed_chunks);
	bn_bundle_free(b);
	return r < 0 ? 3 : 0;
}
