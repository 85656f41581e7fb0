/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test harness for tools/agserve/proxy.c: starts the engine of MODEL_DIR
 * (its engine.json) with proxy_open(), serves 127.0.0.1:0 with
 * libmicrohttpd the way agserve does (thread per connection) and forwards
 * every request with proxy_handle(). Prints "engine: pid PID port PORT" and
 * "proxy_harness: listening on http://127.0.0.1:PORT" on stderr, one line per
 * finished request on stdout ("done STATUS IN OUT complete|incomplete");
 * on SIGTERM stops, drops the proxy and exits 0 when the engine's process
 * group is gone. Used by tests/serve/proxy.sh.
 *
 * usage: proxy_harness MODEL_DIR NAME
 * exit: 0 ok, 2 usage, 3 proxy_open failed (its message on stderr), 1 other
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#include "proxy.h"

#define MAX_BODY (1u << 20)

static struct proxy *px;

struct body {
	char *p;
	size_t n;
	bool over;
};

static void done(void *arg, const struct proxy_result *r)
{
	(void)arg;
	printf("done %u %ld %ld %s\n", r->status, r->tokens_in, r->tokens_out, r->complete ? "complete" : "incomplete");
	fflush(stdout);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *data, size_t *data_size, void **con_cls)
{
	struct body *b = *con_cls;
	(void)cls, (void)version;
	if (!b) {
		if (!(b = calloc(1, sizeof(*b))))
			return MHD_NO;
		*con_cls = b;
		return MHD_YES;
	}
	if (*data_size) {
		if (b->n + *data_size > MAX_BODY) {
			b->over = true;
		} else {
			char *q = realloc(b->p, b->n + *data_size + 1);
			if (!q)
				return MHD_NO;
			b->p = q;
			memcpy(b->p + b->n, data, *data_size);
			b->n += *data_size;
		}
		*data_size = 0;
		return MHD_YES;
	}
	if (b->over) {
		static const char msg[] =
		    "{\"error\":{\"message\":\"body too large\",\"type\":\"invalid_request_error\"}}";
		struct MHD_Response *r =
		    MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
		enum MHD_Result ret = MHD_queue_response(c, 413, r);
		MHD_destroy_response(r);
		return ret;
	}
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	return proxy_handle(px, c, method, url, ct, b->p ? b->p : "", b->n, done, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct body *b = *con_cls;
	(void)cls, (void)c, (void)t;
	if (b) {
		free(b->p);
		free(b);
	}
	*con_cls = NULL;
}

int main(int argc, char **argv)
{
	char err[512];
	sigset_t ss;
	int sig, r;

	if (argc != 3) {
		fputs("usage: proxy_harness MODEL_DIR NAME\n", stderr);
		return 2;
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
	if ((r = proxy_open(argv[1], argv[2], &px, err, sizeof(err))) < 0) {
		fprintf(stderr, "proxy_harness: %s (%s)\n", err, strerror(-r));
		return 3;
	}
	int pid = proxy_pid(px);
	fprintf(stderr, "engine: pid %d port %d\n", pid, proxy_port(px));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    on_access, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
	if (!d) {
		fputs("proxy_harness: cannot start the HTTP daemon\n", stderr);
		proxy_unref(px);
		return 1;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	fprintf(stderr, "proxy_harness: listening on http://127.0.0.1:%u\n", di ? di->port : 0);
	sigwait(&ss, &sig);
	MHD_stop_daemon(d);
	proxy_unref(px);
	/* the engine's whole process group must be gone */
	if (kill(-pid, 0) == 0 || errno != ESRCH) {
		fprintf(stderr, "proxy_harness: engine process group %d still alive\n", pid);
		return 1;
	}
	fputs("proxy_harness: engine stopped\n", stderr);
	return 0;
}
