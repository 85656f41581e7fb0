/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle/proc.h"

extern char **environ;

/* A child that has exited may leave a descendant that escaped its group
 * holding the pipes: read for at most this long after the child is reaped. */
#define AFTER_EXIT_MS 2000
#define ENV_MAX       4096

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The parent's environment with opts->env's entries replacing or added; the
 * strings are not copied. */
static char **build_env(const char *const *set)
{
	size_t n = 0, m = 0;
	while (environ && environ[n])
		n++;
	while (set && set[m])
		m++;
	if (n > ENV_MAX || m > ENV_MAX)
		return NULL;
	char **e = calloc(n + m + 1, sizeof *e);
	if (!e)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool replaced = false;
		for (size_t j = 0; j < m && !replaced; j++)
			replaced = !strncmp(set[j], environ[i], nl) && set[j][nl] == '=';
		if (!replaced)
			e[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		e[k++] = (char *)set[j];
	return e;
}

/* Only async-signal-safe calls from here on: the parent may have threads. */
static void child_fail(const char *what, const char *path)
{
	const char *why = strerror(errno); /* not listed as safe, but reads a constant table in glibc */
	(void)!write(STDERR_FILENO, what, strlen(what));
	(void)!write(STDERR_FILENO, path, strlen(path));
	(void)!write(STDERR_FILENO, ": ", 2);
	(void)!write(STDERR_FILENO, why, strlen(why));
	(void)!write(STDERR_FILENO, "\n", 1);
}

static _Noreturn void child(char *const argv[], const struct bn_proc_opts *o, char **envp, int outfd, int errfd)
{
	setpgid(0, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (outfd >= 0 && dup2(outfd, STDOUT_FILENO) < 0)
		_exit(127);
	if (errfd >= 0 && dup2(errfd, STDERR_FILENO) < 0)
		_exit(127);
	if (o->rlimit_data) {
		struct rlimit rl = {.rlim_cur = (rlim_t)o->rlimit_data, .rlim_max = (rlim_t)o->rlimit_data};
		if (setrlimit(RLIMIT_DATA, &rl) < 0)
			child_fail("cannot limit the memory of ", argv[0]);
	}
	if (o->no_core) {
		struct rlimit nocore = {0, 0};
		setrlimit(RLIMIT_CORE, &nocore);
	}
	errno = 0;
	if (o->nice && nice(o->nice) == -1 && errno)
		child_fail("cannot lower the CPU priority of ", argv[0]);
	if (o->ioprio_be > 0 && syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0,
	                                (2 /* IOPRIO_CLASS_BE */ << 13) | (o->ioprio_be & 7)) < 0)
		child_fail("cannot lower the I/O priority of ", argv[0]);
	execve(argv[0], argv, envp);
	child_fail("cannot run ", argv[0]);
	_exit(127);
}

struct stream {
	int fd;
	char *buf;
	size_t len, cap;
	bool tail, truncated;
};

/* Reads what fd has; keeps the first (or, tail, the last) cap bytes. */
static void drain(struct stream *s)
{
	char tmp[65536];
	ssize_t n = read(s->fd, tmp, sizeof tmp);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(s->fd);
		s->fd = -1;
		return;
	}
	size_t add = (size_t)n;
	const char *src = tmp;
	if (!s->tail) {
		if (s->len + add > s->cap) {
			s->truncated = true;
			add = s->cap - s->len;
		}
	} else {
		if (add > s->cap) {
			src += add - s->cap;
			add = s->cap;
		}
		if (s->len + add > s->cap) {
			size_t drop = s->len + add - s->cap;
			memmove(s->buf, s->buf + drop, s->len - drop);
			s->len -= drop;
			s->truncated = true;
		}
	}
	if (!add)
		return;
	char *nb = realloc(s->buf, s->len + add + 1);
	if (!nb)
		return; /* keep what we have; the stream is still drained */
	s->buf = nb;
	memcpy(s->buf + s->len, src, add);
	s->len += add;
	s->buf[s->len] = '\0';
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void kill_group(pid_t pid, int sig)
{
	kill(-pid, sig);
	kill(pid, sig); /* in case the child had no time to make its group yet */
}

int bn_proc_run(char *const argv[], const struct bn_proc_opts *opts, struct bn_proc_result *ret, struct bn_error *err)
{
	static const struct bn_proc_opts none = {0};
	const struct bn_proc_opts *o = opts ? opts : &none;
	if (!argv || !argv[0] || o->timeout_ms < 0 || o->term_grace_ms < 0 || o->stdout_max > BN_PROC_CAPTURE_MAX ||
	    o->stderr_max > BN_PROC_CAPTURE_MAX || (o->stdout_path && o->stdout_max))
		return bn_fail(err, -EINVAL, "bn_proc_run: invalid options");
	struct stream so = {.fd = -1, .cap = o->stdout_max}, se = {.fd = -1, .cap = o->stderr_max, .tail = true};
	int outw = -1, errw = -1, r;
	char **envp = build_env(o->env);
	if (!envp)
		return bn_fail(err, -ENOMEM, "cannot start %s: out of memory", argv[0]);
	if (o->stdout_path) {
		outw = open(o->stdout_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (outw < 0) {
			r = bn_fail(err, -errno, "%s: %s", o->stdout_path, strerror(errno));
			goto fail;
		}
	}
	int p[2];
	if (o->stdout_max) {
		if (pipe2(p, O_CLOEXEC) < 0)
			goto fail_errno;
		so.fd = p[0], outw = p[1];
	}
	if (o->stderr_max) {
		if (pipe2(p, O_CLOEXEC) < 0)
			goto fail_errno;
		se.fd = p[0], errw = p[1];
	}
	int64_t t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0)
		goto fail_errno;
	if (pid == 0)
		child(argv, o, envp, outw, errw);
	setpgid(pid, pid); /* both sides, so the group exists before either goes on */
	free(envp);
	envp = NULL;
	close_fd(&outw);
	close_fd(&errw);
	int pidfd = -1;
#ifdef SYS_pidfd_open
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
#endif
	int st = 0;
	bool reaped = false, timed_out = false, cancelled = false;
	int64_t kill_at = -1, reaped_at = 0;
	for (;;) {
		if (!reaped) {
			pid_t w = waitpid(pid, &st, WNOHANG);
			if (w == pid) {
				reaped = true;
				reaped_at = now_ms();
				/* A killed child's group gets SIGKILL too: its SIGTERM grace ended with it. */
				if (!o->keep_group || timed_out || cancelled)
					kill_group(pid, SIGKILL);
			} else if (w < 0 && errno != EINTR) {
				reaped = true; /* cannot happen for our own child; do not spin */
				reaped_at = now_ms();
			}
		}
		if (reaped && so.fd < 0 && se.fd < 0)
			break;
		int64_t now = now_ms();
		if (reaped && (o->keep_group || timed_out || cancelled || now - reaped_at >= AFTER_EXIT_MS)) {
			/* what is already in the pipes, without waiting for more */
			for (int i = 0; i < 1024 && (so.fd >= 0 || se.fd >= 0); i++) {
				struct pollfd pf[2] = {{.fd = so.fd, .events = POLLIN},
				                       {.fd = se.fd, .events = POLLIN}};
				if (poll(pf, 2, 0) <= 0)
					break;
				if (pf[0].revents)
					drain(&so);
				if (pf[1].revents)
					drain(&se);
			}
			break;
		}
		if (!reaped && !timed_out && !cancelled) {
			if (o->timeout_ms && now - t0 >= o->timeout_ms)
				timed_out = true;
			else if (o->cancellable && bn_cancelled())
				cancelled = true;
			if (timed_out || cancelled) {
				kill_group(pid, o->term_grace_ms ? SIGTERM : SIGKILL);
				kill_at = o->term_grace_ms ? now + o->term_grace_ms : -1;
			}
		}
		if (!reaped && kill_at >= 0 && now >= kill_at) {
			kill_group(pid, SIGKILL);
			kill_at = -1;
		}
		int wait_ms = 200;
		if (!reaped && o->timeout_ms && !timed_out && !cancelled && t0 + o->timeout_ms - now < wait_ms)
			wait_ms = (int)(t0 + o->timeout_ms - now);
		if (kill_at >= 0 && kill_at - now < wait_ms)
			wait_ms = (int)(kill_at - now);
		if (!reaped && pidfd < 0 && wait_ms > 20)
			wait_ms = 20;
		if (wait_ms < 0)
			wait_ms = 0;
		struct pollfd pf[3] = {{.fd = so.fd, .events = POLLIN},
		                       {.fd = se.fd, .events = POLLIN},
		                       {.fd = reaped ? -1 : pidfd, .events = POLLIN}};
		int pr = poll(pf, 3, wait_ms);
		if (pr < 0 && errno != EINTR)
			poll(NULL, 0, 20);
		if (pr > 0 && pf[0].revents)
			drain(&so);
		if (pr > 0 && pf[1].revents)
			drain(&se);
	}
	if (!reaped) /* only after waitpid failed: nothing to wait for */
		st = 0;
	close_fd(&pidfd);
	close_fd(&so.fd);
	close_fd(&se.fd);
	if (cancelled) {
		free(so.buf);
		free(se.buf);
		return bn_fail(err, -EINTR, "interrupted");
	}
	if (!so.buf)
		so.buf = calloc(1, 1);
	if (!se.buf)
		se.buf = calloc(1, 1);
	if (!so.buf || !se.buf) {
		free(so.buf);
		free(se.buf);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	*ret = (struct bn_proc_result){.status = st,
	                               .timed_out = timed_out,
	                               .out = so.buf,
	                               .out_len = so.len,
	                               .out_truncated = so.truncated,
	                               .err = se.buf,
	                               .err_len = se.len,
	                               .elapsed_s = (double)(now_ms() - t0) / 1000.0};
	return 0;

fail_errno:
	r = bn_fail(err, -errno, "cannot start %s: %s", argv[0], strerror(errno));
fail:
	free(envp);
	close_fd(&outw);
	close_fd(&errw);
	close_fd(&so.fd);
	close_fd(&se.fd);
	return r;
}

void bn_proc_result_release(struct bn_proc_result *r)
{
	if (!r)
		return;
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
	r->out_len = r->err_len = 0;
}

void bn_proc_status_text(int status, char *out, size_t outlen)
{
	if (WIFEXITED(status))
		snprintf(out, outlen, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, outlen, "signal %d", WTERMSIG(status));
	else
		snprintf(out, outlen, "status %d", status);
}
