/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Internal to libbundle: the one SHA256SUMS writer (sign.c). */
#include "bundle/bundle.h"

/* Writes dir/SHA256SUMS for every other regular file in dir and its
 * subdirectories one level down (sorted); the hashes of m's volumes and
 * parity volumes (m may be NULL) are taken from m instead of being read. */
int bn_sums_write(const char *dir, const struct bn_manifest *m, struct bn_error *err) BN_WUR;
