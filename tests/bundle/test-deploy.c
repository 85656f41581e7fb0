/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the deployment root (libbundle/deploy.c) through its API:
 * the slot states through import, promote, a second import, promote,
 * rollback and mark-good (docs/OPERATIONS.md); the lock (a second open
 * fails fast, the lock-free read-only view works beside it and writes
 * nothing); the anti-rollback floor, the staged-slot rule, the rollback
 * target inside its window, the followed channel and the policy's expiry;
 * and the audit chain of all of it.
 */
#include <time.h>

#include "unit.h"

#include "bundle/deploy.h"
#include "bundle/trust.h"

static struct bn_pubkey pk;
static struct bn_seckey sk;

/* W/bVERSION of channel ch, created at `created` (NULL: the default). */
static const char *bundle(uint64_t version, const char *ch, const char *created)
{
	struct bn_error err = {0};
	char out[64];
	snprintf(out, sizeof out, "b%" PRIu64 "-%s%s", version, ch, created ? "-dated" : "");
	bn_rm_rf(ut_path("%s", out));
	struct ut_pack_opts o = {.version = version, .channel = ch, .created = created};
	if (ut_pack("in", out, &sk, &o, &err) < 0)
		ut_die(err.msg);
	return ut_path("%s", out);
}

static int import(struct bn_deploy *d, uint64_t version, const char *ch, struct bn_import_opts *o,
                  struct bn_import_result *res, struct bn_error *err)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", bundle(version, ch, NULL));
	return bn_deploy_import(d, dir, o, res, err);
}

static bool states(const struct bn_deploy *d, enum bn_slot_state blue, enum bn_slot_state green)
{
	return bn_deploy_slot(d, 0)->state == blue && bn_deploy_slot(d, 1)->state == green;
}

static void test_lock(const char *root)
{
	struct bn_error err = {0};
	struct bn_deploy *d = NULL, *d2 = NULL, *ro = NULL;
	if (bn_deploy_open(root, false, &d, &err) < 0)
		ut_die(err.msg);
	TAP_OK(bn_deploy_open(root, false, &d2, &err) == -EAGAIN && !d2, "a second open while locked: -EAGAIN (%s)",
	       err.msg);
	TAP_OK(bn_deploy_open_ro(root, &ro, &err) == 0 && bn_deploy_active(ro) == bn_deploy_active(d),
	       "the read-only view opens beside the lock (%s)", err.msg);
	if (ro) {
		TAP_OK(bn_deploy_mark_good(ro, &err) == -EPERM,
		       "the read-only view writes nothing");
		struct bn_audit_event ev = {.action = "test", .result = "ok"};
		TAP_OK(bn_deploy_audit(ro, &ev, &err) == -EPERM, "nor appends to the audit log (%s)", err.msg);
		uint64_t lines = 0;
		TAP_OK(bn_deploy_audit_verify(ro, &lines, &err) == 0 && lines >= 1, "but verifies the audit chain (%s)",
		       err.msg);
	}
	bn_deploy_close(ro);
	bn_deploy_close(d);
	TAP_OK(bn_deploy_open(root, false, &d2, &err) == 0, "after close the lock is free again (%s)", err.msg);
	bn_deploy_close(d2);
}

static void test_cycle(const char *root)
{
	struct bn_error err = {0};
	struct bn_deploy *d = NULL;
	struct bn_import_result res;
	if (bn_deploy_open(root, false, &d, &err) < 0)
		ut_die(err.msg);
	TAP_OK(states(d, BN_SLOT_EMPTY, BN_SLOT_EMPTY) && bn_deploy_active(d) < 0 && !bn_deploy_channel(d),
	       "a new root: both slots empty, nothing active, no channel");
	TAP_OK(bn_deploy_promote(d, &err) == -ENOENT, "promote with nothing staged refused");

	int r = import(d, 1, "c", NULL, &res, &err);
	TAP_OK(r == 0 && res.slot == 0 && states(d, BN_SLOT_STAGED, BN_SLOT_EMPTY) && bn_deploy_staged(d) == 0,
	       "import v1: staged in blue (%s)", err.msg);
	char *sp = bn_deploy_slot_path(d, 0);
	char in[1024], out[1024];
	snprintf(in, sizeof in, "%s/in", W);
	snprintf(out, sizeof out, "%s/data", sp);
	TAP_OK(ut_same_tree(in, out) && access(ut_path("R/slots/blue/" BN_SLOT_MANIFEST), F_OK) == 0,
	       "the slot holds the artifact and the signed manifest");
	free(sp);
	TAP_OK(bn_deploy_slot(d, 0)->version == 1 && !strcmp(bn_deploy_slot(d, 0)->channel, "c") &&
	               bn_deploy_channel(d) && !strcmp(bn_deploy_channel(d), "c"),
	       "the slot records the version; the root follows the channel of its first import");

	TAP_OK(bn_deploy_promote(d, &err) == 0 && bn_deploy_active(d) == 0 && states(d, BN_SLOT_ACTIVE, BN_SLOT_EMPTY) &&
	               bn_deploy_in_window(d),
	       "promote: blue active, inside the validation window (%s)", err.msg);
	char link[256];
	ssize_t ll = readlink(ut_path("R/active"), link, sizeof link - 1);
	link[ll > 0 ? ll : 0] = '\0';
	TAP_OK(ll > 0 && !strcmp(link, "slots/blue"), "R/active points at slots/blue (%s)", link);

	r = import(d, 1, "c", NULL, &res, &err);
	TAP_OK(r == -ESTALE, "the promoted version again: refused as a replay (%s)", err.msg);
	r = import(d, 1, "other", NULL, &res, &err);
	TAP_OK(r == -ESTALE && strstr(err.msg, "channel"), "another channel refused (%s)", err.msg);
	r = import(d, 2, "c", NULL, &res, &err);
	TAP_OK(r == 0 && res.slot == 1 && states(d, BN_SLOT_ACTIVE, BN_SLOT_STAGED),
	       "import v2: staged in green, never into the active slot (%s)", err.msg);
	r = import(d, 2, "c", NULL, &res, &err);
	TAP_OK(r == -ESTALE, "the staged version is not replaced by an equal one (%s)", err.msg);

	TAP_OK(bn_deploy_promote(d, &err) == 0 && bn_deploy_active(d) == 1 && bn_deploy_previous(d) == 0 &&
	               states(d, BN_SLOT_PREVIOUS, BN_SLOT_ACTIVE),
	       "promote v2: green active, blue the previous slot (%s)", err.msg);
	r = import(d, 3, "c", NULL, &res, &err);
	TAP_OK(r == -ESTALE && strstr(err.msg, "window"),
	       "import into the rollback target inside its window refused (%s)", err.msg);

	TAP_OK(bn_deploy_rollback(d, "unit test", &err) == 0 && bn_deploy_active(d) == 0 &&
	               states(d, BN_SLOT_ACTIVE, BN_SLOT_BAD) && !strcmp(bn_deploy_slot(d, 1)->reason, "unit test"),
	       "rollback: blue active again, green bad with the reason (%s)", err.msg);
	ll = readlink(ut_path("R/active"), link, sizeof link - 1);
	link[ll > 0 ? ll : 0] = '\0';
	TAP_OK(ll > 0 && !strcmp(link, "slots/blue"), "R/active points back at slots/blue");
	TAP_OK(bn_deploy_rollback(d, "again", &err) == -ENOENT, "a second rollback has no previous slot (%s)", err.msg);
	r = import(d, 2, "c", NULL, &res, &err);
	TAP_OK(r == -ESTALE, "the rolled-back v2 cannot come back: the floor rose at its promotion (%s)", err.msg);
	struct bn_import_opts down = {.allow_downgrade = true};
	r = import(d, 2, "c", &down, &res, &err);
	TAP_OK(r == 0 && res.slot == 1 && states(d, BN_SLOT_ACTIVE, BN_SLOT_STAGED),
	       "--allow-downgrade takes it (audited) into the bad slot (%s)", err.msg);
	TAP_OK(bn_deploy_mark_bad(d, -1, "no", &err) == 0 && states(d, BN_SLOT_ACTIVE, BN_SLOT_BAD),
	       "mark-bad the staged slot (%s)", err.msg);
	TAP_OK(bn_deploy_mark_good(d, &err) == 0 && !bn_deploy_in_window(d), "mark-good ends the window (%s)", err.msg);
	r = import(d, 3, "c", NULL, &res, &err);
	TAP_OK(r == 0 && res.slot == 1, "v3 imports into the idle slot (%s)", err.msg);
	uint64_t lines = 0;
	TAP_OK(bn_deploy_audit_verify(d, &lines, &err) == 0 && lines >= 12, "the audit chain verifies: %" PRIu64 " lines (%s)",
	       lines, err.msg);
	bn_deploy_close(d);

	/* Reopened: the state survives. */
	if (bn_deploy_open(root, false, &d, &err) < 0)
		ut_die(err.msg);
	TAP_OK(states(d, BN_SLOT_ACTIVE, BN_SLOT_STAGED) && bn_deploy_slot(d, 1)->version == 3 &&
	               bn_deploy_slot(d, 0)->version == 1,
	       "reopened: the same slot states and versions");
	bn_deploy_close(d);
}

static void test_expiry(void)
{
	struct bn_error err = {0};
	if (bn_deploy_init(ut_path("R2"), &pk, 1, 1, &err) < 0)
		ut_die(err.msg);
	struct bn_trust_policy p;
	if (bn_trust_load(ut_path("R2/trust.json"), &p, &err) < 0)
		ut_die(err.msg);
	p.max_age_days = 30;
	char *text = NULL;
	if (bn_trust_format(&p, &text) < 0 ||
	    bn_write_file_atomic(ut_path("R2/trust.json"), text, strlen(text), 0644, &err) < 0)
		ut_die("trust.json");
	free(text);
	struct bn_deploy *d = NULL;
	if (bn_deploy_open(ut_path("R2"), false, &d, &err) < 0)
		ut_die(err.msg);
	time_t now = time(NULL), old = now - 40 * 86400, fresh = now - 86400;
	char told[32], tfresh[32], dir[1024];
	strftime(told, sizeof told, "%Y-%m-%dT%H:%M:%SZ", gmtime(&old));
	strftime(tfresh, sizeof tfresh, "%Y-%m-%dT%H:%M:%SZ", gmtime(&fresh));
	struct bn_import_result res;
	snprintf(dir, sizeof dir, "%s", bundle(1, "c", told));
	int r = bn_deploy_import(d, dir, NULL, &res, &err);
	TAP_OK(r == -ESTALE && strstr(err.msg, "expired"), "a bundle older than max_bundle_age_days refused (%s)", err.msg);
	snprintf(dir, sizeof dir, "%s", bundle(1, "c", tfresh));
	r = bn_deploy_import(d, dir, NULL, &res, &err);
	TAP_OK(r == 0, "a day-old bundle imports (%s)", err.msg);
	bn_deploy_close(d);
}

int main(void)
{
	ut_setup("deploy", &pk, &sk);
	ut_random_file(ut_path("in/f"), 30000);
	ut_random_file(ut_path("in/sub/g"), 100);
	struct bn_error err = {0};
	char root[1024];
	snprintf(root, sizeof root, "%s", ut_path("R"));
	TAP_OK(bn_deploy_init(root, &pk, 1, 2, &err) == -EINVAL, "threshold above the key count refused (%s)", err.msg);
	TAP_OK(bn_deploy_init(root, &pk, 1, 1, &err) == 0, "init (%s)", err.msg);
	TAP_OK(bn_deploy_init(root, &pk, 1, 1, &err) == -EEXIST, "a second init refused (%s)", err.msg);
	struct bn_deploy *d = NULL;
	TAP_OK(bn_deploy_open(ut_path("nowhere"), false, &d, &err) == -ENOENT, "a directory without trust.json refused");
	test_cycle(root);
	test_lock(root);
	test_expiry();
	bn_rm_rf(W);
	return tap_done();
}
