/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The HTTP side of agserve (libmicrohttpd, one thread per connection under
 * a connection limit): routing, body accumulation with a size limit, keys,
 * the endpoints of both APIs, SSE streaming, audit and metrics per request.
 * The served engine can be swapped at any time (server_set_engine); each
 * request keeps a reference to the engine it started on.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "keys.h"
#include "metrics.h"
#include "qaudit.h"
#include "request.h"

struct server_opts {
	size_t max_body;       /* --max-body, bytes */
	unsigned connections;  /* --max-connections */
	unsigned conn_timeout; /* --conn-timeout, seconds of inactivity */
	int max_tokens;        /* --max-tokens: cap, and the default when a request gives none */
	unsigned drain_s;      /* --drain-timeout */
	bool audit_content;
	const char *tls_cert, *tls_key; /* PEM contents */
};

struct server {
	struct server_opts o;
	struct req_limits lim;
	struct keys *keys;    /* NULL: no keys required */
	struct qaudit *audit; /* NULL: no audit */
	struct metrics *metrics;
	pthread_mutex_t mu;
	struct engine *cur; /* NULL while loading */
	char last_load_error[512];
	bool draining;          /* SIGTERM: refuse new requests */
	volatile bool stopping; /* drain time is over: end streams */
	int in_flight;
	pthread_cond_t idle; /* in_flight reached 0 */
	struct MHD_Daemon *d;
};

int server_start(struct server *s, int listen_fd, char *err, size_t errlen);
/* Stops accepting, waits up to drain_s for requests in flight, stops. */
void server_stop(struct server *s);
/* Replaces the served engine (takes the caller's reference); the old one
 * is released once its last request ends. */
void server_set_engine(struct server *s, struct engine *e);
void server_set_load_error(struct server *s, const char *msg);
