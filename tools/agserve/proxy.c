/* SPDX-License-Identifier: Apache-2.0 */
/* agserve's proxy to an external engine in the slot (see proxy.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "proxy.h"

struct proxy {
	pthread_mutex_t mu;
	int refs;
	pid_t pid; /* leader of the engine's process group; 0 once reaped */
	int port;
	char base[64]; /* http://127.0.0.1:PORT */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool proxy_wanted(const char *model_dir)
{
	char p[PATH_MAX];
	struct stat st;
	if (snprintf(p, sizeof(p), "%s/%s", model_dir, PROXY_ENGINE_FILE) >= (int)sizeof(p))
		return false;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A free TCP port on 127.0.0.1 (the engine binds it a moment later). */
static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Replaces {port}, {model} and {name} in s; -E2BIG past PROXY_MAX_ARG. */
static int subst(const char *s, int port, const char *model, const char *name, char **ret)
{
	char out[PROXY_MAX_ARG], ps[16];
	size_t n = 0;
	snprintf(ps, sizeof(ps), "%d", port);
	while (*s) {
		const char *v = NULL;
		size_t skip = 1, vl = 1;
		if (!strncmp(s, "{port}", 6))
			v = ps, skip = 6;
		else if (!strncmp(s, "{model}", 7))
			v = model, skip = 7;
		else if (!strncmp(s, "{name}", 6))
			v = name, skip = 6;
		vl = v ? strlen(v) : 1;
		if (n + vl >= sizeof(out))
			return -E2BIG;
		memcpy(out + n, v ? v : s, vl);
		n += vl;
		s += skip;
	}
	out[n] = 0;
	if (!(*ret = strdup(out)))
		return -ENOMEM;
	return 0;
}

struct spec {
	char *argv[PROXY_MAX_ARGS + 1];
	char ready_path[512];
	int ready_timeout_s;
};

static void spec_release(struct spec *sp)
{
	for (int i = 0; sp->argv[i]; i++)
		free(sp->argv[i]);
	memset(sp, 0, sizeof(*sp));
}

static int spec_load(const char *dir, int port, const char *name, struct spec *sp, char *err, size_t errlen)
{
	char path[PATH_MAX], absdir[PATH_MAX];
	json_error_t je;
	json_t *o, *cmd, *v;
	int r = -EINVAL;

	memset(sp, 0, sizeof(*sp));
	if (snprintf(path, sizeof(path), "%s/%s", dir, PROXY_ENGINE_FILE) >= (int)sizeof(path) ||
	    !realpath(dir, absdir)) {
		seterr(err, errlen, "%s: %s", dir, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		seterr(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	char *buf = malloc(PROXY_MAX_SPEC + 1);
	ssize_t got = buf ? read(fd, buf, PROXY_MAX_SPEC + 1) : -1;
	close(fd);
	if (got < 0 || got > PROXY_MAX_SPEC) {
		free(buf);
		seterr(err, errlen, "%s: %s", path, got < 0 ? "cannot read" : "larger than 64 KiB");
		return got < 0 ? -EIO : -EFBIG;
	}
	o = json_loadb(buf, (size_t)got, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!o || !json_is_object(o)) {
		seterr(err, errlen, "%s: %s", path, o ? "not a JSON object" : je.text);
		goto out;
	}
	cmd = json_object_get(o, "command");
	if (!json_is_array(cmd) || !json_array_size(cmd) || json_array_size(cmd) > PROXY_MAX_ARGS) {
		seterr(err, errlen, "%s: \"command\" must be an array of 1 to %d strings", path, PROXY_MAX_ARGS);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(cmd); i++) {
		const char *a = json_string_value(json_array_get(cmd, i));
		if (!a || subst(a, port, absdir, name, &sp->argv[i]) < 0) {
			seterr(err, errlen, "%s: command[%zu] is not a string of at most %d bytes", path, i,
			       PROXY_MAX_ARG);
			goto out;
		}
	}
	v = json_object_get(o, "ready_path");
	const char *rp = v ? json_string_value(v) : "/health";
	if (!rp || rp[0] != '/' || strlen(rp) >= sizeof(sp->ready_path) || strpbrk(rp, " \r\n")) {
		seterr(err, errlen, "%s: \"ready_path\" must be a path starting with /", path);
		goto out;
	}
	strcpy(sp->ready_path, rp);
	v = json_object_get(o, "ready_timeout_s");
	sp->ready_timeout_s = PROXY_DEFAULT_READY_S;
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > PROXY_MAX_READY_S) {
			seterr(err, errlen, "%s: \"ready_timeout_s\" must be 1 to %d", path, PROXY_MAX_READY_S);
			goto out;
		}
		sp->ready_timeout_s = (int)json_integer_value(v);
	}
	r = 0;
out:
	json_decref(o);
	if (r < 0)
		spec_release(sp);
	return r;
}

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
	(void)p, (void)u;
	return sz * n;
}

/* GET base+path answers 200 (within one second). */
static bool probe(const char *base, const char *path)
{
	char url[640];
	long code = 0;
	CURL *c = curl_easy_init();
	if (!c)
		return false;
	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	return code == 200;
}

/* Ends the engine: SIGTERM to its group, SIGKILL after the grace time. */
static void kill_engine(struct proxy *p)
{
	int st;
	if (p->pid <= 0)
		return;
	kill(-p->pid, SIGTERM);
	for (int i = 0; i < PROXY_KILL_GRACE_S * 20; i++) {
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			/* the leader is gone; strays of its group get no grace */
			kill(-p->pid, SIGKILL);
			p->pid = 0;
			return;
		}
		usleep(50000);
	}
	kill(-p->pid, SIGKILL);
	waitpid(p->pid, &st, 0);
	p->pid = 0;
}

int proxy_open(const char *model_dir, const char *name, struct proxy **ret_proxy, char *err, size_t errlen)
{
	struct spec sp;
	struct proxy *p;
	int port, r, st;

	pthread_once(&curl_once, curl_init_once);
	if (!proxy_wanted(model_dir)) {
		seterr(err, errlen, "%s: no %s", model_dir, PROXY_ENGINE_FILE);
		return -ENOENT;
	}
	if ((port = free_port()) < 0) {
		seterr(err, errlen, "no free port on 127.0.0.1: %s", strerror(-port));
		return port;
	}
	if ((r = spec_load(model_dir, port, name ? name : "", &sp, err, errlen)) < 0)
		return r;
	if (!(p = calloc(1, sizeof(*p)))) {
		spec_release(&sp);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->refs = 1;
	p->port = port;
	snprintf(p->base, sizeof(p->base), "http://127.0.0.1:%d", port);

	pid_t parent = getpid();
	p->pid = fork();
	if (p->pid < 0) {
		r = -errno;
		seterr(err, errlen, "%s: cannot start the engine: %s", sp.argv[0], strerror(-r));
		goto fail;
	}
	if (p->pid == 0) {
		/* the child: its own process group, dies with agserve, stdout to
		 * agserve's stderr (the engine's log), nothing else inherited */
		sigset_t none;
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(2, 1);
		closefrom(3);
		execvp(sp.argv[0], sp.argv);
		static const char msg[] = "agserve: the engine command cannot be executed\n";
		ssize_t w = write(2, msg, sizeof(msg) - 1);
		(void)w;
		_exit(127);
	}
	setpgid(p->pid, p->pid); /* both sides: no window where kill(-pid) misses */

	double until = now_s() + sp.ready_timeout_s;
	for (;;) {
		pid_t w = waitpid(p->pid, &st, WNOHANG);
		if (w == p->pid) {
			p->pid = 0;
			seterr(err, errlen, "engine %s exited (%s %d) before it was ready", sp.argv[0],
			       WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
			r = -ECHILD;
			goto fail;
		}
		if (probe(p->base, sp.ready_path))
			break;
		if (now_s() > until) {
			seterr(err, errlen, "engine %s: %s%s not ready within %d s", sp.argv[0], p->base, sp.ready_path,
			       sp.ready_timeout_s);
			r = -ETIMEDOUT;
			goto fail;
		}
		usleep(100000);
	}
	spec_release(&sp);
	*ret_proxy = p;
	return 0;
fail:
	kill_engine(p);
	pthread_mutex_destroy(&p->mu);
	free(p);
	spec_release(&sp);
	return r;
}

struct proxy *proxy_ref(struct proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->refs++;
	pthread_mutex_unlock(&p->mu);
	return p;
}

void proxy_unref(struct proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	int left = --p->refs;
	pthread_mutex_unlock(&p->mu);
	if (left)
		return;
	kill_engine(p);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int proxy_port(const struct proxy *p)
{
	return p->port;
}

int proxy_pid(const struct proxy *p)
{
	return p->pid;
}

/* One forwarded request: a libcurl transfer in its own thread filling buf;
 * the MHD response reader drains it. */
struct call {
	struct proxy *p;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thr;
	bool thr_started;
	CURL *c;
	struct curl_slist *hdrs;
	char *url, *body;
	size_t body_len;
	long status;
	char ctype[128];
	bool headers_done, finished, cancel;
	CURLcode cres;
	char *buf; /* ring of PROXY_BUFFER bytes */
	size_t head, len;
	double last_byte;
	/* usage scanning: the current line (SSE) or the whole body, bounded */
	char line[8192];
	size_t line_len;
	bool line_over;
	long tok_in, tok_out;
	bool sent_all;
	proxy_done_fn done;
	void *arg;
};

static void take_usage(struct call *k, const char *s, size_t n)
{
	json_t *o, *u;
	if (n > 6 && !strncmp(s, "data: ", 6))
		s += 6, n -= 6;
	if (!memmem(s, n, "\"usage\"", 7) || !(o = json_loadb(s, n, 0, NULL)))
		return;
	/* OpenAI: usage; Anthropic: usage, or message.usage in message_start */
	u = json_object_get(o, "usage");
	if (!json_is_object(u) && json_is_object(json_object_get(o, "message")))
		u = json_object_get(json_object_get(o, "message"), "usage");
	if (json_is_object(u)) {
		json_t *a = json_object_get(u, "prompt_tokens"), *b = json_object_get(u, "completion_tokens");
		if (!a)
			a = json_object_get(u, "input_tokens");
		if (!b)
			b = json_object_get(u, "output_tokens");
		if (json_is_integer(a))
			k->tok_in = (long)json_integer_value(a);
		if (json_is_integer(b))
			k->tok_out = (long)json_integer_value(b);
	}
	json_decref(o);
}

/* Scans engine output line by line for usage objects (a non-streamed body is
 * one line as the engines print it; longer lines are skipped). */
static void scan(struct call *k, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n') {
			if (!k->line_over)
				take_usage(k, k->line, k->line_len);
			k->line_len = 0;
			k->line_over = false;
		} else if (k->line_len < sizeof(k->line)) {
			k->line[k->line_len++] = s[i];
		} else {
			k->line_over = true;
		}
	}
}

static size_t on_header(char *s, size_t sz, size_t n, void *u)
{
	struct call *k = u;
	size_t len = sz * n;
	if (len >= 13 && !strncasecmp(s, "content-type:", 13)) {
		const char *v = s + 13;
		size_t vl = len - 13;
		while (vl && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(k->ctype) && !memchr(v, '\n', vl)) {
			memcpy(k->ctype, v, vl);
			k->ctype[vl] = 0;
		}
	}
	if (len <= 2 && (s[0] == '\r' || s[0] == '\n')) {
		long code = 0;
		curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200) { /* not an interim 1xx */
			pthread_mutex_lock(&k->mu);
			k->status = code;
			k->headers_done = true;
			pthread_cond_broadcast(&k->cv);
			pthread_mutex_unlock(&k->mu);
		}
	}
	return len;
}

static size_t on_body(char *s, size_t sz, size_t n, void *u)
{
	struct call *k = u;
	size_t len = sz * n, done = 0;
	scan(k, s, len);
	pthread_mutex_lock(&k->mu);
	while (done < len) {
		while (k->len == PROXY_BUFFER && !k->cancel)
			pthread_cond_wait(&k->cv, &k->mu); /* back-pressure: the client reads slowly */
		if (k->cancel)
			break;
		size_t tail = (k->head + k->len) % PROXY_BUFFER, room = PROXY_BUFFER - k->len;
		size_t m = len - done;
		if (m > room)
			m = room;
		if (m > PROXY_BUFFER - tail)
			m = PROXY_BUFFER - tail;
		memcpy(k->buf + tail, s + done, m);
		k->len += m;
		done += m;
		pthread_cond_broadcast(&k->cv);
	}
	bool cancel = k->cancel;
	pthread_mutex_unlock(&k->mu);
	return cancel ? 0 : len;
}

static int on_progress(void *u, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct call *k = u;
	(void)a, (void)b, (void)c, (void)d;
	pthread_mutex_lock(&k->mu);
	bool cancel = k->cancel;
	pthread_mutex_unlock(&k->mu);
	return cancel;
}

static void *transfer(void *arg)
{
	struct call *k = arg;
	CURLcode res = curl_easy_perform(k->c);
	if (res == CURLE_OK && k->line_len && !k->line_over)
		take_usage(k, k->line, k->line_len);
	pthread_mutex_lock(&k->mu);
	k->cres = res;
	k->finished = true;
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

/* Hands the outcome to the caller, once: from the reader at the end of the
 * answer (the connection still open), else when the response is freed. */
static void report(struct call *k)
{
	if (!k->done)
		return;
	struct proxy_result r = {.status = k->headers_done ? (unsigned)k->status : 502,
	                         .tokens_in = k->tok_in,
	                         .tokens_out = k->tok_out,
	                         .complete = k->sent_all};
	proxy_done_fn done = k->done;
	k->done = NULL;
	done(k->arg, &r);
}

static void call_free(struct call *k)
{
	if (!k)
		return;
	if (k->thr_started) {
		pthread_mutex_lock(&k->mu);
		k->cancel = true;
		pthread_cond_broadcast(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->thr, NULL);
	}
	report(k);
	if (k->c)
		curl_easy_cleanup(k->c);
	curl_slist_free_all(k->hdrs);
	pthread_cond_destroy(&k->cv);
	pthread_mutex_destroy(&k->mu);
	free(k->url);
	free(k->body);
	free(k->buf);
	proxy_unref(k->p);
	free(k);
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct call *k = cls;
	(void)pos;
	pthread_mutex_lock(&k->mu);
	for (;;) {
		if (k->len) {
			size_t m = k->len < max ? k->len : max;
			if (m > PROXY_BUFFER - k->head)
				m = PROXY_BUFFER - k->head;
			memcpy(out, k->buf + k->head, m);
			k->head = (k->head + m) % PROXY_BUFFER;
			k->len -= m;
			k->last_byte = now_s();
			pthread_cond_broadcast(&k->cv);
			pthread_mutex_unlock(&k->mu);
			return (ssize_t)m;
		}
		if (k->finished) {
			bool ok = k->cres == CURLE_OK;
			k->sent_all = ok;
			pthread_mutex_unlock(&k->mu);
			report(k);
			return ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (now_s() - k->last_byte > PROXY_IDLE_TIMEOUT_S) {
			pthread_mutex_unlock(&k->mu);
			report(k);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&k->cv, &k->mu, &ts);
	}
}

static void reader_free(void *cls)
{
	call_free(cls);
}

static enum MHD_Result fail_502(struct MHD_Connection *conn, const char *why)
{
	json_t *o = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", why, "type", "api_error", "param", "code",
	                      "engine_unavailable");
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!s)
		return MHD_NO;
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(conn, 502, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result proxy_handle(struct proxy *p, struct MHD_Connection *conn, const char *method, const char *url,
                             const char *content_type, const char *body, size_t len, proxy_done_fn done, void *arg)
{
	struct call *k = calloc(1, sizeof(*k));
	char hdr[192];
	const char *why = "cannot reach the engine";

	if (!k) {
		struct proxy_result r = {.status = 502, .tokens_in = -1, .tokens_out = -1};
		if (done)
			done(arg, &r);
		return fail_502(conn, "out of memory");
	}
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->p = proxy_ref(p);
	k->done = done;
	k->arg = arg;
	k->tok_in = k->tok_out = -1;
	k->last_byte = now_s();
	if (!url || url[0] != '/' || strpbrk(url, " \r\n"))
		goto fail;
	size_t ul = strlen(p->base) + strlen(url) + 1;
	if (!(k->url = malloc(ul)) || !(k->buf = malloc(PROXY_BUFFER)) || !(k->c = curl_easy_init()))
		goto fail;
	snprintf(k->url, ul, "%s%s", p->base, url);
	curl_easy_setopt(k->c, CURLOPT_URL, k->url);
	curl_easy_setopt(k->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(k->c, CURLOPT_PROXY, "");
	curl_easy_setopt(k->c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(k->c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(k->c, CURLOPT_LOW_SPEED_TIME, (long)PROXY_IDLE_TIMEOUT_S);
	curl_easy_setopt(k->c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(k->c, CURLOPT_HEADERDATA, k);
	curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(k->c, CURLOPT_WRITEDATA, k);
	curl_easy_setopt(k->c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(k->c, CURLOPT_XFERINFODATA, k);
	curl_easy_setopt(k->c, CURLOPT_NOPROGRESS, 0L);
	k->hdrs = curl_slist_append(NULL, "Expect:");
	snprintf(hdr, sizeof(hdr), "Content-Type: %.160s",
	         content_type && *content_type ? content_type : "application/json");
	if (!strpbrk(hdr, "\r\n"))
		k->hdrs = curl_slist_append(k->hdrs, hdr);
	curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, k->hdrs);
	if (!strcmp(method, "POST")) {
		if (!(k->body = malloc(len ? len : 1)))
			goto fail;
		memcpy(k->body, body, len);
		k->body_len = len;
		curl_easy_setopt(k->c, CURLOPT_POST, 1L);
		curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, k->body);
		curl_easy_setopt(k->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else if (strcmp(method, "GET")) {
		why = "method not forwarded";
		goto fail;
	}
	if (pthread_create(&k->thr, NULL, transfer, k))
		goto fail;
	k->thr_started = true;
	pthread_mutex_lock(&k->mu);
	while (!k->headers_done && !k->finished)
		pthread_cond_wait(&k->cv, &k->mu);
	bool have = k->headers_done;
	pthread_mutex_unlock(&k->mu);
	if (!have)
		goto fail;

	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, k, reader_free);
	if (!r)
		goto fail;
	MHD_add_response_header(r, "Content-Type", k->ctype[0] ? k->ctype : "application/json");
	if (strstr(k->ctype, "event-stream")) {
		MHD_add_response_header(r, "Cache-Control", "no-cache");
		MHD_add_response_header(r, "X-Accel-Buffering", "no");
	}
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)k->status, r);
	MHD_destroy_response(r); /* reader_free runs when MHD is done with it */
	return ret;
fail:
	k->headers_done = false;
	call_free(k);
	return fail_502(conn, why);
}
