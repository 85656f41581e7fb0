/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bn_oci_prepare() on an arbitrary tar (docker save or OCI layout, possibly
 * compressed).  Layout of the private temporary directory T:
 *   T/in.tar      the input
 *   T/work/       the work directory handed to bn_oci_prepare()
 *   T/canary/f    a file that nothing may touch
 * Afterwards T must hold exactly these, the canary must be unchanged and
 * unlinked elsewhere, every path below T/work must stay below it when
 * resolved, and the returned directory must lie inside T/work.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/oci.h"
#include "fuzz_common.h"

static const char canary_text[] = "canary: must never change\n";

/* Asserts that every entry below dir resolves (when it resolves at all)
 * inside root: symlinks may dangle but never lead out. */
static void check_tree(const char *root, const char *dir, int depth)
{
	FUZZ_ASSERT(depth < 256);
	DIR *d = opendir(dir);
	if (!d)
		return; /* e.g. a mode-000 directory from the tar: nothing to follow */
	struct dirent *de;
	size_t rl = strlen(root);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *p = bn_path_join(dir, de->d_name);
		FUZZ_ASSERT(p);
		char real[PATH_MAX];
		if (realpath(p, real)) {
			bool inside = !strncmp(real, root, rl) && (real[rl] == '/' || real[rl] == '\0');
			if (!inside)
				fprintf(stderr, "%s resolves outside %s: %s\n", p, root, real);
			FUZZ_ASSERT(inside);
		}
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			check_tree(root, p, depth + 1);
		free(p);
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *t = fuzz_mkdtemp();
	char *src = fuzz_write(t, "in.tar", data, size);
	char *work = bn_path_join(t, "work"), *canary = bn_path_join(t, "canary");
	FUZZ_ASSERT(work && canary && mkdir(work, 0700) == 0 && mkdir(canary, 0700) == 0);
	char *cf = fuzz_write(canary, "f", canary_text, sizeof canary_text - 1);
	char *ret = NULL;
	struct bn_error err = {0};
	int r = bn_oci_prepare(src, work, &ret, &err);
	char rwork[PATH_MAX];
	FUZZ_ASSERT(realpath(work, rwork));
	if (r == 0) {
		char rret[PATH_MAX];
		size_t wl = strlen(rwork);
		FUZZ_ASSERT(ret && realpath(ret, rret));
		FUZZ_ASSERT(!strncmp(rret, rwork, wl) && rret[wl] == '/');
		FUZZ_ASSERT(bn_oci_is_layout(ret));
		free(ret);
	} else {
		FUZZ_ASSERT(err.msg[0]);
		if (getenv("FUZZ_VERBOSE"))
			fprintf(stderr, "prepare: %s\n", err.msg);
	}
	/* Nothing was written outside T/work. */
	static const char *const top[] = {"in.tar", "work", "canary", NULL};
	static const char *const in_canary[] = {"f", NULL};
	fuzz_assert_only(t, top);
	fuzz_assert_only(canary, in_canary);
	struct stat st;
	FUZZ_ASSERT(lstat(cf, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
	            (size_t)st.st_size == sizeof canary_text - 1);
	FUZZ_ASSERT(lstat(src, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && (size_t)st.st_size == size);
	char buf[sizeof canary_text];
	int fd = open(cf, O_RDONLY | O_CLOEXEC);
	FUZZ_ASSERT(fd >= 0 && read(fd, buf, sizeof buf) == (ssize_t)sizeof canary_text - 1);
	close(fd);
	FUZZ_ASSERT(memcmp(buf, canary_text, sizeof canary_text - 1) == 0);
	check_tree(rwork, work, 0);
	/* Untarred directories may be mode 0 or read-only: let bn_rm_rf() in. */
	free(cf);
	free(src);
	free(work);
	free(canary);
	fuzz_rmdir(t);
	return 0;
}
