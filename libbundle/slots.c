/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A deployment root's slots and their record: slot names and accessors,
 * state.json (written atomically, read back strictly), config.json, and
 * opening a root (the lock, or a lock-free read-only snapshot; recovery of
 * an interrupted operation) or creating one.  What the operations do with
 * the slots is deploy.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle/deploy.h"
#include "bundle/fsutil.h"
#include "bundle/schema.h"
#include "deploy_internal.h"
#include "fault.h"

#define STATE_MAX (1u << 20)
#define CONFIG_MAX (1u << 16)

const char *const bn_slot_names[2] = {"blue", "green"};
const char *const bn_slot_state_names[6] = {"empty", "importing", "staged", "active", "previous", "bad"};

const char *bn_slot_name(int slot) { return slot >= 0 && slot < 2 ? bn_slot_names[slot] : NULL; }
int bn_slot_index(const char *n) { return !n ? -1 : !strcmp(n, "blue") ? 0 : !strcmp(n, "green") ? 1 : -1; }
const char *bn_slot_state_name(enum bn_slot_state s) { return bn_slot_state_names[s]; }
int bn_deploy_active(const struct bn_deploy *d) { return d->active; }
int bn_deploy_previous(const struct bn_deploy *d) { return d->previous; }
const struct bn_slot *bn_deploy_slot(const struct bn_deploy *d, int slot) { return &d->slots[slot]; }
int64_t bn_deploy_window_until(const struct bn_deploy *d) { return d->window_until; }
const char *bn_deploy_root(const struct bn_deploy *d) { return d->root; }
struct bn_trust bn_deploy_trust(const struct bn_deploy *d) { return bn_trust_view(&d->trust); }

int bn_deploy_staged(const struct bn_deploy *d)
{
	for (int i = 0; i < 2; i++)
		if (d->slots[i].state == BN_SLOT_STAGED)
			return i;
	return -1;
}

bool bn_deploy_in_window(const struct bn_deploy *d)
{
	return d->active >= 0 && d->window_until > 0 && (int64_t)time(NULL) < d->window_until;
}

char *bn_deploy_rpath(const struct bn_deploy *d, const char *rel)
{
	return bn_path_join(d->root, rel);
}

char *bn_deploy_slot_path(const struct bn_deploy *d, int slot)
{
	char *p = NULL;
	if (asprintf(&p, "%s/slots/%s", d->root, bn_slot_names[slot]) < 0)
		return NULL;
	return p;
}

/* ---- state file ------------------------------------------------------ */

json_t *bn_slot_json(const struct bn_slot *s)
{
	json_t *o = json_object();
	json_object_set_new(o, "state", json_string(bn_slot_state_names[s->state]));
	json_object_set_new(o, "bundle", s->has_bundle ? json_string(s->bundle) : json_null());
	json_object_set_new(o, "channel", s->has_bundle ? json_string(s->channel) : json_null());
	json_object_set_new(o, "version", s->has_bundle ? json_integer((json_int_t)s->version) : json_null());
	json_object_set_new(o, "manifest_sha256", s->has_bundle ? json_string(s->manifest_sha256) : json_null());
	json_object_set_new(o, "staged_at", s->staged_at ? json_integer(s->staged_at) : json_null());
	json_object_set_new(o, "promoted_at", s->promoted_at ? json_integer(s->promoted_at) : json_null());
	json_object_set_new(o, "reason", s->reason[0] ? json_string(s->reason) : json_null());
	return o;
}

static int slot_from_json(json_t *o, struct bn_slot *s)
{
	memset(s, 0, sizeof *s);
	const char *st = json_string_value(json_object_get(o, "state"));
	int k = -1;
	for (int i = 0; st && i < (int)(sizeof bn_slot_state_names / sizeof *bn_slot_state_names); i++)
		if (!strcmp(st, bn_slot_state_names[i]))
			k = i;
	if (k < 0)
		return -EBADMSG;
	s->state = (enum bn_slot_state)k;
	const char *b = json_string_value(json_object_get(o, "bundle")),
	           *c = json_string_value(json_object_get(o, "channel")),
	           *h = json_string_value(json_object_get(o, "manifest_sha256")),
	           *reason = json_string_value(json_object_get(o, "reason"));
	if (b && c) {
		s->has_bundle = true;
		snprintf(s->bundle, sizeof s->bundle, "%s", b);
		snprintf(s->channel, sizeof s->channel, "%s", c);
		s->version = (uint64_t)json_integer_value(json_object_get(o, "version"));
		snprintf(s->manifest_sha256, sizeof s->manifest_sha256, "%s", h ? h : "");
	}
	s->staged_at = json_integer_value(json_object_get(o, "staged_at"));
	s->promoted_at = json_integer_value(json_object_get(o, "promoted_at"));
	snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "");
	return 0;
}

int bn_slots_save(struct bn_deploy *d, struct bn_error *err)
{
	if (d->readonly)
		return bn_fail(err, -EPERM, "%s: opened read-only (without the lock): not written", d->root);
	char h[BN_SHA256_HEX], p[BN_SHA256_HEX];
	bn_hex(d->head.hash, BN_SHA256_LEN, h);
	bn_hex(d->head.prev, BN_SHA256_LEN, p);
	d->generation++;
	json_t *o = json_object(), *slots = json_object();
	json_object_set_new(o, "agkit_state", json_integer(1));
	json_object_set_new(o, "generation", json_integer((json_int_t)d->generation));
	json_object_set_new(o, "active", d->active >= 0 ? json_string(bn_slot_names[d->active]) : json_null());
	json_object_set_new(o, "previous", d->previous >= 0 ? json_string(bn_slot_names[d->previous]) : json_null());
	json_object_set_new(o, "window_until", json_integer(d->window_until));
	json_object_set_new(o, "channel", d->channel[0] ? json_string(d->channel) : json_null());
	for (int i = 0; i < 2; i++)
		json_object_set_new(slots, bn_slot_names[i], bn_slot_json(&d->slots[i]));
	json_object_set_new(o, "slots", slots);
	json_object_set(o, "floors", d->floors);
	json_object_set(o, "pending", d->pending ? d->pending : json_null());
	json_object_set(o, "audit_pending", d->audit_pending ? d->audit_pending : json_null());
	json_object_set_new(o, "audit_head", json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)d->head.seq, "hash", h,
	                                               "prev", p));
	char *text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!text)
		return bn_fail(err, -ENOMEM, "out of memory");
	char *path = bn_deploy_rpath(d, "state.json");
	int r = path ? bn_write_file_atomic(path, text, strlen(text), 0644, err) : bn_fail(err, -ENOMEM, "out of memory");
	free(path);
	free(text);
	return r;
}

int bn_slots_load(struct bn_deploy *d, struct bn_error *err)
{
	char *path = bn_deploy_rpath(d, "state.json"), *buf = NULL;
	size_t len = 0;
	if (!path)
		return bn_fail(err, -ENOMEM, "out of memory");
	int r = bn_read_file(path, STATE_MAX, &buf, &len, err);
	if (r < 0) {
		free(path);
		return r;
	}
	json_error_t je;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	json_t *slots = json_object_get(o, "slots"), *head = json_object_get(o, "audit_head");
	if (!o || !json_is_object(slots) || !json_is_object(head)) {
		r = bn_fail(err, -EBADMSG, "%s: not a valid agkit state file", path);
		goto out;
	}
	d->generation = (uint64_t)json_integer_value(json_object_get(o, "generation"));
	d->active = bn_slot_index(json_string_value(json_object_get(o, "active")));
	d->previous = bn_slot_index(json_string_value(json_object_get(o, "previous")));
	d->window_until = json_integer_value(json_object_get(o, "window_until"));
	const char *ch = json_string_value(json_object_get(o, "channel"));
	if (ch && !bn_name_valid(ch)) {
		r = bn_fail(err, -EBADMSG, "%s: bad channel", path);
		goto out;
	}
	snprintf(d->channel, sizeof d->channel, "%s", ch ? ch : "");
	if (!ch) {
		/* A root from before channels were pinned follows its active bundle's. */
		int a = d->active;
		if (a >= 0 && slot_from_json(json_object_get(slots, bn_slot_names[a]), &d->slots[a]) == 0 &&
		    d->slots[a].has_bundle && bn_name_valid(d->slots[a].channel))
			snprintf(d->channel, sizeof d->channel, "%s", d->slots[a].channel);
	}
	for (int i = 0; i < 2; i++)
		if (slot_from_json(json_object_get(slots, bn_slot_names[i]), &d->slots[i]) < 0) {
			r = bn_fail(err, -EBADMSG, "%s: slot %s has no valid state", path, bn_slot_names[i]);
			goto out;
		}
	json_t *fl = json_object_get(o, "floors");
	d->floors = json_is_object(fl) ? json_incref(fl) : json_object();
	json_t *pd = json_object_get(o, "pending"), *ap = json_object_get(o, "audit_pending");
	d->pending = json_is_object(pd) ? json_incref(pd) : NULL;
	d->audit_pending = json_is_object(ap) ? json_incref(ap) : NULL;
	const char *h = json_string_value(json_object_get(head, "hash")), *p = json_string_value(json_object_get(head, "prev"));
	d->head.seq = (uint64_t)json_integer_value(json_object_get(head, "seq"));
	if (!h || !p || !bn_unhex(h, d->head.hash, BN_SHA256_LEN) || !bn_unhex(p, d->head.prev, BN_SHA256_LEN)) {
		r = bn_fail(err, -EBADMSG, "%s: bad audit head", path);
		goto out;
	}
out:
	json_decref(o);
	free(path);
	return r;
}

int bn_slots_load_config(struct bn_deploy *d, struct bn_error *err)
{
	d->window_s = BN_DEFAULT_WINDOW_S;
	d->hook_timeout_s = 300;
	d->max_skew_s = BN_DEFAULT_MAX_SKEW_S;
	char *path = bn_deploy_rpath(d, "config.json"), *buf = NULL;
	size_t len = 0;
	int r = 0;
	if (!path)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (access(path, F_OK) == 0) {
		r = bn_read_file(path, CONFIG_MAX, &buf, &len, err);
		json_error_t je;
		json_t *o = r == 0 ? json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je) : NULL;
		if (r == 0 && !o)
			r = bn_fail(err, -EINVAL, "%s: line %d: %s", path, je.line, je.text);
		else if (r == 0 && !json_is_object(o))
			r = bn_fail(err, -EINVAL, "%s: not a JSON object", path);
		/* A typo ("validation_windows") or a wrong type ("1d") is an
		 * error, never a silent default. */
		if (r == 0)
			r = bn_schema_check(&bn_config_schema, o, path, NULL, err);
		const char *ck;
		if (r == 0)
			r = bn_config_cpu_kernels(o, path, &ck, err);
		if (r == 0) {
			json_t *w = json_object_get(o, "validation_window_s"), *h = json_object_get(o, "switch_hook"),
			       *t = json_object_get(o, "hook_timeout_s"), *sk = json_object_get(o, "max_clock_skew_s");
			if (json_is_integer(sk) && json_integer_value(sk) >= 0)
				d->max_skew_s = json_integer_value(sk);
			if (json_is_integer(w) && json_integer_value(w) >= 0)
				d->window_s = json_integer_value(w);
			if (json_is_integer(t) && json_integer_value(t) > 0)
				d->hook_timeout_s = (int)json_integer_value(t);
			if (json_is_string(h) && json_string_value(h)[0]) {
				const char *hp = json_string_value(h);
				if (hp[0] != '/')
					r = bn_fail(err, -EINVAL, "%s: \"switch_hook\" must be an absolute path, not '%.200s'", path,
					            hp);
				else if (access(hp, X_OK) < 0)
					r = bn_fail(err, -EINVAL, "%s: \"switch_hook\" %.200s: %s", path, hp,
					            errno == ENOENT ? "no such file" : strerror(errno));
				else
					d->hook = strdup(hp);
			}
		}
		json_decref(o);
		free(buf);
	}
	free(path);
	if (r == 0 && !d->hook) {
		char *def = bn_deploy_rpath(d, "hooks/switch");
		if (def && access(def, X_OK) == 0)
			d->hook = def;
		else
			free(def);
	}
	return r;
}

/* ---- open / init ----------------------------------------------------- */

void bn_deploy_close(struct bn_deploy *d)
{
	if (!d)
		return;
	if (d->lockfd >= 0)
		close(d->lockfd); /* releases the flock */
	json_decref(d->floors);
	json_decref(d->pending);
	json_decref(d->audit_pending);
	free(d->hook);
	free(d->root);
	free(d);
}

/* The one loader behind bn_deploy_open() (locked: takes R/lock, then
 * recovers an interrupted operation) and bn_deploy_open_ro() (no lock, no
 * recovery, every write refused): trust.json, config.json and state.json,
 * each replaced only by an atomic rename, so every read sees one whole
 * version of each. */
static int deploy_load(const char *root, bool locked, bool wait, struct bn_deploy **ret, struct bn_error *err)
{
	struct bn_deploy *d = calloc(1, sizeof *d);
	if (!d || !(d->root = strdup(root))) {
		free(d);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	d->lockfd = -1;
	d->readonly = !locked;
	d->active = d->previous = -1;
	int r = 0;
	char *lp = locked ? bn_deploy_rpath(d, "lock") : NULL, *tp = bn_deploy_rpath(d, "trust.json");
	if ((locked && !lp) || !tp) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (access(tp, F_OK) < 0) {
		r = bn_fail(err, -ENOENT, "%s: not an agkit deployment root (no trust.json; run agctl init)", root);
		goto out;
	}
	if (locked) {
		d->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (d->lockfd < 0) {
			r = bn_fail(err, -errno, "%s: %s", lp, strerror(errno));
			goto out;
		}
		if (flock(d->lockfd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
			r = errno == EWOULDBLOCK
			            ? bn_fail(err, -EAGAIN, "%s: another agkit command holds the lock; try again later", lp)
			            : bn_fail(err, -errno, "%s: %s", lp, strerror(errno));
			goto out;
		}
	}
	r = bn_trust_load(tp, &d->trust, err);
	if (r == 0)
		r = bn_slots_load_config(d, err);
	if (r == 0)
		r = bn_slots_load(d, err);
	if (r == 0 && locked)
		r = bn_deploy_recover(d, err);
	if (r < 0)
		goto out;
	*ret = d;
	d = NULL;
out:
	free(lp);
	free(tp);
	bn_deploy_close(d);
	return r;
}

int bn_deploy_open(const char *root, bool wait, struct bn_deploy **ret, struct bn_error *err)
{
	return deploy_load(root, true, wait, ret, err);
}

int bn_deploy_open_ro(const char *root, struct bn_deploy **ret, struct bn_error *err)
{
	return deploy_load(root, false, false, ret, err);
}

int bn_deploy_init(const char *root, const struct bn_pubkey *keys, size_t n_keys, unsigned threshold,
                   struct bn_error *err)
{
	return bn_deploy_init2(root, keys, n_keys, threshold, NULL, err);
}

int bn_deploy_init2(const char *root, const struct bn_pubkey *keys, size_t n_keys, unsigned threshold,
                    const struct bn_init_opts *io, struct bn_error *err)
{
	if (io && io->channel && !bn_name_valid(io->channel))
		return bn_fail(err, -EINVAL, "'%s' is not a valid channel name", io->channel);
	if (n_keys == 0 || n_keys > BN_TRUST_MAX_KEYS)
		return bn_fail(err, -EINVAL, "give 1 to %d public keys", BN_TRUST_MAX_KEYS);
	if (threshold == 0)
		threshold = 1;
	if (threshold > n_keys)
		return bn_fail(err, -EINVAL, "threshold %u is more than the %zu key(s) given", threshold, n_keys);
	struct bn_deploy tmp = {.root = (char *)root, .lockfd = -1, .active = -1, .previous = -1};
	char *tp = bn_deploy_rpath(&tmp, "trust.json");
	if (!tp)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (access(tp, F_OK) == 0) {
		free(tp);
		return bn_fail(err, -EEXIST, "%s: already initialised", root);
	}
	int r = 0;
	static const char *dirs[] = {"", "/slots", "/slots/blue", "/slots/green", "/staging", "/hooks"};
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs && r == 0; i++) {
		char *p = NULL;
		if (asprintf(&p, "%s%s", root, dirs[i]) < 0)
			r = bn_fail(err, -ENOMEM, "out of memory");
		else if ((r = bn_mkdir_p(p, 0755)) < 0)
			bn_fail(err, r, "%s: %s", p, strerror(-r));
		free(p);
	}
	struct bn_trust_policy *p = calloc(1, sizeof *p);
	char *text = NULL;
	if (r == 0 && !p)
		r = bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0) {
		p->serial = 1;
		p->threshold = threshold;
		p->n_keys = n_keys;
		memcpy(p->keys, keys, n_keys * sizeof *keys);
		for (size_t i = 0; i < n_keys; i++)
			for (size_t j = 0; j < i; j++)
				if (!memcmp(keys[i].keyid, keys[j].keyid, BN_KEYID_LEN) ||
				    bn_pubkey_same(&keys[i], &keys[j]))
					r = bn_fail(err, -EINVAL,
					            "the same key is given twice (keys %zu and %zu are one public key)",
					            j + 1, i + 1);
	}
	if (r == 0 && bn_trust_format(p, &text) < 0)
		r = bn_fail(err, -ENOMEM, "out of memory");
	struct bn_deploy *d = calloc(1, sizeof *d);
	if (r == 0 && !d)
		r = bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0) {
		d->root = strdup(root);
		d->lockfd = -1;
		d->active = d->previous = -1;
		d->floors = json_object();
		if (io && io->channel)
			snprintf(d->channel, sizeof d->channel, "%s", io->channel);
		char *cp = bn_deploy_rpath(d, "config.json"), *cfg = NULL;
		char mem[64] = "";
		if (io && io->health_memory_limit_mb > 0)
			snprintf(mem, sizeof mem, ",\n \"health_memory_limit_mb\": %ld", io->health_memory_limit_mb);
		if (!cp || asprintf(&cfg,
		                    "{\n \"validation_window_s\": 86400,\n \"switch_hook\": null,\n"
		                    " \"hook_timeout_s\": 300,\n \"max_clock_skew_s\": %d%s\n}\n",
		                    BN_DEFAULT_MAX_SKEW_S, mem) < 0)
			r = bn_fail(err, -ENOMEM, "out of memory");
		else
			r = bn_write_file_atomic(cp, cfg, strlen(cfg), 0644, err);
		free(cfg);
		free(cp);
		if (r == 0)
			r = bn_slots_save(d, err);
		struct bn_audit_event ev = {.action = "init",
		                            .result = "ok",
		                            .reason = "deployment root created",
		                            .channel = d->channel[0] ? d->channel : NULL};
		if (r == 0)
			r = bn_deploy_commit(d, &ev, err);
		/* trust.json last: its presence marks a complete initialisation. */
		if (r == 0)
			r = bn_write_file_atomic(tp, text, strlen(text), 0644, err);
	}
	bn_deploy_close(d);
	free(p);
	free(text);
	free(tp);
	return r;
}
