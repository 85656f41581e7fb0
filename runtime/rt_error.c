/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "rt_error.h"

int rt_fail(struct rt_error *err, int cls, int r, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return r;
	err->code = cls;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* names and JSON snippets come from hostile files: keep the message
	 * one printable line */
	for (char *p = err->msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return r;
}

int rt_errno_class(int r)
{
	if (r == -ENOMEM)
		return RT_ERR_INTERNAL;
	return RT_ERR_IO;
}
