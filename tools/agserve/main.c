/* SPDX-License-Identifier: Apache-2.0 */
/* agserve: OpenAI- and Anthropic-compatible API for a model directory or
 * for the active slot of a deployment root (followed across promote and
 * rollback).  Exit codes: 0 ok (also after SIGTERM/SIGINT), 1 internal,
 * 2 usage (and refused keys files), 3 model failed to load (--model),
 * 4 I/O (listen address, audit log, TLS files).  `agserve check` exits as
 * `agrun check` does: 0 pass, 1 fail (or a request failed), 2 usage, 3 not
 * a suite or the model failed to load, 4 I/O. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bundle/fsutil.h"
#include "bundle/schema.h"
#include "check.h"
#include "server.h"

static void usage(FILE *f)
{
	fputs("usage: agserve --root R [options]     serve the active slot's model, following promote/rollback\n"
	      "       agserve --model DIR [options]  serve a model directory (with engine.json: an external engine)\n"
	      "       agserve check --model DIR --suite SUITE.json [--json] [--name NAME] [--threads N] [--device D]\n"
	      "                                      run a health suite through the completions API (docs/HEALTH.md)\n"
	      "       agserve --version | --help\n"
	      "options:\n"
	      "  --listen HOST:PORT     default 127.0.0.1:8000 (port 0: any free port)\n"
	      "  --port-file F          write the port listened on to F once ready\n"
	      "  --artifact NAME        the slot's model artifact (default model; --root)\n"
	      "  --api-keys FILE        require a key (lines NAME SECRET or NAME sha256:HEX; mode 0600)\n"
	      "  --audit FILE           query audit log (default R/query-audit.log with --root; none with --model)\n"
	      "  --audit-content        also record prompt and completion text in the audit log\n"
	      "  --device cpu|cuda|auto default auto\n"
	      "  --threads N            compute threads (default: all CPUs)\n"
	      "  --tls-cert F --tls-key F  serve HTTPS with this PEM certificate and key\n"
	      "limits:\n"
	      "  --parallel N           sequences decoding together (default 4)\n"
	      "  --ctx N                context positions per sequence (default 4096, at most the model's)\n"
	      "  --queue N              requests waiting for a sequence (default 64; then 429/529)\n"
	      "  --max-tokens N         largest max_tokens, and the default (default 4096)\n"
	      "  --prefill-chunk N      prompt tokens per batch step (default 256)\n"
	      "  --max-body BYTES       request body size (default 1048576)\n"
	      "  --max-connections N    concurrent connections (default 256)\n"
	      "  --conn-timeout S       idle timeout in seconds, not while a request is worked on (default 30)\n"
	      "  --drain-timeout S      on SIGTERM, wait this long for running requests (default 30)\n"
	      "/health and /metrics need no key.  Prints 'agserve: listening on URL' on stderr when ready.\n"
	      "exit codes: 0 ok (also after SIGTERM), 1 internal, 2 usage or refused keys file,\n"
	      "            3 model failed to load (--model), 4 I/O (listen, audit log, TLS files)\n",
	      f);
}

struct opts {
	const char *root, *model, *listen, *port_file, *artifact, *keys, *audit, *device, *cert, *key;
	bool audit_content;
	long parallel, ctx, queue, max_tokens, prefill, max_body, max_conn, conn_timeout, drain, threads;
};

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int open_listen(const char *spec, char *url, size_t urllen, int *ret_port)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	char *h = host;
	if (h[0] == '[' && h[strlen(h) - 1] == ']') {
		h[strlen(h) - 1] = 0;
		h++;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
	if (getaddrinfo(*h ? h : NULL, colon + 1, &hints, &ai) != 0)
		return -EADDRNOTAVAIL;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0) {
		int r = -errno;
		close(fd);
		freeaddrinfo(ai);
		return r;
	}
	freeaddrinfo(ai);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char hb[256], pb[NI_MAXSERV];
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	getnameinfo((struct sockaddr *)&ss, sl, hb, sizeof(hb), pb, sizeof(pb), NI_NUMERICHOST | NI_NUMERICSERV);
	*ret_port = atoi(pb);
	snprintf(url, urllen, "%s%.256s%s:%.31s", strchr(hb, ':') ? "[" : "", hb, strchr(hb, ':') ? "]" : "", pb);
	return fd;
}

/* ---- what to serve ---- */

struct target {
	char dir[PATH_MAX];
	char name[256], bundle[256], channel[256], slot[64];
	uint64_t version;
	bool has_version;
};

/* The model of R's active slot: R/active -> slots/NAME, and the artifact in
 * the slot's manifest copy.  Reads only; takes no lock. */
static int resolve_root(const char *root, const char *artifact, char *link, size_t linklen, struct target *t, char *err,
                        size_t errlen)
{
	char p[PATH_MAX + 32], slotdir[PATH_MAX];
	snprintf(p, sizeof(p), "%s/active", root);
	ssize_t n = readlink(p, link, linklen - 1);
	if (n < 0) {
		snprintf(err, errlen, "%.900s: %s (no slot promoted yet?)", p, strerror(errno));
		link[0] = 0;
		return -errno;
	}
	link[n] = 0;
	if (!realpath(p, slotdir)) {
		snprintf(err, errlen, "%.900s: %s", p, strerror(errno));
		return -errno;
	}
	memset(t, 0, sizeof(*t));
	snprintf(t->slot, sizeof(t->slot), "%s", basename(link));
	snprintf(p, sizeof(p), "%s/.agkit-manifest.json", slotdir);
	json_error_t je;
	json_t *m = json_load_file(p, 0, &je);
	if (!m) {
		snprintf(err, errlen, "%.800s: %s", p, je.text);
		return -EINVAL;
	}
	const char *name = json_string_value(json_object_get(m, "name"));
	const char *chan = json_string_value(json_object_get(m, "channel"));
	json_t *ver = json_object_get(m, "version");
	bool found = false;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(m, "artifacts"), i, a) {
		const char *an = json_string_value(json_object_get(a, "name"));
		if (an && !strcmp(an, artifact) && !strchr(an, '/'))
			found = true;
	}
	if (!name || !found) {
		json_decref(m);
		snprintf(err, errlen, "%.900s: %s", p,
		         !name ? "no bundle name" : "no artifact of that name in the slot");
		return -ENOENT;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->bundle, sizeof(t->bundle), "%s", name);
	snprintf(t->channel, sizeof(t->channel), "%s", chan ? chan : "");
	if (json_is_integer(ver)) {
		t->version = (uint64_t)json_integer_value(ver);
		t->has_version = true;
	}
	json_decref(m);
	if (snprintf(t->dir, sizeof(t->dir), "%s/%s", slotdir, artifact) >= (int)sizeof(t->dir))
		return -ENAMETOOLONG;
	return 0;
}

static int load(const struct opts *o, int backend, const struct target *t, struct engine **ret, char *err,
                size_t errlen)
{
	struct engine_opts eo = {
	    .dir = t->dir,
	    .parallel = (int)o->parallel,
	    .ctx = (int)o->ctx,
	    .queue = (int)o->queue,
	    .threads = (int)o->threads,
	    .backend = backend,
	    .device_fallback = !strcmp(o->device, "auto"),
	    .prefill_chunk = (int)o->prefill,
	    .name = t->name,
	    .bundle = t->bundle[0] ? t->bundle : NULL,
	    .channel = t->channel[0] ? t->channel : NULL,
	    .slot = t->slot[0] ? t->slot : NULL,
	    .version = t->version,
	    .has_version = t->has_version,
	};
	return engine_new(&eo, ret, err, errlen);
}

static char *slurp(const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len;
	struct bn_error e = {0};
	if (bn_read_file(path, 1 << 20, &buf, &len, &e) < 0) {
		snprintf(err, errlen, "%.900s", e.msg);
		return NULL;
	}
	return buf;
}

/* Options into o; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	enum {
		O_ROOT = 256,
		O_MODEL,
		O_LISTEN,
		O_PORTFILE,
		O_ARTIFACT,
		O_KEYS,
		O_AUDIT,
		O_AUDITC,
		O_DEVICE,
		O_THREADS,
		O_CERT,
		O_KEY,
		O_PAR,
		O_CTX,
		O_QUEUE,
		O_MAXTOK,
		O_PREFILL,
		O_BODY,
		O_CONN,
		O_CTIMEOUT,
		O_DRAIN
	};
	static const struct option lo[] = {
	    {"root", required_argument, NULL, O_ROOT},
	    {"model", required_argument, NULL, O_MODEL},
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"port-file", required_argument, NULL, O_PORTFILE},
	    {"artifact", required_argument, NULL, O_ARTIFACT},
	    {"api-keys", required_argument, NULL, O_KEYS},
	    {"audit", required_argument, NULL, O_AUDIT},
	    {"audit-content", no_argument, NULL, O_AUDITC},
	    {"device", required_argument, NULL, O_DEVICE},
	    {"threads", required_argument, NULL, O_THREADS},
	    {"tls-cert", required_argument, NULL, O_CERT},
	    {"tls-key", required_argument, NULL, O_KEY},
	    {"parallel", required_argument, NULL, O_PAR},
	    {"ctx", required_argument, NULL, O_CTX},
	    {"queue", required_argument, NULL, O_QUEUE},
	    {"max-tokens", required_argument, NULL, O_MAXTOK},
	    {"prefill-chunk", required_argument, NULL, O_PREFILL},
	    {"max-body", required_argument, NULL, O_BODY},
	    {"max-connections", required_argument, NULL, O_CONN},
	    {"conn-timeout", required_argument, NULL, O_CTIMEOUT},
	    {"drain-timeout", required_argument, NULL, O_DRAIN},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	*o = (struct opts){.listen = "127.0.0.1:8000",
	                   .artifact = "model",
	                   .device = "auto",
	                   .parallel = 4,
	                   .ctx = 4096,
	                   .queue = 64,
	                   .max_tokens = 4096,
	                   .prefill = 256,
	                   .max_body = 1 << 20,
	                   .max_conn = 256,
	                   .conn_timeout = 30,
	                   .drain = 30};
	int c;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		long *num = NULL, lo_ = 1, hi = 1 << 30;
		switch (c) {
		case O_ROOT: o->root = optarg; break;
		case O_MODEL: o->model = optarg; break;
		case O_LISTEN: o->listen = optarg; break;
		case O_PORTFILE: o->port_file = optarg; break;
		case O_ARTIFACT: o->artifact = optarg; break;
		case O_KEYS: o->keys = optarg; break;
		case O_AUDIT: o->audit = optarg; break;
		case O_AUDITC: o->audit_content = true; break;
		case O_DEVICE: o->device = optarg; break;
		case O_CERT: o->cert = optarg; break;
		case O_KEY: o->key = optarg; break;
		case O_THREADS: num = &o->threads, lo_ = 0, hi = 1024; break;
		case O_PAR: num = &o->parallel, hi = 256; break;
		case O_CTX: num = &o->ctx, hi = 1 << 20; break;
		case O_QUEUE: num = &o->queue, hi = 1 << 20; break;
		case O_MAXTOK: num = &o->max_tokens, hi = 1 << 20; break;
		case O_PREFILL: num = &o->prefill, hi = 1 << 20; break;
		case O_BODY: num = &o->max_body, lo_ = 1024, hi = 1L << 30; break;
		case O_CONN: num = &o->max_conn, hi = 1 << 20; break;
		case O_CTIMEOUT: num = &o->conn_timeout, hi = 86400; break;
		case O_DRAIN: num = &o->drain, lo_ = 0, hi = 86400; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("agserve %s\n", AGKIT_VERSION); return 0;
		default: usage(stderr); return 2;
		}
		if (num && parse_long(optarg, lo_, hi, num) < 0) {
			fprintf(stderr, "agserve: %s: bad number '%s' (%ld..%ld)\n", argv[optind - 1], optarg, lo_, hi);
			return 2;
		}
	}
	if (optind != argc || !!o->root == !!o->model || !!o->cert != !!o->key ||
	    (strcmp(o->device, "cpu") && strcmp(o->device, "cuda") && strcmp(o->device, "auto")) ||
	    (o->artifact && (!*o->artifact || strchr(o->artifact, '/')))) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* R/config.json's cpu_kernels become this process's AGRT_SIMD (what the
 * runtime reads), unless it has its own: the kernels agctl's health checks
 * run too, so that check and server sum in the same order. */
static int root_kernels(const char *root, char *err, size_t errlen)
{
	const char *own = getenv("AGRT_SIMD");
	if (own && *own)
		return 0;
	char p[PATH_MAX], *buf = NULL;
	size_t len = 0;
	struct bn_error e = {0};
	snprintf(p, sizeof(p), "%s/config.json", root);
	int r = bn_read_file(p, 1 << 16, &buf, &len, &e);
	if (r == -ENOENT)
		return 0; /* no config: the defaults */
	if (r < 0) {
		snprintf(err, errlen, "%.900s", e.msg);
		return r;
	}
	json_error_t je;
	json_t *c = json_loadb(buf, len, 0, &je);
	free(buf);
	const char *k = NULL;
	if (!c) {
		snprintf(err, errlen, "%.800s: line %d: %.150s", p, je.line, je.text);
		r = -EINVAL;
	} else if ((r = bn_config_cpu_kernels(c, p, &k, &e)) < 0)
		snprintf(err, errlen, "%.900s", e.msg);
	else if (k && setenv("AGRT_SIMD", k, 1) < 0)
		r = -errno, snprintf(err, errlen, "cannot set AGRT_SIMD: %s", strerror(errno));
	json_decref(c);
	return r;
}

/* The server's limits, API keys, query audit log (R/query-audit.log by
 * default with --root) and TLS files; returns -1 to go on, else the exit
 * status. */
static int server_setup(struct opts *o, struct server *s)
{
	char err[1024];
	s->o = (struct server_opts){.max_body = (size_t)o->max_body,
	                            .connections = (unsigned)o->max_conn,
	                            .conn_timeout = (unsigned)o->conn_timeout,
	                            .max_tokens = (int)o->max_tokens,
	                            .drain_s = (unsigned)o->drain,
	                            .audit_content = o->audit_content};
	req_limits_default(&s->lim);
	if (!(s->metrics = metrics_new()))
		return 1;
	if (o->keys && keys_load(o->keys, &s->keys, err, sizeof(err)) < 0) {
		fprintf(stderr, "agserve: %s\n", err);
		return 2;
	}
	if (o->root && root_kernels(o->root, err, sizeof(err)) < 0) {
		fprintf(stderr, "agserve: %s\n", err);
		return 2;
	}
	static char audit_path[PATH_MAX];
	if (!o->audit && o->root) {
		snprintf(audit_path, sizeof(audit_path), "%s/query-audit.log", o->root);
		o->audit = audit_path;
	}
	if (o->audit && qaudit_open(o->audit, &s->audit, err, sizeof(err)) < 0) {
		fprintf(stderr, "agserve: %s\n", err);
		return 4;
	}
	if (o->cert) {
		if (!(s->o.tls_cert = slurp(o->cert, err, sizeof(err))) ||
		    !(s->o.tls_key = slurp(o->key, err, sizeof(err)))) {
			fprintf(stderr, "agserve: %s\n", err);
			return 4;
		}
	}
	return -1;
}

static int pick_backend(const char *device)
{
	if (!strcmp(device, "cuda"))
		return RT_BACKEND_CUDA;
	if (!strcmp(device, "auto")) {
		char why[256];
		return rt_cuda_device_count(why, sizeof(why)) > 0 ? RT_BACKEND_CUDA : RT_BACKEND_CPU;
	}
	return RT_BACKEND_CPU;
}

/* The first model: --model's (exit 3 when it does not load), or the active
 * slot's of --root (one that does not load is reported by the API until a
 * switch brings one that does).  link: R/active's target as resolved.
 * Returns -1 to go on, else the exit status. */
static int first_load(const struct opts *o, int backend, struct server *s, struct target *t, char *link,
                      size_t linklen)
{
	char err[1024];
	struct engine *e = NULL;
	if (o->model) {
		char *cp = strdup(o->model);
		snprintf(t->dir, sizeof(t->dir), "%s", o->model);
		snprintf(t->name, sizeof(t->name), "%s", cp ? basename(cp) : "model");
		free(cp);
		if (load(o, backend, t, &e, err, sizeof(err)) < 0) {
			fprintf(stderr, "agserve: %s\n", err);
			server_stop(s);
			return 3;
		}
		server_set_engine(s, e);
	} else if (resolve_root(o->root, o->artifact, link, linklen, t, err, sizeof(err)) < 0 ||
	           load(o, backend, t, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "agserve: cannot load the active model: %s\n", err);
		server_set_load_error(s, err);
		metrics_load_failure(s->metrics);
	} else {
		server_set_engine(s, e);
		fprintf(stderr, "agserve: serving %s v%llu from slot %s (%s)\n", t->bundle, (unsigned long long)t->version,
		        t->slot, engine_backend(e));
	}
	return -1;
}

/* Until SIGTERM or SIGINT; with --root, follows R/active: the new slot's
 * model is loaded while the old one serves. */
static void serve(const struct opts *o, int backend, struct server *s, const sigset_t *sigs, struct target *t,
                  char *link, size_t linklen)
{
	char err[1024], newlink[PATH_MAX];
	for (;;) {
		struct timespec ts = {0, 500 * 1000000L};
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (!o->root)
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/active", o->root);
		ssize_t n = readlink(p, newlink, sizeof(newlink) - 1);
		newlink[n < 0 ? 0 : n] = 0;
		if (n < 0 || !strcmp(newlink, link))
			continue;
		struct engine *ne = NULL;
		if (resolve_root(o->root, o->artifact, link, linklen, t, err, sizeof(err)) < 0 ||
		    load(o, backend, t, &ne, err, sizeof(err)) < 0) {
			fprintf(
			    stderr,
			    "agserve: slot switch to %s: cannot load the model, still serving the previous one: %s\n",
			    newlink, err);
			snprintf(link, linklen, "%s", newlink); /* retried at the next switch */
			server_set_load_error(s, err);
			metrics_load_failure(s->metrics);
			continue;
		}
		fprintf(stderr, "agserve: switched to %s v%llu in slot %s (%s)\n", t->bundle, (unsigned long long)t->version,
		        t->slot, engine_backend(ne));
		server_set_engine(s, ne);
	}
}

/* Options, server set-up, listening socket, signals, the first model, the
 * port file, serving, shutdown. */
int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "check")) {
#ifdef AGSERVE_PROXY
		return agserve_check_main(argc - 1, argv + 1);
#else
		fprintf(stderr, "agserve: check: this agserve was built without libcurl\n");
		return 1;
#endif
	}
	struct opts o;
	int ex = parse_args(argc, argv, &o);
	if (ex >= 0)
		return ex;
	static struct server s;
	if ((ex = server_setup(&o, &s)) >= 0)
		return ex;
	int backend = pick_backend(o.device);
	char err[1024], url[300];
	int port = 0;
	int fd = open_listen(o.listen, url, sizeof(url), &port);
	if (fd < 0) {
		fprintf(stderr, "agserve: cannot listen on %s: %s\n", o.listen, strerror(-fd));
		return 4;
	}
	/* signals are taken synchronously by the main thread */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (server_start(&s, fd, err, sizeof(err)) < 0) {
		fprintf(stderr, "agserve: %s\n", err);
		return 4;
	}
	struct target t = {0};
	char link[PATH_MAX] = "";
	if ((ex = first_load(&o, backend, &s, &t, link, sizeof(link))) >= 0)
		return ex;
	if (o.port_file) {
		FILE *pf = fopen(o.port_file, "w");
		if (!pf || fprintf(pf, "%d\n", port) < 0 || fclose(pf) != 0) {
			fprintf(stderr, "agserve: %s: cannot write the port\n", o.port_file);
			server_stop(&s);
			return 4;
		}
	}
	fprintf(stderr, "agserve: listening on %s://%s\n", o.cert ? "https" : "http", url);
	serve(&o, backend, &s, &sigs, &t, link, sizeof(link));
	fprintf(stderr, "agserve: stopping (waiting up to %ld s for running requests)\n", o.drain);
	server_stop(&s);
	server_set_engine(&s, NULL);
	keys_free(s.keys);
	qaudit_free(s.audit);
	metrics_free(s.metrics);
	free((char *)s.o.tls_cert);
	free((char *)s.o.tls_key);
	return 0;
}
