/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agsync: one verified import feeds every node of a site (docs/FLEET.md).
 *
 *   agsync publish BUNDLE_DIR (--pubkey K.pub ... | --root R) [--mirror DIR] [--registry HOST:PORT ...]
 *   agsync pull URL --root R [--bundle NAME [--channel C]] [--registry HOST:PORT]
 *
 * publish runs on the gateway: the bundle is verified first (libbundle, as
 * agimport verify does), then copied unchanged into DIR/NAME/CHANNEL/VERSION/
 * and listed in DIR/index.json, and its OCI images are pushed into the site
 * registry with their digests unchanged (skopeo copy --preserve-digests).
 * pull runs on a node: the bundle directory is fetched over HTTP (resume,
 * bounded retries) into R.agsync-pull beside the root and handed to
 * bn_deploy_import(), the very path of `agimport DIR --root R`: the node's
 * own trust policy decides.  Nothing fetched is trusted before that.  The
 * images of the staged bundle are then checked against the registry by
 * digest.  agsync is the only clean-zone tool with network code; agimport,
 * agctl and agrun keep none.
 */
#include <curl/curl.h>
#include <sodium.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle/bundle.h"
#include "bundle/deploy.h"
#include "bundle/fsutil.h"
#include "bundle/parity.h"
#include "bundle/sha256.h"
#include "bundle/trust.h"
#include "sync.h"
#include "toolutil.h"

const char *tool_name = "agsync";

#define MAX_KEYS       64
#define MAX_REGISTRIES 16
#define INDEX_MAX      (16u << 20) /* bytes of a mirror's index.json */
#define SUMS_MAX       (8u << 20)  /* bytes of a bundle's SHA256SUMS */
#define MAX_FILES      (BN_MAX_VOLUMES * 2u + BN_MAX_SIGNATURES + 2u)
#define FILE_MAX       (64ull << 30) /* bytes of one fetched file */
#define OCI_JSON_MAX   (4u << 20)    /* an image layout's index.json, a registry manifest */
#define EXIT_NETWORK   8

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: agsync publish BUNDLE_DIR (--pubkey KEY.pub [--pubkey ...] [--threshold N] | --root R)\n"
	       "                      [--mirror DIR] [--registry HOST:PORT ...] [--insecure-registry] [--ca-file F]\n"
	       "       agsync pull URL --root R [--bundle NAME [--channel C]] [--registry HOST:PORT]\n"
	       "                      [--insecure-registry] [--ca-file F] [--retries N] [--allow-downgrade] [--force]\n"
	       "                      [--wait]\n"
	       "Registry credentials: $AGKIT_REGISTRY_USER and $AGKIT_REGISTRY_PASSWORD.\n"
	       "\n"
	       "publish verifies BUNDLE_DIR, copies it unchanged into DIR/NAME/CHANNEL/VERSION/ of a\n"
	       "static mirror (listed in DIR/index.json) and pushes its OCI images into each registry\n"
	       "as HOST:PORT/NAME/ARTIFACT:TAG with their digests unchanged.\n"
	       "pull fetches a bundle directory (URL of it, or of the mirror with --bundle) into\n"
	       "R.agsync-pull, stages it into R under R's own trust policy (as agimport DIR --root R)\n"
	       "and checks the bundle's images against the registry by digest.\n"
	       "Exit status: 0 ok, 1 failure, 2 usage, 3 verification failed (also: an image the\n"
	       "             registry does not serve with its digest), 4 I/O error, 5 refused by policy,\n"
	       "             6 another agkit command holds the lock, 8 mirror or registry unreachable.\n");
}

static int fail_exit(int r, const struct bn_error *err)
{
	if (r == -EHOSTUNREACH || r == -ETIMEDOUT || r == -ECONNREFUSED) {
		tool_err("%s", err->msg);
		return EXIT_NETWORK;
	}
	return tool_fail(r, err);
}

/* ---- helpers ------------------------------------------------------------ */

/* Runs argv (found on PATH: skopeo) with its output to log; exit status or -errno. */
static int run_prog(char *const argv[], int log_fd)
{
	pid_t p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		if (log_fd >= 0) {
			dup2(log_fd, STDOUT_FILENO);
			dup2(log_fd, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(p, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int copy_file(const char *from, const char *to, struct bn_error *err)
{
	int in = bn_open_regular(from, true);
	if (in < 0)
		return bn_fail(err, in, "%s: %s", from, strerror(-in));
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		int e = -errno;
		close(in);
		return bn_fail(err, e, "%s: %s", to, strerror(-e));
	}
	static char buf[1 << 20];
	ssize_t n;
	int r = 0;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if ((r = bn_write_all(out, buf, (size_t)n)) < 0)
			break;
	if (n < 0)
		r = -errno;
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	close(in);
	if (close(out) < 0 && r == 0)
		r = -errno;
	return r < 0 ? bn_fail(err, r, "%s: copying to %s: %s", from, to, strerror(-r)) : 0;
}

/* Copies the regular files of a verified bundle directory (and its
 * signatures/ directory) unchanged; anything else in it is refused. */
static int copy_bundle_dir(const char *from, const char *to, int depth, struct bn_error *err)
{
	DIR *d = opendir(from);
	if (!d)
		return bn_fail(err, -errno, "%s: %s", from, strerror(errno));
	if (mkdir(to, 0755) < 0 && errno != EEXIST) {
		int e = -errno;
		closedir(d);
		return bn_fail(err, e, "%s: %s", to, strerror(-e));
	}
	struct dirent *e;
	int r = 0;
	while (r == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *a = bn_path_join(from, e->d_name), *b = bn_path_join(to, e->d_name);
		struct stat st;
		if (!a || !b)
			r = bn_fail(err, -ENOMEM, "out of memory");
		else if (lstat(a, &st) < 0)
			r = bn_fail(err, -errno, "%s: %s", a, strerror(errno));
		else if (S_ISREG(st.st_mode))
			r = copy_file(a, b, err);
		else if (S_ISDIR(st.st_mode) && depth == 0 && !strcmp(e->d_name, "signatures"))
			r = copy_bundle_dir(a, b, 1, err);
		else
			r = bn_fail(err, -EBADMSG, "%s: not a file of a bundle directory", a);
		free(a);
		free(b);
	}
	closedir(d);
	if (r == 0 && bn_fsync_dir(to) < 0)
		r = bn_fail(err, -EIO, "%s: fsync failed", to);
	return r;
}

static bool same_file(const char *a, const char *b)
{
	uint8_t ha[BN_SHA256_LEN], hb[BN_SHA256_LEN];
	struct bn_error e = {0};
	return bn_sha256_file(a, ha, NULL, &e) == 0 && bn_sha256_file(b, hb, NULL, &e) == 0 &&
	       !memcmp(ha, hb, sizeof ha);
}

/* ---- the mirror index --------------------------------------------------- */
/*
 * DIR/index.json: {"agsync_index": 1, "bundles": [{"name", "channel",
 * "version", "path", "created", "manifest_sha256", "images"}...]}, sorted.
 * It is not signed and need not be: it only tells a node where to look; the
 * node verifies the bundle it finds there under its own policy, and its
 * anti-rollback floor refuses an old version that an index points to.
 */
static int index_add(const char *mirror, const struct bn_bundle *b, json_t *images, struct bn_error *err)
{
	char *path = bn_path_join(mirror, "index.json");
	if (!path)
		return bn_fail(err, -ENOMEM, "out of memory");
	json_t *idx = NULL;
	char *buf = NULL;
	size_t len = 0;
	int r = 0;
	if (access(path, F_OK) == 0) {
		if ((r = bn_read_file(path, INDEX_MAX, &buf, &len, err)) < 0)
			goto out;
		if ((r = sync_index_load(buf, len, &idx, err)) < 0) {
			bn_error_prefix(err, "%s", path);
			goto out;
		}
	} else {
		idx = json_pack("{s:i,s:[]}", "agsync_index", 1, "bundles");
	}
	json_t *arr = json_object_get(idx, "bundles");
	char vs[32], hex[BN_SHA256_HEX], rel[3 * BN_MAX_NAME + 32];
	snprintf(vs, sizeof vs, "%" PRIu64, b->m->version);
	snprintf(rel, sizeof rel, "%s/%s/%s", b->m->name, b->m->channel, vs);
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, hex);
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (json_is_object(v) && json_is_string(json_object_get(v, "path")) &&
		    !strcmp(json_string_value(json_object_get(v, "path")), rel)) {
			json_array_remove(arr, i);
			break;
		}
	}
	json_array_append_new(arr,
	                      json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:O}", "name", b->m->name, "channel", b->m->channel,
	                                "version", (json_int_t)b->m->version, "path", rel, "created",
	                                b->m->created ? b->m->created : "", "manifest_sha256", hex, "images", images));
	char *text = json_dumps(idx, JSON_INDENT(1) | JSON_SORT_KEYS);
	if (!text) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	size_t tl = strlen(text);
	text[tl] = '\0';
	char *t2 = NULL;
	if (asprintf(&t2, "%s\n", text) < 0)
		t2 = NULL;
	free(text);
	r = t2 ? bn_write_file_atomic(path, t2, strlen(t2), 0644, err) : bn_fail(err, -ENOMEM, "out of memory");
	free(t2);
out:
	json_decref(idx);
	free(buf);
	free(path);
	return r;
}

/* ---- HTTP --------------------------------------------------------------- */

struct sink {
	FILE *f; /* or, when NULL, into mem */
	char *mem;
	size_t len, cap; /* cap: limit for mem */
	uint64_t have, max;
	bool over;
};

static size_t sink_write(char *p, size_t sz, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t len = sz * n;
	if (s->have + len > s->max) {
		s->over = true;
		return 0;
	}
	if (s->f) {
		if (fwrite(p, 1, len, s->f) != len)
			return 0;
	} else {
		if (s->len + len > s->cap) {
			s->over = true;
			return 0;
		}
		char *m = realloc(s->mem, s->len + len + 1);
		if (!m)
			return 0;
		s->mem = m;
		memcpy(s->mem + s->len, p, len);
		s->len += len;
		s->mem[s->len] = 0;
	}
	s->have += len;
	return len;
}

struct net {
	unsigned retries;        /* attempts per request after the first */
	bool insecure;           /* registry: plain HTTP */
	const char *ca_file;     /* PEM CA certificates for https (mirror and registry), or NULL: the system's */
	const char *user, *pass; /* registry credentials ($AGKIT_REGISTRY_USER/_PASSWORD), or NULL */
	bool auth;               /* this request goes to the registry: send them */
};

/* $AGKIT_REGISTRY_USER and $AGKIT_REGISTRY_PASSWORD: both or neither. */
static int net_creds(struct net *n)
{
	const char *u = getenv("AGKIT_REGISTRY_USER"), *p = getenv("AGKIT_REGISTRY_PASSWORD");
	if ((u && *u) != (p && *p)) {
		tool_err("AGKIT_REGISTRY_USER and AGKIT_REGISTRY_PASSWORD go together");
		return -1;
	}
	if (u && *u && strchr(u, ':')) {
		tool_err("AGKIT_REGISTRY_USER: no ':' in a user name");
		return -1;
	}
	if (n->ca_file && access(n->ca_file, R_OK) < 0) {
		tool_err("--ca-file %s: %s", n->ca_file, strerror(errno));
		return -1;
	}
	n->user = u && *u ? u : NULL;
	n->pass = p && *p ? p : NULL;
	return 0;
}

static void backoff(unsigned attempt)
{
	unsigned s = attempt < 4 ? 1u << attempt : 8;
	for (unsigned i = 0; i < s * 10 && !tool_interrupted; i++)
		usleep(100000);
}

/* One GET of url into s (resuming a file sink at s->have).  Returns 0, or
 * -EHOSTUNREACH (transient: retry), -ENOENT/-EACCES/-EPROTO (an answer that a
 * retry will not change), -EFBIG (over the limit). */
static int http_get_once(const char *url, const struct net *n, struct sink *s, struct curl_slist *hdrs,
                         long *ret_status, struct bn_error *err)
{
	CURL *c = curl_easy_init();
	if (!c)
		return bn_fail(err, -ENOMEM, "out of memory");
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "agsync/" AGKIT_VERSION);
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (n->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, n->ca_file);
	if (n->auth && n->user && n->pass) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, n->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, n->pass);
	}
	uint64_t start = s->f ? s->have : 0;
	if (start)
		curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)start);
	CURLcode cc = curl_easy_perform(c);
	long status = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	*ret_status = status;
	if (s->over)
		return bn_fail(err, -EFBIG, "%s: larger than the limit of %" PRIu64 " bytes", url, s->max);
	if (cc == CURLE_OK && (status == 200 || status == 206)) {
		if (s->f && start && status == 200) {
			/* The whole file came after the part already there: start over. */
			if (fflush(s->f) != 0 || ftruncate(fileno(s->f), 0) < 0)
				return bn_fail(err, -errno, "%s: %s", url, strerror(errno));
			s->have = 0;
			return bn_fail(err, -EHOSTUNREACH, "%s: the server ignored the range request", url);
		}
		return 0;
	}
	if (cc == CURLE_OK && status == 416)
		return 0; /* the file was complete: its hash decides */
	if (cc != CURLE_OK)
		return bn_fail(err, -EHOSTUNREACH, "%s: %s", url, ebuf[0] ? ebuf : curl_easy_strerror(cc));
	if (status == 404)
		return bn_fail(err, -ENOENT, "%s: not found (HTTP 404)", url);
	if (status == 401 || status == 403)
		return bn_fail(err, -EACCES, "%s: HTTP %ld", url, status);
	if (status >= 500 || status == 408 || status == 429)
		return bn_fail(err, -EHOSTUNREACH, "%s: HTTP %ld", url, status);
	return bn_fail(err, -EPROTO, "%s: unexpected HTTP %ld", url, status);
}

/* GET into memory with bounded retries. */
static int http_get_mem(const char *url, size_t max, const struct net *n, struct curl_slist *hdrs, char **ret,
                        size_t *ret_len, struct bn_error *err)
{
	int r = -EHOSTUNREACH;
	for (unsigned a = 0; a <= n->retries && !tool_interrupted; a++) {
		if (a)
			backoff(a - 1);
		struct sink s = {.cap = max, .max = max};
		long st;
		r = http_get_once(url, n, &s, hdrs, &st, err);
		if (r == 0) {
			*ret = s.mem ? s.mem : strdup("");
			*ret_len = s.len;
			return 0;
		}
		free(s.mem);
		if (r != -EHOSTUNREACH)
			return r;
	}
	if (tool_interrupted)
		return bn_fail(err, -EINTR, "interrupted");
	bn_error_prefix(err, "after %u attempt(s)", n->retries + 1);
	return r;
}

/* GET into path, resuming what is there, until its SHA-256 is want (from
 * SHA256SUMS: not trusted, it only tells a damaged transfer from a good
 * one).  A mismatch starts the file over once; a second one is the
 * mirror's answer: -EBADMSG. */
static int http_get_file(const char *url, const char *path, const uint8_t want[BN_SHA256_LEN], uint64_t max,
                         const struct net *n, uint64_t *ret_bytes, struct bn_error *err)
{
	int r = -EHOSTUNREACH;
	bool restarted = false;
	for (unsigned a = 0; a <= n->retries && !tool_interrupted; a++) {
		if (a)
			backoff(a - 1);
		FILE *f = fopen(path, "ab");
		if (!f)
			return bn_fail(err, -errno, "%s: %s", path, strerror(errno));
		struct stat st;
		fstat(fileno(f), &st);
		struct sink s = {.f = f, .have = (uint64_t)st.st_size, .max = max};
		uint64_t start = s.have;
		long status;
		r = http_get_once(url, n, &s, NULL, &status, err);
		if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
			int e = -errno;
			fclose(f);
			return bn_fail(err, e, "%s: %s", path, strerror(-e));
		}
		fclose(f);
		*ret_bytes += s.have >= start ? s.have - start : s.have;
		if (r == -EHOSTUNREACH)
			continue;
		if (r < 0)
			return r;
		uint8_t got[BN_SHA256_LEN];
		if ((r = bn_sha256_file(path, got, NULL, err)) < 0)
			return r;
		if (!memcmp(got, want, BN_SHA256_LEN))
			return 0;
		unlink(path);
		if (restarted)
			return bn_fail(err, -EBADMSG,
			               "%s: the mirror serves a file whose SHA-256 is not the one its "
			               "SHA256SUMS lists",
			               url);
		restarted = true;
		a--; /* a fresh start is not a network retry */
	}
	if (tool_interrupted)
		return bn_fail(err, -EINTR, "interrupted");
	bn_error_prefix(err, "after %u attempt(s)", n->retries + 1);
	return r;
}

/* ---- registry ----------------------------------------------------------- */

static const char *ACCEPT = "Accept: application/vnd.oci.image.manifest.v1+json, "
                            "application/vnd.oci.image.index.v1+json, "
                            "application/vnd.docker.distribution.manifest.v2+json, "
                            "application/vnd.docker.distribution.manifest.list.v2+json";

/* The registry must serve, for repo@digest, bytes whose SHA-256 is digest.
 * (A HEAD would take the registry's word for it; the bytes are checked.) */
static int registry_check(const char *host, const char *repo, const char *digest, const struct net *n,
                          struct bn_error *err)
{
	char *url = NULL;
	if (asprintf(&url, "%s://%s/v2/%s/manifests/%s", n->insecure ? "http" : "https", host, repo, digest) < 0)
		return bn_fail(err, -ENOMEM, "out of memory");
	struct curl_slist *h = curl_slist_append(NULL, ACCEPT);
	char *body = NULL;
	size_t len = 0;
	struct net rn = *n;
	rn.auth = true;
	int r = http_get_mem(url, OCI_JSON_MAX, &rn, h, &body, &len, err);
	curl_slist_free_all(h);
	if (r == -ENOENT)
		r = bn_fail(err, -EBADMSG, "registry %s does not serve image %s@%s (HTTP 404)", host, repo, digest);
	if (r == 0) {
		uint8_t d[BN_SHA256_LEN];
		char hex[BN_SHA256_HEX];
		bn_sha256(body, len, d);
		bn_hex(d, BN_SHA256_LEN, hex);
		if (strncmp(digest, "sha256:", 7) || strcmp(digest + 7, hex))
			r = bn_fail(err, -EBADMSG,
			            "registry %s serves other bytes for image %s@%s (they hash to sha256:%s)", host,
			            repo, digest, hex);
	}
	free(body);
	free(url);
	return r;
}

/* The image manifests of an extracted OCI layout: [{"repo","tag","digest"}]. */
static int layout_images(const char *layout_dir, const char *bundle, const char *art, json_t *out, struct bn_error *err)
{
	char *p = bn_path_join(layout_dir, "index.json"), *buf = NULL;
	size_t len;
	if (!p)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = bn_read_file_nofollow(p, OCI_JSON_MAX, &buf, &len, err);
	if (r < 0) {
		free(p);
		return r;
	}
	json_t *j = json_loadb(buf, len, 0, NULL), *ms = json_object_get(j, "manifests");
	if (!json_is_array(ms) || json_array_size(ms) == 0)
		r = bn_fail(err, -EBADMSG, "%s: no \"manifests\" in the image layout's index", p);
	size_t i;
	json_t *m;
	char repo[2 * BN_MAX_NAME + 2];
	snprintf(repo, sizeof repo, "%s/%s", bundle, art);
	for (char *c = repo; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a'); /* registry repository names are lower case */
	json_array_foreach(ms, i, m)
	{
		if (r < 0)
			break;
		const char *dg = json_string_value(json_object_get(m, "digest"));
		const char *tag = json_string_value(
		    json_object_get(json_object_get(m, "annotations"), "org.opencontainers.image.ref.name"));
		if (!dg || strncmp(dg, "sha256:", 7) || strlen(dg) != 71 || strspn(dg + 7, "0123456789abcdef") != 64) {
			r = bn_fail(err, -EBADMSG, "%s: manifest %zu has no sha256 digest", p, i);
			break;
		}
		if (tag && (!*tag || strlen(tag) > 128 ||
		            strspn(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                        "0123456789._-") != strlen(tag)))
			tag = NULL;
		json_array_append_new(out, json_pack("{s:s,s:s,s:s?}", "repo", repo, "digest", dg, "tag", tag));
	}
	json_decref(j);
	free(buf);
	free(p);
	return r;
}

/* ---- publish ------------------------------------------------------------ */

static int push_images(struct bn_bundle *b, const char *const *regs, size_t n_regs, const struct net *n, json_t *images,
                       struct bn_error *err)
{
	bool any = false;
	for (size_t i = 0; i < b->m->n_artifacts; i++)
		any |= b->m->artifacts[i].layout && !strcmp(b->m->artifacts[i].layout, "oci-image-layout");
	if (!any)
		return 0;
	const char *tmpd = getenv("TMPDIR");
	char *work = NULL, *tree = NULL;
	if (asprintf(&work, "%s/agsync-publish.XXXXXX", tmpd && *tmpd ? tmpd : "/tmp") < 0 || !mkdtemp(work)) {
		free(work);
		return bn_fail(err, -errno, "temporary directory: %s", strerror(errno));
	}
	tree = bn_path_join(work, "t");
	struct bn_extract_opts o = {.cancel = &tool_interrupted};
	int r = tree ? bn_bundle_extract(b, tree, &o, err) : bn_fail(err, -ENOMEM, "out of memory");
	/* TLS: skopeo reads a directory of CA files; credentials: an auth file
	 * of our own (0600, removed with work), never a command-line argument. */
	char *certd = NULL, *authf = NULL;
	if (r == 0 && n->ca_file) {
		char *ca = NULL;
		if (asprintf(&certd, "%s/certs", work) < 0 || asprintf(&ca, "%s/ca.crt", certd) < 0)
			r = bn_fail(err, -ENOMEM, "out of memory");
		else if (mkdir(certd, 0700) < 0)
			r = bn_fail(err, -errno, "%s: %s", certd, strerror(errno));
		else
			r = copy_file(n->ca_file, ca, err);
		free(ca);
	}
	if (r == 0 && n->user && n->pass) {
		char *up = NULL;
		json_t *auths = json_object();
		if (asprintf(&up, "%s:%s", n->user, n->pass) < 0 || asprintf(&authf, "%s/auth.json", work) < 0) {
			r = bn_fail(err, -ENOMEM, "out of memory");
		} else {
			size_t bl = sodium_base64_encoded_len(strlen(up), sodium_base64_VARIANT_ORIGINAL);
			char *b64 = malloc(bl);
			if (b64) {
				sodium_bin2base64(b64, bl, (const unsigned char *)up, strlen(up),
				                  sodium_base64_VARIANT_ORIGINAL);
				for (size_t g = 0; g < n_regs; g++)
					json_object_set_new(auths, regs[g], json_pack("{s:s}", "auth", b64));
			}
			json_t *doc = json_pack("{s:o}", "auths", auths);
			char *text = json_dumps(doc, 0);
			r = b64 && text ? bn_write_file_atomic(authf, text, strlen(text), 0600, err)
			                : bn_fail(err, -ENOMEM, "out of memory");
			json_decref(doc);
			auths = NULL;
			if (text)
				sodium_memzero(text, strlen(text));
			free(text);
			if (b64)
				sodium_memzero(b64, bl);
			free(b64);
			sodium_memzero(up, strlen(up));
		}
		json_decref(auths);
		free(up);
	}
	for (size_t i = 0; r == 0 && i < b->m->n_artifacts; i++) {
		const struct bn_artifact *a = &b->m->artifacts[i];
		if (!a->layout || strcmp(a->layout, "oci-image-layout"))
			continue;
		char *ld = bn_path_join(tree, a->name);
		size_t first = json_array_size(images);
		r = ld ? layout_images(ld, b->m->name, a->name, images, err) : bn_fail(err, -ENOMEM, "out of memory");
		for (size_t k = first; r == 0 && k < json_array_size(images); k++) {
			json_t *im = json_array_get(images, k);
			const char *repo = json_string_value(json_object_get(im, "repo"));
			const char *dg = json_string_value(json_object_get(im, "digest"));
			const char *tag = json_string_value(json_object_get(im, "tag"));
			for (size_t g = 0; r == 0 && g < n_regs; g++) {
				char *src = NULL, *dst = NULL, *logp = NULL;
				if (asprintf(&src, "oci:%s%s%s", ld, tag ? ":" : "", tag ? tag : "") < 0 ||
				    asprintf(&dst, "docker://%s/%s%s%s", regs[g], repo, tag ? ":" : "@",
				             tag ? tag : dg) < 0 ||
				    asprintf(&logp, "%s/skopeo.log", work) < 0) {
					r = bn_fail(err, -ENOMEM, "out of memory");
					break;
				}
				char *argv[12] = {"skopeo", "copy", "--quiet", "--preserve-digests",
				                  n->insecure ? "--dest-tls-verify=false" : "--dest-tls-verify=true"};
				int ac = 5;
				if (certd) {
					argv[ac++] = "--dest-cert-dir";
					argv[ac++] = certd;
				}
				if (authf) {
					argv[ac++] = "--dest-authfile";
					argv[ac++] = authf;
				}
				argv[ac++] = src;
				argv[ac++] = dst;
				argv[ac] = NULL;
				int lf = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
				int q = run_prog(argv, lf);
				if (lf >= 0)
					close(lf);
				if (q != 0) {
					char *lb = NULL;
					size_t ll = 0;
					struct bn_error e2 = {0};
					if (bn_read_file(logp, 4096, &lb, &ll, &e2) == 0)
						for (char *c = lb; *c; c++)
							if (*c == '\n')
								*c = ' ';
					r = bn_fail(err, q == 127 ? -ENOENT : -EIO, "skopeo copy %s %s: %s", src, dst,
					            q == 127 ? "skopeo not found"
					            : lb     ? lb
					                     : "failed");
					free(lb);
				} else {
					/* The registry now serves the image with its digest unchanged. */
					r = registry_check(regs[g], repo, dg, n, err);
					if (r == 0)
						printf("%s: pushed %s/%s@%s%s%s\n", b->dir, regs[g], repo, dg,
						       tag ? " tag " : "", tag ? tag : "");
				}
				free(src);
				free(dst);
				free(logp);
			}
		}
		free(ld);
	}
	bn_rm_rf(work);
	free(work);
	free(tree);
	free(certd);
	free(authf);
	return r;
}

static int cmd_publish(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'},
	    {"threshold", required_argument, NULL, 't'},
	    {"root", required_argument, NULL, 'r'},
	    {"mirror", required_argument, NULL, 'm'},
	    {"registry", required_argument, NULL, 'g'},
	    {"insecure-registry", no_argument, NULL, 'k'},
	    {"ca-file", required_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static struct bn_pubkey keys[MAX_KEYS];
	size_t n_keys = 0, n_regs = 0;
	unsigned threshold = 0;
	const char *root = NULL, *mirror = NULL, *regs[MAX_REGISTRIES];
	struct net n = {.retries = 3};
	struct bn_error err = {0};
	int c;
	while ((c = getopt_long(argc, argv, "p:t:r:m:g:kA:h", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			if (n_keys == MAX_KEYS) {
				tool_err("too many --pubkey options");
				return BN_EXIT_USAGE;
			}
			if (bn_pubkey_load(optarg, &keys[n_keys], &err) < 0)
				return tool_fail(-EINVAL, &err);
			n_keys++;
			break;
		case 't': {
			char *end;
			unsigned long t = strtoul(optarg, &end, 10);
			if (*end || t == 0 || t > MAX_KEYS) {
				tool_err("--threshold: expected a number from 1 to %d", MAX_KEYS);
				return BN_EXIT_USAGE;
			}
			threshold = (unsigned)t;
			break;
		}
		case 'r': root = optarg; break;
		case 'm': mirror = optarg; break;
		case 'g':
			if (n_regs == MAX_REGISTRIES || !*optarg || strchr(optarg, '/')) {
				tool_err("--registry: expected HOST[:PORT], at most %d", MAX_REGISTRIES);
				return BN_EXIT_USAGE;
			}
			regs[n_regs++] = optarg;
			break;
		case 'k': n.insecure = true; break;
		case 'A': n.ca_file = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return BN_EXIT_USAGE;
		}
	}
	if (net_creds(&n) < 0)
		return BN_EXIT_USAGE;
	if (optind + 1 != argc || (!n_keys == !root) || (!mirror && !n_regs) || threshold > n_keys) {
		if (optind + 1 == argc)
			tool_err(!n_keys == !root     ? "give either --pubkey or --root (whose trust policy decides)"
			         : threshold > n_keys ? "--threshold is more than the keys given"
			                              : "nothing to do: give --mirror, --registry or both");
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	const char *dir = argv[optind];
	tool_catch_signals();
	struct bn_deploy *d = NULL;
	struct bn_trust trust = {.keys = keys, .n_keys = n_keys, .threshold = threshold};
	int r;
	if (root) {
		if ((r = bn_deploy_open(root, false, &d, &err)) < 0)
			return tool_fail(r, &err);
		trust = bn_deploy_trust(d);
	}
	struct bn_bundle *b = NULL;
	r = bn_bundle_open(dir, &trust, &b, &err);
	if (r == 0)
		r = bn_bundle_verify(b, tool_progress, "verify", &err);
	tool_progress_end();
	bn_deploy_close(d); /* after the verification: trust points into d */
	if (r < 0) {
		bn_bundle_free(b);
		return tool_fail(r, &err);
	}
	printf("%s: verified bundle %s channel %s version %" PRIu64 " (%zu trusted signature(s))\n", dir, b->m->name,
	       b->m->channel, b->m->version, b->n_signers);
	json_t *images = json_array();
	r = push_images(b, regs, n_regs, &n, images, &err);
	if (r == 0 && mirror) {
		char vs[32], *cd = NULL, *dest = NULL, *lockp = NULL, *sums_a = NULL, *sums_b = NULL;
		snprintf(vs, sizeof vs, "%" PRIu64, b->m->version);
		int lfd = -1;
		if (asprintf(&cd, "%s/%s/%s", mirror, b->m->name, b->m->channel) < 0 ||
		    asprintf(&dest, "%s/%s", cd, vs) < 0 || asprintf(&lockp, "%s/.agsync.lock", mirror) < 0 ||
		    asprintf(&sums_a, "%s/SHA256SUMS", dir) < 0 || asprintf(&sums_b, "%s/SHA256SUMS", dest) < 0) {
			r = bn_fail(&err, -ENOMEM, "out of memory");
		} else if (bn_mkdir_p(cd, 0755) < 0) {
			r = bn_fail(&err, -errno, "%s: %s", cd, strerror(errno));
		} else if ((lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 || flock(lfd, LOCK_EX) < 0) {
			r = bn_fail(&err, -errno, "%s: %s", lockp, strerror(errno));
		} else if (access(dest, F_OK) == 0) {
			/* Published before: the same bundle is fine, another one is not. */
			if (same_file(sums_a, sums_b) && !access(dest, F_OK))
				printf("%s: already on the mirror as %s\n", dir, dest);
			else
				r = bn_fail(&err, -EEXIST,
				            "%s: the mirror holds another bundle %s channel %s version %s; "
				            "remove it first",
				            dest, b->m->name, b->m->channel, vs);
		} else {
			char *tmp = NULL;
			if ((r = bn_mktemp_sibling(dest, &tmp, &err)) == 0) {
				r = copy_bundle_dir(dir, tmp, 0, &err);
				if (r == 0 && rename(tmp, dest) < 0)
					r = bn_fail(&err, -errno, "%s: %s", dest, strerror(errno));
				if (r == 0)
					bn_fsync_dir(cd);
				else
					bn_rm_rf(tmp);
				free(tmp);
			}
			if (r == 0)
				printf("%s: copied to %s\n", dir, dest);
		}
		if (r == 0)
			r = index_add(mirror, b, images, &err);
		if (lfd >= 0)
			close(lfd);
		free(cd);
		free(dest);
		free(lockp);
		free(sums_a);
		free(sums_b);
	}
	json_decref(images);
	bn_bundle_free(b);
	return r < 0 ? fail_exit(r, &err) : 0;
}

/* ---- pull --------------------------------------------------------------- */

/* The newest version of name/channel that the mirror's index lists. */
static int index_newest(const char *mirror, const char *name, const char *channel, const struct net *n, char **ret_url,
                        struct bn_error *err)
{
	char *url = NULL, *buf = NULL;
	size_t len;
	const char *sl = mirror[strlen(mirror) - 1] == '/' ? "" : "/";
	if (asprintf(&url, "%s%sindex.json", mirror, sl) < 0)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = http_get_mem(url, INDEX_MAX, n, NULL, &buf, &len, err);
	if (r < 0) {
		free(url);
		return r;
	}
	uint64_t ver = 0;
	r = sync_index_newest(buf, len, name, channel, &ver, err);
	if (r < 0)
		bn_error_prefix(err, "%s", url);
	/* The path is derived, not the index's word: NAME/CHANNEL/VERSION. */
	else if (asprintf(ret_url, "%s%s%s/%s/%" PRIu64 "/", mirror, sl, name, channel, ver) < 0)
		r = bn_fail(err, -ENOMEM, "out of memory");
	free(buf);
	free(url);
	return r;
}

/* Removes files of an earlier pull that the bundle no longer lists. */
static void prune(const char *dir, const char *sub, char **names, size_t n)
{
	char *p = sub ? bn_path_join(dir, sub) : strdup(dir);
	DIR *d = p ? opendir(p) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char rel[512];
		snprintf(rel, sizeof rel, "%s%s%s", sub ? sub : "", sub ? "/" : "", e->d_name);
		if (!sub && !strcmp(rel, "signatures"))
			continue;
		bool keep = !strcmp(rel, "SHA256SUMS");
		for (size_t i = 0; i < n && !keep; i++)
			keep = !strcmp(names[i], rel);
		if (!keep) {
			char *f = bn_path_join(dir, rel);
			if (f)
				bn_rm_rf(f);
			free(f);
		}
	}
	if (d)
		closedir(d);
	free(p);
}

/* Fetches the bundle directory at url (ending in '/') into dir. */
static int fetch_bundle(const char *url, const char *dir, const struct bn_trust *trust, const struct net *n,
                        struct bn_error *err)
{
	char *su = NULL, *sums = NULL;
	size_t slen;
	if (asprintf(&su, "%sSHA256SUMS", url) < 0)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = http_get_mem(su, SUMS_MAX, n, NULL, &sums, &slen, err);
	free(su);
	if (r < 0)
		return r;
	char **names = calloc(MAX_FILES, sizeof *names);
	uint8_t(*hashes)[BN_SHA256_LEN] = calloc(MAX_FILES, BN_SHA256_LEN);
	size_t nf = 0;
	if (!names || !hashes)
		r = bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0 && (r = sync_sums_parse(sums, slen, names, hashes, MAX_FILES, &nf, err)) < 0)
		bn_error_prefix(err, "%s", url);
	char *sd = bn_path_join(dir, "signatures");
	if (r == 0 && (!sd || (mkdir(sd, 0755) < 0 && errno != EEXIST)))
		r = bn_fail(err, -errno, "%s: %s", sd ? sd : dir, strerror(errno));
	free(sd);
	if (r == 0) {
		prune(dir, NULL, names, nf);
		prune(dir, "signatures", names, nf);
	}
	/* First the manifest and its signatures: the node's trust policy
	 * decides before a volume is fetched, and each volume may then be no
	 * larger than the signed manifest says. */
	uint64_t bytes = 0;
	struct bn_bundle *b = NULL;
	for (int pass = 0; r == 0 && pass < 2; pass++) {
		for (size_t i = 0; r == 0 && i < nf; i++) {
			bool head = !strcmp(names[i], "manifest.json") || !strncmp(names[i], "signatures/", 11);
			if (head != (pass == 0))
				continue;
			uint64_t max = !strcmp(names[i], "manifest.json") ? BN_MANIFEST_MAX : head ? 65536 : FILE_MAX;
			for (size_t v = 0; b && v < b->m->n_volumes; v++)
				if (!strcmp(b->m->volumes[v].name, names[i]))
					max = b->m->volumes[v].size;
			for (size_t v = 0; b && b->m->parity && v < b->m->parity->n_volumes; v++)
				if (!strcmp(b->m->parity->volumes[v].name, names[i]))
					max = b->m->parity->volumes[v].size;
			char *fu = NULL, *fp = bn_path_join(dir, names[i]);
			if (!fp || asprintf(&fu, "%s%s", url, names[i]) < 0)
				r = bn_fail(err, -ENOMEM, "out of memory");
			else
				r = http_get_file(fu, fp, hashes[i], max, n, &bytes, err);
			free(fu);
			free(fp);
		}
		if (r == 0 && pass == 0) {
			r = bn_bundle_open(dir, trust, &b, err);
			if (r < 0)
				bn_error_prefix(err, "%s (fetched from %s)", dir, url);
		}
	}
	bn_bundle_free(b);
	if (r == 0) {
		char *sp = bn_path_join(dir, "SHA256SUMS");
		r = sp ? bn_write_file_atomic(sp, sums, slen, 0644, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(sp);
	}
	if (r == 0)
		printf("%s: fetched %zu file(s), %" PRIu64 " byte(s) transferred\n", url, nf, bytes);
	free(names);
	free(hashes);
	free(sums);
	return r;
}

/* The images of the bundle staged in slot: each must be served by the
 * registry with its digest. */
static int check_images(struct bn_deploy *d, int slot, const char *host, const struct net *n, size_t *ret_n,
                        struct bn_error *err)
{
	char *sp = bn_deploy_slot_path(d, slot), *mp = NULL, *buf = NULL;
	size_t len;
	if (!sp || asprintf(&mp, "%s/%s", sp, BN_SLOT_MANIFEST) < 0) {
		free(sp);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	struct bn_manifest *m = NULL;
	int r = bn_read_file_nofollow(mp, BN_MANIFEST_MAX, &buf, &len, err);
	if (r == 0)
		r = bn_manifest_parse(buf, len, &m, err);
	json_t *images = json_array();
	for (size_t i = 0; r == 0 && i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		if (!a->layout || strcmp(a->layout, "oci-image-layout"))
			continue;
		char *ld = bn_path_join(sp, a->name);
		r = ld ? layout_images(ld, m->name, a->name, images, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(ld);
	}
	size_t i;
	json_t *im;
	json_array_foreach(images, i, im)
	{
		if (r < 0)
			break;
		r = registry_check(host, json_string_value(json_object_get(im, "repo")),
		                   json_string_value(json_object_get(im, "digest")), n, err);
	}
	*ret_n = json_array_size(images);
	json_decref(images);
	bn_manifest_free(m);
	free(buf);
	free(mp);
	free(sp);
	return r;
}

/* What agsync pull was asked. */
struct pull {
	const char *root, *bundle, *channel, *reg; /* reg: registry HOST[:PORT] to check images against, or NULL */
	const char *url;                           /* the mirror */
	struct net n;
	struct bn_import_opts io;
	bool wait;
};

/* pull's command line into p: -1 to go on, else the exit code (usage errors
 * reported; 0 after --help). */
static int pull_args(int argc, char **argv, struct pull *p)
{
	static const struct option opts[] = {
	    {"root", required_argument, NULL, 'r'},
	    {"bundle", required_argument, NULL, 'b'},
	    {"channel", required_argument, NULL, 'c'},
	    {"registry", required_argument, NULL, 'g'},
	    {"insecure-registry", no_argument, NULL, 'k'},
	    {"retries", required_argument, NULL, 'n'},
	    {"allow-downgrade", no_argument, NULL, 'D'},
	    {"force", no_argument, NULL, 'f'},
	    {"wait", no_argument, NULL, 'w'},
	    {"ca-file", required_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	p->root = getenv("AGKIT_ROOT");
	if (!p->root || !*p->root)
		p->root = BN_DEFAULT_ROOT;
	p->n.retries = 5;
	int c;
	while ((c = getopt_long(argc, argv, "r:b:c:g:kn:DfwA:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': p->root = optarg; break;
		case 'b': p->bundle = optarg; break;
		case 'c': p->channel = optarg; break;
		case 'g':
			if (!*optarg || strchr(optarg, '/')) {
				tool_err("--registry: expected HOST[:PORT]");
				return BN_EXIT_USAGE;
			}
			p->reg = optarg;
			break;
		case 'k': p->n.insecure = true; break;
		case 'n': {
			char *end;
			unsigned long t = strtoul(optarg, &end, 10);
			if (!*optarg || *end || t > 100) {
				tool_err("--retries: expected a number from 0 to 100");
				return BN_EXIT_USAGE;
			}
			p->n.retries = (unsigned)t;
			break;
		}
		case 'D': p->io.allow_downgrade = true; break;
		case 'f': p->io.force = true; break;
		case 'w': p->wait = true; break;
		case 'A': p->n.ca_file = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return BN_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc || (p->channel && !p->bundle) || (p->bundle && !bn_name_valid(p->bundle)) ||
	    (p->channel && !bn_name_valid(p->channel))) {
		if (optind + 1 == argc)
			tool_err(p->channel && !p->bundle ? "--channel goes with --bundle"
			                                  : "--bundle/--channel: not a valid name");
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	if (net_creds(&p->n) < 0)
		return BN_EXIT_USAGE;
	p->url = argv[optind];
	if (strncmp(p->url, "http://", 7) && strncmp(p->url, "https://", 8)) {
		tool_err("%s: expected an http:// or https:// URL", p->url);
		return BN_EXIT_USAGE;
	}
	return -1;
}

/* The root's trust policy (its keys copied into keys[], which outlive the
 * root's handle) and the channel it follows (chan, "" when none), read with
 * the root's lock held only meanwhile. */
static int pull_policy(const struct pull *p, struct bn_pubkey keys[BN_TRUST_MAX_KEYS], struct bn_trust *ret_trust,
                       char chan[BN_MAX_NAME + 1], struct bn_error *err)
{
	struct bn_deploy *d = NULL;
	int r = bn_deploy_open(p->root, p->wait, &d, err);
	if (r < 0)
		return r;
	struct bn_trust trust = bn_deploy_trust(d);
	size_t nk = trust.n_keys < BN_TRUST_MAX_KEYS ? trust.n_keys : BN_TRUST_MAX_KEYS;
	memcpy(keys, trust.keys, nk * sizeof keys[0]);
	trust.keys = keys;
	trust.n_keys = nk;
	chan[0] = 0;
	if (!p->channel && bn_deploy_channel(d))
		snprintf(chan, BN_MAX_NAME + 1, "%s", bn_deploy_channel(d));
	bn_deploy_close(d);
	*ret_trust = trust;
	return 0;
}

/* R.agsync-pull (the download directory, in ret_tmp) and its lock file,
 * locked: the fd, or a negative errno. */
static int pull_lock(const struct pull *p, char **ret_tmp, struct bn_error *err)
{
	char *tmp = NULL, *lockp = NULL;
	size_t rl = strlen(p->root);
	while (rl > 1 && p->root[rl - 1] == '/')
		rl--;
	if (asprintf(&tmp, "%.*s.agsync-pull", (int)rl, p->root) < 0)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (asprintf(&lockp, "%s.lock", tmp) < 0) {
		free(tmp);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	int lfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX | (p->wait ? 0 : LOCK_NB)) < 0) {
		int r = bn_fail(err, errno == EWOULDBLOCK ? -EAGAIN : -errno, "%s: %s", lockp,
		                errno == EWOULDBLOCK ? "another agsync pull runs for this root" : strerror(errno));
		if (lfd >= 0)
			close(lfd);
		free(tmp);
		free(lockp);
		return r;
	}
	free(lockp);
	*ret_tmp = tmp;
	return lfd;
}

/* --registry: the staged slot's images served by the registry with their
 * digests; when not, the slot is marked bad. */
static int pull_check_images(struct bn_deploy *d, const struct pull *p, const struct bn_import_result *res,
                             size_t *ret_n, struct bn_error *err)
{
	int q = check_images(d, res->slot, p->reg, &p->n, ret_n, err);
	if (q < 0) {
		struct bn_error e2 = {0};
		char why[BN_ERROR_MAX + 32];
		snprintf(why, sizeof why, "image check: %s", err->msg);
		if (bn_deploy_mark_bad(d, res->slot, why, &e2) < 0)
			tool_warn("%s", e2.msg);
		bn_error_prefix(err, "bundle %s version %" PRIu64 " staged in slot %s, then marked bad", res->bundle,
		                res->version, bn_slot_name(res->slot));
	}
	return q;
}

static int cmd_pull(int argc, char **argv)
{
	struct pull p = {.io = {.cancel = &tool_interrupted, .progress = tool_progress, .userdata = "import"}};
	int ex = pull_args(argc, argv, &p);
	if (ex >= 0)
		return ex;
	tool_catch_signals();
	struct bn_error err = {0};
	/* The root's lock is not held while bytes arrive (agctl cycle and the
	 * timer go on); R.agsync-pull.lock keeps two pulls apart.  The trust
	 * policy read now checks the manifest before any volume is fetched; the
	 * import below checks everything again under the lock. */
	static struct bn_pubkey keys[BN_TRUST_MAX_KEYS];
	struct bn_trust trust;
	char chan[BN_MAX_NAME + 1];
	int r = pull_policy(&p, keys, &trust, chan, &err);
	if (r < 0)
		return tool_fail(r, &err);
	const char *channel = p.channel;
	if (!channel && p.bundle) {
		if (!chan[0]) {
			tool_err("%s follows no channel yet: give --channel", p.root);
			return BN_EXIT_USAGE;
		}
		channel = chan;
	}
	char *burl = NULL, *tmp = NULL;
	int lfd = pull_lock(&p, &tmp, &err);
	if (lfd < 0)
		return tool_fail(lfd, &err);
	const char *url = p.url;
	if (p.bundle)
		r = index_newest(url, p.bundle, channel, &p.n, &burl, &err);
	else if (asprintf(&burl, "%s%s", url, url[strlen(url) - 1] == '/' ? "" : "/") < 0)
		r = bn_fail(&err, -ENOMEM, "out of memory");
	if (r == 0 && mkdir(tmp, 0700) < 0 && errno != EEXIST)
		r = bn_fail(&err, -errno, "%s: %s", tmp, strerror(errno));
	if (r == 0)
		r = fetch_bundle(burl, tmp, &trust, &p.n, &err);
	struct bn_deploy *d = NULL;
	struct bn_import_result res = {0};
	if (r == 0)
		r = bn_deploy_open(p.root, p.wait, &d, &err);
	/* A transfer cut short stays for the next pull to resume; anything the
	 * mirror answered wrongly goes. */
	bool keep = r == -EHOSTUNREACH || r == -EINTR || (d == NULL && r == -EAGAIN);
	if (r == 0) {
		r = bn_deploy_import(d, tmp, &p.io, &res, &err);
		tool_progress_end();
		if (r < 0)
			bn_error_prefix(&err, "%s (fetched from %s)", tmp, burl);
	}
	if (!keep)
		bn_rm_rf(tmp);
	size_t n_img = 0;
	if (r == 0 && p.reg)
		r = pull_check_images(d, &p, &res, &n_img, &err);
	bn_deploy_close(d);
	close(lfd);
	if (r < 0) {
		free(burl);
		free(tmp);
		return fail_exit(r, &err);
	}
	if (res.notes[0])
		tool_warn("%s", res.notes);
	printf("%s: staged bundle %s channel %s version %" PRIu64 " into slot %s%s\n", burl, res.bundle, res.channel,
	       res.version, bn_slot_name(res.slot), res.resumed_chunks ? " (resumed)" : "");
	if (p.reg)
		printf("%s: %zu image(s) served by %s with their digests\n", burl, n_img, p.reg);
	free(burl);
	free(tmp);
	return 0;
}

int main(int argc, char **argv)
{
	int q = tool_start(argc, argv, usage, "agsync " AGKIT_VERSION);
	if (q >= 0)
		return q;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		tool_err("libcurl failed to initialise");
		return BN_EXIT_FAILURE;
	}
	if (!strcmp(argv[1], "publish"))
		q = cmd_publish(argc - 1, argv + 1);
	else if (!strcmp(argv[1], "pull"))
		q = cmd_pull(argc - 1, argv + 1);
	else {
		tool_err("unknown command '%s'", argv[1]);
		usage(stderr);
		q = BN_EXIT_USAGE;
	}
	curl_global_cleanup();
	return q;
}
