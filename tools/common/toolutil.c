/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <limits.h>
#include <sys/wait.h>
#include <syslog.h>
#include <ctype.h>

#include <jansson.h>
#include <sodium.h>

#include "bundle/fsutil.h"
#include "bundle/proc.h"
#include "bundle/tunables.h"
#include "report.h"
#include "toolutil.h"

volatile sig_atomic_t tool_interrupted;

/* jansson 2.14's parser can crash when one of its allocations fails (seen
 * with the fault injector); the tools give it an allocator that ends the
 * process with a clear message instead.  Nothing is lost: every writer keeps
 * its output in a temporary place until a final rename. */
static void *json_alloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		static const char msg[] = ": out of memory (JSON)\n";
		if (write(STDERR_FILENO, tool_name, strlen(tool_name)) < 0 || write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
			/* nothing more to say */
		}
		_exit(BN_EXIT_FAILURE);
	}
	return p;
}

/* Defined only by the test suite's LD_PRELOAD fault injector. */
extern void agkit_fault_arm(void) __attribute__((weak));

int tool_start(int argc, char **argv, void (*usage)(FILE *), const char *version_line)
{
	if (argc < 2) {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		printf("%s\n", version_line);
		return 0;
	}
	return tool_init() < 0 ? BN_EXIT_FAILURE : -1;
}

int tool_init(void)
{
	if (bn_crypto_init() < 0) {
		tool_err("cannot initialise libsodium and OpenSSL (out of memory?)");
		return -1;
	}
	json_set_alloc_funcs(json_alloc, free);
	/* libbundle reads no environment: the tools pass these in. */
	const char *nospace = getenv("AGKIT_SKIP_SPACE_CHECK"), *sde = getenv("SOURCE_DATE_EPOCH"),
	           *repair = getenv("AGKIT_REPAIR_DIR"), *cpb = getenv("AGKIT_CHECKPOINT_BYTES");
	if (!repair || !*repair)
		repair = getenv("TMPDIR");
	bn_set_tunables(&(struct bn_tunables){
		.skip_space_check = nospace && !strcmp(nospace, "1"),
		.has_sign_time = sde != NULL,
		.sign_time = sde ? strtoll(sde, NULL, 10) : 0,
		.repair_dir = repair, /* the environment outlives the tool's work */
		.checkpoint_bytes = cpb ? strtoull(cpb, NULL, 10) : 0,
		.crash_at = getenv("AGKIT_CRASH_AT"),
	});
	if (agkit_fault_arm)
		agkit_fault_arm();
	return 0;
}

void tool_err(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", tool_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	char line[2048];
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	tool_log(LOG_ERR, "%s", line); /* report.h: syslog off a terminal */
}

void tool_warn(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: warning: ", tool_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	char line[2048];
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	tool_log(LOG_WARNING, "warning: %s", line);
}

int tool_fail(int r, const struct bn_error *err)
{
	tool_progress_end();
	tool_err("%s", err && err->msg[0] ? err->msg : strerror(-r));
	return bn_exit_code(r);
}

static void on_signal(int sig)
{
	(void)sig;
	tool_interrupted = 1;
}

void tool_catch_signals(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	bn_set_cancel_flag(&tool_interrupted); /* libbundle's long loops stop too */
}

static char *read_line_tty(const char *prompt)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct termios old, noecho;
	bool restore = tcgetattr(fd, &old) == 0;
	if (restore) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &noecho);
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		/* the prompt is a courtesy */
	}
	char *buf = sodium_malloc(1024);
	size_t n = 0;
	if (buf) {
		char c;
		while (n < 1023 && read(fd, &c, 1) == 1 && c != '\n')
			buf[n++] = c;
		buf[n] = '\0';
	}
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* ignore */
	}
	close(fd);
	return buf;
}

int tool_passphrase(const char *prompt, bool confirm, char **ret, struct bn_error *err)
{
	if (sodium_init() < 0)
		return bn_fail(err, -EIO, "libsodium failed to initialise");
	const char *file = getenv("AGKIT_PASSPHRASE_FILE");
	if (file && *file) {
		char *buf = NULL;
		size_t len = 0;
		int r = bn_read_file(file, 4096, &buf, &len, err);
		if (r < 0)
			return r;
		char *nl = strchr(buf, '\n');
		if (nl)
			*nl = '\0';
		char *p = sodium_malloc(strlen(buf) + 1);
		if (p)
			memcpy(p, buf, strlen(buf) + 1);
		sodium_memzero(buf, len);
		free(buf);
		if (!p)
			return bn_fail(err, -ENOMEM, "out of memory");
		if (!*p) {
			sodium_free(p);
			return bn_fail(err, -EINVAL, "%s: empty passphrase", file);
		}
		*ret = p;
		return 0;
	}
	char *a = read_line_tty(prompt);
	if (!a)
		return bn_fail(err, -EINVAL, "no terminal to ask for a passphrase; set AGKIT_PASSPHRASE_FILE");
	if (!*a) {
		sodium_free(a);
		return bn_fail(err, -EINVAL, "empty passphrase");
	}
	if (confirm) {
		char *b = read_line_tty("Passphrase (again): ");
		bool same = b && strcmp(a, b) == 0;
		if (b)
			sodium_free(b);
		if (!same) {
			sodium_free(a);
			return bn_fail(err, -EINVAL, "passphrases do not match");
		}
	}
	*ret = a;
	return 0;
}

void tool_passphrase_free(char *p)
{
	if (p)
		sodium_free(p);
}

int tool_load_seckey(const char *path, struct bn_seckey *ret, struct bn_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int r = bn_read_file(path, BN_KEYFILE_MAX, &text, &len, err);
	if (r < 0)
		return r;
	bool enc = false;
	char *pass = NULL;
	r = bn_seckey_needs_passphrase(text, len, &enc);
	if (r < 0)
		r = bn_fail(err, r, "%s: not a minisign secret key", path);
	if (r == 0 && enc)
		r = tool_passphrase("Passphrase: ", false, &pass, err);
	if (r == 0) {
		r = bn_seckey_parse(text, len, pass, ret, err);
		if (r < 0)
			bn_error_prefix(err, "%s", path);
	}
	tool_passphrase_free(pass);
	sodium_memzero(text, len);
	free(text);
	return r;
}

static bool progress_shown;

void tool_progress(void *label, uint64_t done, uint64_t total)
{
	static struct timespec start, last;
	if (tool_quiet)
		return;
	if (!isatty(STDERR_FILENO)) {
		tool_progress_lines(label, done, total); /* report.h */
		return;
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!progress_shown) {
		start = now;
		last = (struct timespec){0};
	}
	double since = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
	if (progress_shown && since < 0.2 && done != total)
		return;
	last = now;
	double el = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
	double rate = el > 0 ? (double)done / el : 0;
	double eta = rate > 0 ? (double)(total - done) / rate : 0;
	fprintf(stderr, "\r%s: %s %6.1f%% %8.1f MiB  %7.1f MiB/s  ETA %4.0fs ", tool_name, (const char *)label,
	        total ? 100.0 * (double)done / (double)total : 100.0, (double)done / 1048576.0, rate / 1048576.0, eta);
	progress_shown = true;
}

void tool_progress_end(void)
{
	if (progress_shown)
		fputc('\n', stderr);
	progress_shown = false;
}

char *tool_find_program(const char *name)
{
	char env[64], self[PATH_MAX], *p = NULL;
	size_t i;
	for (i = 0; name[i] && i < 40; i++)
		env[6 + i] = (char)toupper((unsigned char)name[i]);
	memcpy(env, "AGKIT_", 6);
	env[6 + i] = '\0';
	const char *e = getenv(env);
	if (e && *e) {
		/* A relative name would be looked up in the working directory. */
		if (e[0] != '/') {
			errno = EINVAL;
			return NULL;
		}
		return strdup(e);
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			if (asprintf(&p, "%s/%s", self, name) >= 0 && access(p, X_OK) == 0)
				return p;
			free(p);
			p = NULL;
			if (asprintf(&p, "%s/../%s/%s", self, name, name) >= 0 && access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	/* Never execl(name): that would run NAME from the working directory. */
	errno = ENOENT;
	return NULL;
}

void tool_find_program_error(const char *name, char *out, size_t outlen)
{
	char env[64];
	size_t i;
	for (i = 0; name[i] && i < 40; i++)
		env[6 + i] = (char)toupper((unsigned char)name[i]);
	memcpy(env, "AGKIT_", 6);
	env[6 + i] = '\0';
	if (errno == EINVAL)
		snprintf(out, outlen, "%s=%s is not an absolute path; refusing to look %s up in the working directory",
		         env, getenv(env), name);
	else if (errno == ENOMEM)
		snprintf(out, outlen, "out of memory");
	else
		snprintf(out, outlen,
		         "cannot find %s beside this program; install it there or set %s to its absolute path", name,
		         env);
}

int tool_run(char *const argv[], const char *out_path)
{
	/* No timeout (a recording takes as long as the model needs); the run
	 * stops with the tool on SIGINT/SIGTERM (tool_interrupted, through
	 * bn_cancelled()), and its whole process group ends with it. */
	struct bn_proc_opts o = {.stdout_path = out_path, .cancellable = true};
	struct bn_proc_result res = {0};
	int r = bn_proc_run(argv, &o, &res, NULL);
	if (r < 0)
		return r;
	bn_proc_result_release(&res);
	return WIFEXITED(res.status) ? WEXITSTATUS(res.status) : 128 + WTERMSIG(res.status);
}
