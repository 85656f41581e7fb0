/* SPDX-License-Identifier: Apache-2.0 */
/* The deployment root's switch hook (docs/OPERATIONS.md), run through the
 * one process spawner (proc.c). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bundle/proc.h"
#include "deploy_internal.h"

int bn_hook_run(const struct bn_deploy *d, const char *action, int slot, struct bn_error *err)
{
	if (!d->hook || slot < 0)
		return 0;
	char *sp = bn_deploy_slot_path(d, slot);
	if (!sp)
		return bn_fail(err, -ENOMEM, "out of memory");
	const struct bn_slot *s = &d->slots[slot];
	char ver[32];
	snprintf(ver, sizeof ver, "%" PRIu64, s->version);
	char *e_root = NULL, *e_path = NULL, e_action[64], e_slot[32], e_bundle[BN_MAX_NAME + 16],
	     e_channel[BN_MAX_NAME + 16], e_ver[64];
	if (asprintf(&e_root, "AGKIT_ROOT=%s", d->root) < 0)
		e_root = NULL;
	if (asprintf(&e_path, "AGKIT_SLOT_PATH=%s", sp) < 0)
		e_path = NULL;
	if (!e_root || !e_path) {
		free(e_root);
		free(e_path);
		free(sp);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	snprintf(e_action, sizeof e_action, "AGKIT_ACTION=%s", action);
	snprintf(e_slot, sizeof e_slot, "AGKIT_SLOT=%s", bn_slot_name(slot));
	snprintf(e_bundle, sizeof e_bundle, "AGKIT_BUNDLE=%s", s->has_bundle ? s->bundle : "");
	snprintf(e_channel, sizeof e_channel, "AGKIT_CHANNEL=%s", s->has_bundle ? s->channel : "");
	snprintf(e_ver, sizeof e_ver, "AGKIT_VERSION=%s", s->has_bundle ? ver : "");
	const char *env[] = {e_root, e_action, e_slot, e_path, e_bundle, e_channel, e_ver, NULL};
	/* The hook runs in its own process group; on timeout, and once it has
	 * exited, the whole group is killed (SIGKILL): nothing it started
	 * outlives it.  It does not inherit our lock descriptor (O_CLOEXEC). */
	struct bn_proc_opts o = {.timeout_ms = d->hook_timeout_s > INT_MAX / 1000 ? INT_MAX : d->hook_timeout_s * 1000,
	                         .env = env};
	char *argv[] = {d->hook, (char *)action, sp, NULL};
	struct bn_proc_result res = {0};
	struct bn_error pe = {0};
	int r = bn_proc_run(argv, &o, &res, &pe);
	free(sp);
	free(e_root);
	free(e_path);
	if (r < 0)
		return bn_fail(err, r, "cannot start switch hook: %s", pe.msg);
	int status = res.status;
	bool timed_out = res.timed_out;
	bn_proc_result_release(&res);
	if (timed_out)
		return bn_fail(err, -ETIMEDOUT, "switch hook %s timed out after %d s", d->hook, d->hook_timeout_s);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		return bn_fail(err, -ECANCELED, "switch hook %s failed (exit %d)", d->hook, WEXITSTATUS(status));
	return bn_fail(err, -ECANCELED, "switch hook %s killed by signal %d", d->hook, WTERMSIG(status));
}
