/* SPDX-License-Identifier: Apache-2.0 */
/* Request body validation for agserve (see request.h). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

void req_limits_default(struct req_limits *l)
{
	l->max_messages = 4096;
	l->max_stop_len = 256;
	l->max_tokens_cap = 1 << 20;
}

void req_release(struct req *r)
{
	if (!r)
		return;
	free(r->model);
	json_decref(r->messages);
	json_decref(r->tools);
	free(r->prompt);
	free(r->prompt_ids);
	for (size_t i = 0; i < r->n_stop; i++)
		free(r->stop[i]);
	memset(r, 0, sizeof(*r));
}

struct perr {
	char *msg, *param;
	size_t msglen, paramlen;
};

static int bad(struct perr *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct perr *e, const char *param, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, e->msglen, fmt, ap);
	va_end(ap);
	snprintf(e->param, e->paramlen, "%s", param ? param : "");
	return -EINVAL;
}

/* A number in [lo, hi] or null/absent (then *out is left alone). */
static int get_num(json_t *o, const char *k, double lo, double hi, double *out, struct perr *e)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return bad(e, k, "'%s' must be a number", k);
	double d = json_number_value(v);
	if (!isfinite(d) || d < lo || d > hi)
		return bad(e, k, "'%s' must be between %g and %g", k, lo, hi);
	*out = d;
	return 0;
}

static int get_int(json_t *o, const char *k, long long lo, long long hi, long long *out, bool *found, struct perr *e)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return bad(e, k, "'%s' must be an integer", k);
	long long x = json_integer_value(v);
	if (x < lo || x > hi)
		return bad(e, k, "'%s' must be between %lld and %lld", k, lo, hi);
	*out = x;
	if (found)
		*found = true;
	return 0;
}

static int get_bool(json_t *o, const char *k, bool *out, struct perr *e)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(e, k, "'%s' must be a boolean", k);
	*out = json_is_true(v);
	return 0;
}

/* Fields that change what the model is asked to do; agserve refuses them
 * unless they hold their neutral value. */
static int refuse_unsupported(json_t *o, struct perr *e)
{
	static const char *const zero_num[] = {"frequency_penalty", "presence_penalty", NULL};
	static const char *const absent[] = {
	    "functions",          "function_call", "suffix", "response_format", "audio", "modalities", "prediction",
	    "web_search_options", "thinking",      NULL};
	json_t *v;
	for (int i = 0; zero_num[i]; i++) {
		v = json_object_get(o, zero_num[i]);
		if (v && !json_is_null(v) && (!json_is_number(v) || json_number_value(v) != 0))
			return bad(e, zero_num[i], "'%s' is not supported by this server (only 0)", zero_num[i]);
	}
	for (int i = 0; absent[i]; i++) {
		v = json_object_get(o, absent[i]);
		if (!v || json_is_null(v))
			continue;
		/* response_format {"type":"text"} is the default meaning */
		if (!strcmp(absent[i], "response_format") && json_is_object(v) &&
		    json_is_string(json_object_get(v, "type")) &&
		    !strcmp(json_string_value(json_object_get(v, "type")), "text"))
			continue;
		if (!strcmp(absent[i], "thinking") && json_is_object(v) && json_is_string(json_object_get(v, "type")) &&
		    !strcmp(json_string_value(json_object_get(v, "type")), "disabled"))
			continue;
		return bad(e, absent[i], "'%s' is not supported by this server", absent[i]);
	}
	v = json_object_get(o, "logit_bias");
	if (v && !json_is_null(v) && (!json_is_object(v) || json_object_size(v) > 0))
		return bad(e, "logit_bias", "'logit_bias' is not supported by this server");
	v = json_object_get(o, "n");
	if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) != 1))
		return bad(e, "n", "'n' must be 1 (one choice per request)");
	v = json_object_get(o, "best_of");
	if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) != 1))
		return bad(e, "best_of", "'best_of' must be 1");
	return 0;
}

static int get_stop(json_t *o, const char *k, struct req *r, const struct req_limits *lim, struct perr *e)
{
	json_t *v = json_object_get(o, k), *s;
	size_t i;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		if (json_string_length(v) == 0)
			return 0;
		if (json_string_length(v) > lim->max_stop_len)
			return bad(e, k, "stop sequences are limited to %zu bytes", lim->max_stop_len);
		if (!(r->stop[0] = strdup(json_string_value(v))))
			return -ENOMEM;
		r->n_stop = 1;
		return 0;
	}
	if (!json_is_array(v))
		return bad(e, k, "'%s' must be a string or an array of strings", k);
	if (json_array_size(v) > REQ_MAX_STOP)
		return bad(e, k, "at most %d stop sequences", REQ_MAX_STOP);
	json_array_foreach(v, i, s) {
		if (!json_is_string(s))
			return bad(e, k, "'%s' must be a string or an array of strings", k);
		if (json_string_length(s) > lim->max_stop_len)
			return bad(e, k, "stop sequences are limited to %zu bytes", lim->max_stop_len);
		if (json_string_length(s) == 0)
			continue;
		if (!(r->stop[r->n_stop] = strdup(json_string_value(s))))
			return -ENOMEM;
		r->n_stop++;
	}
	return 0;
}

/* Content: a string, or an array of text parts ({"type":"text","text":...}).
 * Returns a new string json or NULL (error set). */
static json_t *flatten_content(json_t *c, const char *param, struct perr *e, int *rc)
{
	json_t *part;
	size_t i;
	if (json_is_string(c))
		return json_incref(c);
	if (json_is_null(c)) {
		/* an assistant turn that only called tools */
		return json_string("");
	}
	if (!json_is_array(c)) {
		*rc = bad(e, param, "message content must be a string or an array of text blocks");
		return NULL;
	}
	size_t total = 0;
	json_array_foreach(c, i, part) {
		const char *type = json_string_value(json_object_get(part, "type"));
		json_t *t = json_object_get(part, "text");
		if (!json_is_object(part) || !type || strcmp(type, "text") || !json_is_string(t)) {
			*rc = bad(e, param, "only text content blocks are supported");
			return NULL;
		}
		total += json_string_length(t);
	}
	char *buf = malloc(total + 1), *p = buf;
	if (!buf) {
		*rc = -ENOMEM;
		return NULL;
	}
	json_array_foreach(c, i, part) {
		json_t *t = json_object_get(part, "text");
		memcpy(p, json_string_value(t), json_string_length(t));
		p += json_string_length(t);
	}
	*p = 0;
	json_t *s = json_stringn(buf, total);
	free(buf);
	if (!s)
		*rc = -ENOMEM;
	return s;
}

/* An assistant turn's tool_calls: the API sends each call's arguments as a
 * JSON text; templates (as transformers documents them) read an object, so
 * it is parsed here, as vLLM does. */
static int tool_call_args(json_t *msg, size_t i, struct perr *e)
{
	json_t *calls = json_object_get(msg, "tool_calls"), *c;
	size_t k;
	if (!calls || json_is_null(calls))
		return 0;
	if (!json_is_array(calls))
		return bad(e, "messages", "messages[%zu].tool_calls must be an array", i);
	json_array_foreach(calls, k, c) {
		json_t *f = json_object_get(c, "function");
		json_t *a = json_object_get(f, "arguments");
		if (!json_is_object(c) || !json_is_object(f) || !json_is_string(json_object_get(f, "name")))
			return bad(e, "messages", "messages[%zu].tool_calls[%zu] must have a function with a name", i, k);
		if (json_is_string(a)) {
			json_t *obj = json_loadb(json_string_value(a), json_string_length(a), 0, NULL);
			if (!json_is_object(obj)) {
				json_decref(obj);
				return bad(e, "messages", "messages[%zu].tool_calls[%zu]: arguments are not a JSON object", i,
				           k);
			}
			json_object_set_new(f, "arguments", obj);
		}
	}
	return 0;
}

/* Text of an Anthropic tool_result's content: a string or text blocks. */
static json_t *result_text(json_t *c, struct perr *e, int *rc)
{
	if (!c || json_is_null(c))
		return json_string("");
	return flatten_content(c, "messages", e, rc);
}

/* An Anthropic message whose content blocks include tool_use (assistant) or
 * tool_result (user): appended to out in OpenAI's shape, which the chat
 * templates read (an assistant turn with tool_calls; one "tool" turn a
 * result, then the user's text if any).  Returns 1 when converted, 0 when
 * the message has no tool blocks (the caller takes it as text), or an error. */
static int anthropic_blocks(json_t *out, const char *role, json_t *c, size_t i, struct perr *e)
{
	json_t *b, *calls = NULL, *results = NULL;
	size_t k, text_len = 0;
	int rc = 0;
	bool tools = false;
	json_array_foreach(c, k, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		if (type && (!strcmp(type, "tool_use") || !strcmp(type, "tool_result")))
			tools = true;
	}
	if (!tools)
		return 0;
	bool assistant = !strcmp(role, "assistant");
	if (!assistant && strcmp(role, "user"))
		return bad(e, "messages", "messages[%zu]: unsupported role '%s'", i, role);
	char *text = NULL;
	if (!(calls = json_array()) || !(results = json_array()))
		goto nomem;
	json_array_foreach(c, k, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		if (!json_is_object(b) || !type) {
			rc = bad(e, "messages", "messages[%zu].content[%zu] must be an object with a 'type'", i, k);
			goto fail;
		}
		if (!strcmp(type, "text")) {
			json_t *t = json_object_get(b, "text");
			if (!json_is_string(t)) {
				rc = bad(e, "messages", "messages[%zu].content[%zu]: 'text' must be a string", i, k);
				goto fail;
			}
			char *nt = realloc(text, text_len + json_string_length(t) + 1);
			if (!nt)
				goto nomem;
			text = nt;
			memcpy(text + text_len, json_string_value(t), json_string_length(t));
			text_len += json_string_length(t);
			text[text_len] = 0;
		} else if (!strcmp(type, "tool_use") && assistant) {
			json_t *id = json_object_get(b, "id"), *name = json_object_get(b, "name");
			json_t *input = json_object_get(b, "input");
			if (!json_is_string(id) || !json_is_string(name) || !json_is_object(input)) {
				rc = bad(e, "messages", "messages[%zu].content[%zu]: tool_use needs 'id', 'name' and 'input'", i,
				         k);
				goto fail;
			}
			if (json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", id, "type", "function",
			                                           "function", "name", name, "arguments", input)))
				goto nomem;
		} else if (!strcmp(type, "tool_result") && !assistant) {
			json_t *id = json_object_get(b, "tool_use_id");
			if (!json_is_string(id)) {
				rc = bad(e, "messages", "messages[%zu].content[%zu]: tool_result needs 'tool_use_id'", i, k);
				goto fail;
			}
			json_t *t = result_text(json_object_get(b, "content"), e, &rc);
			if (!t)
				goto fail;
			if (json_array_append_new(results, json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id,
			                                             "content", t)))
				goto nomem;
		} else {
			rc = bad(e, "messages", "messages[%zu].content[%zu]: '%s' blocks are not supported here", i, k,
			         type);
			goto fail;
		}
	}
	if (assistant) {
		json_t *m = json_pack("{s:s,s:s%,s:O}", "role", "assistant", "content", text ? text : "", text_len,
		                      "tool_calls", calls);
		if (!m || json_array_append_new(out, m))
			goto nomem;
	} else {
		if (json_array_extend(out, results))
			goto nomem;
		if (text_len && json_array_append_new(out, json_pack("{s:s,s:s%}", "role", "user", "content", text,
		                                                    text_len)))
			goto nomem;
	}
	free(text);
	json_decref(calls);
	json_decref(results);
	return 1;
nomem:
	rc = -ENOMEM;
fail:
	free(text);
	json_decref(calls);
	json_decref(results);
	return rc;
}

/* tools, tool_choice, parallel_tool_calls (chat); tools and tool_choice in
 * Anthropic's shapes (messages), converted to OpenAI's for the template. */
static int get_tools(json_t *o, struct req *r, struct perr *e)
{
	json_t *v = json_object_get(o, "tools"), *t;
	json_t *choice = json_object_get(o, "tool_choice");
	size_t i;
	bool none = false;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return bad(e, "tools", "'tools' must be an array");
	if (!json_array_size(v))
		return 0;
	if (r->kind != REQ_MESSAGES) {
		json_array_foreach(v, i, t) {
			const char *type = json_string_value(json_object_get(t, "type"));
			json_t *f = json_object_get(t, "function");
			if (!json_is_object(t) || !type || strcmp(type, "function") || !json_is_object(f) ||
			    !json_is_string(json_object_get(f, "name")))
				return bad(e, "tools", "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ...}}", i);
		}
		r->tools = json_incref(v);
		if (choice && !json_is_null(choice)) {
			const char *c = json_string_value(choice);
			if (c && !strcmp(c, "none"))
				none = true;
			else if (!c || strcmp(c, "auto"))
				return bad(e, "tool_choice",
				           "'tool_choice' must be \"auto\" or \"none\" (this server cannot force a call)");
		}
		bool par = true;
		int rc = get_bool(o, "parallel_tool_calls", &par, e);
		if (rc < 0)
			return rc;
		r->one_tool = !par;
	} else {
		if (!(r->tools = json_array()))
			return -ENOMEM;
		json_array_foreach(v, i, t) {
			json_t *name = json_object_get(t, "name"), *schema = json_object_get(t, "input_schema");
			json_t *desc = json_object_get(t, "description");
			const char *type = json_string_value(json_object_get(t, "type"));
			if (!json_is_object(t) || (type && strcmp(type, "custom")))
				return bad(e, "tools", "tools[%zu]: only client tools (name, description, input_schema) are supported", i);
			if (!json_is_string(name) || !json_is_object(schema) || (desc && !json_is_string(desc)))
				return bad(e, "tools", "tools[%zu] needs a string 'name' and an object 'input_schema'", i);
			/* OpenAI's order: name, description, parameters (templates print it with tojson) */
			json_t *f = json_pack("{s:O}", "name", name);
			if (f && desc)
				json_object_set(f, "description", desc);
			if (f)
				json_object_set(f, "parameters", schema);
			if (!f || json_array_append_new(r->tools, json_pack("{s:s,s:o}", "type", "function", "function", f)))
				return -ENOMEM;
		}
		if (choice && !json_is_null(choice)) {
			const char *c = json_string_value(json_object_get(choice, "type"));
			if (!json_is_object(choice) || !c)
				return bad(e, "tool_choice", "'tool_choice' must be an object with a 'type'");
			if (!strcmp(c, "none"))
				none = true;
			else if (strcmp(c, "auto"))
				return bad(e, "tool_choice",
				           "'tool_choice' must be auto or none (this server cannot force a call)");
			bool dis = false;
			int rc = get_bool(choice, "disable_parallel_tool_use", &dis, e);
			if (rc < 0)
				return rc;
			r->one_tool = dis;
		}
	}
	r->parse_tools = !none;
	return 0;
}

static int get_messages(json_t *o, struct req *r, const struct req_limits *lim, struct perr *e)
{
	json_t *msgs = json_object_get(o, "messages"), *m;
	size_t i;
	int rc = 0;
	if (!json_is_array(msgs))
		return bad(e, "messages", "'messages' must be an array");
	if (json_array_size(msgs) == 0 && r->kind != REQ_TEMPLATE)
		return bad(e, "messages", "'messages' must not be empty");
	if (json_array_size(msgs) > lim->max_messages)
		return bad(e, "messages", "at most %zu messages", lim->max_messages);
	if (!(r->messages = json_array()))
		return -ENOMEM;
	if (r->kind == REQ_MESSAGES) {
		json_t *sys = json_object_get(o, "system");
		if (sys && !json_is_null(sys)) {
			json_t *s = flatten_content(sys, "system", e, &rc);
			if (!s)
				return rc;
			json_array_append_new(r->messages, json_pack("{s:s,s:o}", "role", "system", "content", s));
		}
	}
	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *c = json_object_get(m, "content");
		if (r->kind == REQ_MESSAGES && json_is_object(m) && role && json_is_array(c)) {
			if ((rc = anthropic_blocks(r->messages, role, c, i, e)) < 0)
				return rc;
			if (rc > 0) {
				/* had tool blocks: converted (a result a message) */
				if (json_array_size(r->messages) > lim->max_messages + 1)
					return bad(e, "messages", "at most %zu messages (tool results count)",
					           lim->max_messages);
				continue;
			}
		}
		if (!json_is_object(m) || !role)
			return bad(e, "messages", "messages[%zu] must be an object with a string 'role'", i);
		if (r->kind == REQ_MESSAGES
		        ? strcmp(role, "user") && strcmp(role, "assistant")
		        : strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") &&
		              strcmp(role, "developer") && strcmp(role, "tool"))
			return bad(e, "messages", "messages[%zu]: unsupported role '%s'", i, role);
		if (!c)
			return bad(e, "messages", "messages[%zu] has no 'content'", i);
		json_t *s = flatten_content(c, "messages", e, &rc);
		if (!s)
			return rc;
		/* other keys (name, tool_calls, tool_call_id) go through to the template */
		json_t *copy = json_deep_copy(m);
		if (!copy) {
			json_decref(s);
			return -ENOMEM;
		}
		json_object_set_new(copy, "content", s);
		if ((rc = tool_call_args(copy, i, e)) < 0) {
			json_decref(copy);
			return rc;
		}
		if (!strcmp(role, "developer"))
			json_object_set_new(copy, "role", json_string("system"));
		json_array_append_new(r->messages, copy);
	}
	return 0;
}

/* A prompt of token ids: 1..max_tokens_cap integers in [0, INT32_MAX). */
static int get_prompt_ids(json_t *v, struct req *r, const struct req_limits *lim, struct perr *e)
{
	size_t n = json_array_size(v), i;
	json_t *x;
	if (n > (size_t)lim->max_tokens_cap)
		return bad(e, "prompt", "a prompt of token ids is limited to %d ids", lim->max_tokens_cap);
	if (!(r->prompt_ids = malloc(n * sizeof(*r->prompt_ids))))
		return -ENOMEM;
	json_array_foreach(v, i, x) {
		if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= INT32_MAX)
			return bad(e, "prompt", "prompt[%zu] must be a token id (an integer >= 0)", i);
		r->prompt_ids[i] = (int32_t)json_integer_value(x);
	}
	r->n_prompt_ids = n;
	return 0;
}

static int parse_obj(json_t *o, struct req *r, const struct req_limits *lim, struct perr *e)
{
	int rc;
	long long x;
	bool found = false;
	json_t *v;

	v = json_object_get(o, "model");
	if (v && !json_is_null(v)) {
		if (!json_is_string(v) || json_string_length(v) > 256)
			return bad(e, "model", "'model' must be a string (at most 256 bytes)");
		if (!(r->model = strdup(json_string_value(v))))
			return -ENOMEM;
	} else if (r->kind == REQ_MESSAGES) {
		return bad(e, "model", "'model' is required");
	}
	if (r->kind == REQ_TEMPLATE) {
		r->add_generation_prompt = true;
		if ((rc = get_bool(o, "add_generation_prompt", &r->add_generation_prompt, e)) < 0)
			return rc;
	} else if ((rc = refuse_unsupported(o, e)) < 0) {
		return rc;
	}
	if (r->kind != REQ_COMPLETION) {
		if ((rc = get_messages(o, r, lim, e)) < 0)
			return rc;
		if ((rc = get_tools(o, r, e)) < 0)
			return rc;
	} else {
		v = json_object_get(o, "prompt");
		if (json_is_array(v) && json_array_size(v) == 1 &&
		    (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0))))
			v = json_array_get(v, 0); /* one prompt in a list, as the SDK may send */
		if (json_is_array(v) && json_array_size(v) > 0 && json_is_integer(json_array_get(v, 0))) {
			if ((rc = get_prompt_ids(v, r, lim, e)) < 0)
				return rc;
		} else if (!json_is_string(v)) {
			return bad(e, "prompt", "'prompt' must be a string or an array of token ids");
		} else {
			r->prompt_len = json_string_length(v);
			if (!(r->prompt = malloc(r->prompt_len + 1)))
				return -ENOMEM;
			memcpy(r->prompt, json_string_value(v), r->prompt_len + 1);
		}
	}
	if (r->kind == REQ_TEMPLATE)
		return 0;
	r->max_tokens = -1;
	r->temperature = 1;
	r->top_p = 1;
	r->top_logprobs = -1;
	const char *mt =
	    r->kind == REQ_CHAT && json_object_get(o, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
	x = 0;
	/* max_tokens 0: a completion that only echoes (and scores) its prompt */
	if ((rc = get_int(o, mt, r->kind == REQ_COMPLETION ? 0 : 1, lim->max_tokens_cap, &x, &found, e)) < 0)
		return rc;
	if (found)
		r->max_tokens = (int)x;
	else if (r->kind == REQ_MESSAGES)
		return bad(e, "max_tokens", "'max_tokens' is required");
	if ((rc = get_num(o, "temperature", 0, 2, &r->temperature, e)) < 0 ||
	    (rc = get_num(o, "top_p", 0, 1, &r->top_p, e)) < 0)
		return rc;
	if (r->top_p == 0)
		return bad(e, "top_p", "'top_p' must be greater than 0");
	x = 0;
	found = false;
	if ((rc = get_int(o, "seed", INT64_MIN, INT64_MAX, &x, &r->has_seed, e)) < 0)
		return rc;
	r->seed = (uint64_t)x;
	if (r->kind == REQ_MESSAGES) {
		x = 0;
		if ((rc = get_int(o, "top_k", 0, 1000000, &x, NULL, e)) < 0)
			return rc;
		r->top_k = (int)x;
	}
	if ((rc = get_stop(o, r->kind == REQ_MESSAGES ? "stop_sequences" : "stop", r, lim, e)) < 0)
		return rc;
	if ((rc = get_bool(o, "stream", &r->stream, e)) < 0)
		return rc;
	v = json_object_get(o, "stream_options");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			return bad(e, "stream_options", "'stream_options' must be an object");
		if ((rc = get_bool(v, "include_usage", &r->include_usage, e)) < 0 ||
		    (rc = get_bool(v, "continuous_usage_stats", &r->continuous_usage, e)) < 0)
			return rc;
	}
	if (r->kind == REQ_CHAT) {
		if ((rc = get_bool(o, "logprobs", &r->logprobs, e)) < 0)
			return rc;
		x = -1;
		found = false;
		if ((rc = get_int(o, "top_logprobs", 0, REQ_MAX_LOGPROBS, &x, &found, e)) < 0)
			return rc;
		if (found && !r->logprobs)
			return bad(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
		r->top_logprobs = r->logprobs ? (found ? (int)x : 0) : -1;
	} else if (r->kind == REQ_COMPLETION) {
		x = -1;
		if ((rc = get_int(o, "logprobs", 0, REQ_MAX_LOGPROBS, &x, NULL, e)) < 0)
			return rc;
		r->top_logprobs = (int)x;
		r->logprobs = x >= 0;
		if ((rc = get_bool(o, "echo", &r->echo, e)) < 0)
			return rc;
		if (r->max_tokens == 0 && !r->echo)
			return bad(e, "max_tokens", "'max_tokens' 0 needs 'echo': true (the prompt is only scored)");
		if (r->max_tokens == 0 && r->stream)
			return bad(e, "max_tokens", "'max_tokens' 0 (echo only) cannot be streamed");
	}
	if (r->kind == REQ_COMPLETION || r->kind == REQ_CHAT) {
		if ((rc = get_bool(o, "ignore_eos", &r->ignore_eos, e)) < 0 ||
		    (rc = get_bool(o, "return_tokens_as_token_ids", &r->tokens_as_ids, e)) < 0)
			return rc;
	}
	return 0;
}

int req_parse(enum req_kind kind, const char *body, size_t len, const struct req_limits *lim, struct req *ret,
              char *msg, size_t msglen, char *param, size_t paramlen)
{
	struct perr e = {msg, param, msglen, paramlen};
	struct req r = {.kind = kind};
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	int rc;

	if (!o)
		return bad(&e, NULL, "request body is not valid JSON (UTF-8): %s at byte %d", je.text, je.position);
	if (!json_is_object(o)) {
		json_decref(o);
		return bad(&e, NULL, "request body must be a JSON object");
	}
	rc = parse_obj(o, &r, lim, &e);
	json_decref(o);
	if (rc < 0) {
		if (rc == -ENOMEM)
			bad(&e, NULL, "out of memory");
		req_release(&r);
		return rc;
	}
	*ret = r;
	return 0;
}
