/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP on libcurl: bounded memory GETs, resumable file downloads, retries. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "fetch_internal.h"

char *fs_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

bool fs_is_hex(const char *s, size_t n)
{
	if (!s || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

void fh_log(const struct fh_ctx *c, const char *fmt, ...)
{
	if (!c->o->log)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("agpack fetch: ", c->o->log);
	vfprintf(c->o->log, fmt, ap);
	fputc('\n', c->o->log);
	fflush(c->o->log);
	va_end(ap);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_global_rc;

static void curl_global_once(void)
{
	curl_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int fh_init(struct fh_ctx *c, const struct ag_fetch_opts *o, struct bn_error *err)
{
	if (!o || !o->cache_dir)
		return bn_fail(err, -EINVAL, "fetch: cache directory is required");
	/* curl_global_init is not thread-safe itself: run it exactly once. */
	pthread_once(&curl_once, curl_global_once);
	if (curl_global_rc != CURLE_OK)
		return bn_fail(err, -ENOMEM, "fetch: libcurl initialisation failed");
	memset(c, 0, sizeof *c);
	c->o = o;
	c->tty = o->log && isatty(fileno(o->log));
	c->curl = curl_easy_init();
	if (!c->curl)
		return bn_fail(err, -ENOMEM, "fetch: libcurl handle allocation failed");
	return 0;
}

void fh_fini(struct fh_ctx *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	c->curl = NULL;
}

void fh_resp_free(struct fh_resp *r)
{
	free(r->body);
	free(r->content_type);
	free(r->www_auth);
	free(r->digest);
	free(r->content_range);
	free(r->location);
	memset(r, 0, sizeof *r);
}

static void resp_reset_headers(struct fh_resp *r)
{
	free(r->content_type);
	free(r->www_auth);
	free(r->digest);
	free(r->content_range);
	free(r->location);
	r->content_type = r->www_auth = r->digest = r->content_range = r->location = NULL;
	r->retry_after = -1;
	r->content_length = -1;
}

/* ---- transfer state ---- */

struct xfer {
	struct fh_ctx *c;
	struct fh_resp *r;
	bool to_file;
	/* memory */
	size_t cap;
	bool too_big;
	/* file */
	int fd;
	uint64_t offset;               /* bytes already in the part file at request time */
	uint64_t written;              /* bytes in the part file now */
	struct bn_sha256 *sha;
	EVP_MD_CTX *sha1;
	bool started;
	bool bad_range;
	int io_errno;
	int64_t expect_size;
	/* progress */
	const char *label;
	uint64_t total;
	struct timespec t0;
	double last_print;
	uint64_t got;                  /* bytes received by this attempt */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void human(char *buf, size_t n, double v)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void progress(struct xfer *x, bool final)
{
	struct fh_ctx *c = x->c;
	if (!c->o->log || !x->label)
		return;
	double t = now_s();
	if (!final && (!c->tty || t - x->last_print < 0.25))
		return;
	x->last_print = t;
	double el = t - (x->t0.tv_sec + x->t0.tv_nsec / 1e9);
	double rate = el > 0 ? x->got / el : 0;
	char done[32], tot[32], rt[32];
	human(done, sizeof done, (double)x->written);
	human(tot, sizeof tot, (double)x->total);
	human(rt, sizeof rt, rate);
	if (c->tty) {
		char eta[32] = "--";
		if (rate > 0 && x->total > x->written)
			snprintf(eta, sizeof eta, "%.0fs", (x->total - x->written) / rate);
		fprintf(c->o->log, "\r\033[K%.60s  %s / %s  %s/s  ETA %s%s", x->label, done,
		        x->total ? tot : "?", rt, final ? "0s" : eta, final ? "\n" : "");
	} else {
		fprintf(c->o->log, "agpack fetch: %s: %s received in %.1fs (%s/s)\n", x->label, done, el, rt);
	}
	fflush(c->o->log);
}

static char *trim_dup(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return strndup(s, n);
}

static size_t on_header(char *buf, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	struct fh_resp *r = x->r;
	size_t n = sz * nm;
	if (n > FH_MAX_HEADER || (r->header_bytes += n) > FH_MAX_HEADERS * (FH_MAX_REDIRS + 1))
		return 0; /* aborts the transfer */
	if (n >= 5 && !strncmp(buf, "HTTP/", 5)) {
		/* A new response (after a redirect or 100): forget the previous headers. */
		resp_reset_headers(r);
		return n;
	}
	const char *colon = memchr(buf, ':', n);
	if (!colon)
		return n;
	size_t kl = (size_t)(colon - buf);
	const char *v = colon + 1;
	size_t vl = n - kl - 1;
	char **slot = NULL;
	if (kl == 12 && !strncasecmp(buf, "content-type", kl))
		slot = &r->content_type;
	else if (kl == 16 && !strncasecmp(buf, "www-authenticate", kl))
		slot = &r->www_auth;
	else if (kl == 21 && !strncasecmp(buf, "docker-content-digest", kl))
		slot = &r->digest;
	else if (kl == 13 && !strncasecmp(buf, "content-range", kl))
		slot = &r->content_range;
	else if (kl == 8 && !strncasecmp(buf, "location", kl))
		slot = &r->location;
	else if (kl == 11 && !strncasecmp(buf, "retry-after", kl)) {
		char *t = trim_dup(v, vl);
		if (t) {
			char *e;
			long s = strtol(t, &e, 10);
			/* Only delta-seconds; an HTTP date is treated as the maximum wait. */
			r->retry_after = (e != t && !*e && s >= 0) ? (s > FH_MAX_RETRY_AFTER ? FH_MAX_RETRY_AFTER : s)
			                                            : FH_MAX_RETRY_AFTER;
			free(t);
		}
	} else if (kl == 14 && !strncasecmp(buf, "content-length", kl)) {
		char *t = trim_dup(v, vl);
		if (t) {
			char *e;
			errno = 0;
			long long l = strtoll(t, &e, 10);
			if (!errno && e != t && !*e && l >= 0)
				r->content_length = l;
			free(t);
		}
	}
	if (slot) {
		/* Several WWW-Authenticate lines: keep the first (Bearer preferred below). */
		if (*slot && slot == &r->www_auth && strncasecmp(*slot, "bearer", 6) == 0)
			return n;
		free(*slot);
		*slot = trim_dup(v, vl);
	}
	return n;
}

static int hash_existing(struct xfer *x)
{
	/* Resuming: the digests must cover the bytes already on disk. */
	char buf[1 << 16];
	if (lseek(x->fd, 0, SEEK_SET) < 0)
		return -errno;
	uint64_t left = x->offset;
	while (left) {
		ssize_t k = read(x->fd, buf, left < sizeof buf ? left : sizeof buf);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO;
		bn_sha256_update(x->sha, buf, (size_t)k);
		if (x->sha1)
			EVP_DigestUpdate(x->sha1, buf, (size_t)k);
		left -= (uint64_t)k;
	}
	return lseek(x->fd, (off_t)x->offset, SEEK_SET) < 0 ? -errno : 0;
}

static int sha1_start(struct xfer *x)
{
	if (!x->sha1)
		return 0;
	char pre[64];
	int n = snprintf(pre, sizeof pre, "blob %" PRId64, x->expect_size);
	if (!EVP_DigestInit_ex(x->sha1, EVP_sha1(), NULL))
		return -ENOMEM;
	EVP_DigestUpdate(x->sha1, pre, (size_t)n + 1); /* includes the NUL git puts there */
	return 0;
}

/* Called on the first body byte of the final response. */
static int file_start(struct xfer *x)
{
	long st = x->r->status;
	x->started = true;
	if (st == 206) {
		/* Content-Range: bytes START-END/TOTAL must start where our file ends. */
		unsigned long long a, b;
		char tot[32] = "";
		if (!x->r->content_range ||
		    sscanf(x->r->content_range, "bytes %llu-%llu/%31s", &a, &b, tot) != 3 || a != x->offset) {
			x->bad_range = true;
			return -EPROTO;
		}
		if (tot[0] != '*')
			x->total = strtoull(tot, NULL, 10);
	} else {
		/* A full response: start over. */
		if (x->offset) {
			if (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)
				return -errno;
			x->offset = 0;
		}
		x->written = 0;
		if (x->r->content_length >= 0)
			x->total = (uint64_t)x->r->content_length;
	}
	bn_sha256_reset(x->sha);
	if (x->sha1 && sha1_start(x) < 0)
		return -ENOMEM;
	if (x->offset) {
		int r = hash_existing(x);
		if (r < 0)
			return r;
	}
	return 0;
}

static size_t on_body(char *buf, size_t sz, size_t nm, void *ud)
{
	struct xfer *x = ud;
	size_t n = sz * nm;
	if (!x->r->status)
		curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &x->r->status);
	bool ok2xx = x->r->status >= 200 && x->r->status < 300;
	if (!x->to_file || !ok2xx) {
		size_t cap = x->to_file ? FH_MAX_ERRBODY : x->cap;
		if (x->r->len + n > cap) {
			if (!x->to_file) {
				x->too_big = true;
				return 0;
			}
			n = cap - x->r->len; /* an error body: keep the start only */
			if (!n)
				return sz * nm;
		}
		char *nb = realloc(x->r->body, x->r->len + n + 1);
		if (!nb)
			return 0;
		memcpy(nb + x->r->len, buf, n);
		x->r->body = nb;
		x->r->len += n;
		nb[x->r->len] = 0;
		return sz * nm;
	}
	if (!x->started) {
		int r = file_start(x);
		if (r < 0) {
			x->io_errno = r;
			return 0;
		}
	}
	if (x->expect_size >= 0 && x->written + n > (uint64_t)x->expect_size) {
		x->too_big = true;
		return 0;
	}
	size_t off = 0;
	while (off < n) {
		ssize_t k = write(x->fd, buf + off, n - off);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			x->io_errno = -errno;
			return 0;
		}
		off += (size_t)k;
	}
	bn_sha256_update(x->sha, buf, n);
	if (x->sha1)
		EVP_DigestUpdate(x->sha1, buf, n);
	x->written += n;
	x->got += n;
	x->c->downloaded += n;
	progress(x, false);
	return n;
}

static void set_common(struct fh_ctx *c, const struct fh_req *q, struct xfer *x, struct curl_slist **hdrs,
                       char **authbuf)
{
	CURL *h = c->curl;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, q->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, q->allow_http ? "http,https" : "https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, q->allow_http ? "http,https" : "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, q->follow ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)FH_MAX_REDIRS);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	/* A stalled transfer (under 1 byte/s for 60 s) is an error and gets retried. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "agkit-agpack/0.1");
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, NULL); /* bytes must be the server's own */
	if (c->o->ca_file) {
		/* Extra CA in addition to the system store: libcurl's CAINFO replaces the
		 * default bundle, so both are given (CAPATH keeps the system directory). */
		curl_easy_setopt(h, CURLOPT_CAINFO, c->o->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, "/etc/ssl/certs");
	}
	if (q->head)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	if (q->accept) {
		char *a = fs_printf("Accept: %s", q->accept);
		if (a) {
			*hdrs = curl_slist_append(*hdrs, a);
			free(a);
		}
	}
	if (q->bearer) {
		*authbuf = fs_printf("Authorization: Bearer %s", q->bearer);
		if (*authbuf)
			*hdrs = curl_slist_append(*hdrs, *authbuf);
	} else if (q->user) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, q->user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, q->pass ? q->pass : "");
	}
	if (*hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
}

enum { ATTEMPT_OK, ATTEMPT_RETRY, ATTEMPT_FATAL };

static int classify_curl(CURLcode rc, const struct xfer *x, const char *url, int *code, struct bn_error *err)
{
	switch (rc) {
	case CURLE_OK:
		return ATTEMPT_OK;
	case CURLE_TOO_MANY_REDIRECTS:
		*code = bn_fail(err, -ELOOP, "%s: more than %d redirects", url, FH_MAX_REDIRS);
		return ATTEMPT_FATAL;
	case CURLE_UNSUPPORTED_PROTOCOL:
		*code = bn_fail(err, -EPERM, "%s: protocol not allowed (plain http needs the registry in the insecure list)", url);
		return ATTEMPT_FATAL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CONNECT_ERROR:
		*code = bn_fail(err, -EPROTO, "%s: TLS failure: %s", url, curl_easy_strerror(rc));
		return ATTEMPT_FATAL;
	case CURLE_COULDNT_RESOLVE_HOST:
		*code = bn_fail(err, -EHOSTUNREACH, "%s: %s", url, curl_easy_strerror(rc));
		return ATTEMPT_FATAL;
	case CURLE_WRITE_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
		if (x->too_big) {
			*code = bn_fail(err, -EFBIG, "%s: response larger than allowed", url);
			return ATTEMPT_FATAL;
		}
		if (x->bad_range) {
			*code = bn_fail(err, -EPROTO, "%s: server sent a range we did not ask for", url);
			return ATTEMPT_RETRY;
		}
		if (x->io_errno) {
			*code = bn_fail(err, x->io_errno, "%s: writing download: %s", url, strerror(-x->io_errno));
			return ATTEMPT_FATAL;
		}
		*code = bn_fail(err, -EFBIG, "%s: response header too large or malformed", url);
		return ATTEMPT_FATAL;
	case CURLE_OUT_OF_MEMORY:
		*code = bn_fail(err, -ENOMEM, "%s: out of memory", url);
		return ATTEMPT_FATAL;
	default:
		*code = bn_fail(err, -EIO, "%s: %s", url, curl_easy_strerror(rc));
		return ATTEMPT_RETRY;
	}
}

static void backoff(struct fh_ctx *c, int attempt, long retry_after, const char *url, const char *why)
{
	/* 1, 2, 4, 8, 16 s; the server's Retry-After wins when given (clamped). */
	long ms = 1000L << (attempt < 5 ? attempt : 5);
	if (retry_after >= 0)
		ms = retry_after * 1000L;
	fh_log(c, "%s: %s; retrying in %.1fs", url, why, ms / 1000.0);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool status_retryable(long st)
{
	return st == 408 || st == 429 || st >= 500;
}

int fh_get_mem(struct fh_ctx *c, const struct fh_req *q, size_t cap, struct fh_resp *ret, struct bn_error *err)
{
	int code = -EIO;
	for (int attempt = 0; attempt < FH_MAX_ATTEMPTS; attempt++) {
		struct fh_resp r = {.retry_after = -1, .content_length = -1};
		struct xfer x = {.c = c, .r = &r, .cap = cap, .fd = -1, .expect_size = -1};
		struct curl_slist *hdrs = NULL;
		char *authbuf = NULL;
		set_common(c, q, &x, &hdrs, &authbuf);
		CURLcode rc = curl_easy_perform(c->curl);
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r.status);
		curl_slist_free_all(hdrs);
		free(authbuf);
		int cls = classify_curl(rc, &x, FH_SHOWN(q), &code, err);
		if (cls == ATTEMPT_OK && !status_retryable(r.status)) {
			*ret = r;
			return 0;
		}
		if (cls == ATTEMPT_FATAL) {
			fh_resp_free(&r);
			return code;
		}
		if (cls == ATTEMPT_OK)
			code = bn_fail(err, -EIO, "%s: HTTP %ld after %d attempts", FH_SHOWN(q), r.status, attempt + 1);
		if (attempt + 1 < FH_MAX_ATTEMPTS)
			backoff(c, attempt, r.retry_after, FH_SHOWN(q),
			        cls == ATTEMPT_OK ? "server busy" : curl_easy_strerror(rc));
		fh_resp_free(&r);
	}
	return code;
}

int fh_status_error(const struct fh_resp *r, const char *what, const char *url, struct bn_error *err)
{
	int code;
	switch (r->status) {
	case 401:
	case 403:
		code = -EACCES;
		break;
	case 404:
		code = -ENOENT;
		break;
	default:
		code = r->status >= 500 ? -EIO : -EPROTO;
	}
	/* Echo only a printable prefix of the server's error body. */
	char snip[161] = "";
	size_t k = 0;
	for (size_t i = 0; r->body && i < r->len && k < sizeof snip - 1; i++)
		snip[k++] = (r->body[i] >= 0x20 && r->body[i] < 0x7f) ? r->body[i] : ' ';
	snip[k] = 0;
	return bn_fail(err, code, "%s %s: HTTP %ld%s%s", what, url, r->status, k ? ": " : "", snip);
}

/* The partial file part, opened and locked: two runs sharing a cache must
 * not append to the same partial file.  The fd, or a negative errno. */
static int part_open(const char *part, struct bn_error *err)
{
	int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return bn_fail(err, -errno, "%s: %s", part, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		close(fd);
		return e == EWOULDBLOCK ? bn_fail(err, -EBUSY, "%s: another fetch is downloading this", part)
		                        : bn_fail(err, -e, "%s: %s", part, strerror(e));
	}
	return fd;
}

/* The bytes the partial file holds (emptied first when it is longer than
 * the resource can be), with fd positioned at their end. */
static int part_resume_at(int fd, const char *part, const struct fh_expect *ex, uint64_t *ret_have,
                          struct bn_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return bn_fail(err, -errno, "%s: %s", part, strerror(errno));
	uint64_t have = (uint64_t)st.st_size;
	if (ex->size >= 0 && have > (uint64_t)ex->size) {
		if (ftruncate(fd, 0) < 0)
			return bn_fail(err, -errno, "%s: %s", part, strerror(errno));
		have = 0;
	}
	if (lseek(fd, (off_t)have, SEEK_SET) < 0)
		return bn_fail(err, -errno, "%s: %s", part, strerror(errno));
	*ret_have = have;
	return 0;
}

/* One attempt into x's file from byte have on: a GET (with a range when
 * resuming), or, when the file already holds all ex->size bytes, hashing
 * them.  *ret_rc: curl's result; <0 only when the attempt could not start. */
static int file_transfer(struct fh_ctx *c, const struct fh_req *q, const char *part, const struct fh_expect *ex,
                         struct xfer *x, uint64_t have, CURLcode *ret_rc, struct bn_error *err)
{
	struct curl_slist *hdrs = NULL;
	char *authbuf = NULL;
	set_common(c, q, x, &hdrs, &authbuf);
	char range[48];
	bool complete_already = ex->size >= 0 && have == (uint64_t)ex->size && have > 0;
	if (have && !complete_already) {
		snprintf(range, sizeof range, "%" PRIu64 "-", have);
		curl_easy_setopt(c->curl, CURLOPT_RANGE, range);
		fh_log(c, "%s: resuming at byte %" PRIu64, x->label, have);
	}
	CURLcode rc = CURLE_OK;
	int code = 0;
	if (!complete_already) {
		rc = curl_easy_perform(c->curl);
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &x->r->status);
	} else {
		x->r->status = 200;
		x->started = true;
		x->offset = have;
		bn_sha256_reset(x->sha);
		if (x->sha1 && sha1_start(x) < 0)
			code = bn_fail(err, -ENOMEM, "out of memory");
		else if (hash_existing(x) < 0)
			code = bn_fail(err, -EIO, "%s: reading partial file", part);
	}
	curl_slist_free_all(hdrs);
	free(authbuf);
	*ret_rc = rc;
	return code;
}

/* The whole download against what was expected: its size, sha256 and git
 * blob id; a mismatch empties the partial file (unusable either way).  The
 * sha256 in hex into hex. */
static int file_verify(const struct fh_req *q, const struct fh_expect *ex, struct xfer *x, char hex[BN_SHA256_HEX],
                       struct bn_error *err)
{
	uint8_t d[BN_SHA256_LEN];
	bn_sha256_final(x->sha, d);
	bn_hex(d, sizeof d, hex);
	int code = 0;
	if (ex->size >= 0 && x->written != (uint64_t)ex->size) {
		code = bn_fail(err, -EBADMSG, "%s: size %" PRIu64 ", expected %" PRId64, FH_SHOWN(q), x->written,
		               ex->size);
	} else if (ex->sha256 && strcmp(hex, ex->sha256) != 0) {
		code = bn_fail(err, -EBADMSG, "%s: sha256 mismatch: got %s, expected %s", FH_SHOWN(q), hex, ex->sha256);
	} else if (x->sha1) {
		unsigned char s1[EVP_MAX_MD_SIZE];
		unsigned int l1 = 0;
		char h1[41];
		EVP_DigestFinal_ex(x->sha1, s1, &l1);
		bn_hex(s1, 20, h1);
		if (strcmp(h1, ex->git_sha1) != 0)
			code = bn_fail(err, -EBADMSG, "%s: git blob id mismatch: got %s, expected %s", FH_SHOWN(q), h1,
			               ex->git_sha1);
	}
	if (code < 0 && ftruncate(x->fd, 0) < 0) { /* unusable either way */ }
	return code;
}

int fh_get_file(struct fh_ctx *c, const struct fh_req *q, const char *part, const struct fh_expect *ex,
                const char *label, char ret_sha256[BN_SHA256_HEX], uint64_t *ret_size, struct bn_error *err)
{
	int fd = part_open(part, err);
	if (fd < 0)
		return fd;
	struct bn_sha256 *sha = bn_sha256_new();
	EVP_MD_CTX *sha1 = ex->git_sha1 ? EVP_MD_CTX_new() : NULL;
	int code = -EIO;
	if (!sha || (ex->git_sha1 && !sha1)) {
		code = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint64_t got_total = 0;
	for (int attempt = 0; attempt < FH_MAX_ATTEMPTS; attempt++) {
		uint64_t have = 0;
		int e = part_resume_at(fd, part, ex, &have, err);
		if (e < 0) {
			code = e;
			goto out;
		}
		struct fh_resp r = {.retry_after = -1, .content_length = -1};
		struct xfer x = {.c = c, .r = &r, .to_file = true, .fd = fd, .offset = have, .written = have, .sha = sha,
		                 .sha1 = sha1, .expect_size = ex->size, .label = label, .t0 = t0,
		                 .total = ex->size >= 0 ? (uint64_t)ex->size : 0, .got = got_total};
		CURLcode rc = CURLE_OK;
		if ((e = file_transfer(c, q, part, ex, &x, have, &rc, err)) < 0) {
			code = e;
			fh_resp_free(&r);
			goto out;
		}
		got_total = x.got;
		int cls = classify_curl(rc, &x, FH_SHOWN(q), &code, err);
		if (cls == ATTEMPT_FATAL) {
			fh_resp_free(&r);
			goto out;
		}
		if (x.bad_range && ftruncate(fd, 0) < 0) {
			/* A server that answers ranges wrongly gets a full download next. */
			code = bn_fail(err, -errno, "%s: %s", part, strerror(errno));
			fh_resp_free(&r);
			goto out;
		}
		if (cls == ATTEMPT_OK && r.status == 416 && have) {
			/* Our partial file does not fit the resource: start over. */
			fh_resp_free(&r);
			if (ftruncate(fd, 0) < 0) {
				code = bn_fail(err, -errno, "%s: %s", part, strerror(errno));
				goto out;
			}
			continue;
		}
		if (cls == ATTEMPT_OK && !status_retryable(r.status) && (r.status < 200 || r.status >= 300)) {
			code = fh_status_error(&r, "GET", FH_SHOWN(q), err);
			fh_resp_free(&r);
			goto out;
		}
		if (cls == ATTEMPT_OK && r.status >= 200 && r.status < 300) {
			if (!x.started && (e = file_start(&x)) < 0) { /* empty body */
				code = bn_fail(err, e, "%s: bad response to a range request", FH_SHOWN(q));
				fh_resp_free(&r);
				goto out;
			}
			fh_resp_free(&r);
			progress(&x, true);
			if (x.total && x.written != x.total) {
				/* Shorter than announced: the connection was cut; resume. */
				code = bn_fail(err, -EIO, "%s: %" PRIu64 " of %" PRIu64 " bytes", FH_SHOWN(q),
				               x.written, x.total);
				if (attempt + 1 < FH_MAX_ATTEMPTS)
					backoff(c, attempt, -1, FH_SHOWN(q), "transfer incomplete");
				continue;
			}
			char hex[BN_SHA256_HEX];
			if ((code = file_verify(q, ex, &x, hex, err)) < 0)
				goto out;
			memcpy(ret_sha256, hex, BN_SHA256_HEX);
			if (ret_size)
				*ret_size = x.written;
			goto out;
		}
		/* retryable */
		if (cls == ATTEMPT_OK)
			code = bn_fail(err, -EIO, "%s: HTTP %ld after %d attempts", FH_SHOWN(q), r.status, attempt + 1);
		long ra = r.retry_after;
		fh_resp_free(&r);
		if (attempt + 1 < FH_MAX_ATTEMPTS)
			backoff(c, attempt, ra, FH_SHOWN(q),
			        cls == ATTEMPT_OK ? "server busy" : curl_easy_strerror(rc));
	}
out:
	close(fd);
	bn_sha256_free(sha);
	EVP_MD_CTX_free(sha1);
	return code;
}

static bool credential_param(const char *name, size_t len)
{
	static const char *const names[] = {
	    "token",   "access_token", "refresh_token", "id_token", "auth",        "auth_token", "authorization",
	    "api_key", "apikey",       "api-key",       "key",      "password",    "passwd",     "pass",
	    "pwd",     "secret",       "client_secret", "sig",      "signature",   "credential", "credentials",
	    "session", "sessionid",    "jwt",           "policy",   "key-pair-id", "code",
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strlen(names[i]) == len && !strncasecmp(name, names[i], len))
			return true;
	return (len >= 6 && !strncasecmp(name, "x-amz-", 6)) || (len >= 7 && !strncasecmp(name, "x-goog-", 7));
}

char *fh_redact_url(const char *url, bool *ret_changed)
{
	size_t n = strlen(url);
	char *out = malloc(n + 1), *o = out;
	bool changed = false;
	if (!out)
		return NULL;
	const char *p = url, *sch = strstr(url, "://");
	if (sch) {
		/* scheme://[userinfo@]host... : userinfo ends at the last '@' of the authority. */
		const char *auth = sch + 3, *end = auth + strcspn(auth, "/?#"), *at = NULL;
		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		memcpy(o, url, (size_t)(auth - url));
		o += auth - url;
		p = auth;
		if (at) {
			p = at + 1;
			changed = true;
		}
	}
	const char *qm = strchr(p, '?'), *hash = strchr(p, '#');
	if (!qm || (hash && hash < qm)) {
		strcpy(o, p);
		if (ret_changed)
			*ret_changed = changed;
		return out;
	}
	memcpy(o, p, (size_t)(qm - p));
	o += qm - p;
	const char *q = qm + 1, *qend = hash ? hash : q + strlen(q);
	bool first = true;
	while (q < qend) {
		const char *amp = memchr(q, '&', (size_t)(qend - q));
		const char *pe = amp ? amp : qend;
		const char *eq = memchr(q, '=', (size_t)(pe - q));
		size_t nl = (size_t)((eq ? eq : pe) - q);
		if (pe > q && credential_param(q, nl)) {
			changed = true;
		} else if (pe > q) {
			*o++ = first ? '?' : '&';
			memcpy(o, q, (size_t)(pe - q));
			o += pe - q;
			first = false;
		}
		q = amp ? amp + 1 : qend;
	}
	strcpy(o, hash ? hash : "");
	if (ret_changed)
		*ret_changed = changed;
	return out;
}
