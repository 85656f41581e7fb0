/* SPDX-License-Identifier: Apache-2.0 */
/* TAP unit test of tools/agserve/toolcall.c: the tool-call shapes of the
 * Hermes/Qwen, Mistral, Llama 3, GLM, DeepSeek, Kimi and MiniMax templates,
 * written here from those templates' own instructions and the models'
 * published tool-call guides, parse into calls; malformed calls stay text;
 * streaming holds back exactly what may still become a call.  With
 * TEMPLATES RENDER_REF DATA as arguments it also renders assistant tool
 * calls through the real templates with python3-jinja2
 * (tests/runtime/render_ref.py) and parses them back (the round trip). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

/* The arguments of call i equal the JSON value want (an object, or a string
 * holding one, as the OpenAI API sends them). */
static bool args_are(const struct tc_result *r, size_t i, const json_t *want)
{
	json_t *w = json_is_string(want) ? json_loads(json_string_value(want), 0, NULL) : json_incref((json_t *)want);
	json_t *got = i < r->n_calls ? json_loads(r->calls[i].arguments, 0, NULL) : NULL;
	bool eq = w && got && json_equal(w, got);
	json_decref(w);
	json_decref(got);
	return eq;
}

/* The round trip: CONTEXT (DATA/NAME.json, ending with an assistant turn
 * with tool_calls) rendered by TEMPLATES/NAME.jinja with python3-jinja2; the
 * text of that turn (after the last `from`, up to the next `to`) parses back
 * into the same calls, and the turn's content into the content. */
static void round_trip(const char *tdir, const char *ref, const char *ddir, const char *name, enum tc_format f,
                       const char *from, const char *to)
{
	char cmd[8192], ctxp[4096], *out = malloc(1 << 20);
	snprintf(ctxp, sizeof(ctxp), "%s/%s.json", ddir, name);
	snprintf(cmd, sizeof(cmd), "python3 '%s' '%s/%s.jinja' '%s' 2>/dev/null", ref, tdir, name, ctxp);
	FILE *pp = popen(cmd, "r");
	size_t n = pp ? fread(out, 1, (1 << 20) - 1, pp) : 0;
	int st = pp ? pclose(pp) : -1;
	out[n] = 0;
	json_t *ctx = json_load_file(ctxp, 0, NULL);
	json_t *msgs = json_object_get(ctx, "messages");
	json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
	json_t *calls = json_object_get(last, "tool_calls"), *c;
	const char *content = json_string_value(json_object_get(last, "content"));
	TAP_OK(st == 0 && n > 0 && json_array_size(calls) > 0, "%s: python3-jinja2 renders the tool calls", name);
	char *b = NULL, *e = NULL;
	for (char *q = out; (q = strstr(q, from)); q++)
		b = q + strlen(from);
	if (b)
		e = strstr(b, to);
	struct tc_result r = {0};
	bool ok = e && tc_parse_tools(f, b, (size_t)(e - b), json_object_get(ctx, "tools"), &r) == 0 &&
	          r.n_calls == json_array_size(calls);
	size_t k;
	json_array_foreach(calls, k, c) {
		json_t *fn = json_object_get(c, "function");
		ok = ok && !strcmp(r.calls[k].name, json_string_value(json_object_get(fn, "name"))) &&
		     args_are(&r, k, json_object_get(fn, "arguments"));
	}
	ok = ok && r.content_len == (content ? strlen(content) : 0) && (!content || !memcmp(b, content, r.content_len));
	TAP_OK(ok, "%s: the rendered assistant turn parses back to the same %zu calls and content", name,
	       json_array_size(calls));
	/* streamed: nothing of the calls goes out before the end */
	TAP_OK(e && tc_stream_safe(f, b, (size_t)(e - b)) == r.content_len, "%s: streaming holds back the calls", name);
	tc_result_release(&r);
	json_decref(ctx);
	free(out);
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
		} real[] = {{"qwen2.5.jinja", TC_HERMES},
		            {"qwen3.jinja", TC_HERMES},
		            {"glm-4.5.jinja", TC_GLM},
		            {"llama-3.2.jinja", TC_LLAMA3},
		            {"llama-3.3.jinja", TC_LLAMA3},
		            {"mistral-nemo.jinja", TC_MISTRAL},
		            {"mistral-small-3.1.jinja", TC_MISTRAL},
		            {"gemma-2.jinja", TC_NONE},
		            {"phi-3.5.jinja", TC_NONE},
		            {"deepseek-v3.1.jinja", TC_DEEPSEEK},
		            {"kimi-k2.jinja", TC_KIMI},
		            {"minimax-m2.jinja", TC_MINIMAX}};
		for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++)
			TAP_OK(detect_file(argv[1], real[i].file) == (int)real[i].f, "%s: %s", real[i].file,
			       tc_format_name(real[i].f));
	}
	if (argc > 3) {
		if (system("python3 -c 'import jinja2' 2>/dev/null") != 0) {
			TAP_OK(1, "round trip through the real templates # SKIP no python3-jinja2");
		} else {
			round_trip(argv[1], argv[2], argv[3], "deepseek-v3.1", TC_DEEPSEEK, "<｜Assistant｜></think>",
			           "<｜end▁of▁sentence｜>");
			round_trip(argv[1], argv[2], argv[3], "minimax-m2", TC_MINIMAX, "]~b]ai\n", "[e~[");
		}
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

	/* DeepSeek-V3.1 (its template: NAME<｜tool▁sep｜>ARGUMENTS between the markers) */
	t = "Checking.\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{\"city\": "
	    "\"Paris\"}<｜tool▁call▁end｜>"
	    "<｜tool▁call▁begin｜>t<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
	TAP_OK(parse(TC_DEEPSEEK, t, &r) == 0 && r.n_calls == 2 &&
	           call_is(&r, 0, "get_weather", "{\"city\":\"Paris\"}") && call_is(&r, 1, "t", "{}") &&
	           r.content_len == strlen("Checking.") && !r.calls[0].id,
	       "deepseek: two calls after text");
	tc_result_release(&r);
	t = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": "
	    "\"Paris\"}\n```"
	    "<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
	TAP_OK(parse(TC_DEEPSEEK, t, &r) == 0 && r.n_calls == 1 &&
	           call_is(&r, 0, "get_weather", "{\"city\":\"Paris\"}"),
	       "deepseek: the V3/R1 shape (type, name, fenced JSON)");
	tc_result_release(&r);
	t = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"k\": 1}";
	TAP_OK(parse(TC_DEEPSEEK, t, &r) == 0 && r.n_calls == 1 && call_is(&r, 0, "f", "{\"k\":1}"),
	       "deepseek: a call the model ended before its end markers");
	tc_result_release(&r);
	t = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{\"k\": "
	    "1<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
	TAP_OK(parse(TC_DEEPSEEK, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "deepseek: bad JSON stays text, whole");
	tc_result_release(&r);
	t = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜> more "
	    "words";
	TAP_OK(parse(TC_DEEPSEEK, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "deepseek: text after the calls: all of it stays text");
	tc_result_release(&r);
	t = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f {}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
	TAP_OK(parse(TC_DEEPSEEK, t, &r) == 0 && r.n_calls == 0, "deepseek: a call without <｜tool▁sep｜> is no call");
	tc_result_release(&r);
	t = "<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>";
	TAP_OK(parse(TC_DEEPSEEK, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "deepseek: an empty section is text");
	tc_result_release(&r);
	TAP_OK(tc_stream_safe(TC_DEEPSEEK, "ok <｜tool▁cal", strlen("ok <｜tool▁cal")) == 2 &&
	           tc_stream_safe(TC_DEEPSEEK, "a < b", 5) == 5,
	       "stream: deepseek holds back a partial marker, streams other text");

	/* Kimi-K2 (its guide: functions.NAME:IDX<|tool_call_argument_begin|>ARGUMENTS) */
	t = "Sure.<|tool_calls_section_begin|>\n<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
	    "{\"city\": \"Paris\"}<|tool_call_end|>\n<|tool_call_begin|> functions.t:1 <|tool_call_argument_begin|>{}"
	    "<|tool_call_end|>\n<|tool_calls_section_end|>";
	TAP_OK(parse(TC_KIMI, t, &r) == 0 && r.n_calls == 2 && call_is(&r, 0, "get_weather", "{\"city\":\"Paris\"}") &&
	           call_is(&r, 1, "t", "{}") && r.content_len == 5 && r.calls[0].id &&
	           !strcmp(r.calls[0].id, "functions.get_weather:0") && r.calls[1].id &&
	           !strcmp(r.calls[1].id, "functions.t:1"),
	       "kimi: two calls; the id is functions.NAME:IDX, the name NAME");
	tc_result_release(&r);
	t = "<|tool_calls_section_begin|><|tool_call_begin|>search:3<|tool_call_argument_begin|>{\"q\": \"x\"}";
	TAP_OK(parse(TC_KIMI, t, &r) == 0 && r.n_calls == 1 && call_is(&r, 0, "search", "{\"q\":\"x\"}") &&
	           !strcmp(r.calls[0].id, "search:3"),
	       "kimi: NAME:IDX without functions., ended before the end markers");
	tc_result_release(&r);
	t = "<|tool_calls_section_begin|><|tool_call_begin|>functions.f<|tool_call_argument_begin|>{}<|tool_call_end|>";
	TAP_OK(parse(TC_KIMI, t, &r) == 0 && r.n_calls == 0, "kimi: an id without :IDX is no call");
	tc_result_release(&r);
	t = "<|tool_calls_section_begin|><|tool_call_begin|>functions.:0<|tool_call_argument_begin|>{}<|tool_call_end|"
	    ">";
	TAP_OK(parse(TC_KIMI, t, &r) == 0 && r.n_calls == 0, "kimi: an empty name is no call");
	tc_result_release(&r);
	t = "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>[1]<|tool_call_"
	    "end|>";
	TAP_OK(parse(TC_KIMI, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "kimi: arguments that are not an object stay text");
	tc_result_release(&r);
	TAP_OK(tc_stream_safe(TC_KIMI, "Hi <|tool_calls_sec", 19) == 2 &&
	           tc_stream_safe(TC_KIMI, "Hi <|im_end", 11) == 11,
	       "stream: kimi holds back a partial marker only");

	/* MiniMax-M2 (its template: <invoke name="N"><parameter name="K">V</parameter>) */
	t = "Let me check.\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter "
	    "name=\"city\">Paris</parameter>\n"
	    "<parameter name=\"days\">3</parameter>\n<parameter name=\"q\">[1, \"a\"]</parameter>\n<parameter "
	    "name=\"w\">two words</parameter>\n</invoke>\n</minimax:tool_call>";
	TAP_OK(
	    parse(TC_MINIMAX, t, &r) == 0 && r.n_calls == 1 &&
	        call_is(&r, 0, "get_weather", "{\"city\":\"Paris\",\"days\":3,\"q\":[1,\"a\"],\"w\":\"two words\"}") &&
	        r.content_len == strlen("Let me check."),
	    "minimax: without a schema a value is the JSON it parses as, else the text");
	tc_result_release(&r);
	{
		json_t *tools =
		    json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": "
		               "\"object\", \"properties\": {\"s\": {\"type\": \"string\"}, \"i\": {\"type\": "
		               "\"integer\"}, \"b\": {\"type\": \"boolean\"}, \"o\": {\"type\": \"object\"}, \"n\": "
		               "{\"type\": [\"string\", \"null\"]}, \"x\": {\"type\": \"number\"}}}}}]",
		               0, NULL);
		t = "<minimax:tool_call><invoke name=\"f\"><parameter name=\"s\">42</parameter><parameter name=\"i\">7"
		    "</parameter><parameter name=\"b\">True</parameter><parameter name=\"o\">{\"k\": [1]}</parameter>"
		    "<parameter name=\"n\">null</parameter><parameter name=\"x\">1.5e3</parameter></invoke>"
		    "<invoke name=\"f\"><parameter name=\"i\">seven</parameter><parameter name=\"o\">not "
		    "json</parameter>"
		    "<parameter name=\"s\">\n  spaced  \n</parameter></invoke></minimax:tool_call>";
		TAP_OK(tc_parse_tools(TC_MINIMAX, t, strlen(t), tools, &r) == 0 && r.n_calls == 2 &&
		           call_is(&r, 0, "f",
		                   "{\"s\":\"42\",\"i\":7,\"b\":true,\"o\":{\"k\":[1]},\"n\":null,\"x\":1500.0}") &&
		           call_is(&r, 1, "f", "{\"i\":\"seven\",\"o\":\"not json\",\"s\":\"  spaced  \"}"),
		       "minimax: values typed by the tool's schema (a string stays text; the rest JSON when it fits)");
		tc_result_release(&r);
		json_decref(tools);
	}
	t = "<minimax:tool_call><invoke name=\"f\"><parameter name=\"a\">1</parameter>";
	TAP_OK(parse(TC_MINIMAX, t, &r) == 0 && r.n_calls == 1 && call_is(&r, 0, "f", "{\"a\":1}"),
	       "minimax: a call the model ended before </invoke>");
	tc_result_release(&r);
	t = "<minimax:tool_call><invoke name=\"f\"><parameter name=\"a\">1</invoke></minimax:tool_call>";
	TAP_OK(parse(TC_MINIMAX, t, &r) == 0 && r.n_calls == 0 && r.content_len == strlen(t),
	       "minimax: an unclosed parameter stays text");
	tc_result_release(&r);
	t = "<minimax:tool_call><invoke name=\"f\">junk<parameter "
	    "name=\"a\">1</parameter></invoke></minimax:tool_call>";
	TAP_OK(parse(TC_MINIMAX, t, &r) == 0 && r.n_calls == 0, "minimax: text inside an invoke is no call");
	tc_result_release(&r);
	t = "<minimax:tool_call><invoke name=\"\"></invoke></minimax:tool_call>";
	TAP_OK(parse(TC_MINIMAX, t, &r) == 0 && r.n_calls == 0, "minimax: an empty name is no call");
	tc_result_release(&r);
	TAP_OK(tc_stream_safe(TC_MINIMAX, "x\n<minimax:to", 13) == 1 && tc_stream_safe(TC_MINIMAX, "x <b>", 5) == 5,
	       "stream: minimax holds back a partial marker only");

	/* hostile input, every new format: NUL bytes, huge names */
	{
		static const char nul_ds[] =
		    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>f\0g<｜tool▁sep｜>{}<｜tool▁call▁end｜>";
		static const char nul_kimi[] = "<|tool_calls_section_begin|><|tool_call_begin|>functions.f\0:0"
		                               "<|tool_call_argument_begin|>{}<|tool_call_end|>";
		static const char nul_mm[] =
		    "<minimax:tool_call><invoke name=\"f\"><parameter name=\"a\">x\0y</parameter>"
		    "</invoke></minimax:tool_call>";
		static const char nul_glm[] = "<tool_call>f<arg_key>a</arg_key><arg_value>x\0y</arg_value></tool_call>";
		bool ok = true;
		ok = ok && tc_parse(TC_DEEPSEEK, nul_ds, sizeof(nul_ds) - 1, &r) == 0 && r.n_calls == 0;
		tc_result_release(&r);
		ok = ok && tc_parse(TC_KIMI, nul_kimi, sizeof(nul_kimi) - 1, &r) == 0 && r.n_calls == 0;
		tc_result_release(&r);
		ok = ok && tc_parse(TC_MINIMAX, nul_mm, sizeof(nul_mm) - 1, &r) == 0 && r.n_calls == 0 &&
		     r.content_len == sizeof(nul_mm) - 1;
		tc_result_release(&r);
		ok = ok && tc_parse(TC_GLM, nul_glm, sizeof(nul_glm) - 1, &r) == 0 && r.n_calls == 0;
		tc_result_release(&r);
		TAP_OK(ok,
		       "a NUL byte in a name or value: no call, the text stays text (deepseek, kimi, minimax, glm)");
	}
	{
		char name[TC_MAX_NAME + 2], buf[4096];
		memset(name, 'n', sizeof(name) - 1);
		name[sizeof(name) - 1] = 0;
		bool ok = true;
		snprintf(buf, sizeof(buf),
		         "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>%s<｜tool▁sep｜>{}<｜tool▁call▁end｜>", name);
		ok = ok && parse(TC_DEEPSEEK, buf, &r) == 0 && r.n_calls == 0;
		tc_result_release(&r);
		snprintf(buf, sizeof(buf),
		         "<|tool_calls_section_begin|><|tool_call_begin|>functions.%s:0"
		         "<|tool_call_argument_begin|>{}<|tool_call_end|>",
		         name);
		ok = ok && parse(TC_KIMI, buf, &r) == 0 && r.n_calls == 0;
		tc_result_release(&r);
		snprintf(buf, sizeof(buf), "<minimax:tool_call><invoke name=\"%s\"></invoke>", name);
		ok = ok && parse(TC_MINIMAX, buf, &r) == 0 && r.n_calls == 0;
		tc_result_release(&r);
		name[TC_MAX_NAME] = 0;
		snprintf(buf, sizeof(buf), "<minimax:tool_call><invoke name=\"%s\"></invoke>", name);
		ok = ok && parse(TC_MINIMAX, buf, &r) == 0 && r.n_calls == 1;
		tc_result_release(&r);
		TAP_OK(ok, "names over %d bytes are refused as calls (exactly %d is a call)", TC_MAX_NAME, TC_MAX_NAME);
	}
	{
		char *big = malloc(70 * 64 + 64);
		strcpy(big, "<minimax:tool_call>");
		for (int i = 0; i < 70; i++)
			strcat(big, "<invoke name=\"f\"></invoke>");
		TAP_OK(parse(TC_MINIMAX, big, &r) == 0 && r.n_calls == 0,
		       "minimax: more than %d calls is refused as calls (text)", TC_MAX_CALLS);
		tc_result_release(&r);
		free(big);
	}
	{
		static const char bad_utf8[] =
		    "<minimax:tool_call><invoke name=\"f\xff\"></invoke></minimax:tool_call>";
		TAP_OK(parse(TC_MINIMAX, bad_utf8, &r) == 0 && r.n_calls == 0, "a name that is not UTF-8 is no call");
		tc_result_release(&r);
	}

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
