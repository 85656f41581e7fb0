/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internal to libbundle: test-only fault injection.  When the caller's
 * tunables name a crash point (bn_tunables()->crash_at, which the tools fill
 * from AGKIT_CRASH_AT), bn_fault_point() with that name kills the process
 * with SIGKILL, so that crash-safety tests stop at named steps.  Defined in
 * extract.c; called by extract.c, stage.c (through bn_xfill.fault) and
 * deploy.c.
 */

void bn_fault_point(const char *name);
