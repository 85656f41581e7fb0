/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle/deploy.h"
#include "bundle/media.h"
#include "bundle/fsutil.h"
#include "bundle/schema.h"
#include "fault.h"
#include "reader_internal.h"
#include "deploy_internal.h"

/* ---- audit ----------------------------------------------------------- */

static json_t *event_json(const struct bn_audit_event *ev)
{
	json_t *o = json_object();
	json_object_set_new(o, "action", json_string(ev->action));
	if (ev->slot)
		json_object_set_new(o, "slot", json_string(ev->slot));
	if (ev->bundle)
		json_object_set_new(o, "bundle", json_string(ev->bundle));
	if (ev->channel)
		json_object_set_new(o, "channel", json_string(ev->channel));
	if (ev->has_version)
		json_object_set_new(o, "version", json_integer((json_int_t)ev->version));
	json_object_set_new(o, "result", json_string(ev->result));
	if (ev->reason) {
		json_t *s = json_string(ev->reason);
		json_object_set_new(o, "reason", s ? s : json_string("(not valid UTF-8)"));
	}
	return o;
}

static int append_pending_audit(struct bn_deploy *d, struct bn_error *err)
{
	json_t *o = d->audit_pending;
	json_t *ver = json_object_get(o, "version");
	struct bn_audit_event ev = {
		.action = json_string_value(json_object_get(o, "action")),
		.slot = json_string_value(json_object_get(o, "slot")),
		.bundle = json_string_value(json_object_get(o, "bundle")),
		.channel = json_string_value(json_object_get(o, "channel")),
		.version = (uint64_t)json_integer_value(ver),
		.has_version = json_is_integer(ver),
		.result = json_string_value(json_object_get(o, "result")),
		.reason = json_string_value(json_object_get(o, "reason")),
	};
	if (!ev.action || !ev.result)
		return bn_fail(err, -EBADMSG, "state.json: malformed pending audit record");
	char *path = bn_deploy_rpath(d, "audit.log");
	if (!path)
		return bn_fail(err, -ENOMEM, "out of memory");
	struct bn_audit_head nh;
	int r = bn_audit_append(path, &d->head, &ev, &nh, err);
	free(path);
	if (r < 0)
		return r;
	bn_fault_point("audit:appended");
	d->head = nh;
	json_decref(d->audit_pending);
	d->audit_pending = NULL;
	return bn_slots_save(d, err);
}

/* Saves the state with the event attached, then appends it and records the new
 * chain head: a crash anywhere in between is finished by bn_deploy_recover(). */
int bn_deploy_commit(struct bn_deploy *d, const struct bn_audit_event *ev, struct bn_error *err)
{
	json_decref(d->audit_pending);
	d->audit_pending = event_json(ev);
	int r = bn_slots_save(d, err);
	if (r < 0)
		return r;
	bn_fault_point("commit:saved");
	return append_pending_audit(d, err);
}

int bn_deploy_audit(struct bn_deploy *d, const struct bn_audit_event *ev, struct bn_error *err)
{
	return bn_deploy_commit(d, ev, err);
}

int bn_deploy_audit_verify(struct bn_deploy *d, uint64_t *ret_lines, struct bn_error *err)
{
	char *path = bn_deploy_rpath(d, "audit.log");
	if (!path)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r;
	if (!d->readonly) {
		r = bn_audit_verify(path, &d->head, NULL, ret_lines, err);
		free(path);
		return r;
	}
	/* Without the lock a writer may commit while the log is read.  A
	 * commit saves the state (generation + 1, the record pending), appends,
	 * saves again: the snapshot is consistent when the generation is the same
	 * before and after the read, and then the log ends at the recorded head
	 * or, with a record pending, one line after it that chains to it. */
	for (int attempt = 0;; attempt++) {
		struct bn_audit_head tail;
		uint64_t lines = 0;
		r = bn_audit_verify(path, NULL, &tail, &lines, err);
		uint64_t gen = d->generation;
		struct bn_deploy *again = NULL;
		struct bn_error e2 = {0};
		int q = bn_deploy_open_ro(d->root, &again, &e2);
		if (q < 0) {
			free(path);
			*err = e2;
			return q;
		}
		bool stable = again->generation == gen;
		/* Later checks use the newer snapshot. */
		d->generation = again->generation;
		d->head = again->head;
		json_decref(d->audit_pending);
		d->audit_pending = again->audit_pending ? json_incref(again->audit_pending) : NULL;
		bn_deploy_close(again);
		if (!stable && attempt < 200) {
			/* 5..25 ms, varied so as not to keep step with a writer's loop. */
			struct timespec ts = {0, (5 + (attempt * 7919 + getpid()) % 21) * 1000 * 1000L};
			nanosleep(&ts, NULL);
			continue;
		}
		if (r == 0 && !stable)
			r = bn_fail(err, -EAGAIN, "%s: the state changed on every read (200 tries, a few seconds); try again",
			            path);
		/* One read of the log, compared with the stable snapshot's head
		 * (the same checks and messages as bn_audit_verify's). */
		if (r == 0 && d->audit_pending && lines == d->head.seq + 1 &&
		    !memcmp(tail.prev, d->head.hash, BN_SHA256_LEN))
			lines = d->head.seq; /* the pending record is being appended: not counted yet */
		else if (r == 0 && lines < d->head.seq)
			r = bn_fail(err, -EBADMSG, "%s: ends at line %" PRIu64 " but the recorded head is line %" PRIu64
			            " (lines at the end were deleted)", path, lines, d->head.seq);
		else if (r == 0 && lines > d->head.seq)
			r = bn_fail(err, -EBADMSG, "%s: has %" PRIu64 " line(s) after the recorded head, line %" PRIu64
			            " (lines were appended outside agkit)", path, lines - d->head.seq, d->head.seq);
		else if (r == 0 && memcmp(tail.hash, d->head.hash, BN_SHA256_LEN))
			r = bn_fail(err, -EBADMSG, "%s: line %" PRIu64 " (the last) differs from the recorded head (edited)",
			            path, lines);
		if (r == 0 && ret_lines)
			*ret_lines = lines;
		free(path);
		return r;
	}
}

/* ---- switching and hooks --------------------------------------------- */

/* Points R/active at slot (or removes it for -1), atomically. */
static int set_active_link(struct bn_deploy *d, int slot, struct bn_error *err)
{
	char *link = bn_deploy_rpath(d, "active"), *tmp = bn_deploy_rpath(d, "active.tmp");
	int r = 0;
	if (!link || !tmp) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	unlink(tmp);
	if (slot < 0) {
		if (unlink(link) < 0 && errno != ENOENT)
			r = bn_fail(err, -errno, "%s: %s", link, strerror(errno));
	} else {
		char target[32];
		snprintf(target, sizeof target, "slots/%s", bn_slot_names[slot]);
		if (symlink(target, tmp) < 0 || rename(tmp, link) < 0)
			r = bn_fail(err, -errno, "%s: cannot switch: %s", link, strerror(errno));
	}
	if (r == 0 && bn_fsync_dir(d->root) < 0)
		r = bn_fail(err, -EIO, "%s: cannot sync", d->root);
out:
	free(link);
	free(tmp);
	return r;
}

/* Which slot R/active points at now (-1 when none or unrecognised). */
static int read_active_link(struct bn_deploy *d)
{
	char *link = bn_deploy_rpath(d, "active"), buf[64];
	ssize_t n = link ? readlink(link, buf, sizeof buf - 1) : -1;
	free(link);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return !strcmp(buf, "slots/blue") ? 0 : !strcmp(buf, "slots/green") ? 1 : -1;
}

/* ---- recovery -------------------------------------------------------- */

static bool slot_manifest_sha(const struct bn_deploy *d, int slot, char out[BN_SHA256_HEX]);

/* Delta bundles (docs/OPERATIONS.md "Delta bundles"): the base is the slot,
 * active first, whose recorded manifest SHA-256 and manifest copy are the
 * base's.  Its files are not trusted: every reused chunk is checked against
 * the delta's signed hash as it is read (reader.c). */
static int attach_base(struct bn_deploy *d, struct bn_bundle *b, struct bn_error *err)
{
	char want[BN_SHA256_HEX], have[BN_SHA256_HEX], base[BN_ERROR_MAX / 2], holds[256] = "";
	bn_hex(b->m->base->sha256, BN_SHA256_LEN, want);
	int order[2] = {d->active >= 0 ? d->active : 0, d->active >= 0 ? 1 - d->active : 1};
	for (int k = 0; k < 2; k++) {
		const struct bn_slot *s = &d->slots[order[k]];
		if (s->has_bundle) {
			size_t l = strlen(holds);
			snprintf(holds + l, sizeof holds - l, "%s%s: %s version %" PRIu64, l ? ", " : "",
			         bn_slot_names[order[k]], s->bundle, s->version);
		}
		if (!s->has_bundle ||
		    (s->state != BN_SLOT_ACTIVE && s->state != BN_SLOT_PREVIOUS && s->state != BN_SLOT_STAGED) ||
		    strcmp(s->manifest_sha256, want) != 0 || !slot_manifest_sha(d, order[k], have) ||
		    strcmp(have, want) != 0)
			continue;
		char *sp = bn_deploy_slot_path(d, order[k]);
		int r = sp ? bn_bundle_set_base(b, sp, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(sp);
		return r;
	}
	bn_bundle_base_describe(b->m, base, sizeof base);
	return bn_fail(err, -EBADMSG,
	               "%s: delta bundle needs its base %s in the active or previous slot; this root holds %s; "
	               "nothing staged (import the base or a full bundle first)",
	               b->dir, base, holds[0] ? holds : "no bundle");
}

/* SHA-256 (hex) of the signed manifest copy in slot's tree; false when none. */
static bool slot_manifest_sha(const struct bn_deploy *d, int slot, char out[BN_SHA256_HEX])
{
	char *sp = bn_deploy_slot_path(d, slot), *mf = NULL, *buf = NULL;
	size_t len = 0;
	bool ok = sp && asprintf(&mf, "%s/%s", sp, BN_SLOT_MANIFEST) >= 0 &&
	          bn_read_file_nofollow(mf, BN_MANIFEST_MAX, &buf, &len, NULL) == 0;
	if (ok) {
		uint8_t h[BN_SHA256_LEN];
		bn_sha256(buf, len, h);
		bn_hex(h, BN_SHA256_LEN, out);
	}
	free(buf);
	free(mf);
	free(sp);
	return ok;
}

int bn_deploy_recover(struct bn_deploy *d, struct bn_error *err)
{
	int r = 0;
	char *tmp = bn_deploy_rpath(d, "active.tmp");
	if (tmp)
		unlink(tmp);
	free(tmp);
	/* 1. Audit: a line appended before the head was saved is adopted. */
	char *log = bn_deploy_rpath(d, "audit.log");
	struct bn_audit_head tail;
	struct bn_error e2 = {0};
	if (log && bn_audit_verify(log, NULL, &tail, NULL, &e2) == 0 && tail.seq == d->head.seq + 1 &&
	    !memcmp(tail.prev, d->head.hash, BN_SHA256_LEN)) {
		d->head = tail;
		json_decref(d->audit_pending);
		d->audit_pending = NULL;
		r = bn_slots_save(d, err);
	} else if (d->audit_pending) {
		r = append_pending_audit(d, err);
	}
	free(log);
	if (r < 0 || !d->pending)
		return r;

	/* 2. An interrupted operation. */
	const char *op = json_string_value(json_object_get(d->pending, "op"));
	int from = bn_slot_index(json_string_value(json_object_get(d->pending, "from")));
	int to = bn_slot_index(json_string_value(json_object_get(d->pending, "to")));
	char reason[256];
	struct bn_audit_event ev = {.action = "recover", .result = "ok", .reason = reason};
	if (op && !strcmp(op, "import") && to >= 0) {
		/* The slot's old tree is intact unless the final exchange happened:
		 * its copy of the signed manifest says which tree it holds.  The old
		 * bundle is kept (never a slot holding a bundle marked empty); the
		 * new one, complete once its manifest copy is written, is staged;
		 * anything else is empty.  The work directory stays, so re-running
		 * the import resumes. */
		struct bn_slot *s = &d->slots[to];
		char have[BN_SHA256_HEX];
		bool got = slot_manifest_sha(d, to, have);
		const char *old_state = json_string_value(json_object_get(d->pending, "old_state"));
		const char *nsha = json_string_value(json_object_get(d->pending, "sha256"));
		const char *nname = json_string_value(json_object_get(d->pending, "bundle"));
		const char *nchan = json_string_value(json_object_get(d->pending, "channel"));
		json_t *nver = json_object_get(d->pending, "version");
		int os = -1;
		for (int i = 0; old_state && i < (int)(sizeof bn_slot_state_names / sizeof *bn_slot_state_names); i++)
			if (!strcmp(old_state, bn_slot_state_names[i]))
				os = i;
		if (got && s->has_bundle && !strcmp(have, s->manifest_sha256) && os >= 0 && os != BN_SLOT_IMPORTING &&
		    os != BN_SLOT_ACTIVE) {
			s->state = (enum bn_slot_state)os;
			if (os == BN_SLOT_PREVIOUS && d->active >= 0)
				d->previous = to;
			snprintf(reason, sizeof reason, "interrupted import into %s; its bundle %.64s version %" PRIu64
			         " is intact and kept (%s)", bn_slot_names[to], s->bundle, s->version, bn_slot_state_names[os]);
		} else if (got && nsha && nname && nchan && json_is_integer(nver) && !strcmp(have, nsha) &&
		           strlen(nname) <= BN_MAX_NAME && strlen(nchan) <= BN_MAX_NAME) {
			memset(s, 0, sizeof *s);
			s->state = BN_SLOT_STAGED;
			s->has_bundle = true;
			snprintf(s->bundle, sizeof s->bundle, "%s", nname);
			snprintf(s->channel, sizeof s->channel, "%s", nchan);
			s->version = (uint64_t)json_integer_value(nver);
			snprintf(s->manifest_sha256, sizeof s->manifest_sha256, "%s", nsha);
			s->staged_at = (int64_t)time(NULL);
			if (d->previous == to)
				d->previous = -1;
			snprintf(reason, sizeof reason, "interrupted import into %s; the new bundle was complete and is staged",
			         bn_slot_names[to]);
		} else {
			memset(s, 0, sizeof *s);
			s->state = BN_SLOT_EMPTY;
			if (d->previous == to)
				d->previous = -1;
			snprintf(reason, sizeof reason,
			         "interrupted import into %s; slot marked empty, re-run the import to resume", bn_slot_names[to]);
		}
		ev.slot = bn_slot_names[to];
	} else if (op && !strcmp(op, "promote") && to >= 0) {
		/* Undo: the old active slot (from) serves again. */
		bool switched = read_active_link(d) == to;
		r = set_active_link(d, from, err);
		if (r < 0)
			return r;
		d->active = from;
		if (d->slots[to].state == BN_SLOT_ACTIVE || d->slots[to].state == BN_SLOT_STAGED)
			d->slots[to].state = BN_SLOT_STAGED;
		if (from >= 0)
			d->slots[from].state = BN_SLOT_ACTIVE;
		d->previous = json_integer_value(json_object_get(d->pending, "old_previous")) >= 0
		                      ? (int)json_integer_value(json_object_get(d->pending, "old_previous"))
		                      : -1;
		d->window_until = json_integer_value(json_object_get(d->pending, "old_window_until"));
		struct bn_error he = {0};
		if (switched && from >= 0 && bn_hook_run(d, "rollback", from, &he) < 0)
			snprintf(reason, sizeof reason, "interrupted promote of %s undone; hook for %s failed: %.150s",
			         bn_slot_names[to], bn_slot_names[from], he.msg);
		else
			snprintf(reason, sizeof reason, "interrupted promote of %s undone; %s stays active", bn_slot_names[to],
			         from >= 0 ? bn_slot_names[from] : "none");
		ev.slot = bn_slot_names[to];
	} else if (op && !strcmp(op, "rollback") && to >= 0 && from >= 0) {
		/* Finish: rolling back is the safe direction. */
		r = set_active_link(d, to, err);
		if (r < 0)
			return r;
		d->active = to;
		d->previous = -1;
		d->window_until = 0;
		d->slots[to].state = BN_SLOT_ACTIVE;
		d->slots[from].state = BN_SLOT_BAD;
		const char *why = json_string_value(json_object_get(d->pending, "reason"));
		snprintf(d->slots[from].reason, sizeof d->slots[from].reason, "%s", why ? why : "rolled back");
		struct bn_error he = {0};
		if (bn_hook_run(d, "rollback", to, &he) < 0)
			snprintf(reason, sizeof reason, "interrupted rollback to %s finished; hook failed: %.150s",
			         bn_slot_names[to], he.msg);
		else
			snprintf(reason, sizeof reason, "interrupted rollback to %s finished", bn_slot_names[to]);
		ev.slot = bn_slot_names[to];
	} else {
		snprintf(reason, sizeof reason, "unknown pending operation dropped");
	}
	json_decref(d->pending);
	d->pending = NULL;
	return bn_deploy_commit(d, &ev, err);
}

/* ---- operations ------------------------------------------------------ */

int bn_deploy_import(struct bn_deploy *d, const char *dir, struct bn_import_opts *o, struct bn_import_result *ret,
                     struct bn_error *err)
{
	struct bn_trust view = bn_trust_view(&d->trust);
	struct bn_bundle *b = NULL;
	int r = bn_bundle_open(dir, &view, &b, err);
	if (r < 0) {
		char why[BN_ERROR_MAX];
		snprintf(why, sizeof why, "%s", err ? err->msg : "verification failed");
		struct bn_audit_event ev = {.action = o && o->dry_run ? "import-dry-run" : "import", .result = "refused",
		                            .reason = why};
		struct bn_error e2 = {0};
		(void)bn_deploy_commit(d, &ev, &e2);
		return r;
	}
	r = bn_deploy_import_bundle(d, b, o, ret, err);
	bn_bundle_free(b);
	return r;
}

/* ---- import: policy, base, idle slot, then dry run or stage ---------- */

static void import_ids(struct bn_import_result *ret, const struct bn_manifest *m, int slot)
{
	ret->slot = slot;
	snprintf(ret->bundle, sizeof ret->bundle, "%s", m->name);
	snprintf(ret->channel, sizeof ret->channel, "%s", m->channel);
	ret->version = m->version;
}

/* --dry-run: the files and the free space an import would need, nothing
 * written but the audit record. */
static int import_dry_run(struct bn_deploy *d, struct bn_bundle *b, int slot, struct bn_import_result *ret,
                          struct bn_error *err)
{
	uint64_t need = 0, have = 0;
	char *slots = bn_deploy_rpath(d, "slots");
	int r = slots ? bn_check_files(b, err) : bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0)
		r = bn_bundle_check_space(b, slots, &need, &have, err);
	free(slots);
	if (r < 0)
		return r;
	if (ret) {
		memset(ret, 0, sizeof *ret);
		import_ids(ret, b->m, slot);
		ret->need_bytes = need;
		ret->free_bytes = have;
		ret->replaces = d->slots[slot];
	}
	return 0;
}

/* Intent first, then the slot's content: the extracted tree and the signed
 * manifest beside it.  On failure the slot's record is what recovery and a
 * re-run expect. */
static int import_stage(struct bn_deploy *d, struct bn_bundle *b, const struct bn_import_opts *o, int slot,
                        size_t *ret_resumed, struct bn_error *err)
{
	const struct bn_manifest *m = b->m;
	struct bn_slot old = d->slots[slot];
	json_decref(d->pending);
	/* old_state: recovery keeps the slot's old bundle when its tree is
	 * still there; sha256: or recognises the new one, complete. */
	char new_sha[BN_SHA256_HEX];
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, new_sha);
	d->pending = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "op", "import", "to", bn_slot_names[slot], "old_state",
	                       bn_slot_state_names[old.state], "sha256", new_sha, "bundle", m->name, "channel", m->channel,
	                       "version", (json_int_t)m->version);
	d->slots[slot].state = BN_SLOT_IMPORTING;
	if (d->previous == slot)
		d->previous = -1;
	int r = bn_slots_save(d, err);
	if (r < 0)
		return r;
	bn_fault_point("import:intent");
	char *target = bn_deploy_slot_path(d, slot), *work = NULL;
	if (!target || asprintf(&work, "%s/staging/%s", d->root, bn_slot_names[slot]) < 0) {
		free(target);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	struct bn_extract_opts xo = {.cancel = o->cancel, .progress = o->progress, .userdata = o->userdata,
	                             .work_dir = work, .replace = true};
	r = o->media_work ? bn_media_stage_install(b, o->media_work, target, err) : bn_bundle_extract(b, target, &xo, err);
	free(target);
	free(work);
	if (r < 0) {
		/* Extraction failures leave the slot's old tree in place. */
		d->slots[slot] = old;
		if (old.state == BN_SLOT_PREVIOUS && d->active >= 0)
			d->previous = slot;
		return r;
	}
	bn_fault_point("import:extracted");
	/* The signed manifest travels with the slot: health checks find the
	 * model and its suite through it.  Artifact names start alphanumeric,
	 * so this dot file never collides with one. */
	char *mp = bn_deploy_slot_path(d, slot), *mf = NULL;
	if (!mp || asprintf(&mf, "%s/%s", mp, BN_SLOT_MANIFEST) < 0)
		r = bn_fail(err, -ENOMEM, "out of memory");
	else
		r = bn_write_file_atomic(mf, b->manifest_buf, b->manifest_len, 0644, err);
	free(mp);
	free(mf);
	if (r < 0) {
		memset(&d->slots[slot], 0, sizeof d->slots[slot]);
		return r;
	}
	*ret_resumed = xo.resumed_chunks;
	return 0;
}

/* The slot now holds the bundle, staged; the intent is done.  Returns
 * whether the root was pinned to the bundle's channel by this import. */
static bool import_record(struct bn_deploy *d, const struct bn_bundle *b, int slot)
{
	const struct bn_manifest *m = b->m;
	struct bn_slot *s = &d->slots[slot];
	memset(s, 0, sizeof *s);
	s->state = BN_SLOT_STAGED;
	s->has_bundle = true;
	snprintf(s->bundle, sizeof s->bundle, "%s", m->name);
	snprintf(s->channel, sizeof s->channel, "%s", m->channel);
	s->version = m->version;
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, s->manifest_sha256);
	s->staged_at = (int64_t)time(NULL);
	/* The floor rises when the slot is promoted, not here: a staged
	 * version the health check refuses must not block its channel. */
	bool pinned = !d->channel[0];
	if (pinned)
		snprintf(d->channel, sizeof d->channel, "%s", m->channel);
	json_decref(d->pending);
	d->pending = NULL;
	return pinned;
}

int bn_deploy_import_bundle(struct bn_deploy *d, struct bn_bundle *b, struct bn_import_opts *o,
                            struct bn_import_result *ret, struct bn_error *err)
{
	struct bn_import_opts none = {0};
	if (!o)
		o = &none;
	struct bn_audit_event ev = {.action = o->dry_run ? "import-dry-run" : "import", .result = "refused"};
	char why[BN_ERROR_MAX];
	const struct bn_manifest *m = b->m;
	ev.bundle = m->name;
	ev.channel = m->channel;
	ev.version = m->version;
	ev.has_version = true;
	bn_fault_point("import:verified");

	bool downgrade = false;
	int r = bn_policy_check_import(d, m, b->dir, o, &downgrade, err);
	if (r < 0)
		goto refuse;
	/* A delta bundle is completed from the slot that holds its base (per
	 * medium too: the first medium staged places the reused chunks). */
	if (m->base && !b->base_dir && (r = attach_base(d, b, err)) < 0)
		goto refuse;
	if (o->check_only && !o->dry_run)
		return 0;
	/* The idle slot: never the active one. */
	int slot = d->active >= 0 ? 1 - d->active : 0;
	ev.slot = bn_slot_names[slot];
	r = bn_policy_check_slot(d, slot, o, err);
	if (r < 0)
		goto refuse;
	if (o->dry_run) {
		r = import_dry_run(d, b, slot, ret, err);
		if (r < 0)
			goto fail;
		ev.result = "ok";
		snprintf(why, sizeof why, "would stage into slot %s%s; nothing staged", bn_slot_names[slot],
		         downgrade ? " (a downgrade, allowed by --allow-downgrade)" : "");
		ev.reason = why;
		return bn_deploy_commit(d, &ev, err);
	}
	size_t resumed = 0;
	r = import_stage(d, b, o, slot, &resumed, err);
	if (r < 0)
		goto fail;
	bool pinned = import_record(d, b, slot);
	ev.result = "ok";
	snprintf(why, sizeof why, "%s%s%s", downgrade ? "downgrade allowed by operator (--allow-downgrade)" : "staged",
	         resumed ? "; resumed an interrupted import" : "", pinned ? "; root now follows this channel" : "");
	ev.reason = why;
	r = bn_deploy_commit(d, &ev, err);
	if (r == 0 && ret) {
		import_ids(ret, m, slot);
		ret->resumed_chunks = resumed;
		ret->notes[0] = '\0';
		for (size_t i = 0; bn_bundle_note(b, i); i++) {
			size_t l = strlen(ret->notes);
			snprintf(ret->notes + l, sizeof ret->notes - l, "%s%s", l ? "; " : "", bn_bundle_note(b, i));
		}
	}
	return r;
fail:
	ev.result = "failed";
refuse:
	json_decref(d->pending);
	d->pending = NULL;
	snprintf(why, sizeof why, "%s", err ? err->msg : "failed");
	ev.reason = why;
	{
		struct bn_error e2 = {0};
		(void)bn_deploy_commit(d, &ev, &e2);
	}
	return r;
}

int bn_deploy_promote(struct bn_deploy *d, struct bn_error *err)
{
	int to = bn_deploy_staged(d), from = d->active;
	if (to < 0)
		return bn_fail(err, -ENOENT, "%s: no staged slot to promote", d->root);
	struct bn_slot *s = &d->slots[to];
	struct bn_audit_event ev = {.action = "promote", .slot = bn_slot_names[to], .bundle = s->bundle,
	                            .channel = s->channel, .version = s->version, .has_version = true, .result = "ok"};
	json_decref(d->pending);
	d->pending = json_pack("{s:s, s:s?, s:s, s:i, s:I}", "op", "promote", "from", from >= 0 ? bn_slot_names[from] : NULL,
	                       "to", bn_slot_names[to], "old_previous", d->previous, "old_window_until",
	                       (json_int_t)d->window_until);
	int r = bn_slots_save(d, err);
	if (r < 0)
		return r;
	bn_fault_point("promote:intent");
	r = set_active_link(d, to, err);
	if (r < 0)
		goto undo;
	bn_fault_point("promote:switched");
	r = bn_hook_run(d, "promote", to, err);
	if (r < 0)
		goto undo;
	bn_fault_point("promote:hooked");
	if (from >= 0)
		d->slots[from].state = BN_SLOT_PREVIOUS;
	s->state = BN_SLOT_ACTIVE;
	s->promoted_at = (int64_t)time(NULL);
	s->reason[0] = '\0';
	d->active = to;
	d->previous = from;
	d->window_until = d->window_s > 0 ? (int64_t)time(NULL) + d->window_s : 0;
	/* Anti-rollback: the floor rises with what was promoted. */
	bool has_floor = false;
	uint64_t fl = bn_policy_floor(d, s->channel, &has_floor);
	if (!has_floor || s->version > fl)
		json_object_set_new(d->floors, s->channel, json_integer((json_int_t)s->version));
	json_decref(d->pending);
	d->pending = NULL;
	return bn_deploy_commit(d, &ev, err);
undo:;
	char why[BN_ERROR_MAX];
	snprintf(why, sizeof why, "%.900s; switch undone", err ? err->msg : "failed");
	struct bn_error e2 = {0};
	if (set_active_link(d, from, &e2) == 0 && from >= 0)
		(void)bn_hook_run(d, "rollback", from, &e2);
	json_decref(d->pending);
	d->pending = NULL;
	ev.result = "failed";
	ev.reason = why;
	(void)bn_deploy_commit(d, &ev, &e2);
	if (err)
		snprintf(err->msg, sizeof err->msg, "%s", why);
	return r;
}

int bn_deploy_rollback(struct bn_deploy *d, const char *reason, struct bn_error *err)
{
	int from = d->active, to = d->previous;
	if (from < 0 || to < 0 || d->slots[to].state != BN_SLOT_PREVIOUS)
		return bn_fail(err, -ENOENT, "%s: no previous slot to roll back to", d->root);
	if (!reason)
		reason = "rolled back by operator";
	json_decref(d->pending);
	d->pending = json_pack("{s:s, s:s, s:s, s:s}", "op", "rollback", "from", bn_slot_names[from], "to", bn_slot_names[to],
	                       "reason", reason);
	int r = bn_slots_save(d, err);
	if (r < 0)
		return r;
	bn_fault_point("rollback:intent");
	r = set_active_link(d, to, err);
	if (r < 0)
		return r; /* pending stays: the next open finishes the rollback */
	bn_fault_point("rollback:switched");
	struct bn_error he = {0};
	int hr = bn_hook_run(d, "rollback", to, &he);
	bn_fault_point("rollback:hooked");
	d->slots[from].state = BN_SLOT_BAD;
	snprintf(d->slots[from].reason, sizeof d->slots[from].reason, "%s", reason);
	d->slots[to].state = BN_SLOT_ACTIVE;
	d->active = to;
	d->previous = -1;
	d->window_until = 0;
	json_decref(d->pending);
	d->pending = NULL;
	char why[BN_ERROR_MAX];
	snprintf(why, sizeof why, "%.400s%s%.500s", reason, hr < 0 ? "; switch hook failed: " : "", hr < 0 ? he.msg : "");
	const struct bn_slot *s = &d->slots[to];
	struct bn_audit_event ev = {.action = "rollback", .slot = bn_slot_names[to], .bundle = s->bundle,
	                            .channel = s->channel, .version = s->version, .has_version = s->has_bundle,
	                            .result = hr < 0 ? "failed" : "ok", .reason = why};
	r = bn_deploy_commit(d, &ev, err);
	if (r == 0 && hr < 0) {
		if (err)
			*err = he;
		return hr;
	}
	return r;
}

int bn_deploy_mark_good(struct bn_deploy *d, struct bn_error *err)
{
	if (d->active < 0)
		return bn_fail(err, -ENOENT, "%s: no active slot", d->root);
	d->window_until = 0;
	const struct bn_slot *s = &d->slots[d->active];
	struct bn_audit_event ev = {.action = "mark-good", .slot = bn_slot_names[d->active], .bundle = s->bundle,
	                            .channel = s->channel, .version = s->version, .has_version = s->has_bundle,
	                            .result = "ok"};
	return bn_deploy_commit(d, &ev, err);
}

int bn_deploy_mark_bad(struct bn_deploy *d, int slot, const char *reason, struct bn_error *err)
{
	if (slot < 0)
		slot = bn_deploy_staged(d);
	if (slot < 0)
		return bn_fail(err, -ENOENT, "%s: no staged slot; name the slot to mark bad", d->root);
	if (!reason)
		reason = "marked bad by operator";
	if (slot == d->active)
		return bn_deploy_rollback(d, reason, err);
	struct bn_slot *s = &d->slots[slot];
	if (s->state == BN_SLOT_EMPTY)
		return bn_fail(err, -ENOENT, "slot %s is empty", bn_slot_names[slot]);
	s->state = BN_SLOT_BAD;
	snprintf(s->reason, sizeof s->reason, "%s", reason);
	if (d->previous == slot)
		d->previous = -1;
	struct bn_audit_event ev = {.action = "mark-bad", .slot = bn_slot_names[slot], .bundle = s->bundle,
	                            .channel = s->channel, .version = s->version, .has_version = s->has_bundle,
	                            .result = "ok", .reason = reason};
	return bn_deploy_commit(d, &ev, err);
}

int bn_deploy_trust_update(struct bn_deploy *d, const char *path, const char *const *sigs, size_t n_sigs,
                           struct bn_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	struct bn_trust_policy *np = calloc(1, sizeof *np);
	struct bn_audit_event ev = {.action = "trust-update", .result = "refused"};
	char why[BN_ERROR_MAX];
	int r = np ? bn_read_file(path, BN_TRUST_MAX_BYTES, &buf, &len, err) : bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0)
		r = bn_trust_check_update(&d->trust, buf, len, sigs, n_sigs, np, err);
	if (r == 0) {
		char *tp = bn_deploy_rpath(d, "trust.json");
		/* The signed bytes themselves become the policy. */
		r = tp ? bn_write_file_atomic(tp, buf, len, 0644, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(tp);
	}
	if (r == 0) {
		snprintf(why, sizeof why, "serial %" PRIu64 " -> %" PRIu64 ", %zu key(s), threshold %u", d->trust.serial,
		         np->serial, np->n_keys, np->threshold);
		d->trust = *np;
		ev.result = "ok";
	} else {
		snprintf(why, sizeof why, "%s", err ? err->msg : "refused");
	}
	ev.reason = why;
	struct bn_error e2 = {0};
	int q = bn_deploy_commit(d, &ev, r == 0 ? err : &e2);
	free(buf);
	free(np);
	return r < 0 ? r : q;
}

const char *bn_deploy_channel(const struct bn_deploy *d)
{
	return d->channel[0] ? d->channel : NULL;
}

int bn_deploy_channel_set(struct bn_deploy *d, const char *channel, const char *reason, struct bn_error *err)
{
	if (!channel || !bn_name_valid(channel))
		return bn_fail(err, -EINVAL, "'%s' is not a valid channel name", channel ? channel : "");
	struct bn_audit_event ev = {.action = "channel-set", .channel = channel, .result = "refused"};
	char why[BN_ERROR_MAX];
	int r = 0;
	if (!bn_trust_accepts_channel(&d->trust, channel))
		r = bn_fail(err, -ESTALE, "channel %s is not one the trust policy accepts", channel);
	int st = bn_deploy_staged(d);
	if (r == 0 && st >= 0 && strcmp(d->slots[st].channel, channel))
		r = bn_fail(err, -EBUSY,
		            "slot %s holds a staged bundle of channel %s; promote it or agctl mark-bad it first",
		            bn_slot_names[st], d->slots[st].channel);
	if (r < 0) {
		snprintf(why, sizeof why, "%s", err ? err->msg : "refused");
		ev.reason = why;
		struct bn_error e2 = {0};
		(void)bn_deploy_commit(d, &ev, &e2);
		return r;
	}
	snprintf(why, sizeof why, "%s -> %s: %.400s", d->channel[0] ? d->channel : "(none)", channel,
	         reason ? reason : "set by operator");
	snprintf(d->channel, sizeof d->channel, "%s", channel);
	ev.result = "ok";
	ev.reason = why;
	return bn_deploy_commit(d, &ev, err);
}

json_t *bn_deploy_status(const struct bn_deploy *d)
{
	json_t *o = json_object(), *slots = json_object(), *keys = json_array();
	json_object_set_new(o, "root", json_string(d->root));
	json_object_set_new(o, "active", d->active >= 0 ? json_string(bn_slot_names[d->active]) : json_null());
	json_object_set_new(o, "previous", d->previous >= 0 ? json_string(bn_slot_names[d->previous]) : json_null());
	json_object_set_new(o, "validation_window_until", d->window_until ? json_integer(d->window_until) : json_null());
	json_object_set_new(o, "in_validation_window", json_boolean(bn_deploy_in_window(d)));
	for (int i = 0; i < 2; i++)
		json_object_set_new(slots, bn_slot_names[i], bn_slot_json(&d->slots[i]));
	json_object_set_new(o, "slots", slots);
	json_object_set(o, "floors", d->floors);
	json_object_set_new(o, "channel", d->channel[0] ? json_string(d->channel) : json_null());
	for (size_t i = 0; i < d->trust.n_keys; i++) {
		char id[BN_KEYID_HEX];
		bn_keyid_hex(d->trust.keys[i].keyid, id);
		json_array_append_new(keys, json_string(id));
	}
	json_object_set_new(o, "trust", json_pack("{s:I, s:i, s:o}", "serial", (json_int_t)d->trust.serial, "threshold",
	                                          (int)d->trust.threshold, "keys", keys));
	json_object_set_new(o, "audit_lines", json_integer((json_int_t)d->head.seq));
	/* An operation interrupted (or, read without the lock, in progress). */
	const char *op = json_string_value(json_object_get(d->pending, "op"));
	json_object_set_new(o, "pending", op ? json_string(op) : json_null());
	return o;
}
