/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Internal to libbundle: parity geometry shared by encoding and rebuilding. */
#include <stddef.h>
#include <stdint.h>

/* Stripe block for a group of `shards` volumes (bounded total buffer memory). */
size_t bn_parity_block(uint32_t shards);
/* (k + p) x k encoding matrix (identity over Cauchy), malloc'ed; NULL on ENOMEM. */
uint8_t *bn_parity_matrix(uint32_t k, uint32_t p);
