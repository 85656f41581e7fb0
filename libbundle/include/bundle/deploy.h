/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * A deployment root R: two slots (blue, green), the active one named by the
 * symlink R/active (switched by an atomic rename), a state file written
 * atomically, an exclusive lock, the trust policy, and the audit log.
 *
 *   R/trust.json  R/state.json  R/config.json  R/audit.log  R/lock
 *   R/active -> slots/blue      R/slots/{blue,green}/NAME/...
 *   R/staging/{blue,green}      resumable import work directories
 *
 * Every operation that changes more than one thing first records its intent
 * in the state file ("pending"); opening the deployment (under the lock)
 * finishes or undoes an interrupted operation, so a kill -9 at any point
 * leaves the active slot intact and a re-run completes.  The active slot's
 * directory is never written by an import.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "bundle/audit.h"
#include "bundle/bundle.h"
#include "bundle/error.h"
#include "bundle/trust.h"

#define BN_DEFAULT_ROOT "/var/lib/agkit"
#define BN_DEFAULT_WINDOW_S (24 * 3600)
#define BN_SLOT_MANIFEST ".agkit-manifest.json" /* copy of the signed manifest in each staged slot */
#define BN_DEFAULT_MAX_SKEW_S 86400 /* config max_clock_skew_s: "created" at most this far in the future */

enum bn_slot_state { BN_SLOT_EMPTY, BN_SLOT_IMPORTING, BN_SLOT_STAGED, BN_SLOT_ACTIVE, BN_SLOT_PREVIOUS, BN_SLOT_BAD };

struct bn_slot {
	enum bn_slot_state state;
	bool has_bundle;
	char bundle[BN_MAX_NAME + 1], channel[BN_MAX_NAME + 1];
	uint64_t version;
	char manifest_sha256[BN_SHA256_HEX];
	int64_t staged_at, promoted_at;
	char reason[256];        /* why it is bad */
};

struct bn_deploy; /* an open, locked deployment root */

/* Creates R with its trust policy (serial 1). Refuses an existing R/trust.json. */
int bn_deploy_init(const char *root, const struct bn_pubkey *keys, size_t n_keys, unsigned threshold,
                   struct bn_error *err) BN_WUR;
struct bn_init_opts {
	const char *channel;         /* the channel R follows from the start (NULL: its first import's) */
	long health_memory_limit_mb; /* written to config.json when > 0 */
};
int bn_deploy_init2(const char *root, const struct bn_pubkey *keys, size_t n_keys, unsigned threshold,
                    const struct bn_init_opts *o, struct bn_error *err) BN_WUR;

/* Opens and locks R (fails with -EAGAIN when another command holds the lock,
 * unless wait), then recovers any interrupted operation. */
int bn_deploy_open(const char *root, bool wait, struct bn_deploy **ret, struct bn_error *err) BN_WUR;
void bn_deploy_close(struct bn_deploy *d); /* accepts NULL; releases the lock */
/* Opens R without the lock, for reading only (status, audit verify): a
 * consistent snapshot of trust.json, config.json and state.json (each written
 * by atomic rename), with no recovery.  Works during another command and for
 * a user who can read those files.  Every call that would write fails with
 * -EPERM; bn_deploy_audit_verify() rereads the state until it is stable. */
int bn_deploy_open_ro(const char *root, struct bn_deploy **ret, struct bn_error *err) BN_WUR;

const char *bn_slot_name(int slot);         /* "blue" | "green" */
int bn_slot_index(const char *name);        /* 0, 1 or -1 */
const char *bn_slot_state_name(enum bn_slot_state s);
int bn_deploy_active(const struct bn_deploy *d);    /* slot index or -1 */
int bn_deploy_previous(const struct bn_deploy *d);  /* slot index or -1 */
int bn_deploy_staged(const struct bn_deploy *d);    /* slot index or -1 */
const struct bn_slot *bn_deploy_slot(const struct bn_deploy *d, int slot);
char *bn_deploy_slot_path(const struct bn_deploy *d, int slot); /* new string */
/* True while the active slot is inside its validation window (not yet good). */
bool bn_deploy_in_window(const struct bn_deploy *d);
int64_t bn_deploy_window_until(const struct bn_deploy *d);
const char *bn_deploy_root(const struct bn_deploy *d);
/* The trust policy's keys and threshold, for opening a bundle under it. */
struct bn_trust bn_deploy_trust(const struct bn_deploy *d);

struct bn_import_opts {
	bool allow_downgrade;   /* accept a version not above the channel's floor (audited) */
	bool force;             /* overwrite the rollback target inside its window */
	volatile sig_atomic_t *cancel;
	bn_progress_fn progress;
	void *userdata;
	/* Media set imported one medium at a time: the completed work directory
	 * of bn_media_stage(), installed instead of extracting dir. */
	const char *media_work;
	/* Only the policy checks on the bundle (floor, expiry): 0 when they
	 * pass; nothing is written but a refusal's audit record.  Per-medium
	 * staging asks this before it takes a medium. */
	bool check_only;
	/* agimport --dry-run: every check an import makes (with check_only's,
	 * the slot, the volume files and the free space), audited as
	 * "import-dry-run"; nothing else is written.  ret says what would be
	 * staged where. */
	bool dry_run;
};

struct bn_import_result {
	int slot;
	char bundle[BN_MAX_NAME + 1], channel[BN_MAX_NAME + 1];
	uint64_t version;
	size_t resumed_chunks;
	char notes[1024];        /* volumes rebuilt from parity, damaged parity volumes ("; "-separated) */
	/* dry_run: the space the slot needs and has, and what the slot holds now. */
	uint64_t need_bytes, free_bytes;
	struct bn_slot replaces;
};

/* Verifies dir under the trust policy and stages it into the idle slot. */
int bn_deploy_import(struct bn_deploy *d, const char *dir, struct bn_import_opts *o, struct bn_import_result *ret,
                     struct bn_error *err) BN_WUR;
/* The same for a bundle already opened (and so verified) by bn_bundle_open()
 * under bn_deploy_trust(d): manifest.json is not read again; the floor, the
 * expiry and the staged tree are all bound to b's verified manifest. */
int bn_deploy_import_bundle(struct bn_deploy *d, struct bn_bundle *b, struct bn_import_opts *o,
                            struct bn_import_result *ret, struct bn_error *err) BN_WUR;
/* Switches the staged slot in, runs the switch hook (undone if it fails). */
int bn_deploy_promote(struct bn_deploy *d, struct bn_error *err) BN_WUR;
/* Switches back to the previous slot; the slot left is marked bad with reason. */
int bn_deploy_rollback(struct bn_deploy *d, const char *reason, struct bn_error *err) BN_WUR;
/* Ends the validation window: the active slot is good, the previous slot may be reused. */
int bn_deploy_mark_good(struct bn_deploy *d, struct bn_error *err) BN_WUR;
/* Marks slot bad (the staged one when slot < 0); the active slot is rolled back. */
int bn_deploy_mark_bad(struct bn_deploy *d, int slot, const char *reason, struct bn_error *err) BN_WUR;
/* Accepts a new trust policy (see bn_trust_check_update). */
int bn_deploy_trust_update(struct bn_deploy *d, const char *path, const char *const *sigs, size_t n_sigs,
                           struct bn_error *err) BN_WUR;
/* The channel R follows (NULL until its first import or agctl init --channel).
 * Imports of any other channel are refused: the anti-rollback floor is per
 * channel. */
const char *bn_deploy_channel(const struct bn_deploy *d);
/* The operator's explicit, audited switch to another channel (listed by the
 * trust policy when it lists channels; refused while a bundle of another
 * channel is staged). */
int bn_deploy_channel_set(struct bn_deploy *d, const char *channel, const char *reason, struct bn_error *err) BN_WUR;
/* Checks the whole audit chain against the recorded head. */
int bn_deploy_audit_verify(struct bn_deploy *d, uint64_t *ret_lines, struct bn_error *err) BN_WUR;
/* Appends an audit record (for tools: health checks, cycle summaries). */
int bn_deploy_audit(struct bn_deploy *d, const struct bn_audit_event *ev, struct bn_error *err) BN_WUR;
/* The status object documented in docs/OPERATIONS.md (new reference). */
json_t *bn_deploy_status(const struct bn_deploy *d);
