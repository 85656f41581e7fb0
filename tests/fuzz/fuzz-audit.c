/* SPDX-License-Identifier: Apache-2.0 */
/* bn_audit_verify() on an arbitrary log file.  A log that verifies must also
 * verify against the head it reports, and not against any other head. */
#include <string.h>

#include "bundle/audit.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *dir = fuzz_mkdtemp();
	char *path = fuzz_write(dir, "audit.log", data, size);
	struct bn_audit_head tail, tail2;
	uint64_t lines = 0;
	struct bn_error err = {0};
	int r = bn_audit_verify(path, NULL, &tail, &lines, &err);
	FUZZ_ASSERT(lines == tail.seq);
	if (r == 0) {
		FUZZ_ASSERT(bn_audit_verify(path, &tail, &tail2, NULL, &err) == 0);
		FUZZ_ASSERT(memcmp(&tail, &tail2, sizeof tail) == 0);
		struct bn_audit_head other = tail;
		other.hash[0] ^= 1;
		if (other.seq > 0)
			FUZZ_ASSERT(bn_audit_verify(path, &other, NULL, NULL, &err) < 0);
		other = tail;
		other.seq++;
		FUZZ_ASSERT(bn_audit_verify(path, &other, NULL, NULL, &err) < 0);
	} else {
		FUZZ_ASSERT(err.msg[0]);
	}
	free(path);
	fuzz_rmdir(dir);
	return 0;
}
