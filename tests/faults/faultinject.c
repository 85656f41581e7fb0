/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LD_PRELOAD fault injection for the agkit tools (test builds only), in the
 * spirit of curl's torture tests:
 *
 *   AGKIT_FAIL_ALLOC=N        the N-th allocation (malloc, calloc, realloc,
 *                             posix_memalign, aligned_alloc) after the tool
 *                             has initialised its crypto libraries fails with
 *                             ENOMEM, and so does every later one when
 *                             AGKIT_FAIL_ALLOC_ALL=1.  Counting starts at
 *                             agkit_fault_arm(), which the tools call (weak
 *                             symbol) after bn_crypto_init(): OpenSSL 3.0
 *                             crashes on its own when its lazy initialisation
 *                             runs out of memory, which is not ours to test.
 *   AGKIT_FAIL_READ=NAME[:K]  reads (read, pread) from a file whose path ends
 *                             in NAME fail with EIO after K successful ones
 *                             (default 0): a medium going bad mid-import
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static long fail_at = -1, count;
static int fail_all, armed;
static char read_name[256];
static long read_after, read_count;

__attribute__((constructor)) static void init(void)
{
	const char *a = getenv("AGKIT_FAIL_ALLOC"), *r = getenv("AGKIT_FAIL_READ");
	fail_at = a ? atol(a) : -1;
	fail_all = getenv("AGKIT_FAIL_ALLOC_ALL") != NULL;
	if (r) {
		snprintf(read_name, sizeof read_name, "%s", r);
		char *colon = strrchr(read_name, ':');
		if (colon) {
			*colon = '\0';
			read_after = atol(colon + 1);
		}
	}
}

void agkit_fault_arm(void);
void agkit_fault_arm(void)
{
	armed = 1;
}

static int should_fail(void)
{
	if (!armed || fail_at < 0)
		return 0;
	long n = __atomic_add_fetch(&count, 1, __ATOMIC_SEQ_CST);
	return n == fail_at || (fail_all && n > fail_at);
}

void *malloc(size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	if (n && should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, n);
}

int posix_memalign(void **ret, size_t align, size_t n)
{
	if (should_fail())
		return ENOMEM;
	void *p = __libc_memalign(align, n);
	if (!p)
		return ENOMEM;
	*ret = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_memalign(align, n);
}

/* Is fd a file whose path ends in read_name? */
static int watched(int fd)
{
	if (!read_name[0])
		return 0;
	char link[64], path[4096];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	size_t l = strlen(read_name), pl = (size_t)n;
	return pl >= l && strcmp(path + pl - l, read_name) == 0;
}

static int read_fails(int fd)
{
	return watched(fd) && __atomic_add_fetch(&read_count, 1, __ATOMIC_SEQ_CST) > read_after;
}

ssize_t read(int fd, void *buf, size_t n)
{
	static ssize_t (*real)(int, void *, size_t);
	if (!real)
		real = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	if (read_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, n);
}

/* Built without _FILE_OFFSET_BITS (see meson.build) so that both names can
 * be defined: 64-bit callers use pread64. */
static ssize_t fail_or_pread(int fd, void *buf, size_t n, off64_t off)
{
	static ssize_t (*real)(int, void *, size_t, off64_t);
	if (!real)
		real = (ssize_t (*)(int, void *, size_t, off64_t))dlsym(RTLD_NEXT, "pread64");
	if (read_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, n, off);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return fail_or_pread(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	return fail_or_pread(fd, buf, n, off);
}
