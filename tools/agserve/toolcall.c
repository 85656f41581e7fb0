/* SPDX-License-Identifier: Apache-2.0 */
/* Tool calls in generated text (see toolcall.h). */
#include "toolcall.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

static const char HERMES_OPEN[] = "<tool_call>", HERMES_CLOSE[] = "</tool_call>";
static const char MISTRAL_OPEN[] = "[TOOL_CALLS]", MISTRAL_ARGS[] = "[ARGS]";
static const char PYTHON_TAG[] = "<|python_tag|>";
static const char DS_OPEN[] = "<｜tool▁calls▁begin｜>", DS_CLOSE[] = "<｜tool▁calls▁end｜>",
                  DS_CALL[] = "<｜tool▁call▁begin｜>", DS_CALL_END[] = "<｜tool▁call▁end｜>",
                  DS_SEP[] = "<｜tool▁sep｜>";
static const char KIMI_OPEN[] = "<|tool_calls_section_begin|>", KIMI_CLOSE[] = "<|tool_calls_section_end|>",
                  KIMI_CALL[] = "<|tool_call_begin|>", KIMI_CALL_END[] = "<|tool_call_end|>",
                  KIMI_ARGS[] = "<|tool_call_argument_begin|>";
static const char MM_OPEN[] = "<minimax:tool_call>", MM_CLOSE[] = "</minimax:tool_call>",
                  MM_CALL[] = "<invoke name=", MM_CALL_END[] = "</invoke>",
                  MM_PARAM[] = "<parameter name=", MM_PARAM_END[] = "</parameter>";

enum tc_format tc_detect(bool (*has_text)(const void *ctx, const char *s), const void *ctx)
{
	if (has_text(ctx, DS_CALL))
		return TC_DEEPSEEK;
	/* Kimi-K2: its templates declare tools in a "tool_declare" system turn
	 * (the later ones also render calls in the section markers) */
	if (has_text(ctx, KIMI_OPEN) || has_text(ctx, "tool_declare<|im_middle|>"))
		return TC_KIMI;
	if (has_text(ctx, MM_OPEN))
		return TC_MINIMAX;
	if (has_text(ctx, HERMES_OPEN))
		return has_text(ctx, "<arg_key>") ? TC_GLM : TC_HERMES;
	if (has_text(ctx, MISTRAL_OPEN))
		return TC_MISTRAL;
	/* Llama 3.1-3.3: "Respond in the format {"name": function name,
	 * "parameters": dictionary of argument name and its value}" */
	if (has_text(ctx, "\"parameters\": dictionary of argument name"))
		return TC_LLAMA3;
	return TC_NONE;
}

const char *tc_format_name(enum tc_format f)
{
	switch (f) {
	case TC_HERMES:
		return "hermes";
	case TC_MISTRAL:
		return "mistral";
	case TC_LLAMA3:
		return "llama3_json";
	case TC_GLM:
		return "glm45";
	case TC_DEEPSEEK: return "deepseek_v31";
	case TC_KIMI: return "kimi_k2";
	case TC_MINIMAX: return "minimax_m2";
	default:
		return "none";
	}
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *p, size_t i, size_t len)
{
	while (i < len && is_ws(p[i]))
		i++;
	return i;
}

static size_t trim_end(const char *p, size_t n)
{
	while (n && is_ws(p[n - 1]))
		n--;
	return n;
}

static const char *find(const char *p, size_t len, const char *needle)
{
	return memmem(p, len, needle, strlen(needle));
}

static bool starts(const char *p, size_t len, const char *s)
{
	size_t n = strlen(s);
	return len >= n && !memcmp(p, s, n);
}

void tc_result_release(struct tc_result *r)
{
	for (size_t i = 0; i < r->n_calls; i++) {
		free(r->calls[i].name);
		free(r->calls[i].arguments);
		free(r->calls[i].id);
	}
	r->n_calls = 0;
}

/* One call from name and its arguments (an object, or a string holding one,
 * as some models write; absent means none). */
static int add_call(struct tc_result *r, const char *name, size_t name_len, json_t *args)
{
	json_t *obj = NULL;
	if (r->n_calls >= TC_MAX_CALLS || name_len == 0 || name_len > TC_MAX_NAME || memchr(name, 0, name_len))
		return -EINVAL;
	json_t *valid = json_stringn(name, name_len); /* UTF-8, as the replies need */
	if (!valid)
		return -EINVAL;
	json_decref(valid);
	if (!args || json_is_null(args)) {
		obj = json_object();
	} else if (json_is_object(args)) {
		obj = json_incref(args);
	} else if (json_is_string(args)) {
		obj = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
		if (obj && !json_is_object(obj)) {
			json_decref(obj);
			return -EINVAL;
		}
	}
	if (!obj)
		return -EINVAL;
	char *a = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *n = strndup(name, name_len);
	json_decref(obj);
	if (!a || !n) {
		free(a);
		free(n);
		return -ENOMEM;
	}
	r->calls[r->n_calls].name = n;
	r->calls[r->n_calls].arguments = a;
	r->n_calls++;
	return 0;
}

/* {"name": N, KEY: {...}} (KEY "arguments", or "parameters" for Llama). */
static int add_obj(struct tc_result *r, json_t *o)
{
	json_t *name = json_object_get(o, "name");
	json_t *args = json_object_get(o, "arguments");
	if (!json_is_object(o) || !json_is_string(name))
		return -EINVAL;
	if (!args)
		args = json_object_get(o, "parameters");
	return add_call(r, json_string_value(name), json_string_length(name), args);
}

/* A JSON value at p[i..len); *ret_end is where it ends. */
static json_t *json_at(const char *p, size_t i, size_t len, size_t *ret_end)
{
	json_error_t err;
	json_t *v = json_loadb(p + i, len - i, JSON_DISABLE_EOF_CHECK, &err);
	if (v)
		*ret_end = i + (size_t)err.position;
	return v;
}

/* Hermes: the body is {"name": N, "arguments": {...}}. */
static int hermes_body(const char *p, size_t b, size_t e, struct tc_result *r)
{
	json_t *o = json_loadb(p + b, e - b, 0, NULL);
	int rc = o ? add_obj(r, o) : -EINVAL;
	json_decref(o);
	return rc;
}

/* The text v[0..n) as a JSON string: NULL for a NUL byte or invalid UTF-8
 * (json_stringn refuses the latter; the former would not load back). */
static json_t *text_string(const char *v, size_t n)
{
	return memchr(v, 0, n) ? NULL : json_stringn(v, n);
}

/* An untyped value: the JSON value it parses as, else the text. */
static json_t *value_any(const char *v, size_t n)
{
	json_t *j = json_loadb(v, n, JSON_DECODE_ANY, NULL);
	return j ? j : text_string(v, n);
}

/* args[key[0..klen)] = v (a new reference, or NULL: no such value); a key of
 * 1..TC_MAX_NAME bytes without NUL. */
static int set_arg(json_t *args, const char *key, size_t klen, json_t *v)
{
	int rc = -EINVAL;
	if (v && klen && klen <= TC_MAX_NAME && !memchr(key, 0, klen)) {
		char *k = strndup(key, klen);
		rc = !k ? -ENOMEM : json_object_set_new(args, k, v) ? -EINVAL : 0;
		free(k);
		return rc;
	}
	json_decref(v);
	return rc;
}

/* GLM: the body is NAME then <arg_key>K</arg_key> <arg_value>V</arg_value> pairs. */
static int glm_body(const char *p, size_t b, size_t e, struct tc_result *r)
{
	size_t name_end = b;
	while (name_end < e && !starts(p + name_end, e - name_end, "<arg_key>"))
		name_end++;
	size_t n0 = skip_ws(p, b, name_end), n1 = trim_end(p, name_end);
	if (n1 <= n0)
		return -EINVAL;
	json_t *args = json_object();
	if (!args)
		return -ENOMEM;
	size_t k = name_end;
	int rc = 0;
	while (rc == 0 && (k = skip_ws(p, k, e)) < e) {
		const char *ke, *vb, *ve;
		if (!starts(p + k, e - k, "<arg_key>") || !(ke = find(p + k, e - k, "</arg_key>"))) {
			rc = -EINVAL;
			break;
		}
		size_t kb = k + 9, after = skip_ws(p, (size_t)(ke - p) + 10, e);
		if (!starts(p + after, e - after, "<arg_value>") || !(ve = find(p + after, e - after, "</arg_value>"))) {
			rc = -EINVAL;
			break;
		}
		vb = p + after + 11;
		rc = set_arg(args, p + kb, (size_t)(ke - p) - kb, value_any(vb, (size_t)(ve - vb)));
		k = (size_t)(ve - p) + 12;
	}
	if (rc == 0)
		rc = add_call(r, p + n0, n1 - n0, args);
	json_decref(args);
	return rc;
}

/* <tool_call>BODY</tool_call>, one or more, only whitespace between; the
 * model may stop before the last close. */
static int parse_tagged(const char *p, size_t len, size_t i, struct tc_result *r,
                        int (*body)(const char *p, size_t b, size_t e, struct tc_result *r))
{
	while (i < len) {
		if (!starts(p + i, len - i, HERMES_OPEN))
			return -EINVAL;
		i += sizeof(HERMES_OPEN) - 1;
		const char *close = find(p + i, len - i, HERMES_CLOSE);
		size_t e = close ? (size_t)(close - p) : len;
		int rc = body(p, i, e, r);
		if (rc < 0)
			return rc;
		i = skip_ws(p, close ? e + sizeof(HERMES_CLOSE) - 1 : len, len);
	}
	return 0;
}

static int parse_mistral(const char *p, size_t len, size_t i, struct tc_result *r)
{
	while (i < len) {
		if (!starts(p + i, len - i, MISTRAL_OPEN))
			return -EINVAL;
		i = skip_ws(p, i + sizeof(MISTRAL_OPEN) - 1, len);
		if (i < len && p[i] == '[') {
			/* v3: a JSON array of calls */
			size_t end, k;
			json_t *a = json_at(p, i, len, &end), *o;
			int rc = json_is_array(a) && json_array_size(a) ? 0 : -EINVAL;
			json_array_foreach(a, k, o) {
				if (rc == 0)
					rc = add_obj(r, o);
			}
			json_decref(a);
			if (rc < 0)
				return rc;
			i = end;
		} else {
			/* v11: NAME[ARGS]{...} */
			const char *args = find(p + i, len - i, MISTRAL_ARGS);
			if (!args)
				return -EINVAL;
			size_t name_end = (size_t)(args - p), end;
			json_t *o = json_at(p, name_end + sizeof(MISTRAL_ARGS) - 1, len, &end);
			int rc = json_is_object(o) ? add_call(r, p + i, trim_end(p + i, name_end - i), o) : -EINVAL;
			json_decref(o);
			if (rc < 0)
				return rc;
			i = end;
		}
		i = skip_ws(p, i, len);
	}
	return 0;
}

static int parse_llama3(const char *p, size_t len, size_t i, struct tc_result *r)
{
	if (starts(p + i, len - i, PYTHON_TAG))
		i = skip_ws(p, i + sizeof(PYTHON_TAG) - 1, len);
	if (i >= len)
		return -EINVAL;
	while (i < len) {
		size_t end;
		json_t *o = p[i] == '{' ? json_at(p, i, len, &end) : NULL;
		int rc = o ? add_obj(r, o) : -EINVAL;
		json_decref(o);
		if (rc < 0)
			return rc;
		i = skip_ws(p, end, len);
		if (i < len && p[i] == ';')
			i = skip_ws(p, i + 1, len);
	}
	return 0;
}

/* A section of calls (DeepSeek, Kimi, MiniMax): OPEN, then CALL BODY
 * CALL_END one or more, then CLOSE; only whitespace between; sections may
 * repeat; the model may stop before the last CALL_END or CLOSE. */
struct section {
	const char *open, *close, *call, *call_end;
	int (*body)(const char *p, size_t b, size_t e, const json_t *tools, struct tc_result *r);
};

static int parse_sections(const struct section *s, const char *p, size_t len, size_t i, const json_t *tools,
                          struct tc_result *r)
{
	size_t call_n = strlen(s->call), end_n = strlen(s->call_end), close_n = strlen(s->close);
	while (i < len) {
		if (!starts(p + i, len - i, s->open))
			return -EINVAL;
		i = skip_ws(p, i + strlen(s->open), len);
		while (i < len && !starts(p + i, len - i, s->close)) {
			if (!starts(p + i, len - i, s->call))
				return -EINVAL;
			i += call_n;
			const char *end = find(p + i, len - i, s->call_end);
			size_t e = end ? (size_t)(end - p) : len;
			int rc = s->body(p, i, e, tools, r);
			if (rc < 0)
				return rc;
			i = skip_ws(p, end ? e + end_n : len, len);
		}
		if (i < len)
			i = skip_ws(p, i + close_n, len);
	}
	return 0;
}

/* A JSON object that is all of p[b..e) but whitespace. */
static json_t *json_obj_in(const char *p, size_t b, size_t e)
{
	size_t end;
	b = skip_ws(p, b, e);
	json_t *o = b < e && p[b] == '{' ? json_at(p, b, e, &end) : NULL;
	if (o && (!json_is_object(o) || skip_ws(p, end, e) != e)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* DeepSeek: V3.1 NAME<｜tool▁sep｜>{...}; V3/R1 TYPE<｜tool▁sep｜>NAME\n```json\n{...}\n``` */
static int deepseek_body(const char *p, size_t b, size_t e, const json_t *tools, struct tc_result *r)
{
	(void)tools;
	const char *sep = find(p + b, e - b, DS_SEP);
	if (!sep)
		return -EINVAL;
	size_t n0 = skip_ws(p, b, (size_t)(sep - p)), n1 = trim_end(p, (size_t)(sep - p));
	size_t a = skip_ws(p, (size_t)(sep - p) + sizeof(DS_SEP) - 1, e);
	if (a < e && p[a] != '{') {
		/* V3: the name up to the line end, the arguments in a fence */
		const char *nl = memchr(p + a, '\n', e - a);
		if (!nl)
			return -EINVAL;
		n0 = a;
		n1 = trim_end(p, (size_t)(nl - p));
		a = skip_ws(p, (size_t)(nl - p), e);
		if (starts(p + a, e - a, "```json"))
			a += 7;
		else if (starts(p + a, e - a, "```"))
			a += 3;
		size_t t = trim_end(p, e);
		if (t >= a + 3 && !memcmp(p + t - 3, "```", 3))
			e = t - 3;
	}
	if (n1 <= n0)
		return -EINVAL;
	json_t *o = json_obj_in(p, a, e);
	int rc = o ? add_call(r, p + n0, n1 - n0, o) : -EINVAL;
	json_decref(o);
	return rc;
}

/* Kimi: ID<|tool_call_argument_begin|>{...}, ID "functions.NAME:IDX". */
static int kimi_body(const char *p, size_t b, size_t e, const json_t *tools, struct tc_result *r)
{
	(void)tools;
	const char *args = find(p + b, e - b, KIMI_ARGS);
	if (!args)
		return -EINVAL;
	size_t i0 = skip_ws(p, b, (size_t)(args - p)), i1 = trim_end(p, (size_t)(args - p)), colon = i1;
	while (colon > i0 && p[colon - 1] >= '0' && p[colon - 1] <= '9')
		colon--;
	if (colon == i1 || colon <= i0 + 1 || p[colon - 1] != ':' || i1 - i0 > TC_MAX_ID)
		return -EINVAL;
	size_t n0 = starts(p + i0, colon - 1 - i0, "functions.") ? i0 + 10 : i0;
	json_t *o = json_obj_in(p, (size_t)(args - p) + sizeof(KIMI_ARGS) - 1, e);
	int rc = o ? add_call(r, p + n0, colon - 1 - n0, o) : -EINVAL;
	json_decref(o);
	if (rc == 0 && !(r->calls[r->n_calls - 1].id = strndup(p + i0, i1 - i0)))
		rc = -ENOMEM;
	return rc;
}

/* MiniMax's attribute value: "X" (or 'X', or X as it stands) before '>'. */
static bool mm_attr(const char *p, size_t *i, size_t e, size_t *ret_b, size_t *ret_e)
{
	const char *gt = memchr(p + *i, '>', e - *i);
	if (!gt)
		return false;
	size_t b = skip_ws(p, *i, (size_t)(gt - p)), t = trim_end(p, (size_t)(gt - p));
	if (t - b >= 2 && (p[b] == '"' || p[b] == '\'') && p[t - 1] == p[b])
		b++, t--;
	*ret_b = b;
	*ret_e = t;
	*i = (size_t)(gt - p) + 1;
	return true;
}

/* The parameter properties of tool name[0..n) in OpenAI-shaped tools. */
static const json_t *tool_props(const json_t *tools, const char *name, size_t n)
{
	size_t k;
	const json_t *t;
	json_array_foreach(tools, k, t) {
		const json_t *f = json_object_get(t, "function");
		const json_t *nm = json_object_get(f ? f : t, "name");
		if (json_is_string(nm) && json_string_length(nm) == n && !memcmp(json_string_value(nm), name, n))
			return json_object_get(json_object_get(f ? f : t, "parameters"), "properties");
	}
	return NULL;
}

enum { TY_STRING = 1, TY_INTEGER = 2, TY_NUMBER = 4, TY_BOOLEAN = 8, TY_OBJECT = 16, TY_ARRAY = 32, TY_NULL = 64 };

static int type_bit(const json_t *t)
{
	static const char *names[] = {"string", "integer", "number", "boolean", "object", "array", "null"};
	for (int i = 0; i < 7 && json_is_string(t); i++)
		if (!strcmp(json_string_value(t), names[i]))
			return 1 << i;
	return 0;
}

static bool type_fits(int types, const json_t *v)
{
	return (types & TY_INTEGER && json_is_integer(v)) || (types & TY_NUMBER && json_is_number(v)) ||
	       (types & TY_BOOLEAN && json_is_boolean(v)) || (types & TY_OBJECT && json_is_object(v)) ||
	       (types & TY_ARRAY && json_is_array(v)) || (types & TY_NULL && json_is_null(v));
}

/* A parameter's text typed by its schema ("type": a name or a list of them):
 * raw text for a string, the JSON value for the other types when it parses
 * as one of them (true/false in any case for a boolean), else the text; no
 * known type: the JSON value it parses as, else the text. */
static json_t *mm_value(const json_t *schema, const char *v, size_t n)
{
	const json_t *ty = json_object_get(schema, "type"), *t;
	int types = type_bit(ty);
	size_t k;
	json_array_foreach(ty, k, t) {
		types |= type_bit(t);
	}
	if (!types)
		return value_any(v, n);
	if (memchr(v, 0, n))
		return NULL;
	if (!(types & ~(TY_STRING | TY_NULL)) && types & TY_STRING)
		return types & TY_NULL && n == 4 && !memcmp(v, "null", 4) ? json_null() : text_string(v, n);
	if (types & TY_BOOLEAN && (n == 4 || n == 5) && (!strncasecmp(v, "true", n) || !strncasecmp(v, "false", n)))
		return json_boolean(n == 4);
	json_t *j = json_loadb(v, n, JSON_DECODE_ANY, NULL);
	if (j && type_fits(types, j))
		return j;
	json_decref(j);
	return text_string(v, n);
}

/* MiniMax: "NAME"><parameter name="K">V</parameter>... (after <invoke name=). */
static int minimax_body(const char *p, size_t b, size_t e, const json_t *tools, struct tc_result *r)
{
	size_t n0, n1, i = b;
	if (!mm_attr(p, &i, e, &n0, &n1) || n1 <= n0)
		return -EINVAL;
	const json_t *props = tool_props(tools, p + n0, n1 - n0);
	json_t *args = json_object();
	int rc = args ? 0 : -ENOMEM;
	while (rc == 0 && (i = skip_ws(p, i, e)) < e) {
		size_t k0, k1;
		const char *ve;
		if (!starts(p + i, e - i, MM_PARAM)) {
			rc = -EINVAL;
			break;
		}
		i += sizeof(MM_PARAM) - 1;
		if (!mm_attr(p, &i, e, &k0, &k1) || !(ve = find(p + i, e - i, MM_PARAM_END))) {
			rc = -EINVAL;
			break;
		}
		/* one newline either side is layout, as the model writes it */
		size_t v0 = i, v1 = (size_t)(ve - p);
		if (v0 < v1 && p[v0] == '\n')
			v0++;
		if (v1 > v0 && p[v1 - 1] == '\n')
			v1--;
		char key[TC_MAX_NAME + 1];
		const json_t *schema = NULL;
		if (k1 - k0 <= TC_MAX_NAME) {
			memcpy(key, p + k0, k1 - k0);
			key[k1 - k0] = 0;
			schema = json_object_get(props, key);
		}
		rc = set_arg(args, p + k0, k1 - k0, mm_value(schema, p + v0, v1 - v0));
		i = (size_t)(ve - p) + sizeof(MM_PARAM_END) - 1;
	}
	if (rc == 0)
		rc = add_call(r, p + n0, n1 - n0, args);
	json_decref(args);
	return rc;
}

static const struct section SECTIONS[] = {
    [TC_DEEPSEEK] = {DS_OPEN, DS_CLOSE, DS_CALL, DS_CALL_END, deepseek_body},
    [TC_KIMI] = {KIMI_OPEN, KIMI_CLOSE, KIMI_CALL, KIMI_CALL_END, kimi_body},
    [TC_MINIMAX] = {MM_OPEN, MM_CLOSE, MM_CALL, MM_CALL_END, minimax_body},
};

/* The marker that opens the calls of a format that has one. */
static const char *open_marker(enum tc_format f)
{
	switch (f) {
	case TC_HERMES:
	case TC_GLM: return HERMES_OPEN;
	case TC_MISTRAL: return MISTRAL_OPEN;
	case TC_DEEPSEEK:
	case TC_KIMI:
	case TC_MINIMAX: return SECTIONS[f].open;
	default: return NULL;
	}
}

int tc_parse_tools(enum tc_format f, const char *text, size_t len, const json_t *tools, struct tc_result *ret)
{
	const char *open = NULL;
	size_t start;
	int rc;

	memset(ret, 0, sizeof(*ret));
	ret->content_len = len;
	if (!text || !len)
		return 0;
	switch (f) {
	case TC_HERMES:
	case TC_GLM:
	case TC_MISTRAL:
	case TC_DEEPSEEK:
	case TC_KIMI:
	case TC_MINIMAX:
		open = find(text, len, open_marker(f));
		if (!open)
			return 0;
		start = (size_t)(open - text);
		if (f == TC_MISTRAL)
			rc = parse_mistral(text, len, start, ret);
		else if (f == TC_HERMES || f == TC_GLM)
			rc = parse_tagged(text, len, start, ret, f == TC_GLM ? glm_body : hermes_body);
		else
			rc = parse_sections(&SECTIONS[f], text, len, start, tools, ret);
		break;
	case TC_LLAMA3:
		start = 0;
		rc = parse_llama3(text, len, skip_ws(text, 0, len), ret);
		break;
	default:
		return 0;
	}
	if (rc == -ENOMEM) {
		tc_result_release(ret);
		return rc;
	}
	if (rc < 0 || ret->n_calls == 0) {
		/* not calls after all: all of it is text */
		tc_result_release(ret);
		ret->content_len = len;
		return 0;
	}
	ret->content_len = trim_end(text, start);
	return 0;
}

int tc_parse(enum tc_format f, const char *text, size_t len, struct tc_result *ret)
{
	return tc_parse_tools(f, text, len, NULL, ret);
}

/* Length of the longest suffix of p[0..len) that is a proper prefix of m. */
static size_t partial_suffix(const char *p, size_t len, const char *m)
{
	size_t n = strlen(m);
	for (size_t k = n - 1 < len ? n - 1 : len; k > 0; k--)
		if (!memcmp(p + len - k, m, k))
			return k;
	return 0;
}

size_t tc_stream_safe(enum tc_format f, const char *text, size_t len)
{
	const char *m;
	size_t i;
	if (!text)
		return 0;
	switch (f) {
	case TC_HERMES:
	case TC_GLM:
	case TC_MISTRAL:
	case TC_DEEPSEEK:
	case TC_KIMI:
	case TC_MINIMAX:
		m = open_marker(f);
		{
			const char *open = find(text, len, m);
			size_t safe = open ? (size_t)(open - text) : len - partial_suffix(text, len, m);
			return trim_end(text, safe);
		}
	case TC_LLAMA3:
		/* a call is the whole answer: hold until its first character says */
		i = skip_ws(text, 0, len);
		if (i == len || text[i] == '{')
			return 0;
		if (len - i < sizeof(PYTHON_TAG) - 1 ? !memcmp(text + i, PYTHON_TAG, len - i)
		                                     : starts(text + i, len - i, PYTHON_TAG))
			return 0;
		return len;
	default:
		return len;
	}
}
