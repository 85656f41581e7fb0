/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Internal to libbundle: a deployment root (bundle/deploy.h) as the modules
 * of the clean-zone import path share it: slots.c (slot names, state.json,
 * config.json, open and init), deploy.c (the audit record of each operation,
 * recovery, import, promote, rollback, channel and trust updates), policy.c
 * (what an import is checked against before anything is written), hook.c
 * (the switch hook).
 */
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "bundle/deploy.h"
#include "bundle/manifest.h"
#include "bundle/trust.h"

struct bn_deploy {
	char *root;
	int lockfd;
	bool readonly; /* bn_deploy_open_ro(): a snapshot, never written */
	struct bn_trust_policy trust;
	/* config */
	int64_t window_s;
	char *hook; /* absolute path or NULL */
	int hook_timeout_s;
	int64_t max_skew_s; /* how far in the future "created" may be */
	/* state */
	char channel[BN_MAX_NAME + 1]; /* the channel this root follows; "" until pinned */
	int active, previous;          /* slot index or -1 */
	int64_t window_until;          /* 0 when validated */
	struct bn_slot slots[2];
	json_t *floors;        /* channel -> last accepted version */
	json_t *pending;       /* interrupted operation or NULL */
	json_t *audit_pending; /* audit record to append or NULL */
	struct bn_audit_head head;
	uint64_t generation;
};

/* ---- slots.c --------------------------------------------------------- */

extern const char *const bn_slot_names[2];       /* "blue", "green" */
extern const char *const bn_slot_state_names[6]; /* by enum bn_slot_state */
/* root/rel, allocated; NULL when out of memory. */
char *bn_deploy_rpath(const struct bn_deploy *d, const char *rel);
json_t *bn_slot_json(const struct bn_slot *s);
/* state.json: written atomically (refused on a read-only open), read back
 * strictly; config.json read once at open. */
int bn_slots_save(struct bn_deploy *d, struct bn_error *err);
int bn_slots_load(struct bn_deploy *d, struct bn_error *err);
int bn_slots_load_config(struct bn_deploy *d, struct bn_error *err);

/* ---- deploy.c -------------------------------------------------------- */

/* Saves the state with the event attached, then appends it to the audit
 * log and records the new chain head. */
int bn_deploy_commit(struct bn_deploy *d, const struct bn_audit_event *ev, struct bn_error *err);
/* Finishes or undoes the operation state.json records as pending (at open,
 * under the lock). */
int bn_deploy_recover(struct bn_deploy *d, struct bn_error *err);

/* ---- policy.c -------------------------------------------------------- */

/* Channel channel's anti-rollback floor (the last promoted version); *has:
 * whether one is recorded. */
uint64_t bn_policy_floor(const struct bn_deploy *d, const char *channel, bool *has);
/* The checks of the signed manifest m (of bundle directory dir) against the
 * root and its trust policy, in the order a refusal names them: followed
 * channel, accepted channel and name, a staged version not replaced by an
 * older one, max_version_jump, clock skew, anti-rollback floor and minimum
 * version, max_age_days.  *ret_downgrade (on success): the import is a
 * downgrade the options allowed.  -ESTALE with a one-line error otherwise. */
int bn_policy_check_import(const struct bn_deploy *d, const struct bn_manifest *m, const char *dir,
                           const struct bn_import_opts *o, bool *ret_downgrade, struct bn_error *err);
/* The idle slot may be written: it does not hold the rollback target of an
 * open validation window (unless o->force). */
int bn_policy_check_slot(const struct bn_deploy *d, int slot, const struct bn_import_opts *o, struct bn_error *err);

/* ---- hook.c ---------------------------------------------------------- */

/* Runs the switch hook (config "hook") for action ("promote", "rollback") on
 * slot through bn_proc_run, with the root's timeout; 0 when none is
 * configured.  -ETIMEDOUT or -ECANCELED with a one-line error when it times
 * out or fails. */
int bn_hook_run(const struct bn_deploy *d, const char *action, int slot, struct bn_error *err);
