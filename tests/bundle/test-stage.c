/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of staging a media set one medium at a time
 * (libbundle/stage.c): media in any order each place exactly their own
 * chunks; the result says which media are still needed and completes with
 * the last; a medium taken twice adds nothing; a run killed at a volume
 * checkpoint resumes; another bundle's medium cannot join the staging, nor
 * its tree be installed as another bundle; the installed tree is the input.
 */
#include <signal.h>

#include "unit.h"

#include "bundle/parity.h"
#include "bundle/tunables.h"

static struct bn_pubkey pk;
static struct bn_seckey sk;

static int stage(const char *set, unsigned i, struct bn_media_stage_result *res, struct bn_error *err)
{
	struct bn_bundle *b = ut_open(ut_path("%s/medium-%02u", set, i), &pk, err);
	if (!b)
		return -1;
	char work[1024];
	snprintf(work, sizeof work, "%s", ut_path("work"));
	int r = bn_media_stage(b, work, res, err);
	bn_bundle_free(b);
	return r;
}

/* Chunks whose volume lies on medium i. */
static size_t chunks_on(const struct bn_manifest *m, unsigned i)
{
	size_t n = 0;
	for (size_t c = 0; c < m->n_chunks; c++)
		n += m->media->vol_medium[m->chunks[c].volume] == i;
	return n;
}

int main(void)
{
	ut_setup("stage", &pk, &sk);
	ut_random_file(ut_path("in/big"), 200000);
	ut_random_file(ut_path("in/sub/small"), 300);
	ut_write(ut_path("in/empty"), "", 0);
	struct bn_error err = {0};
	struct ut_pack_opts o = {.volume_size = 20000, .chunk_size = 8192, .parity = 1, .media = 70000};
	if (ut_pack("in", "s", &sk, &o, &err) < 0)
		ut_die(err.msg);
	o.version = 2;
	if (ut_pack("in", "s2", &sk, &o, &err) < 0)
		ut_die(err.msg);
	struct bn_bundle *set = ut_open(ut_path("s"), &pk, &err);
	if (!set)
		ut_die("open");
	const struct bn_manifest *m = set->m;
	unsigned count = m->media->count, data_media = 0;
	for (unsigned i = 1; i <= count; i++)
		data_media += chunks_on(m, i) > 0;
	printf("# %u media, %u with data\n", count, data_media);
	TAP_OK(data_media >= 3, "several data media");

	struct bn_media_stage_result res;
	TAP_OK(bn_media_stage(set, ut_path("work"), &res, &err) == -EINVAL, "staging needs a single medium (%s)",
	       err.msg);

	/* The first data medium, killed at its first volume checkpoint, then resumed. */
	unsigned first = 0;
	for (unsigned i = 1; i <= count && !first; i++)
		if (chunks_on(m, i))
			first = i;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct bn_tunables t = {.crash_at = "media:volume"};
		bn_set_tunables(&t);
		stage("s", first, &res, &err);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	TAP_OK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "a run killed at the first volume checkpoint");
	int r = stage("s", first, &res, &err);
	TAP_OK(r == 0 && res.chunks_new > 0 && res.chunks_new < chunks_on(m, first) && res.chunks_done == chunks_on(m, first),
	       "the rerun resumes after the checkpoint: %zu of %zu chunks new (%s)", res.chunks_new, chunks_on(m, first),
	       err.msg);

	/* The others from the last to the first. */
	bool each_own = true, missing_ok = true, incomplete = true;
	unsigned staged = 1;
	for (unsigned i = count; i >= 1; i--) {
		if (i == first)
			continue;
		r = stage("s", i, &res, &err);
		if (r < 0) {
			printf("# medium %u: %s\n", i, err.msg);
			each_own = false;
			break;
		}
		staged += chunks_on(m, i) > 0;
		each_own &= res.medium == i && res.count == count && res.chunks_new == chunks_on(m, i) &&
		            res.chunks_total == m->n_chunks;
		/* Still needed: every data medium not yet staged (those below i, but first). */
		char want[512] = "";
		for (unsigned j = 1; j < i; j++)
			if (j != first && chunks_on(m, j)) {
				size_t l = strlen(want);
				snprintf(want + l, sizeof want - l, "%s%u", l ? ", " : "", j);
			}
		missing_ok &= !strcmp(res.missing, want);
		if (staged < data_media)
			incomplete &= !res.complete;
	}
	TAP_OK(each_own, "each medium places exactly the chunks of its own volumes");
	TAP_OK(missing_ok, "the result names the data media still needed");
	TAP_OK(incomplete && res.complete && res.chunks_done == m->n_chunks, "complete only when every chunk is in place");
	r = stage("s", first, &res, &err);
	TAP_OK(r == 0 && res.chunks_new == 0 && res.complete, "a medium taken again adds nothing (%s)", err.msg);

	/* Another bundle's medium cannot join, nor install this tree. */
	r = stage("s2", first, &res, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "another bundle"), "a medium of another version refused (%s)", err.msg);
	struct bn_bundle *other = ut_open(ut_path("s2/medium-%02u", first), &pk, &err);
	char work[1024], target[1024];
	snprintf(work, sizeof work, "%s", ut_path("work"));
	snprintf(target, sizeof target, "%s", ut_path("t"));
	TAP_OK(other && bn_media_stage_install(other, work, target, &err) == -EBADMSG && access(target, F_OK) < 0,
	       "installing it as another bundle refused (%s)", err.msg);
	bn_media_stage_discard(other, work);
	TAP_OK(access(work, F_OK) == 0, "discard leaves another bundle's staging alone");
	bn_bundle_free(other);

	struct bn_bundle *one = ut_open(ut_path("s/medium-%02u", first), &pk, &err);
	TAP_OK(one && bn_media_stage_install(one, work, target, &err) == 0, "install (%s)", err.msg);
	char in[1024], out[1024];
	snprintf(in, sizeof in, "%s", ut_path("in"));
	snprintf(out, sizeof out, "%s", ut_path("t/data"));
	TAP_OK(ut_same_tree(in, out) && access(work, F_OK) < 0, "the installed tree is the input; the work dir is gone");
	r = stage("s", first, &res, &err);
	TAP_OK(r == 0 && !res.complete, "a new staging starts over");
	bn_media_stage_discard(one, work);
	TAP_OK(access(work, F_OK) < 0, "discard removes this bundle's staging");
	bn_bundle_free(one);
	bn_bundle_free(set);
	bn_rm_rf(W);
	return tap_done();
}
