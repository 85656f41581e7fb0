/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Import policy: what a verified bundle is checked against before anything
 * of the root is written (channel, trust policy names, anti-rollback floor
 * and minimum version, version jumps, clock skew, expiry, the idle slot's
 * validation window).  The trust policy file itself is trust.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "deploy_internal.h"

uint64_t bn_policy_floor(const struct bn_deploy *d, const char *channel, bool *has)
{
	json_t *v = json_object_get(d->floors, channel);
	*has = json_is_integer(v);
	return *has ? (uint64_t)json_integer_value(v) : 0;
}

static int64_t parse_rfc3339(const char *s)
{
	struct tm tm = {0};
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return -1;
	return (int64_t)timegm(&tm);
}

int bn_policy_check_import(const struct bn_deploy *d, const struct bn_manifest *m, const char *dir,
                           const struct bn_import_opts *o, bool *ret_downgrade, struct bn_error *err)
{
	/* Policy: channel and name, anti-rollback floor, expiry.  The floor
	 * is per channel, so the channel is pinned: a bundle of another channel
	 * (signed by the same key) would otherwise start from floor 0. */
	if (d->channel[0] && strcmp(m->channel, d->channel)) {
		return bn_fail(err, -ESTALE,
		               "%s: channel %s is not the channel this root follows (%s); an operator "
		               "switches with agctl channel set %s (audited)",
		               dir, m->channel, d->channel, m->channel);
	}
	if (!bn_trust_accepts_channel(&d->trust, m->channel)) {
		return bn_fail(err, -ESTALE, "%s: channel %s is not one the trust policy accepts", dir, m->channel);
	}
	if (!bn_trust_accepts_bundle(&d->trust, m->name)) {
		return bn_fail(err, -ESTALE, "%s: bundle %s is not one the trust policy accepts", dir, m->name);
	}
	bool has_floor = false;
	uint64_t fl = bn_policy_floor(d, m->channel, &has_floor), minv = bn_trust_min_version(&d->trust, m->channel);
	bool downgrade = (has_floor && m->version <= fl) || m->version < minv;
	/* The floor rises at promotion; until then a staged version of the
	 * channel is not replaced by an older or equal one (mark it bad first). */
	int idle = d->active >= 0 ? 1 - d->active : 0;
	const struct bn_slot *is = &d->slots[idle];
	if (!downgrade && is->state == BN_SLOT_STAGED && is->has_bundle && !strcmp(is->channel, m->channel) &&
	    m->version <= is->version && !o->allow_downgrade) {
		return bn_fail(
		    err, -ESTALE,
		    "%s: version %" PRIu64 " of channel %s is not above the staged %" PRIu64
		    " in slot %s; refusing to replace it (agctl mark-bad it first, or --allow-downgrade, audited)",
		    dir, m->version, m->channel, is->version, bn_slot_name(idle));
	}
	uint64_t base = has_floor && fl > minv ? fl : minv;
	if (d->trust.max_version_jump && m->version > base && m->version - base > d->trust.max_version_jump) {
		return bn_fail(err, -ESTALE,
		               "%s: version %" PRIu64 " jumps more than the trust policy's max_version_jump (%" PRIu64
		               ") above %" PRIu64 " on channel %s",
		               dir, m->version, d->trust.max_version_jump, base, m->channel);
	}
	if (d->max_skew_s >= 0) {
		int64_t created = parse_rfc3339(m->created), now = (int64_t)time(NULL);
		if (created > now && created - now > d->max_skew_s) {
			return bn_fail(
			    err, -ESTALE,
			    "%s: bundle created %s, %" PRId64 " s in the future (more than the %" PRId64
			    " s of max_clock_skew_s allowed); check the clocks of the packing host and of this one",
			    dir, m->created, created - now, d->max_skew_s);
		}
	}
	if (downgrade && !o->allow_downgrade) {
		return has_floor && m->version <= fl
		           ? bn_fail(err, -ESTALE,
		                     "%s: version %" PRIu64 " of channel %s is not above the last accepted (%" PRIu64
		                     "); refusing a downgrade or replay (--allow-downgrade overrides, audited)",
		                     dir, m->version, m->channel, fl)
		           : bn_fail(err, -ESTALE,
		                     "%s: version %" PRIu64 " is below the trust policy's minimum %" PRIu64
		                     " for channel %s",
		                     dir, m->version, minv, m->channel);
	}
	if (d->trust.max_age_days) {
		int64_t created = parse_rfc3339(m->created);
		if (created < 0 || (int64_t)time(NULL) - created > (int64_t)d->trust.max_age_days * 86400) {
			return bn_fail(err, -ESTALE,
			               "%s: bundle created %s is older than the policy's %" PRIu64 " days (expired)",
			               dir, m->created, d->trust.max_age_days);
		}
	}
	*ret_downgrade = downgrade;
	return 0;
}

int bn_policy_check_slot(const struct bn_deploy *d, int slot, const struct bn_import_opts *o, struct bn_error *err)
{
	if (d->slots[slot].state == BN_SLOT_PREVIOUS && bn_deploy_in_window(d) && !o->force) {
		char until[32];
		time_t t = (time_t)d->window_until;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
		return bn_fail(err, -ESTALE,
		               "slot %s holds the rollback target until the validation window ends (%s); "
		               "run agctl mark-good, or import with --force",
		               bn_slot_name(slot), until);
	}
	return 0;
}
