/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one-way stream receiver: bn_stream_read() on hostile bytes (the record
 * headers are not signed).  Input: the stream as it comes off the diode.
 *
 * Invariants checked: a failed receive leaves no output directory; a
 * successful one holds manifest.json and only the names a bundle directory
 * may hold (manifest.json, vol-NNNNN.agv, par-NNNNN.agp,
 * signatures/<16 hex>.minisig), all regular files; nothing appears beside
 * the input and the output.  ASan/valgrind catch the bitmap and buffer
 * bounds (issue 13, finding 5).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/stream.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static bool name_ok(const char *n)
{
	unsigned idx;
	char tail;
	if (!strcmp(n, "manifest.json"))
		return true;
	return strlen(n) == 13 && (sscanf(n, "vol-%5u.agv%c", &idx, &tail) == 1 || sscanf(n, "par-%5u.agp%c", &idx, &tail) == 1);
}

static void check_out(const char *out)
{
	DIR *d = opendir(out);
	FUZZ_ASSERT(d);
	bool manifest = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		char *p = bn_path_join(out, n);
		struct stat st;
		FUZZ_ASSERT(p && lstat(p, &st) == 0);
		if (!strcmp(n, "signatures")) {
			FUZZ_ASSERT(S_ISDIR(st.st_mode));
			DIR *s = opendir(p);
			FUZZ_ASSERT(s);
			struct dirent *se;
			while ((se = readdir(s))) {
				if (!strcmp(se->d_name, ".") || !strcmp(se->d_name, ".."))
					continue;
				size_t l = strlen(se->d_name);
				FUZZ_ASSERT(l == 24 && !strcmp(se->d_name + 16, ".minisig"));
				FUZZ_ASSERT(strspn(se->d_name, "0123456789ABCDEF") == 16);
			}
			closedir(s);
		} else {
			if (!name_ok(n))
				fprintf(stderr, "unexpected file in the received directory: %s\n", n);
			FUZZ_ASSERT(name_ok(n) && S_ISREG(st.st_mode));
			manifest |= !strcmp(n, "manifest.json");
		}
		free(p);
	}
	closedir(d);
	FUZZ_ASSERT(manifest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *t = fuzz_mkdtemp();
	char *in = fuzz_write(t, "in", data, size), *out = bn_path_join(t, "out");
	FUZZ_ASSERT(out);
	int fd = open(in, O_RDONLY | O_CLOEXEC);
	FUZZ_ASSERT(fd >= 0);
	struct bn_stream_result res;
	struct bn_error err = {0};
	int r = bn_stream_read(fd, out, &res, &err);
	close(fd);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "receive: %s\n", r < 0 ? err.msg : "ok");
	struct stat st;
	if (r < 0) {
		FUZZ_ASSERT(err.msg[0]);
		FUZZ_ASSERT(lstat(out, &st) < 0 && errno == ENOENT);
	} else {
		check_out(out);
		FUZZ_ASSERT(res.records_ok >= 1);
	}
	static const char *const allowed[] = {"in", "out", NULL};
	fuzz_assert_only(t, allowed);
	free(in);
	free(out);
	fuzz_rmdir(t);
	return 0;
}
