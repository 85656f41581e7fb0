/* SPDX-License-Identifier: Apache-2.0 */
/* agserve's HTTP side: libmicrohttpd glue, routing, both APIs, SSE. */
#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "bundle/sha256.h"
#include "proxy.h"
#include "server.h"
#include "textout.h"
#include "toolcall.h"

enum ep { EP_HEALTH, EP_MODELS, EP_MODEL, EP_CHAT, EP_COMPL, EP_MSGS, EP_TMPL, EP_METRICS, EP_OTHER };
static const char *const ep_name[] = {"/health",
                                      "/v1/models",
                                      "/v1/models/{id}",
                                      "/v1/chat/completions",
                                      "/v1/completions",
                                      "/v1/messages",
                                      "/apply-template",
                                      "/metrics",
                                      "other"};

struct sbuf {
	char *p;
	size_t n, cap;
};

static int sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		size_t nc = (b->n + n + 1) * 2 + 256;
		char *np = realloc(b->p, nc);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
	return 0;
}

struct hreq {
	struct server *s;
	struct MHD_Connection *c;
	enum ep ep;
	char model_id[257]; /* EP_MODEL */
	bool counted;       /* in s->in_flight */
	struct sbuf body;
	bool too_big;
	size_t discarded;
	char id[64];
	double t0;
	time_t created;
	int status;
	char key[65];
	bool has_key;
	char remote[64];
	struct engine *e;
	struct task *t;
	struct req rq;
	bool have_rq;
	struct textout to;
	bool have_to;
	size_t n_prompt, got;
	char prompt_sha[BN_SHA256_HEX];
	bool have_sha;
	char *prompt_text;
	size_t prompt_len;
	struct sbuf text;     /* completion text sent or to send */
	struct tok_out *toks; /* non-stream: every token, for logprobs */
	size_t n_toks;
	/* completions with echo and logprobs: the prompt's ids, and plp[i] the
	 * scored entry of pids[i + 1] (the first token has none) */
	int32_t *pids;
	size_t n_pids;
	struct tok_out *plp;
	const char *finish; /* stop | length | tool_calls | error | cancelled */
	/* tool calls (toolcall.h): the template's format when the request
	 * has tools to parse, the calls found at the end, and (streaming)
	 * how much of text has gone out as content */
	enum tc_format tcf;
	struct tc_result tc;
	bool have_tc;
	size_t sent;
	char errmsg[256];
	/* streaming */
	struct sbuf pend;
	size_t pend_off;
	int sstate;        /* 0 prologue, 1 tokens, 2 epilogue, 3 end */
	size_t text_off;   /* completions logprobs text_offset */
	bool timeout_held; /* --conn-timeout suspended while the server works */
	/* forwarded to an external engine: the request's end is both
	 * NOTIFY_COMPLETED and proxy_done, which may come after it */
	bool proxied;
	int refs;
	char *url;
};

static void hreq_end(struct hreq *h);

/* ---- small helpers ---- */

static void rand_hex(char *out, size_t nbytes)
{
	uint8_t b[32];
	if (nbytes > sizeof(b))
		nbytes = sizeof(b);
	if (getrandom(b, nbytes, 0) != (ssize_t)nbytes)
		for (size_t i = 0; i < nbytes; i++)
			b[i] = (uint8_t)rand();
	bn_hex(b, nbytes, out);
}

static bool peer_gone(struct hreq *h)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(h->c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return false;
	struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static enum MHD_Result reply(struct hreq *h, int status, const char *ctype, char *body, size_t len,
                             const char *retry_after)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	if (h->id[0]) {
		MHD_add_response_header(r, "x-request-id", h->id);
		MHD_add_response_header(r, "request-id", h->id); /* the Anthropic SDK's name */
	}
	if (retry_after)
		MHD_add_response_header(r, "Retry-After", retry_after);
	h->status = status;
	enum MHD_Result ret = MHD_queue_response(h->c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_json(struct hreq *h, int status, json_t *o, const char *retry_after)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return MHD_NO;
	return reply(h, status, "application/json", s, strlen(s), retry_after);
}

static bool anthropic(const struct hreq *h)
{
	return h->ep == EP_MSGS;
}

static const char *anthropic_type(int status)
{
	switch (status) {
	case 400:
	case 405:
	case 413: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 429: return "rate_limit_error";
	case 529:
	case 503: return "overloaded_error";
	default: return "api_error";
	}
}

/* The error body in the endpoint's own API format. */
static enum MHD_Result reply_error(struct hreq *h, int status, const char *type, const char *code, const char *param,
                                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static enum MHD_Result reply_error(struct hreq *h, int status, const char *type, const char *code, const char *param,
                                   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->errmsg, sizeof(h->errmsg), fmt, ap);
	va_end(ap);
	json_t *msg = json_string(h->errmsg);
	if (!msg)
		msg = json_string("(message not valid UTF-8)");
	json_t *o;
	if (anthropic(h))
		o = json_pack("{s:s,s:{s:s,s:o}}", "type", "error", "error", "type", anthropic_type(status), "message",
		              msg);
	else
		o = json_pack("{s:{s:o,s:s,s:o,s:o}}", "error", "message", msg, "type", type, "param",
		              param && *param ? json_string(param) : json_null(), "code",
		              code ? json_string(code) : json_null());
	const char *ra = status == 429 || status == 529 || status == 503 ? "1" : NULL;
	return reply_json(h, status, o, ra);
}

static enum MHD_Result bad_request(struct hreq *h, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result bad_request(struct hreq *h, const char *param, const char *fmt, ...)
{
	char m[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	return reply_error(h, 400, "invalid_request_error", NULL, param, "%s", m);
}

static struct engine *current(struct server *s)
{
	pthread_mutex_lock(&s->mu);
	struct engine *e = s->cur ? engine_ref(s->cur) : NULL;
	pthread_mutex_unlock(&s->mu);
	return e;
}

static json_t *jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* ---- GET endpoints ---- */

static enum MHD_Result do_health(struct hreq *h)
{
	struct server *s = h->s;
	struct engine *e = current(s);
	json_t *o;
	int status = 200;
	pthread_mutex_lock(&s->mu);
	bool draining = s->draining;
	char lerr[sizeof(s->last_load_error)];
	memcpy(lerr, s->last_load_error, sizeof(lerr));
	pthread_mutex_unlock(&s->mu);
	if (!e) {
		o = json_pack("{s:s}", "status", "loading");
		status = 503;
	} else {
		const struct engine_opts *eo = engine_opts(e);
		o = json_pack("{s:s,s:o,s:o,s:o,s:o,s:s}", "status", draining ? "draining" : "ok", "bundle",
		              jstr_or_null(eo->bundle), "channel", jstr_or_null(eo->channel), "version",
		              eo->has_version ? json_integer((json_int_t)eo->version) : json_null(), "slot",
		              jstr_or_null(eo->slot), "model", eo->name);
		if (draining)
			status = 503;
	}
	if (lerr[0])
		json_object_set_new(o, "last_load_error", json_string(lerr));
	engine_unref(e);
	return reply_json(h, status, o, NULL);
}

static enum MHD_Result do_metrics(struct hreq *h)
{
	struct engine *e = current(h->s);
	int q = 0, a = 0, sm = 0;
	unsigned long long cached = 0;
	char ver[32] = "";
	const struct engine_opts *eo = e ? engine_opts(e) : NULL;
	if (e) {
		engine_load_stats(e, &q, &a, &sm, &cached);
		if (eo->has_version)
			snprintf(ver, sizeof(ver), "%llu", (unsigned long long)eo->version);
	}
	char *t = metrics_render(h->s->metrics, q, a, sm, cached, eo ? (eo->bundle ? eo->bundle : eo->name) : NULL,
	                         eo && eo->channel ? eo->channel : "", ver, eo && eo->slot ? eo->slot : "");
	engine_unref(e);
	if (!t)
		return MHD_NO;
	return reply(h, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t), NULL);
}

static json_t *model_obj(struct engine *e, time_t created)
{
	char ts[32];
	struct tm tm;
	gmtime_r(&created, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s}", "id", engine_name(e), "object", "model", "created",
	                 (json_int_t)created, "owned_by", "agkit", "type", "model", "display_name", engine_name(e),
	                 "created_at", ts);
}

static enum MHD_Result do_models(struct hreq *h)
{
	struct engine *e = current(h->s);
	if (!e)
		return reply_error(h, 503, "server_error", "model_loading", NULL, "the model is still loading");
	json_t *m = model_obj(e, h->created);
	enum MHD_Result r;
	if (h->ep == EP_MODEL) {
		if (strcmp(h->model_id, engine_name(e))) {
			json_decref(m);
			r = reply_error(h, 404, "invalid_request_error", "model_not_found", "model",
			                "The model '%s' does not exist", h->model_id);
		} else {
			r = reply_json(h, 200, m, NULL);
		}
	} else {
		r = reply_json(h, 200,
		               json_pack("{s:s,s:[o],s:b,s:s,s:s}", "object", "list", "data", m, "has_more", 0,
		                         "first_id", engine_name(e), "last_id", engine_name(e)),
		               NULL);
	}
	engine_unref(e);
	return r;
}

/* ---- generation ---- */

static const char *fin_name(enum finish f, bool stopped)
{
	if (stopped || f == FIN_EOS)
		return "stop";
	if (f == FIN_LENGTH)
		return "length";
	if (f == FIN_CANCEL)
		return "cancelled";
	return "error";
}

static const char *anthropic_stop(const struct hreq *h)
{
	if (h->have_tc && h->tc.n_calls)
		return "tool_use";
	if (!strcmp(h->finish, "length"))
		return "max_tokens";
	return h->to.stopped ? "stop_sequence" : "end_turn";
}

static json_t *tok_str(struct hreq *h, int32_t id, json_t **ret_bytes)
{
	char *t = NULL, idt[32];
	size_t n = 0;
	if (h->rq.tokens_as_ids) {
		/* vLLM's return_tokens_as_token_ids: unambiguous names */
		n = (size_t)snprintf(idt, sizeof(idt), "token_id:%d", id);
		if (!(t = strdup(idt)))
			return json_string("");
	} else if (engine_detokenize(h->e, &id, 1, &t, &n) < 0) {
		return json_string("");
	}
	json_t *s = json_stringn(t, n);
	if (ret_bytes) {
		*ret_bytes = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(*ret_bytes, json_integer((unsigned char)t[i]));
	}
	free(t);
	return s ? s : json_string("");
}

/* chat: choices[].logprobs.content entries */
static json_t *chat_logprobs(struct hreq *h, const struct tok_out *v, size_t n)
{
	json_t *content = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *bytes, *top = json_array();
		json_t *tok = tok_str(h, v[i].id, &bytes);
		for (int k = 0; k < v[i].n_top; k++) {
			json_t *b2;
			json_t *t2 = tok_str(h, v[i].top[k].id, &b2);
			json_array_append_new(top, json_pack("{s:o,s:f,s:o}", "token", t2, "logprob",
			                                     (double)v[i].top[k].logprob, "bytes", b2));
		}
		json_array_append_new(content, json_pack("{s:o,s:f,s:o,s:o}", "token", tok, "logprob",
		                                         (double)v[i].logprob, "bytes", bytes, "top_logprobs", top));
	}
	return json_pack("{s:o,s:n}", "content", content, "refusal");
}

static json_t *top_obj(struct hreq *h, const struct tok_out *v)
{
	json_t *top = json_object();
	for (int k = 0; k < v->n_top; k++) {
		json_t *t2 = tok_str(h, v->top[k].id, NULL);
		json_object_set_new(top, json_string_value(t2), json_real(v->top[k].logprob));
		json_decref(t2);
	}
	return top;
}

/* completions: {tokens, token_logprobs, top_logprobs, text_offset}; with
 * echo (h->pids) the prompt's tokens first, as OpenAI and vLLM: the first
 * one with null log-probability and alternatives */
static json_t *compl_logprobs(struct hreq *h, const struct tok_out *v, size_t n)
{
	json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
	for (size_t i = 0; i < h->n_pids; i++) {
		json_t *tok = tok_str(h, h->pids[i], NULL);
		json_array_append_new(offs, json_integer((json_int_t)h->text_off));
		h->text_off += json_string_length(tok);
		json_array_append_new(toks, tok);
		json_array_append_new(lps, i ? json_real(h->plp[i - 1].logprob) : json_null());
		json_array_append_new(tops, i ? top_obj(h, &h->plp[i - 1]) : json_null());
	}
	for (size_t i = 0; i < n; i++) {
		json_t *tok = tok_str(h, v[i].id, NULL);
		json_t *top = json_object();
		for (int k = 0; k < v[i].n_top; k++) {
			json_t *t2 = tok_str(h, v[i].top[k].id, NULL);
			json_object_set_new(top, json_string_value(t2), json_real(v[i].top[k].logprob));
			json_decref(t2);
		}
		json_array_append_new(offs, json_integer((json_int_t)h->text_off));
		h->text_off += json_string_length(tok);
		json_array_append_new(toks, tok);
		json_array_append_new(lps, json_real(v[i].logprob));
		json_array_append_new(tops, top);
	}
	return json_pack("{s:o,s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
	                 "text_offset", offs);
}

static json_t *usage_openai(struct hreq *h)
{
	return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)h->n_prompt, "completion_tokens",
	                 (json_int_t)h->got, "total_tokens", (json_int_t)(h->n_prompt + h->got));
}

static json_t *text_json(const char *p, size_t n)
{
	json_t *s = json_stringn(p ? p : "", p ? n : 0);
	return s ? s : json_string("");
}

/* DeepSeek's templates join a call's arguments to the prompt as text
 * (name + '<｜tool▁sep｜>' + arguments), where transformers' convention, and
 * request.c, give the template an object: for them the object goes back to
 * its JSON text (Python's json.dumps spacing). */
static int args_as_text(json_t *messages)
{
	size_t i, k;
	json_t *m, *c;
	json_array_foreach(messages, i, m) {
		json_array_foreach(json_object_get(m, "tool_calls"), k, c) {
			json_t *f = json_object_get(c, "function"), *a = json_object_get(f, "arguments");
			if (!json_is_object(a))
				continue;
			char *t = json_dumps(a, JSON_PRESERVE_ORDER);
			if (!t || json_object_set_new(f, "arguments", json_string(t))) {
				free(t);
				return -ENOMEM;
			}
			free(t);
		}
	}
	return 0;
}

/* At the end of a generation with tools: the calls in its text, if any
 * (finish_reason "tool_calls", stop_reason "tool_use"). */
static void find_tool_calls(struct hreq *h)
{
	if (h->tcf == TC_NONE || h->have_tc || strcmp(h->finish, "stop"))
		return;
	if (tc_parse_tools(h->tcf, h->text.p, h->text.n, h->rq.tools, &h->tc) < 0)
		return; /* out of memory: the text goes out as text */
	h->have_tc = true;
	if (h->rq.one_tool)
		while (h->tc.n_calls > 1) {
			struct tc_call *c = &h->tc.calls[--h->tc.n_calls];
			free(c->name);
			free(c->arguments);
			free(c->id);
		}
	if (h->tc.n_calls && h->ep != EP_MSGS)
		h->finish = "tool_calls";
}

/* The calls as the APIs give them: OpenAI's tool_calls entries (stream:
 * with their index) or Anthropic's tool_use blocks; the id the model's
 * format gives a call (Kimi's functions.NAME:IDX, which its template renders
 * back) or a random one. */
static json_t *openai_call(const struct tc_call *c, int index)
{
	char id[32] = "call_";
	rand_hex(id + 5, 12);
	json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", c->id ? c->id : id, "type", "function", "function", "name",
	                      c->name, "arguments", c->arguments);
	if (o && index >= 0)
		json_object_set_new(o, "index", json_integer(index));
	return o;
}

static json_t *tool_use_block(const struct tc_call *c, bool with_input)
{
	char id[32] = "toolu_";
	rand_hex(id + 6, 12);
	json_t *in = with_input ? json_loads(c->arguments, 0, NULL) : json_object();
	return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", c->id ? c->id : id, "name", c->name, "input",
	                 in ? in : json_object());
}

static void sse_json(struct hreq *h, const char *event, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!s)
		return;
	if (event) {
		sb_add(&h->pend, "event: ", 7);
		sb_add(&h->pend, event, strlen(event));
		sb_add(&h->pend, "\n", 1);
	}
	sb_add(&h->pend, "data: ", 6);
	sb_add(&h->pend, s, strlen(s));
	sb_add(&h->pend, "\n\n", 2);
	free(s);
}

static json_t *usage_openai(struct hreq *h);

static json_t *chunk_head(struct hreq *h)
{
	json_t *o = json_pack("{s:s,s:s,s:I,s:s}", "id", h->id, "object",
	                      h->ep == EP_CHAT ? "chat.completion.chunk" : "text_completion", "created",
	                      (json_int_t)h->created, "model", engine_name(h->e));
	if (o && h->rq.continuous_usage)
		json_object_set_new(o, "usage", usage_openai(h)); /* vLLM's continuous_usage_stats */
	return o;
}

static void stream_prologue(struct hreq *h)
{
	if (h->ep == EP_CHAT) {
		json_t *o = chunk_head(h);
		json_object_set_new(o, "choices",
		                    json_pack("[{s:i,s:{s:s,s:s},s:n,s:n}]", "index", 0, "delta", "role", "assistant",
		                              "content", "", "logprobs", "finish_reason"));
		sse_json(h, NULL, o);
	} else if (h->ep == EP_MSGS) {
		sse_json(h, "message_start",
		         json_pack("{s:s,s:{s:s,s:s,s:s,s:[],s:s,s:n,s:n,s:{s:I,s:i}}}", "type", "message_start",
		                   "message", "id", h->id, "type", "message", "role", "assistant", "content", "model",
		                   engine_name(h->e), "stop_reason", "stop_sequence", "usage", "input_tokens",
		                   (json_int_t)h->n_prompt, "output_tokens", 0));
		sse_json(h, "content_block_start",
		         json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index", 0, "content_block",
		                   "type", "text", "text", ""));
		sse_json(h, "ping", json_pack("{s:s}", "type", "ping"));
	} else if (h->rq.echo) {
		/* completions with echo: the prompt first (with its scores when
		 * logprobs asks), as OpenAI's and vLLM's streams do */
		json_t *o = chunk_head(h);
		h->text_off = 0;
		json_object_set_new(o, "choices",
		                    json_pack("[{s:o,s:i,s:o,s:n}]", "text", text_json(h->prompt_text, h->prompt_len),
		                              "index", 0, "logprobs",
		                              h->rq.logprobs ? compl_logprobs(h, NULL, 0) : json_null(),
		                              "finish_reason"));
		sse_json(h, NULL, o);
		h->n_pids = 0; /* sent: the next chunks carry the new tokens only */
	}
}

static void stream_delta(struct hreq *h, const char *txt, size_t len, const struct tok_out *v, size_t n)
{
	json_t *o;
	if (h->tcf != TC_NONE) {
		/* what may become a tool call waits for the end (stream_epilogue) */
		size_t safe = tc_stream_safe(h->tcf, h->text.p, h->text.n);
		txt = h->text.p + h->sent;
		len = safe > h->sent ? safe - h->sent : 0;
	}
	h->sent += len;
	if (h->ep == EP_MSGS) {
		if (!len)
			return;
		sse_json(h, "content_block_delta",
		         json_pack("{s:s,s:i,s:{s:s,s:o}}", "type", "content_block_delta", "index", 0, "delta", "type",
		                   "text_delta", "text", text_json(txt, len)));
		return;
	}
	bool lp = h->rq.logprobs && n;
	if (!len && !lp)
		return;
	o = chunk_head(h);
	if (h->ep == EP_CHAT)
		json_object_set_new(o, "choices",
		                    json_pack("[{s:i,s:{s:o},s:o,s:n}]", "index", 0, "delta", "content",
		                              text_json(txt, len), "logprobs",
		                              lp ? chat_logprobs(h, v, n) : json_null(), "finish_reason"));
	else
		json_object_set_new(o, "choices",
		                    json_pack("[{s:o,s:i,s:o,s:n}]", "text", text_json(txt, len), "index", 0,
		                              "logprobs", lp ? compl_logprobs(h, v, n) : json_null(), "finish_reason"));
	sse_json(h, NULL, o);
}

/* A stream with tools, at its end: the held-back rest of the content up to
 * end, as plain text. */
static void flush_content(struct hreq *h, size_t end)
{
	if (end <= h->sent)
		return;
	enum tc_format f = h->tcf;
	size_t from = h->sent;
	h->tcf = TC_NONE;
	stream_delta(h, h->text.p + from, end - from, NULL, 0);
	h->tcf = f;
}

/* The calls found: one chunk a call (OpenAI), or a tool_use block each,
 * its input as one input_json_delta (Anthropic, after the text block). */
static void stream_calls(struct hreq *h)
{
	for (size_t k = 0; k < h->tc.n_calls; k++) {
		const struct tc_call *c = &h->tc.calls[k];
		if (h->ep == EP_MSGS) {
			int idx = (int)k + 1;
			sse_json(h, "content_block_start",
			         json_pack("{s:s,s:i,s:o}", "type", "content_block_start", "index", idx, "content_block",
			                   tool_use_block(c, false)));
			sse_json(h, "content_block_delta",
			         json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_delta", "index", idx, "delta",
			                   "type", "input_json_delta", "partial_json", c->arguments));
			sse_json(h, "content_block_stop", json_pack("{s:s,s:i}", "type", "content_block_stop", "index", idx));
		} else {
			json_t *o = chunk_head(h);
			json_object_set_new(o, "choices",
			                    json_pack("[{s:i,s:{s:[o]},s:n,s:n}]", "index", 0, "delta", "tool_calls",
			                              openai_call(c, (int)k), "logprobs", "finish_reason"));
			sse_json(h, NULL, o);
		}
	}
}

static void stream_epilogue(struct hreq *h)
{
	if (h->tcf != TC_NONE) {
		find_tool_calls(h);
		flush_content(h, h->have_tc ? h->tc.content_len : h->text.n);
	}
	if (h->ep == EP_MSGS) {
		if (!strcmp(h->finish, "error")) {
			sse_json(h, "error",
			         json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", "api_error",
			                   "message", "the model failed while generating"));
			return;
		}
		sse_json(h, "content_block_stop", json_pack("{s:s,s:i}", "type", "content_block_stop", "index", 0));
		if (h->have_tc)
			stream_calls(h);
		sse_json(h, "message_delta",
		         json_pack("{s:s,s:{s:s,s:o},s:{s:I}}", "type", "message_delta", "delta", "stop_reason",
		                   anthropic_stop(h), "stop_sequence", jstr_or_null(h->to.stop_hit), "usage",
		                   "output_tokens", (json_int_t)h->got));
		sse_json(h, "message_stop", json_pack("{s:s}", "type", "message_stop"));
		return;
	}
	if (!strcmp(h->finish, "error")) {
		sse_json(h, NULL,
		         json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", "the model failed while generating",
		                   "type", "server_error", "param", "code"));
	} else {
		if (h->have_tc)
			stream_calls(h);
		json_t *o = chunk_head(h);
		if (h->ep == EP_CHAT)
			json_object_set_new(o, "choices",
			                    json_pack("[{s:i,s:{},s:n,s:s}]", "index", 0, "delta", "logprobs",
			                              "finish_reason", h->finish));
		else
			json_object_set_new(o, "choices",
			                    json_pack("[{s:s,s:i,s:n,s:s}]", "text", "", "index", 0, "logprobs",
			                              "finish_reason", h->finish));
		if (h->rq.include_usage && !h->rq.continuous_usage)
			json_object_set_new(o, "usage", json_null());
		sse_json(h, NULL, o);
		if (h->rq.include_usage) {
			o = chunk_head(h);
			json_object_set_new(o, "choices", json_array());
			json_object_set_new(o, "usage", usage_openai(h));
			sse_json(h, NULL, o);
		}
	}
	sb_add(&h->pend, "data: [DONE]\n\n", 14);
}

#define STEP_TOKENS 64

/* --conn-timeout is for clients that send or read nothing, not for the
 * time the server spends queueing, prefilling and decoding: it is off while
 * a request thread waits for the engine and back on (its timer restarted by
 * libmicrohttpd) when there is something to send. */
static void hold_timeout(struct hreq *h, bool hold)
{
	if (h->timeout_held == hold || !h->s->o.conn_timeout)
		return;
	MHD_set_connection_option(h->c, MHD_CONNECTION_OPTION_TIMEOUT, hold ? 0u : h->s->o.conn_timeout);
	h->timeout_held = hold;
}

/* Waits for the next tokens and turns them into text (both paths).
 * Returns true when the generation has ended. */
static bool pull(struct hreq *h, struct tok_out *buf, size_t *ret_n, const char **txt, size_t *len)
{
	enum finish fin;
	hold_timeout(h, true);
	size_t n = task_wait(h->t, h->got, 200, buf, STEP_TOKENS, &fin);
	int32_t ids[STEP_TOKENS];
	for (size_t i = 0; i < n; i++)
		ids[i] = buf[i].id;
	h->got += n;
	*ret_n = n;
	textout_push(&h->to, ids, n, fin != FIN_NONE, txt, len);
	if (*len)
		sb_add(&h->text, *txt, *len);
	if (h->to.stopped) {
		task_cancel(h->t);
		h->finish = "stop";
		return true;
	}
	if (fin != FIN_NONE) {
		h->finish = fin_name(fin, false);
		return true;
	}
	if (h->s->stopping || peer_gone(h)) {
		task_cancel(h->t);
		h->finish = "cancelled";
		return true;
	}
	return false;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct hreq *h = cls;
	(void)pos;
	while (h->pend_off >= h->pend.n) {
		h->pend.n = 0;
		h->pend_off = 0;
		if (h->sstate == 0) {
			stream_prologue(h);
			h->sstate = 1;
		} else if (h->sstate == 1) {
			struct tok_out buf[STEP_TOKENS];
			size_t n, len;
			const char *txt;
			bool end = pull(h, buf, &n, &txt, &len);
			stream_delta(h, txt, len, buf, n);
			if (end) {
				if (!strcmp(h->finish, "cancelled"))
					return MHD_CONTENT_READER_END_WITH_ERROR;
				h->sstate = 2;
			}
		} else if (h->sstate == 2) {
			stream_epilogue(h);
			h->sstate = 3;
		} else {
			hold_timeout(h, false);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
	}
	hold_timeout(h, false);
	size_t n = h->pend.n - h->pend_off;
	if (n > max)
		n = max;
	memcpy(out, h->pend.p + h->pend_off, n);
	h->pend_off += n;
	return (ssize_t)n;
}

static enum MHD_Result finish_whole(struct hreq *h)
{
	struct tok_out buf[STEP_TOKENS];
	while (h->t) { /* none for max_tokens 0: the echo alone */
		size_t n, len;
		const char *txt;
		bool end = pull(h, buf, &n, &txt, &len);
		if (h->rq.logprobs && n) {
			struct tok_out *nv = realloc(h->toks, (h->n_toks + n) * sizeof(*nv));
			if (nv) {
				memcpy(nv + h->n_toks, buf, n * sizeof(*nv));
				h->toks = nv;
				h->n_toks += n;
			}
		}
		if (end)
			break;
	}
	hold_timeout(h, false);
	if (!strcmp(h->finish, "cancelled"))
		return MHD_NO; /* nobody to answer */
	if (!strcmp(h->finish, "error"))
		return reply_error(h, 500, "server_error", NULL, NULL, "the model failed while generating");
	json_t *o;
	find_tool_calls(h);
	size_t calls = h->have_tc ? h->tc.n_calls : 0;
	json_t *text = text_json(h->text.p, calls ? h->tc.content_len : h->text.n);
	if (h->ep == EP_MSGS) {
		json_t *content = json_array();
		if (!calls || h->tc.content_len)
			json_array_append_new(content, json_pack("{s:s,s:o}", "type", "text", "text", text));
		else
			json_decref(text);
		for (size_t k = 0; k < calls; k++)
			json_array_append_new(content, tool_use_block(&h->tc.calls[k], true));
		o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:{s:I,s:I}}", "id", h->id, "type", "message", "role",
		              "assistant", "model", engine_name(h->e), "content", content, "stop_reason",
		              anthropic_stop(h), "stop_sequence", jstr_or_null(h->to.stop_hit), "usage", "input_tokens",
		              (json_int_t)h->n_prompt, "output_tokens", (json_int_t)h->got);
	} else if (h->ep == EP_CHAT) {
		json_t *msg = json_pack("{s:s,s:o,s:n}", "role", "assistant", "content",
		                        calls && !h->tc.content_len ? (json_decref(text), json_null()) : text, "refusal");
		if (calls) {
			json_t *a = json_array();
			for (size_t k = 0; k < calls; k++)
				json_array_append_new(a, openai_call(&h->tc.calls[k], -1));
			json_object_set_new(msg, "tool_calls", a);
		}
		o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:o,s:s}],s:o}", "id", h->id, "object", "chat.completion",
		              "created", (json_int_t)h->created, "model", engine_name(h->e), "choices", "index", 0,
		              "message", msg, "logprobs",
		              h->rq.logprobs ? chat_logprobs(h, h->toks, h->n_toks) : json_null(), "finish_reason",
		              h->finish, "usage", usage_openai(h));
	} else {
		if (h->rq.echo) {
			struct sbuf all = {0};
			if (sb_add(&all, h->prompt_text, h->prompt_len) == 0 &&
			    sb_add(&all, h->text.p ? h->text.p : "", h->text.n) == 0) {
				json_decref(text);
				text = text_json(all.p, all.n);
			}
			free(all.p);
			h->text_off = h->pids ? 0 : h->prompt_len;
		}
		o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:o,s:i,s:o,s:s}],s:o}", "id", h->id, "object", "text_completion",
		              "created", (json_int_t)h->created, "model", engine_name(h->e), "choices", "text", text,
		              "index", 0, "logprobs",
		              h->rq.logprobs ? compl_logprobs(h, h->toks, h->n_toks) : json_null(), "finish_reason",
		              h->finish, "usage", usage_openai(h));
	}
	return reply_json(h, 200, o, NULL);
}

static void gen_seed(uint64_t *out)
{
	if (getrandom(out, sizeof(*out), 0) != (ssize_t)sizeof(*out))
		*out = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out;
}

/* The steps of a generation request (do_generate).  Each returns true to go
 * on, or false after queueing the reply (an error, or the whole answer) in
 * *ret. */

/* 1. the request parsed, and the model it names is the one being served */
static bool gen_parse(struct hreq *h, enum MHD_Result *ret)
{
	struct server *s = h->s;
	char msg[512], param[64];
	int r = req_parse(h->ep == EP_CHAT    ? REQ_CHAT
	                  : h->ep == EP_COMPL ? REQ_COMPLETION
	                  : h->ep == EP_MSGS  ? REQ_MESSAGES
	                                      : REQ_TEMPLATE,
	                  h->body.p ? h->body.p : "", h->body.n, &s->lim, &h->rq, msg, sizeof(msg), param,
	                  sizeof(param));
	if (r == -ENOMEM)
		return *ret = reply_error(h, 500, "server_error", NULL, NULL, "out of memory"), false;
	if (r < 0)
		return *ret = bad_request(h, param, "%s", msg), false;
	h->have_rq = true;
	if (!(h->e = current(s)))
		return *ret = reply_error(h, 503, "server_error", "model_loading", NULL, "the model is still loading"),
		       false;
	if (h->rq.model && strcmp(h->rq.model, engine_name(h->e)))
		return *ret = reply_error(h, 404, "invalid_request_error", "model_not_found", "model",
		                          "The model '%s' does not exist (this server serves '%s')", h->rq.model,
		                          engine_name(h->e)),
		       false;
	return true;
}

/* 2. the prompt's text: a completion's prompt (or its token ids decoded), or
 * the messages rendered through the model's chat template; and its sha256 */
static bool gen_prompt_text(struct hreq *h, enum MHD_Result *ret)
{
	char msg[512];
	int r;

	if (h->ep == EP_COMPL && h->rq.prompt_ids) {
		/* token ids: checked here against this model, the text is their decoding */
		int vocab = engine_info(h->e)->vocab;
		for (size_t i = 0; i < h->rq.n_prompt_ids; i++)
			if (h->rq.prompt_ids[i] >= vocab)
				return *ret = bad_request(h, "prompt",
				                          "prompt[%zu] = %d is not a token id of this model (vocabulary %d)",
				                          i, h->rq.prompt_ids[i], vocab),
				       false;
		if (engine_detokenize(h->e, h->rq.prompt_ids, h->rq.n_prompt_ids, &h->prompt_text, &h->prompt_len) < 0)
			return *ret = bad_request(h, "prompt",
			                          "the token ids of the prompt have no text in this model's tokenizer"),
			       false;
	} else if (h->ep == EP_COMPL) {
		h->prompt_text = h->rq.prompt;
		h->rq.prompt = NULL;
		h->prompt_len = h->rq.prompt_len;
	} else {
		if (h->rq.tools && !engine_template_mentions(h->e, "tools"))
			return *ret = bad_request(h, "tools", "this model's chat template does not support tools"), false;
		if (engine_tool_format(h->e) == TC_DEEPSEEK && args_as_text(h->rq.messages) < 0)
			return *ret = reply_error(h, 500, "server_error", NULL, NULL, "out of memory"), false;
		json_t *ctx = json_pack("{s:O,s:b}", "messages", h->rq.messages, "add_generation_prompt",
		                        h->ep == EP_TMPL ? h->rq.add_generation_prompt : 1);
		if (h->rq.tools)
			json_object_set(ctx, "tools", h->rq.tools);
		if (h->rq.parse_tools && h->ep != EP_TMPL)
			h->tcf = (enum tc_format)engine_tool_format(h->e);
		r = engine_render(h->e, ctx, &h->prompt_text, &h->prompt_len, msg, sizeof(msg));
		json_decref(ctx);
		if (r == -EINVAL)
			return *ret = bad_request(h, "messages", "chat template: %s", msg), false;
		if (r < 0)
			return *ret = reply_error(h, 500, "server_error", NULL, NULL, "chat template failed: %s",
			                          r == -ENOMEM ? "out of memory" : msg),
			       false;
	}
	uint8_t d[BN_SHA256_LEN];
	bn_sha256(h->prompt_text, h->prompt_len, d);
	bn_hex(d, BN_SHA256_LEN, h->prompt_sha);
	h->have_sha = true;
	return true;
}

/* 3. the prompt's token ids (taken into *ret_ids) and the number of tokens
 * to generate, both within this server's context and limits */
static bool gen_prompt_ids(struct hreq *h, int32_t **ret_ids, size_t *ret_n, int *ret_maxt, enum MHD_Result *ret)
{
	struct server *s = h->s;
	char msg[512];
	/* tokens: completions as agrun --prompt (with the post-processor's
	 * BOS); a rendered chat that already starts with BOS gets no second */
	bool add_special = h->ep == EP_COMPL || !engine_starts_with_bos(h->e, h->prompt_text, h->prompt_len);
	const char *what = h->ep == EP_COMPL ? "prompt" : "messages";
	int32_t *ids = NULL;
	size_t n = 0;
	int r;

	if (h->rq.prompt_ids) {
		ids = h->rq.prompt_ids; /* taken: given as ids, used as they are */
		n = h->rq.n_prompt_ids;
		h->rq.prompt_ids = NULL;
		h->rq.n_prompt_ids = 0;
	} else if ((r = engine_tokenize(h->e, h->prompt_text, h->prompt_len, add_special, &ids, &n, msg, sizeof(msg))) <
	           0) {
		return *ret = reply_error(h, 500, "server_error", NULL, NULL, "tokenizer: %s", msg), false;
	}
	h->n_prompt = n;
	int ctx = engine_ctx(h->e), maxt = h->rq.max_tokens;
	if (n == 0)
		*ret = bad_request(h, what, "the prompt encodes to zero tokens");
	else if (n >= (size_t)ctx + (maxt == 0))
		*ret = bad_request(h, what, "the prompt is %zu tokens; this server's context is %d tokens", n, ctx);
	else if (maxt > s->o.max_tokens)
		*ret = bad_request(h, "max_tokens", "max_tokens is %d; this server allows at most %d", maxt,
		                   s->o.max_tokens);
	else if (maxt > ctx - (int)n)
		*ret = bad_request(h, "max_tokens",
		                   "the prompt (%zu tokens) plus max_tokens (%d) exceeds the context (%d tokens)", n, maxt,
		                   ctx);
	else {
		if (maxt < 0)
			maxt = ctx - (int)n < s->o.max_tokens ? ctx - (int)n : s->o.max_tokens;
		*ret_ids = ids;
		*ret_n = n;
		*ret_maxt = maxt;
		return true;
	}
	free(ids);
	return false;
}

/* 4. echo with logprobs: the prompt's own log-probabilities, teacher-forced
 * (the ids move to h->pids) */
static bool gen_score_prompt(struct hreq *h, int32_t **ids, size_t n, enum MHD_Result *ret)
{
	char msg[512];

	if (!h->rq.echo || !h->rq.logprobs)
		return true;
	h->pids = *ids;
	h->n_pids = n;
	*ids = NULL;
	if (n > 1) {
		if (!(h->plp = calloc(n - 1, sizeof(*h->plp))))
			return *ret = reply_error(h, 500, "server_error", NULL, NULL, "out of memory"), false;
		int r = engine_score(h->e, h->pids, n, h->rq.top_logprobs, h->plp, msg, sizeof(msg));
		if (r < 0)
			return *ret = reply_error(h, 500, "server_error", NULL, NULL, "scoring the prompt failed: %s",
			                          r == -ENOMEM ? "out of memory" : msg),
			       false;
	}
	return true;
}

/* 5. the sequence queued for the scheduler, and the reply started: whole
 * (finish_whole waits for the end) or a stream of server-sent events */
static enum MHD_Result gen_start(struct hreq *h, int32_t *ids, size_t n, int maxt)
{
	struct gen_params gp = {.max_tokens = maxt,
	                        .temperature = (float)h->rq.temperature,
	                        .top_p = (float)h->rq.top_p,
	                        .top_k = h->rq.top_k,
	                        .n_top = h->rq.logprobs ? h->rq.top_logprobs : -1,
	                        .ignore_eos = h->rq.ignore_eos};
	if (h->rq.has_seed)
		gp.seed = h->rq.seed;
	else
		gen_seed(&gp.seed);
	int r = engine_submit(h->e, h->pids ? h->pids : ids, n, &gp, &h->t);
	free(ids);
	if (r == -EAGAIN) {
		if (anthropic(h))
			return reply_error(h, 529, "overloaded_error", NULL, NULL, "the server is overloaded; retry later");
		return reply_error(h, 429, "rate_limit_error", "queue_full", NULL, "the request queue is full; retry later");
	}
	if (r < 0)
		return reply_error(h, 503, "server_error", NULL, NULL, "the model is being replaced; retry");
	textout_init(&h->to, h->e, h->rq.stop, h->rq.n_stop);
	h->have_to = true;
	if (!h->rq.stream)
		return finish_whole(h);
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, h, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "x-request-id", h->id);
	MHD_add_response_header(resp, "request-id", h->id);
	h->status = 200;
	enum MHD_Result ret = MHD_queue_response(h->c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result do_generate(struct hreq *h)
{
	enum MHD_Result ret = MHD_NO;
	int32_t *ids = NULL;
	size_t n = 0;
	int maxt = 0;

	if (!gen_parse(h, &ret) || !gen_prompt_text(h, &ret))
		return ret;
	if (h->ep == EP_TMPL)
		return reply_json(h, 200, json_pack("{s:o}", "prompt", text_json(h->prompt_text, h->prompt_len)), NULL);
	if (!gen_prompt_ids(h, &ids, &n, &maxt, &ret))
		return ret;
	if (!gen_score_prompt(h, &ids, n, &ret)) {
		free(ids);
		return ret;
	}
	if (maxt == 0) {
		/* echo only: nothing to generate */
		free(ids);
		h->finish = "length";
		return finish_whole(h);
	}
	return gen_start(h, ids, n, maxt);
}

static bool authorized(struct hreq *h)
{
	struct server *s = h->s;
	const char *v = MHD_lookup_connection_value(h->c, MHD_HEADER_KIND, "Authorization");
	const char *secret = NULL;
	if (v && !strncasecmp(v, "Bearer ", 7))
		secret = v + 7;
	else if ((v = MHD_lookup_connection_value(h->c, MHD_HEADER_KIND, "x-api-key")))
		secret = v;
	if (!secret)
		return false;
	const char *name = keys_check(s->keys, secret, strlen(secret));
	if (!name)
		return false;
	snprintf(h->key, sizeof(h->key), "%s", name);
	h->has_key = true;
	return true;
}

/* The audit's prompt_sha256 of a forwarded request: of the completions
 * prompt string as agserve would hash it itself, else of the compact JSON
 * of "prompt" or "messages" (the engine renders the template, not agserve). */
static void forwarded_prompt_sha(struct hreq *h)
{
	json_t *o = h->body.p ? json_loadb(h->body.p, h->body.n, 0, NULL) : NULL;
	json_t *v = json_object_get(o, "prompt");
	if (!v)
		v = json_object_get(o, "messages");
	uint8_t d[BN_SHA256_LEN];
	if (json_is_string(v)) {
		bn_sha256(json_string_value(v), json_string_length(v), d);
		h->have_sha = true;
	} else if (v) {
		char *t = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (t) {
			bn_sha256(t, strlen(t), d);
			h->have_sha = true;
		}
		free(t);
	}
	if (h->have_sha)
		bn_hex(d, BN_SHA256_LEN, h->prompt_sha);
	json_decref(o);
}

static void proxy_done(void *arg, const struct proxy_result *r)
{
	struct hreq *h = arg;
	h->status = (int)r->status;
	h->n_prompt = r->tokens_in > 0 ? (size_t)r->tokens_in : 0;
	h->got = r->tokens_out > 0 ? (size_t)r->tokens_out : 0;
	if (!r->complete)
		h->finish = "cancelled";
	else if (r->status >= 500)
		h->finish = "error";
	if (r->complete)
		hold_timeout(h, false); /* from the response reader: the connection stays (keep-alive) */
	hreq_end(h);
}

static enum MHD_Result forward(struct hreq *h, const char *method)
{
	forwarded_prompt_sha(h);
	h->proxied = true;
	h->refs = 2; /* NOTIFY_COMPLETED and proxy_done */
	/* the engine may queue the request: --conn-timeout is off until the
	 * answer is complete (the proxy's own PROXY_IDLE_TIMEOUT_S bounds a
	 * silent engine) */
	hold_timeout(h, true);
	const char *ct = MHD_lookup_connection_value(h->c, MHD_HEADER_KIND, "Content-Type");
	return proxy_handle(engine_proxy(h->e), h->c, method, h->url, ct, h->body.p ? h->body.p : "", h->body.n,
	                    proxy_done, h);
}

static enum MHD_Result dispatch(struct hreq *h, const char *method)
{
	struct server *s = h->s;
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	bool post = !strcmp(method, "POST");
	if (h->too_big)
		return reply_error(h, 413, "invalid_request_error", "request_too_large", NULL,
		                   "request body larger than %zu bytes", s->o.max_body);
	if (h->ep == EP_HEALTH && get)
		return do_health(h);
	if (h->ep == EP_METRICS && get)
		return do_metrics(h);
	pthread_mutex_lock(&s->mu);
	bool draining = s->draining;
	pthread_mutex_unlock(&s->mu);
	if (draining)
		return reply_error(h, 503, "server_error", "shutting_down", NULL, "the server is shutting down");
	if (h->ep == EP_OTHER)
		return reply_error(h, 404, "invalid_request_error", "unknown_url", NULL, "no such endpoint");
	if (s->keys && !authorized(h))
		return reply_error(h, 401, "authentication_error", "invalid_api_key", NULL,
		                   "missing or invalid API key (Authorization: Bearer KEY or x-api-key: KEY)");
	if ((h->e = current(s)) && engine_proxy(h->e))
		return forward(h, method);
	engine_unref(h->e);
	h->e = NULL;
	if (h->ep == EP_MODELS || h->ep == EP_MODEL) {
		if (!get)
			return reply_error(h, 405, "invalid_request_error", "method_not_allowed", NULL, "use GET");
		return do_models(h);
	}
	if (!post)
		return reply_error(h, 405, "invalid_request_error", "method_not_allowed", NULL, "use POST");
	return do_generate(h);
}

static enum ep route(const char *url, char *model_id, size_t idlen)
{
	static const struct {
		const char *path;
		enum ep ep;
	} r[] = {{"/health", EP_HEALTH},        {"/v1/models", EP_MODELS}, {"/v1/chat/completions", EP_CHAT},
	         {"/v1/completions", EP_COMPL}, {"/v1/messages", EP_MSGS}, {"/apply-template", EP_TMPL},
	         {"/metrics", EP_METRICS},      {"/v1/health", EP_HEALTH}};
	for (size_t i = 0; i < sizeof(r) / sizeof(*r); i++)
		if (!strcmp(url, r[i].path))
			return r[i].ep;
	if (!strncmp(url, "/v1/models/", 11) && url[11] && strlen(url + 11) < idlen) {
		snprintf(model_id, idlen, "%s", url + 11);
		return EP_MODEL;
	}
	return EP_OTHER;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct hreq *h = *con_cls;
	(void)version;
	if (!h) {
		if (!(h = calloc(1, sizeof(*h))))
			return MHD_NO;
		h->s = s;
		h->c = c;
		h->t0 = mono_now();
		h->created = time(NULL);
		h->ep = route(url, h->model_id, sizeof(h->model_id));
		if (!(h->url = strdup(url))) {
			free(h);
			return MHD_NO;
		}
		char hex[25];
		rand_hex(hex, 12);
		snprintf(h->id, sizeof(h->id), "%s%s",
		         h->ep == EP_CHAT    ? "chatcmpl-"
		         : h->ep == EP_COMPL ? "cmpl-"
		         : h->ep == EP_MSGS  ? "msg_"
		                             : "req-",
		         hex);
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ci && ci->client_addr)
			getnameinfo(ci->client_addr,
			            ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
			                                                   : sizeof(struct sockaddr_in),
			            h->remote, sizeof(h->remote), NULL, 0, NI_NUMERICHOST);
		pthread_mutex_lock(&s->mu);
		s->in_flight++;
		h->counted = true;
		pthread_mutex_unlock(&s->mu);
		*con_cls = h;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
			h->too_big = true;
			return dispatch(h, method);
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!h->too_big && h->body.n + *upload_size <= s->o.max_body) {
			if (sb_add(&h->body, upload, *upload_size) < 0)
				return MHD_NO;
		} else {
			/* read and drop the rest, so the client gets to read the
			 * 413 instead of a reset; past 8x the limit answer now */
			h->too_big = true;
			h->discarded += *upload_size;
			if (h->discarded > 8 * s->o.max_body && !h->status) {
				*upload_size = 0;
				return dispatch(h, method);
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (h->status)
		return MHD_YES; /* already answered (413 during the upload) */
	return dispatch(h, method);
}

static void audit_and_count(struct hreq *h)
{
	struct server *s = h->s;
	double sub = 0, first = 0, done = 0, now = mono_now();
	int status = h->status ? h->status : 499; /* nothing sent: the client went away */
	size_t out = h->got;
	if (h->t)
		task_times(h->t, &sub, &first, &done);
	metrics_request(s->metrics, ep_name[h->ep], status);
	if (h->t) {
		metrics_tokens(s->metrics, h->n_prompt, out);
		if (first > 0) {
			metrics_ttft(s->metrics, first - sub);
			double end = done > 0 ? done : now;
			if (out > 1 && end > first)
				metrics_decode_rate(s->metrics, (double)(out - 1) / (end - first));
		}
	}
	if (!s->audit || h->ep == EP_HEALTH || h->ep == EP_METRICS)
		return;
	const struct engine_opts *eo = h->e ? engine_opts(h->e) : NULL;
	json_t *o = json_object();
	json_object_set_new(o, "action", json_string("query"));
	json_object_set_new(o, "result",
	                    json_string(status < 400 ? (h->finish && !strcmp(h->finish, "error") ? "failed" : "ok")
	                                : status >= 500 && status != 503 ? "failed"
	                                                                 : "refused"));
	json_object_set_new(o, "request_id", json_string(h->id));
	json_object_set_new(o, "key", h->has_key ? json_string(h->key) : json_null());
	json_object_set_new(o, "remote", json_string(h->remote));
	json_object_set_new(o, "endpoint", json_string(ep_name[h->ep]));
	json_object_set_new(o, "status", json_integer(status));
	json_object_set_new(o, "model", eo ? json_string(eo->name) : json_null());
	json_object_set_new(o, "bundle", eo ? jstr_or_null(eo->bundle) : json_null());
	json_object_set_new(o, "version", eo && eo->has_version ? json_integer((json_int_t)eo->version) : json_null());
	json_object_set_new(o, "slot", eo ? jstr_or_null(eo->slot) : json_null());
	json_object_set_new(o, "prompt_sha256", h->have_sha ? json_string(h->prompt_sha) : json_null());
	json_object_set_new(o, "tokens_in", json_integer((json_int_t)h->n_prompt));
	json_object_set_new(o, "tokens_out", json_integer((json_int_t)out));
	json_object_set_new(o, "finish", h->finish ? json_string(h->finish) : json_null());
	json_object_set_new(o, "duration_ms", json_integer((json_int_t)((now - h->t0) * 1000)));
	json_object_set_new(o, "error", h->errmsg[0] ? text_json(h->errmsg, strlen(h->errmsg)) : json_null());
	if (s->o.audit_content) {
		json_object_set_new(o, "prompt",
		                    h->prompt_text ? text_json(h->prompt_text, h->prompt_len) : json_null());
		json_object_set_new(o, "completion", h->t ? text_json(h->text.p, h->text.n) : json_null());
	}
	char err[512];
	if (qaudit_append(s->audit, o, err, sizeof(err)) < 0)
		fprintf(stderr, "agserve: query audit: %s\n", err);
	json_decref(o);
}

/* Audit, count and free; for a forwarded request only at the second of
 * NOTIFY_COMPLETED and proxy_done. */
static void hreq_end(struct hreq *h)
{
	struct server *s = h->s;
	if (h->proxied && __atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (h->t)
		task_cancel(h->t); /* a no-op once it has finished */
	if (h->proxied)
		metrics_tokens(s->metrics, h->n_prompt, h->got);
	audit_and_count(h);
	task_put(h->t);
	if (h->have_to)
		textout_release(&h->to);
	engine_unref(h->e);
	if (h->have_rq)
		req_release(&h->rq);
	tc_result_release(&h->tc);
	free(h->prompt_text);
	free(h->body.p);
	free(h->text.p);
	free(h->pend.p);
	free(h->toks);
	free(h->pids);
	free(h->plp);
	free(h->url);
	if (h->counted) {
		pthread_mutex_lock(&s->mu);
		if (--s->in_flight == 0)
			pthread_cond_broadcast(&s->idle);
		pthread_mutex_unlock(&s->mu);
	}
	free(h);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct hreq *h = *con_cls;
	(void)cls;
	(void)c;
	if (!h)
		return;
	*con_cls = NULL;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && h->t && !h->finish)
		h->finish = "cancelled";
	hreq_end(h);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	(void)fmt;
	(void)ap; /* libmicrohttpd's own messages (refused connections, timeouts) are not errors of agserve */
}

int server_start(struct server *s, int listen_fd, char *err, size_t errlen)
{
	unsigned flags =
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (s->o.tls_cert) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "this libmicrohttpd was built without TLS support");
			return -EOPNOTSUPP;
		}
		flags |= MHD_USE_TLS;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->idle, NULL);
	struct MHD_OptionItem tls[] = {
	    {s->o.tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, (void *)s->o.tls_cert},
	    {s->o.tls_cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, (void *)s->o.tls_key},
	    {MHD_OPTION_END, 0, NULL},
	};
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_LISTEN_SOCKET, listen_fd,
	                        MHD_OPTION_CONNECTION_LIMIT, s->o.connections, MHD_OPTION_CONNECTION_TIMEOUT,
	                        s->o.conn_timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	                        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
	                        NULL, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	if (!s->d) {
		snprintf(err, errlen, "cannot start the HTTP server%s",
		         s->o.tls_cert ? " (is the TLS certificate and key valid PEM?)" : "");
		return -EIO;
	}
	return 0;
}

void server_stop(struct server *s)
{
	struct timespec dl;
	if (!s->d)
		return;
	pthread_mutex_lock(&s->mu);
	s->draining = true;
	pthread_mutex_unlock(&s->mu);
	int fd = (int)MHD_quiesce_daemon(s->d);
	if (fd >= 0)
		close(fd);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += s->o.drain_s;
	pthread_mutex_lock(&s->mu);
	while (s->in_flight > 0)
		if (pthread_cond_timedwait(&s->idle, &s->mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&s->mu);
	s->stopping = true;
	MHD_stop_daemon(s->d);
	s->d = NULL;
}

void server_set_engine(struct server *s, struct engine *e)
{
	pthread_mutex_lock(&s->mu);
	struct engine *old = s->cur;
	s->cur = e;
	s->last_load_error[0] = 0;
	pthread_mutex_unlock(&s->mu);
	engine_unref(old);
}

void server_set_load_error(struct server *s, const char *msg)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->last_load_error, sizeof(s->last_load_error), "%s", msg);
	pthread_mutex_unlock(&s->mu);
}
