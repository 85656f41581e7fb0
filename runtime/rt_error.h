/* SPDX-License-Identifier: Apache-2.0 */
/* Error reporting helpers shared by the runtime modules. */
#pragma once

#include "agrt/agrt.h"

/* Fill err (may be NULL) with class cls and a printf-style message; returns r
 * (a negative errno) so callers can write `return rt_fail(...)`. */
int rt_fail(struct rt_error *err, int cls, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Class for an errno returned by a system call on a file. */
int rt_errno_class(int r);
