/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Small file-system helpers shared by libbundle and the tools. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bundle/error.h"

/* Reads a whole regular file of at most max bytes; *ret_buf is NUL-terminated.
 * A FIFO, device or directory is refused (-EBADMSG) without blocking. */
int bn_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len, struct bn_error *err) BN_WUR;
/* The same, refusing a symbolic link as the last component: for files read from media. */
int bn_read_file_nofollow(const char *path, size_t max, char **ret_buf, size_t *ret_len, struct bn_error *err) BN_WUR;
/* Opens a regular file for reading without blocking on a FIFO (O_NONBLOCK,
 * cleared after the fstat check); nofollow: O_NOFOLLOW.  The descriptor, or
 * -EBADMSG when it is not a regular file (or a refused symbolic link), or
 * another negative errno. */
int bn_open_regular(const char *path, bool nofollow);
/* Writes all of buf; retries on EINTR and short writes. */
int bn_write_all(int fd, const void *buf, size_t len) BN_WUR;
/* pwrite of all of buf at off. */
int bn_pwrite_all(int fd, const void *buf, size_t len, uint64_t off) BN_WUR;
/* Reads exactly len bytes at off; -EIO on short read. */
int bn_pread_all(int fd, void *buf, size_t len, uint64_t off) BN_WUR;
/* Creates path with content, mode, via a temp file + fsync + rename + fsync(dir). */
int bn_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct bn_error *err) BN_WUR;
int bn_fsync_dir(const char *dir);
int bn_fsync_parent(const char *path);
/* The mode a bundle entry gets on disk, whatever the manifest says: files
 * 0644, or 0755 when the manifest gives any exec bit; directories 0755.
 * Nothing group- or other-writable, no setuid, setgid or sticky bit. */
mode_t bn_entry_mode(uint32_t manifest_mode, bool dir);
/* mkdir -p */
int bn_mkdir_p(const char *path, mode_t mode);
/* rm -rf without following symlinks; missing path is not an error. */
int bn_rm_rf(const char *path);
/* Directory part of path in a new string ("." when none). */
char *bn_dirname(const char *path);
/* Joins a and b with one '/', new string. */
char *bn_path_join(const char *a, const char *b);
/* Creates a unique empty directory "<path>.agtmp-XXXXXX" beside path. */
int bn_mktemp_sibling(const char *path, char **ret_tmp, struct bn_error *err) BN_WUR;
/* Parses sizes: 4096, 700M, 1.5G, 4GiB, 4GB.  K, M, G, T, P and KiB ... PiB
 * are binary (1024^n); KB, MB, GB, TB, PB decimal (1000^n); case-blind.
 * -EINVAL for junk (sign, spaces, exponent, a fraction of a byte), -ERANGE
 * past 2^64 - 1.  The one size parser of every tool. */
int bn_parse_size(const char *s, uint64_t *ret);
