/* SPDX-License-Identifier: Apache-2.0 */
/* bn_proc_run: exit and signal reporting, output capture limits, timeouts
 * that kill the whole process group, rlimits, priorities, environment. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tap.h"
#include "bundle/proc.h"

static char tmpdir[] = "/tmp/test-proc-XXXXXX";

static int sh(const char *script, const struct bn_proc_opts *o, struct bn_proc_result *res)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	struct bn_error e = {0};
	int r = bn_proc_run(argv, o, res, &e);
	if (r < 0)
		printf("# bn_proc_run: %s\n", e.msg);
	return r;
}

/* True when pid is gone (or only a zombie waiting for init): waits up to 3 s. */
static bool gone(pid_t pid)
{
	for (int i = 0; i < 60; i++) {
		char p[64], buf[512];
		snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
		FILE *f = fopen(p, "r");
		if (!f)
			return true;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			return true;
		usleep(50000);
	}
	return false;
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return (pid_t)pid;
}

/* The pid in pidfile is gone; kills it either way and removes pidfile. */
static bool pid_gone(const char *pidfile)
{
	pid_t pid = read_pid(pidfile);
	bool g = pid > 0 && gone(pid);
	if (pid > 0)
		kill(pid, SIGKILL);
	unlink(pidfile);
	return g;
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		printf("1..0 # SKIP cannot make a temp dir\n");
		return 77;
	}
	char pidfile[128], outfile[128], script[512];
	snprintf(pidfile, sizeof pidfile, "%s/pid", tmpdir);
	snprintf(outfile, sizeof outfile, "%s/out", tmpdir);
	struct bn_proc_result res = {0};
	int r;

	/* exit status and signals */
	r = sh("exit 3", NULL, &res);
	TAP_OK(r == 0 && WIFEXITED(res.status) && WEXITSTATUS(res.status) == 3 && !res.timed_out,
	       "exit status 3 reported");
	TAP_OK(r == 0 && res.out && res.out_len == 0 && res.err && res.err_len == 0,
	       "nothing captured gives empty strings");
	bn_proc_result_release(&res);
	r = sh("kill -SEGV $$", NULL, &res);
	TAP_OK(r == 0 && WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGSEGV, "death by SIGSEGV reported");
	char txt[32];
	bn_proc_status_text(res.status, txt, sizeof txt);
	TAP_OK(!strcmp(txt, "signal 11"), "status text '%s'", txt);
	bn_proc_result_release(&res);

	/* a program that cannot be run */
	char *bad[] = {"/nonexistent/prog", NULL};
	struct bn_proc_opts cap = {.stdout_max = 4096, .stderr_max = 4096};
	r = bn_proc_run(bad, &cap, &res, NULL);
	TAP_OK(r == 0 && WIFEXITED(res.status) && WEXITSTATUS(res.status) == 127 &&
	           strstr(res.err, "cannot run /nonexistent/prog: No such file"),
	       "exec failure: exit 127 and a reason on stderr (%s)", res.err ? res.err : "");
	bn_proc_result_release(&res);
	char *rel[] = {"sh", "-c", "exit 0", NULL};
	r = bn_proc_run(rel, &cap, &res, NULL);
	TAP_OK(r == 0 && WEXITSTATUS(res.status) == 127, "argv[0] is never looked up in PATH");
	bn_proc_result_release(&res);

	/* capture bounds: stdout keeps its head, stderr its tail */
	struct bn_proc_opts small = {.stdout_max = 1000, .stderr_max = 100};
	r = sh("i=0; while [ $i -lt 3000 ]; do printf 'a%04d\\n' $i; i=$((i+1)); done; seq 1 10000 >&2", &small, &res);
	TAP_OK(r == 0 && res.out_len == 1000 && res.out_truncated && !strncmp(res.out, "a0000\na0001\n", 12) &&
	           strlen(res.out) == 1000,
	       "stdout capped at 1000 bytes, first bytes kept (%zu)", res.out_len);
	TAP_OK(r == 0 && res.err_len == 100 && strlen(res.err) == 100 && res.err_len >= 6 &&
	           !strcmp(res.err + res.err_len - 12, "\n9999\n10000\n"),
	       "stderr capped at 100 bytes, last bytes kept");
	TAP_OK(r == 0 && WEXITSTATUS(res.status) == 0, "a child whose output is dropped still runs to its end");
	bn_proc_result_release(&res);
	r = sh("printf exact", &(struct bn_proc_opts){.stdout_max = 5}, &res);
	TAP_OK(r == 0 && res.out_len == 5 && !res.out_truncated && !strcmp(res.out, "exact"),
	       "output of exactly the cap is not truncated");
	bn_proc_result_release(&res);

	/* stdout to a file */
	r = sh("echo to-file", &(struct bn_proc_opts){.stdout_path = outfile}, &res);
	FILE *f = fopen(outfile, "r");
	char line[64] = "";
	if (f) {
		if (!fgets(line, sizeof line, f))
			line[0] = '\0';
		fclose(f);
	}
	TAP_OK(r == 0 && !strcmp(line, "to-file\n"), "stdout_path receives stdout");
	bn_proc_result_release(&res);
	r = sh("true", &(struct bn_proc_opts){.stdout_path = "/nonexistent/dir/out"}, &res);
	TAP_OK(r == -ENOENT, "unwritable stdout_path fails before the start (%d)", r);

	/* timeout: the child and what it started are killed */
	snprintf(script, sizeof script, "sleep 60 & echo $! > %s; sleep 60", pidfile);
	struct bn_proc_opts to = {.timeout_ms = 500, .stderr_max = 4096};
	r = sh(script, &to, &res);
	TAP_OK(r == 0 && res.timed_out && WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGKILL,
	       "timeout reported, child killed by SIGKILL");
	TAP_OK(res.elapsed_s >= 0.45 && res.elapsed_s < 10, "returned after the timeout (%.2f s)", res.elapsed_s);
	TAP_OK(pid_gone(pidfile), "the grandchild died with the group on timeout");
	bn_proc_result_release(&res);

	/* a grandchild holding the captured stdout does not keep the run going */
	snprintf(script, sizeof script, "sleep 60 & echo $! > %s; echo done", pidfile);
	r = sh(script, &(struct bn_proc_opts){.stdout_max = 4096}, &res);
	TAP_OK(r == 0 && WEXITSTATUS(res.status) == 0 && !strcmp(res.out, "done\n") && res.elapsed_s < 10,
	       "child exits, leftover holding the pipe is killed (%.2f s)", res.elapsed_s);
	TAP_OK(pid_gone(pidfile), "nothing the child started outlives it");
	bn_proc_result_release(&res);

	/* keep_group leaves it running */
	snprintf(script, sizeof script, "sleep 60 >/dev/null 2>&1 & echo $! > %s", pidfile);
	r = sh(script, &(struct bn_proc_opts){.keep_group = true}, &res);
	pid_t gc = read_pid(pidfile);
	TAP_OK(r == 0 && gc > 0 && kill(gc, 0) == 0, "keep_group: a background child may outlive it");
	if (gc > 0)
		kill(gc, SIGKILL);
	bn_proc_result_release(&res);

	/* SIGTERM first when a grace period is given */
	struct bn_proc_opts grace = {.timeout_ms = 300, .term_grace_ms = 5000, .stderr_max = 4096};
	r = sh("trap 'echo got-term >&2; exit 9' TERM; while :; do sleep 0.1; done", &grace, &res);
	TAP_OK(r == 0 && res.timed_out && WIFEXITED(res.status) && WEXITSTATUS(res.status) == 9 &&
	           strstr(res.err, "got-term"),
	       "term_grace_ms: SIGTERM first, the child may clean up");
	bn_proc_result_release(&res);
	grace.term_grace_ms = 300;
	r = sh("trap '' TERM; while :; do sleep 0.1; done", &grace, &res);
	TAP_OK(r == 0 && res.timed_out && WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGKILL &&
	           res.elapsed_s < 10,
	       "term_grace_ms: SIGKILL when SIGTERM is ignored (%.2f s)", res.elapsed_s);
	bn_proc_result_release(&res);

	/* rlimits, priorities, environment */
	struct bn_proc_opts lim = {.rlimit_data = 256u << 20, .no_core = true, .stdout_max = 4096};
	r = sh("ulimit -d; ulimit -c", &lim, &res);
	TAP_OK(r == 0 && !strcmp(res.out, "262144\n0\n"), "RLIMIT_DATA and RLIMIT_CORE applied (%s)",
	       res.out ? res.out : "");
	bn_proc_result_release(&res);
	errno = 0;
	int mine = nice(0);
	r = sh("nice", &(struct bn_proc_opts){.nice = 5, .ioprio_be = 7, .stdout_max = 64, .stderr_max = 4096}, &res);
	TAP_OK(r == 0 && atoi(res.out) == (mine + 5 > 19 ? 19 : mine + 5), "niceness raised by 5 (%s)",
	       res.out ? res.out : "");
	TAP_OK(r == 0 && !strstr(res.err, "priority"), "I/O priority set without complaint");
	bn_proc_result_release(&res);
	setenv("TEST_PROC_KEEP", "kept", 1);
	setenv("TEST_PROC_OVER", "old", 1);
	const char *env[] = {"TEST_PROC_OVER=new", "TEST_PROC_ADD=added", NULL};
	r = sh("echo \"$TEST_PROC_KEEP $TEST_PROC_OVER $TEST_PROC_ADD\"",
	       &(struct bn_proc_opts){.env = env, .stdout_max = 64}, &res);
	TAP_OK(r == 0 && !strcmp(res.out, "kept new added\n"), "environment inherited, replaced and added (%s)",
	       res.out ? res.out : "");
	bn_proc_result_release(&res);
	TAP_OK(getenv("TEST_PROC_ADD") == NULL && !strcmp(getenv("TEST_PROC_OVER"), "old"),
	       "caller's environment untouched");

	/* cancellation and bad options */
	static volatile sig_atomic_t stop = 1;
	bn_set_cancel_flag(&stop);
	struct bn_error e = {0};
	char *slp[] = {"/bin/sleep", "30", NULL};
	r = bn_proc_run(slp, &(struct bn_proc_opts){.cancellable = true}, &res, &e);
	TAP_OK(r == -EINTR && !strcmp(e.msg, "interrupted"), "cancellable run stops when cancelled");
	r = sh("exit 4", NULL, &res);
	TAP_OK(r == 0 && WEXITSTATUS(res.status) == 4, "a run that is not cancellable ignores the flag");
	bn_proc_result_release(&res);
	bn_set_cancel_flag(NULL);
	r = bn_proc_run(slp, &(struct bn_proc_opts){.stdout_max = BN_PROC_CAPTURE_MAX + 1}, &res, NULL);
	TAP_OK(r == -EINVAL, "a capture above BN_PROC_CAPTURE_MAX is refused");
	r = bn_proc_run(slp, &(struct bn_proc_opts){.timeout_ms = -1}, &res, NULL);
	TAP_OK(r == -EINVAL, "a negative timeout is refused");

	unlink(outfile);
	unlink(pidfile);
	rmdir(tmpdir);
	return tap_done();
}
