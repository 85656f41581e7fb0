/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * An external engine in the slot (docs/SERVING.md, "External engine").
 *
 * A model artifact that contains engine.json names a command that serves an
 * OpenAI-compatible API on 127.0.0.1:{port}:
 *
 *   {"command": ["podman", "run", ..., "--port", "{port}", "{model}"],
 *    "ready_path": "/health", "ready_timeout_s": 120}
 *
 * proxy_open() starts it in its own process group ({port}: a free port,
 * {model}: the artifact's directory, {name}: the model name clients use),
 * waits until GET ready_path answers 200, and returns a reference-counted
 * handle; the last proxy_unref() sends SIGTERM to the process group (SIGKILL
 * after PROXY_KILL_GRACE_S) and reaps it. proxy_handle() forwards one HTTP
 * request (already authenticated by the caller) to the engine and queues the
 * engine's answer, streamed through as it arrives, on the MHD connection.
 *
 * The client side is libcurl, one transfer thread per forwarded request;
 * agserve runs libmicrohttpd thread-per-connection, so the response reader
 * blocks on the transfer's buffer.
 */
#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#define PROXY_ENGINE_FILE     "engine.json"
#define PROXY_MAX_SPEC        65536 /* bytes of engine.json */
#define PROXY_MAX_ARGS        256
#define PROXY_MAX_ARG         4096 /* bytes of one argument after substitution */
#define PROXY_DEFAULT_READY_S 120
#define PROXY_MAX_READY_S     3600
#define PROXY_KILL_GRACE_S    10
#define PROXY_BUFFER          (1u << 20) /* engine bytes buffered per request before back-pressure */
#define PROXY_IDLE_TIMEOUT_S  600        /* no byte from the engine for this long: the request fails */

struct proxy;

/* Whether dir has an engine description (then serve it with proxy_open,
 * not the runtime). */
bool proxy_wanted(const char *model_dir);

/* Starts the engine of model_dir and waits until it is ready.  name is the
 * model name clients send ({name}).  -ENOENT: no engine.json; -EINVAL: a
 * malformed one; -ETIMEDOUT: not ready in time; -ECHILD: the engine exited
 * before it was ready; others from the system.  err gets one line. */
int proxy_open(const char *model_dir, const char *name, struct proxy **ret_proxy, char *err, size_t errlen)
    __attribute__((warn_unused_result));
struct proxy *proxy_ref(struct proxy *p);
void proxy_unref(struct proxy *p); /* accepts NULL */
int proxy_port(const struct proxy *p);
int proxy_pid(const struct proxy *p); /* the process group's leader */

/* What a forwarded request did, for the caller's audit and metrics:
 * called once, from the response reader when the answer is complete or
 * failed (the connection still open), or, when the client went away first,
 * from the response's free callback, which libmicrohttpd may run after
 * MHD_OPTION_NOTIFY_COMPLETED: arg must stay valid until done runs. */
struct proxy_result {
	unsigned status;            /* HTTP status sent to the client (502 when the engine failed) */
	long tokens_in, tokens_out; /* from the engine's usage objects, -1 when none was seen */
	bool complete;              /* the whole answer reached the client */
};
typedef void (*proxy_done_fn)(void *arg, const struct proxy_result *r);

/* Forwards method url (e.g. "/v1/chat/completions") with body (NULL/0 for
 * none) and its content type to the engine, waits for the engine's status
 * and headers, and queues the response on conn (the body streamed through).
 * Returns MHD_YES/MHD_NO as an MHD access handler does; done(arg, ...) is
 * called exactly once, also when this fails (then with status 502 after a
 * 502 error body in OpenAI's format was queued). */
enum MHD_Result proxy_handle(struct proxy *p, struct MHD_Connection *conn, const char *method, const char *url,
                             const char *content_type, const char *body, size_t len, proxy_done_fn done, void *arg);
