/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Request bodies of agserve's POST endpoints, parsed and validated into one
 * struct before anything else looks at them (the fuzz target's entry point).
 * Every size the client controls is capped by struct req_limits; anything
 * that would change the meaning of a request and is not supported (n > 1,
 * logit_bias, penalties, response_format, ...) is refused, not ignored.
 * Invariants after a successful req_parse: strings are valid UTF-8 without
 * NUL; messages (chat, messages, template) is an array of objects
 * {"role": string, "content": string} with the Anthropic system prompt
 * first (plus what the template reads of tool calls: an assistant's
 * "tool_calls" with "arguments" as objects, a "tool" turn's "tool_call_id";
 * Anthropic tool_use / tool_result blocks become these); max_tokens is -1 (absent) or >= 1, or 0 for a completion with
 * echo (score the prompt, generate nothing; not streamed); a completion's
 * prompt is either text (prompt) or token ids (prompt_ids, each in
 * [0, INT32_MAX): the caller checks them against the vocabulary).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum req_kind { REQ_CHAT, REQ_COMPLETION, REQ_MESSAGES, REQ_TEMPLATE };

#define REQ_MAX_STOP     16
#define REQ_MAX_LOGPROBS 20 /* completions' logprobs, chat's top_logprobs (vLLM's max_logprobs) */

struct req_limits {
	size_t max_messages; /* default 4096 */
	size_t max_stop_len; /* bytes per stop string, default 256 */
	int max_tokens_cap;  /* largest max_tokens accepted, default 1 << 20 */
};

struct req {
	enum req_kind kind;
	char *model;      /* NULL when absent */
	json_t *messages; /* normalized, see above; NULL for completions */
	json_t *tools;    /* OpenAI's shape ({"type":"function","function":{...}}; Anthropic's converted), or NULL */
	bool parse_tools; /* tools given and tool_choice not "none": answer calls as structured calls */
	bool one_tool;    /* parallel_tool_calls false (Anthropic: disable_parallel_tool_use) */
	char *prompt;     /* completions: the prompt text, or NULL when given as token ids */
	size_t prompt_len;
	int32_t *prompt_ids; /* completions: the prompt as token ids (vLLM, OpenAI), or NULL */
	size_t n_prompt_ids;
	int max_tokens;     /* -1: absent */
	double temperature; /* default 1 */
	double top_p;       /* default 1 */
	int top_k;          /* 0: off */
	bool has_seed;
	uint64_t seed;
	char *stop[REQ_MAX_STOP];
	size_t n_stop;
	bool stream, include_usage;
	bool continuous_usage;      /* vLLM's stream_options.continuous_usage_stats: usage in every chunk */
	bool logprobs;              /* chat: logprobs true */
	int top_logprobs;           /* chat: 0..20; completions: logprobs N (0..20), -1 when absent */
	bool echo;                  /* completions */
	bool ignore_eos;            /* vLLM's ignore_eos: generate past end-of-sequence ids */
	bool tokens_as_ids;         /* vLLM's return_tokens_as_token_ids: logprobs name tokens "token_id:N" */
	bool add_generation_prompt; /* template */
};

void req_limits_default(struct req_limits *l);
/* Parses body.  On failure returns a negative errno and writes a one-line
 * message (and the offending parameter name, "" when none) into msg/param. */
int req_parse(enum req_kind kind, const char *body, size_t len, const struct req_limits *lim, struct req *ret,
              char *msg, size_t msglen, char *param, size_t paramlen);
void req_release(struct req *r);
