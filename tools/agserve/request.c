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
		v = json_object_get(o, "tools");
		if (v && !json_is_null(v)) {
			if (!json_is_array(v))
				return bad(e, "tools", "'tools' must be an array");
			if (json_array_size(v))
				r->tools = json_incref(v);
		}
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
		if ((rc = get_bool(v, "include_usage", &r->include_usage, e)) < 0)
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
