/* SPDX-License-Identifier: Apache-2.0 */
/* Tool calls in generated text (see toolcall.h). */
#include "toolcall.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char HERMES_OPEN[] = "<tool_call>", HERMES_CLOSE[] = "</tool_call>";
static const char MISTRAL_OPEN[] = "[TOOL_CALLS]", MISTRAL_ARGS[] = "[ARGS]";
static const char PYTHON_TAG[] = "<|python_tag|>";

enum tc_format tc_detect(bool (*has_text)(const void *ctx, const char *s), const void *ctx)
{
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
		char *key = strndup(p + kb, (size_t)(ke - p) - kb);
		json_t *v = json_loadb(vb, (size_t)(ve - vb), JSON_DECODE_ANY, NULL);
		if (!v)
			v = json_stringn(vb, (size_t)(ve - vb));
		if (!key || !v || json_object_set_new(args, key, v))
			rc = key && v ? -EINVAL : -ENOMEM;
		free(key);
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

int tc_parse(enum tc_format f, const char *text, size_t len, struct tc_result *ret)
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
		open = find(text, len, f == TC_MISTRAL ? MISTRAL_OPEN : HERMES_OPEN);
		if (!open)
			return 0;
		start = (size_t)(open - text);
		rc = f == TC_MISTRAL ? parse_mistral(text, len, start, ret)
		                     : parse_tagged(text, len, start, ret, f == TC_GLM ? glm_body : hermes_body);
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
		m = f == TC_MISTRAL ? MISTRAL_OPEN : HERMES_OPEN;
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
