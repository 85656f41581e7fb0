/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Tool calls in generated text.  Chat templates with tool support tell the
 * model to answer a call in a fixed textual shape; this module recognises
 * the shapes of the template families that agserve serves and turns the
 * model's text back into the APIs' structured calls (OpenAI "tool_calls",
 * Anthropic "tool_use" blocks):
 *
 *   TC_HERMES   <tool_call>{"name": N, "arguments": {...}}</tool_call>, one
 *               or more (Qwen2.5, Qwen3, Hermes 2/3 and their templates);
 *   TC_MISTRAL  [TOOL_CALLS][{"name": N, "arguments": {...}}, ...] (Mistral
 *               v3 templates) or [TOOL_CALLS]N[ARGS]{...} (v11 and later);
 *   TC_LLAMA3   the whole answer is {"name": N, "parameters": {...}}, or
 *               several separated by ';', optionally after <|python_tag|>
 *               (Llama 3.1-3.3 JSON tool calling);
 *   TC_GLM      <tool_call>N <arg_key>K</arg_key><arg_value>V</arg_value>...
 *               </tool_call> (GLM-4.5/4.6; a value that parses as JSON is
 *               that value, else the string);
 *   TC_DEEPSEEK <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>N<｜tool▁sep｜>{...}
 *               <｜tool▁call▁end｜>...<｜tool▁calls▁end｜> (DeepSeek-V3.1; the
 *               V3/R1 shape TYPE<｜tool▁sep｜>N\n```json\n{...}\n``` too);
 *   TC_KIMI     <|tool_calls_section_begin|><|tool_call_begin|>functions.N:IDX
 *               <|tool_call_argument_begin|>{...}<|tool_call_end|>...
 *               <|tool_calls_section_end|> (Kimi-K2; the call's id is
 *               "functions.N:IDX");
 *   TC_MINIMAX  <minimax:tool_call><invoke name="N"><parameter name="K">V
 *               </parameter>...</invoke>...</minimax:tool_call> (MiniMax-M2;
 *               V typed by the tool's JSON schema: raw text for "string",
 *               JSON for the other types, the text when it is not).
 *
 * Text that does not parse as calls stays text: a malformed call is
 * returned as content, never dropped.  Limits: at most TC_MAX_CALLS calls,
 * names of 1..TC_MAX_NAME bytes, ids of at most TC_MAX_ID bytes, no NUL
 * byte in a name, key or value.
 */
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum tc_format { TC_NONE, TC_HERMES, TC_MISTRAL, TC_LLAMA3, TC_GLM, TC_DEEPSEEK, TC_KIMI, TC_MINIMAX, TC_N_FORMATS };

#define TC_MAX_CALLS 64
#define TC_MAX_NAME  256
#define TC_MAX_ID    (TC_MAX_NAME + 32)

struct tc_call {
	char *name;
	char *arguments; /* compact JSON text of an object */
	char *id;        /* the call's id when the format names it (Kimi), else NULL */
};

struct tc_result {
	size_t content_len; /* text before the first call (trailing whitespace cut) */
	struct tc_call calls[TC_MAX_CALLS];
	size_t n_calls;
};

/* The format a template asks for, from the literal texts in it: has_text(ctx,
 * s) says whether s occurs in one of them. */
enum tc_format tc_detect(bool (*has_text)(const void *ctx, const char *s), const void *ctx);
const char *tc_format_name(enum tc_format f);

/* Parses the whole generated text.  Returns 0 with ret->n_calls > 0 when it
 * holds calls, 0 with n_calls 0 (content_len = len) when it is plain text,
 * -ENOMEM.  Release with tc_result_release. */
int tc_parse(enum tc_format f, const char *text, size_t len, struct tc_result *ret);
/* The same, with the request's tools (OpenAI's shape, [{"type": "function",
 * "function": {"name", "parameters"}}], or NULL): formats whose values are
 * untyped text (MiniMax) type them by the named tool's parameter schema. */
int tc_parse_tools(enum tc_format f, const char *text, size_t len, const json_t *tools, struct tc_result *ret);
void tc_result_release(struct tc_result *r);

/* Streaming: how many leading bytes of the text generated so far can go out
 * as content now — everything before a call's opening marker, less a tail
 * that could still become one (a prefix of the marker, or whitespace). */
size_t tc_stream_safe(enum tc_format f, const char *text, size_t len);
