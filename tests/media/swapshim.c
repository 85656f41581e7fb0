/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LD_PRELOAD shim for tests/media/sec-swap.sh: a medium that answers
 * differently on the second read (crafted USB firmware).  Opens of
 * $SHIM_DIR/manifest.json and $SHIM_DIR/signatures/... after the first open
 * of manifest.json are redirected to the same names under $SHIM_ALT.  Every
 * open of a manifest.json is logged to $SHIM_LOG.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int manifest_opens;

static const char *redirect(const char *path, char *buf, size_t len)
{
	const char *dir = getenv("SHIM_DIR"), *alt = getenv("SHIM_ALT"), *log = getenv("SHIM_LOG");
	if (!dir || !alt || !path)
		return path;
	size_t dl = strlen(dir);
	if (strncmp(path, dir, dl) != 0 || path[dl] != '/')
		return path;
	const char *rel = path + dl + 1;
	bool manifest = !strcmp(rel, "manifest.json"), sig = !strncmp(rel, "signatures/", 11);
	if (!manifest && !sig)
		return path;
	if (manifest) {
		manifest_opens++;
		if (log) {
			FILE *f = fopen(log, "a");
			if (f) {
				fprintf(f, "%d %s\n", (int)getpid(), path);
				fclose(f);
			}
		}
	}
	if (manifest_opens < 2)
		return path; /* the first read (manifest and signatures) is honest */
	snprintf(buf, len, "%s/%s", alt, rel);
	return buf;
}

#define WRAP(name)                                                                                                    \
	int name(const char *path, int flags, ...)                                                                        \
	{                                                                                                                 \
		static int (*real)(const char *, int, ...);                                                                   \
		if (!real)                                                                                                    \
			real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name);                                          \
		va_list ap;                                                                                                   \
		va_start(ap, flags);                                                                                          \
		mode_t mode = (mode_t)va_arg(ap, int);                                                                        \
		va_end(ap);                                                                                                   \
		char buf[4096];                                                                                               \
		return real(redirect(path, buf, sizeof buf), flags, mode);                                                    \
	}
WRAP(open)
WRAP(open64)

#define WRAPAT(name)                                                                                                  \
	int name(int dfd, const char *path, int flags, ...)                                                               \
	{                                                                                                                 \
		static int (*real)(int, const char *, int, ...);                                                              \
		if (!real)                                                                                                    \
			real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #name);                                     \
		va_list ap;                                                                                                   \
		va_start(ap, flags);                                                                                          \
		mode_t mode = (mode_t)va_arg(ap, int);                                                                        \
		va_end(ap);                                                                                                   \
		char buf[4096];                                                                                               \
		return real(dfd, redirect(path, buf, sizeof buf), flags, mode);                                               \
	}
WRAPAT(openat)
WRAPAT(openat64)

int __open_2(const char *path, int flags)
{
	return open(path, flags);
}
int __open64_2(const char *path, int flags)
{
	return open64(path, flags);
}
