/* SPDX-License-Identifier: Apache-2.0 */
/* Out-of-core weights: a model larger than its memory limit runs with only
 * the layer being computed mapped into the process.  The forward passes
 * announce each stage they enter (the embedding lookup, each layer, the
 * output head); the stream drops the previous stage's pages from the
 * process (MADV_DONTNEED on the read-only file mapping: the page cache may
 * keep them, the process's RSS does not) and asks the kernel to read the
 * entered stage and the next one ahead (MADV_WILLNEED).  Tensors are
 * grouped into stages by name, so any tensor of "model.layers.N." (scales
 * and zero points of quantized formats included) belongs to layer N. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "agrt/agrt.h"
#include "safetensors.h"

#define RT_STREAM_EMBED (-1) /* the embedding rows of the step's tokens */
/* stages 0..n_layers-1: the layers; n_layers: the output head (final norm, lm_head) */

struct rt_stream;

struct rt_stream_stats {
	uint64_t bytes_read;    /* weight bytes of every stage entered, summed over entries */
	uint64_t largest_stage; /* the bytes of the largest stage */
	uint64_t entries;       /* stages entered */
};

/* Groups st's tensors into the stages of a model of n_layers layers (tied:
 * the embedding is also the output head) and drops every weight page from
 * the process.  Fails with -E2BIG (RT_ERR_USAGE) when one stage is larger
 * than max_stage bytes. */
int rt_stream_new(const struct st_set *st, int n_layers, bool tied, uint64_t max_stage, struct rt_stream **ret,
                  struct rt_error *err);
void rt_stream_free(struct rt_stream *s);
/* The forward pass enters stage (RT_STREAM_EMBED, 0..n_layers); NULL: no streaming. */
void rt_stream_enter(struct rt_stream *s, int stage);
void rt_stream_get_stats(const struct rt_stream *s, struct rt_stream_stats *ret);
