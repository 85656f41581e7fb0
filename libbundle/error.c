/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bundle/error.h"

static volatile sig_atomic_t *cancel_flag;

void bn_set_cancel_flag(volatile sig_atomic_t *flag) { cancel_flag = flag; }
bool bn_cancelled(void) { return cancel_flag && *cancel_flag; }

int bn_check_cancel(struct bn_error *err)
{
	return bn_cancelled() ? bn_fail(err, -EINTR, "interrupted") : 0;
}

int bn_fail(struct bn_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		/* One line: a newline in a hostile file name must not forge a log line. */
		for (char *p = err->msg; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		err->code = code;
	}
	return code;
}

void bn_error_prefix(struct bn_error *err, const char *fmt, ...)
{
	if (!err)
		return;
	char pre[BN_ERROR_MAX], old[BN_ERROR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	/* Truncation is acceptable: the message stays one bounded line. */
	size_t pl = strnlen(pre, sizeof pre - 1);
	if (pl > sizeof err->msg - 3)
		pl = sizeof err->msg - 3;
	memcpy(err->msg, pre, pl);
	memcpy(err->msg + pl, ": ", 2);
	size_t room = sizeof err->msg - pl - 3;
	size_t ol = strnlen(old, room);
	memcpy(err->msg + pl + 2, old, ol);
	err->msg[pl + 2 + ol] = '\0';
}

int bn_exit_code(int r)
{
	switch (r) {
	case 0:
		return BN_EXIT_OK;
	case -EBADMSG:
	case -EKEYREJECTED:
	case -ENOKEY:
	case -EILSEQ:
	case -EFBIG:
	case -EPERM:
	case -EOVERFLOW:
	case -EPROTO:
		return BN_EXIT_VERIFY;
	case -ENOSPC:
	case -EDQUOT:
	case -EIO:
	case -ENOENT:
	case -EACCES:
	case -EROFS:
	case -EEXIST:
	case -ENOTDIR:
	case -EISDIR:
	case -ENOTEMPTY:
	case -EMFILE:
	case -ENFILE:
	case -EXDEV:
	case -EBUSY:
		return BN_EXIT_IO;
	case -EAGAIN:
		return BN_EXIT_BUSY;
	case -EINVAL:
		return BN_EXIT_USAGE;
	case -ESTALE:
		return BN_EXIT_POLICY;
	default:
		return BN_EXIT_FAILURE;
	}
}
