/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "fuzz_common.h"

char *fuzz_mkdtemp(void)
{
	/* tmpfs when there is one: extraction fsyncs, which is slow on disks. */
	const char *base = getenv("TMPDIR");
	struct stat st;
	if (!base || !*base)
		base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
		                                                                                            : "/tmp";
	char *t = NULL;
	if (asprintf(&t, "%s/agkit-fuzz-XXXXXX", base) < 0)
		abort();
	if (!mkdtemp(t)) {
		fprintf(stderr, "mkdtemp %s: %s\n", t, strerror(errno));
		abort();
	}
	return t;
}

/* Gives the owner rwx on every directory below dfd/name (not following
 * links): extraction and untar leave the modes the input asked for, such as
 * 0500, which would keep bn_rm_rf() out when not running as root. */
static void open_up(int dfd, const char *name, int depth)
{
	if (depth > 4096)
		return;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		struct stat st;
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			return;
		if (fchmodat(dfd, name, 0700, 0) < 0)
			return;
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return;
	}
	(void)fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && de->d_type == DT_DIR)
			open_up(dirfd(d), de->d_name, depth + 1);
	closedir(d);
}

void fuzz_rmdir(char *dir)
{
	struct stat st;
	open_up(AT_FDCWD, dir, 0);
	FUZZ_ASSERT(bn_rm_rf(dir) == 0);
	FUZZ_ASSERT(lstat(dir, &st) < 0 && errno == ENOENT);
	free(dir);
}

char *fuzz_write(const char *dir, const char *name, const void *buf, size_t len)
{
	char *p = bn_path_join(dir, name);
	FUZZ_ASSERT(p);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FUZZ_ASSERT(fd >= 0);
	FUZZ_ASSERT(bn_write_all(fd, buf, len) == 0);
	close(fd);
	return p;
}

size_t fuzz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *lens, size_t max)
{
	size_t n = 0, sl = strlen(FUZZ_SEP);
	const uint8_t *p = data, *end = data + size;
	while (n + 1 < max) {
		const uint8_t *s = memmem(p, (size_t)(end - p), FUZZ_SEP, sl);
		if (!s)
			break;
		parts[n] = p;
		lens[n] = (size_t)(s - p);
		n++;
		p = s + sl;
	}
	parts[n] = p;
	lens[n] = (size_t)(end - p);
	return n + 1;
}

void fuzz_assert_only(const char *dir, const char *const *allowed)
{
	DIR *d = opendir(dir);
	FUZZ_ASSERT(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = !strcmp(de->d_name, allowed[i]);
		if (!ok)
			fprintf(stderr, "unexpected entry left in %s: %s\n", dir, de->d_name);
		FUZZ_ASSERT(ok);
	}
	closedir(d);
}
