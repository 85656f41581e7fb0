/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/* Prometheus counters and histograms (text format 0.0.4) for /metrics. */
#include <stddef.h>
#include <stdint.h>

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);
void metrics_request(struct metrics *m, const char *endpoint, int status);
void metrics_tokens(struct metrics *m, uint64_t in, uint64_t out);
void metrics_ttft(struct metrics *m, double seconds);
void metrics_decode_rate(struct metrics *m, double tokens_per_s);
void metrics_load_failure(struct metrics *m);
uint64_t metrics_load_failures(struct metrics *m);
/* Appends the exposition text; gauges and model info come from the caller. */
char *metrics_render(struct metrics *m, int queue_depth, int active, int step_max, unsigned long long prompt_cached,
                     const char *bundle, const char *channel, const char *version, const char *slot);
