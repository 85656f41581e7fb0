/* SPDX-License-Identifier: Apache-2.0 */
/* bn_xprogress_read() (the one progress record of libbundle/extract.c, in
 * its current and earlier formats) on an arbitrary file, for a bundle of 37
 * chunks in 3 artifacts whose manifest hash is bytes 0..31.  A record that
 * reads must write back in the current format and read back the same bits;
 * bits past the last chunk are never set by the earlier extract format. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "bundle/bundle.h"
#include "extract_internal.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bn_manifest m = {.n_chunks = 37, .n_artifacts = 3};
	struct bn_bundle b = {.m = &m};
	for (int i = 0; i < BN_SHA256_LEN; i++)
		b.manifest_sha256[i] = (uint8_t)i;
	char *dir = fuzz_mkdtemp();
	free(fuzz_write(dir, "p", data, size));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	FUZZ_ASSERT(dfd >= 0);
	uint8_t bits[(37 + 7) / 8], back[sizeof bits];
	FUZZ_ASSERT(sizeof bits == BN_XPROGRESS_BITS(&b));
	int r = bn_xprogress_read(&b, dfd, "p", bits);
	FUZZ_ASSERT(r == 1 || r == -ESTALE || r == -EBADMSG);
	if (r == 1) {
		FUZZ_ASSERT(bn_xprogress_write(&b, dfd, "q", bits) == 0);
		FUZZ_ASSERT(bn_xprogress_read(&b, dfd, "q", back) == 1);
		FUZZ_ASSERT(memcmp(bits, back, sizeof bits) == 0);
		unlinkat(dfd, "q", 0);
	}
	close(dfd);
	fuzz_rmdir(dir);
	return 0;
}
