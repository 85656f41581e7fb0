/* SPDX-License-Identifier: Apache-2.0 */
/* TAP unit test of tools/agserve/toolcall.c: the tool-call shapes of the
 * Hermes/Qwen, Mistral and Llama 3 templates, written here from those
 * templates' own instructions, parse into calls; malformed calls stay text;
 * streaming holds back exactly what may still become a call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "agrt/agrt.h"
#include "toolcall.h"

static bool tmpl_has(const void *ctx, const char *s)
{
	return rt_chat_template_has_text(ctx, s);
}

/* The format detected in one of tests/runtime/templates/ (real templates). */
static int detect_file(const char *dir, const char *name)
{
	char path[4096], *src;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	src = malloc(1 << 20);
	size_t n = fread(src, 1, (1 << 20) - 1, f);
	fclose(f);
	struct rt_chat_template *t = NULL;
	struct rt_error err;
	int fmt = -1;
	if (rt_chat_template_new(src, n, "<s>", "</s>", &t, &err) == 0) {
		fmt = (int)tc_detect(tmpl_has, t);
		rt_chat_template_free(t);
	}
	free(src);
	return fmt;
}

static int parse(enum tc_format f, const char *t, struct tc_result *r)
{
	return tc_parse(f, t, strlen(t), r);
}

static bool call_is(const struct tc_result *r, size_t i, const char *name, const char *args)
{
	return i < r->n_calls && !strcmp(r->calls[i].name, name) && !strcmp(r->calls[i].arguments, args);
}

static const char *T_HAS;
static bool has(const void *ctx, const char *s)
{
	(void)ctx;
	return strstr(T_HAS, s) != NULL;
}

int main(int argc, char **argv)
{
	struct tc_result r;
	const char *t;

	if (argc > 1) {
		static const struct {
			const char *file;
			enum tc_format f;
		} real[] = {{"qwen2.5.jinja", TC_HERMES},      {"qwen3.jinja", TC_HERMES},
		            {"glm-4.5.jinja", TC_GLM},         {"llama-3.2.jinja", TC_LLAMA3},
		            {"llama-3.3.jinja", TC_LLAMA3},    {"mistral-nemo.jinja", TC_MISTRAL},
		            {"mistral-small-3.1.jinja", TC_MISTRAL}, {"gemma-2.jinja", TC_NONE},
		            {"phi-3.5.jinja", TC_NONE}};
		for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++)
			TAP_OK(detect_file(argv[1], real[i].file) == (int)real[i].f, "%s: %s", real[i].file,
			       tc_format_name(real[i].f));
	}

	/* detection from the templates' literal texts */
	T_HAS = "For each function call, return a json object with function name and arguments within "
	        "<tool_call></tool_call> XML tags";
	TAP_OK(tc_detect(has, NULL) == TC_HERMES, "a Qwen/Hermes template asks for <tool_call>");
	T_HAS = "{%- if message.tool_calls %}[TOOL_CALLS][";
	TAP_OK(tc_detect(has, NULL) == TC_MISTRAL, "a Mistral template asks for [TOOL_CALLS]");
	T_HAS = "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and "
	        "its value}.";
	TAP_OK(tc_detect(has, NULL) == TC_LLAMA3, "a Llama 3.1 template asks for JSON");
	T_HAS = "{{ message.content }}";
	TAP_OK(tc_detect(has, NULL) == TC_NONE, "a template without tools: none");

	/* Hermes */
	t = "I will check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
	TAP_OK(parse(TC_HERMES, t, &r) == 0 && r.n_calls == 1 && call_is(&r, 0, "get_weather", "{\"city\":\"Paris\"}") &&
	           r.content_len == strlen("I will check."),
	       "hermes: one call after text; content is the text before it, trimmed");
	tc_result_release(&r);
	t = "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n{\"name\": \"b\", "
	    "\"arguments\": \"{\\\"x\\\": [1, 2]}\"}\n</tool_call>\n";
	TAP_OK(parse(TC_HERMES, t, &r) == 0 && r.n_calls == 2 && call_is(&r, 0, "a", "{}") &&
	           call_is(&r, 1, "b", "{\"x\":[1,2]}") && r.content_len == 0,
	       "hermes: two calls, arguments given as a JSON string");
	tc_result_release(&r);
	t = "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"k\": 1}}";
	TAP_OK(parse(TC_HERMES, t, &r) == 0 && r.n_calls == 1 && call_is(&r, 0, "a", "{\"k\":1}"),
	       "hermes: a call the model ended without </tool_call>");
	tc_result_release(&r);
	t = "Maybe <tool_call>{\"name\": \"a\", \"arguments\": {\"k\": 1</tool_call>";
	TAP_OK(parse(TC_HERMES, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "hermes: malformed JSON stays text, whole");
	tc_result_release(&r);
	t = "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call> and then some words";
	TAP_OK(parse(TC_HERMES, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "hermes: text after the calls: all of it stays text (nothing is dropped)");
	tc_result_release(&r);
	t = "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>";
	TAP_OK(parse(TC_HERMES, t, &r) == 0 && r.n_calls == 0, "hermes: an empty name is no call");
	tc_result_release(&r);
	t = "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>";
	TAP_OK(parse(TC_HERMES, t, &r) == 0 && r.n_calls == 0, "hermes: arguments that are not an object: no call");
	tc_result_release(&r);
	{
		char big[80 * 70] = "";
		for (int i = 0; i < 70; i++)
			strcat(big, "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>");
		TAP_OK(parse(TC_HERMES, big, &r) == 0 && r.n_calls == 0,
		       "hermes: more than %d calls is refused as calls (text)", TC_MAX_CALLS);
		tc_result_release(&r);
	}

	/* GLM-4.5 */
	t = "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n"
	    "<arg_value>3</arg_value>\n</tool_call>";
	TAP_OK(parse(TC_GLM, t, &r) == 0 && r.n_calls == 1 && call_is(&r, 0, "get_weather", "{\"city\":\"Paris\",\"days\":3}"),
	       "glm: name and arg_key/arg_value pairs; a JSON value is that value, else a string");
	tc_result_release(&r);
	t = "<tool_call>f\n<arg_key>a</arg_key><arg_value>1</tool_call>";
	TAP_OK(parse(TC_GLM, t, &r) == 0 && r.n_calls == 0, "glm: an unclosed arg_value is no call");
	tc_result_release(&r);

	/* Mistral */
	t = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"t\", "
	    "\"arguments\": {}}]";
	TAP_OK(parse(TC_MISTRAL, t, &r) == 0 && r.n_calls == 2 && call_is(&r, 0, "get_weather", "{\"city\":\"Paris\"}") &&
	           call_is(&r, 1, "t", "{}") && r.content_len == 0,
	       "mistral v3: a JSON array of calls");
	tc_result_release(&r);
	t = "Sure. [TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]t[ARGS]{}";
	TAP_OK(parse(TC_MISTRAL, t, &r) == 0 && r.n_calls == 2 && call_is(&r, 0, "get_weather", "{\"city\":\"Paris\"}") &&
	           call_is(&r, 1, "t", "{}") && r.content_len == 5,
	       "mistral v11: NAME[ARGS]{...} calls after text");
	tc_result_release(&r);

	/* Llama 3 */
	t = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
	TAP_OK(parse(TC_LLAMA3, t, &r) == 0 && r.n_calls == 1 && call_is(&r, 0, "get_weather", "{\"city\":\"Paris\"}") &&
	           r.content_len == 0,
	       "llama3: a JSON answer with parameters is a call");
	tc_result_release(&r);
	t = "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"q\": \"x\"}}";
	TAP_OK(parse(TC_LLAMA3, t, &r) == 0 && r.n_calls == 2 && call_is(&r, 1, "b", "{\"q\":\"x\"}"),
	       "llama3: python_tag and two calls separated by ';'");
	tc_result_release(&r);
	t = "The capital is {\"name\": \"Paris\"}";
	TAP_OK(parse(TC_LLAMA3, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "llama3: an answer that does not start with a call is text");
	tc_result_release(&r);
	TAP_OK(parse(TC_NONE, "<tool_call>{\"name\": \"a\"}</tool_call>", &r) == 0 && r.n_calls == 0,
	       "no format: never calls");
	tc_result_release(&r);

	/* streaming hold-back */
	t = "I will check.\n<tool_call>";
	TAP_OK(tc_stream_safe(TC_HERMES, t, strlen("I will check.")) == strlen("I will check."),
	       "stream: plain text goes out");
	TAP_OK(tc_stream_safe(TC_HERMES, t, strlen("I will check.\n<too")) == strlen("I will check."),
	       "stream: a partial marker and the whitespace before it wait");
	TAP_OK(tc_stream_safe(TC_HERMES, t, strlen(t)) == strlen("I will check."), "stream: nothing after the marker");
	TAP_OK(tc_stream_safe(TC_HERMES, "a < b", 5) == 5, "stream: a '<' that cannot start the marker goes out");
	TAP_OK(tc_stream_safe(TC_LLAMA3, "  {\"na", 6) == 0 && tc_stream_safe(TC_LLAMA3, "<|pyth", 6) == 0 &&
	           tc_stream_safe(TC_LLAMA3, "Paris is", 8) == 8,
	       "stream: llama3 holds an answer that starts like a call, streams one that does not");
	TAP_OK(tc_stream_safe(TC_MISTRAL, "ok [TOOL_", 9) == 2, "stream: mistral's marker held back too");
	return tap_done();
}
