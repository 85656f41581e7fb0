/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Trust policy (R/trust.json): the keys whose signatures count, how many
 * distinct keys must sign (m-of-n), per-channel minimum versions, and an
 * optional maximum bundle age.  A new policy replaces the old one only when a
 * threshold of the old keys AND a threshold of its own keys signed it and its
 * serial is higher (TUF-style root rotation).
 *
 *   {"agkit_trust": 1, "serial": 1, "threshold": 2,
 *    "keys": [{"id": "KEYID", "public_key": "RWQ..."}, ...],
 *    "channels": {"stable": {"min_version": 3}},
 *    "bundles": ["app"],
 *    "max_bundle_age_days": 90, "max_version_jump": 1000}
 *
 * "channels", when it lists any, is also the set of channels a root accepts;
 * "bundles", when present, the bundle names it accepts.  "max_version_jump"
 * (0 or absent: no cap) bounds how far above the channel's floor a version
 * may jump.  One public key may appear only once, whatever its key id:
 * signatures are counted per distinct public key.
 *
 * A signature of a trust update must carry the trusted comment
 * "agkit-trust-update v1 serial N" (N: the new policy's serial), so that no
 * other minisign signature (a bundle manifest's) can be replayed as one.
 */
#include <stdbool.h>
#include <stdint.h>

#include "bundle/bundle.h"
#include "bundle/error.h"
#include "bundle/minisign.h"

#define BN_TRUST_MAX_BYTES (1u << 20)
#define BN_TRUST_MAX_KEYS 64
#define BN_TRUST_MAX_CHANNELS 256
#define BN_TRUST_MAX_BUNDLES    256
#define BN_TRUST_UPDATE_COMMENT "agkit-trust-update v1 serial " /* followed by the serial */

struct bn_trust_channel {
	char name[BN_MAX_NAME + 1];
	uint64_t min_version;
};

struct bn_trust_policy {
	uint64_t serial;
	unsigned threshold;
	size_t n_keys;
	struct bn_pubkey keys[BN_TRUST_MAX_KEYS];
	size_t n_channels;
	struct bn_trust_channel channels[BN_TRUST_MAX_CHANNELS];
	uint64_t max_age_days; /* 0: bundles do not expire */
	uint64_t max_version_jump; /* 0: no cap */
	size_t n_bundles;          /* 0: any bundle name */
	char bundles[BN_TRUST_MAX_BUNDLES][BN_MAX_NAME + 1];
};

int bn_trust_parse(const char *buf, size_t len, struct bn_trust_policy *ret, struct bn_error *err) BN_WUR;
int bn_trust_load(const char *path, struct bn_trust_policy *ret, struct bn_error *err) BN_WUR;
int bn_trust_format(const struct bn_trust_policy *p, char **ret_text) BN_WUR;
/* The bn_trust view used by bn_bundle_open(). */
struct bn_trust bn_trust_view(const struct bn_trust_policy *p);
/* Explicit minimum version for channel (0 when none). */
uint64_t bn_trust_min_version(const struct bn_trust_policy *p, const char *channel);
/* Whether the policy accepts channel (any when it lists none) and bundle name. */
bool bn_trust_accepts_channel(const struct bn_trust_policy *p, const char *channel);
bool bn_trust_accepts_bundle(const struct bn_trust_policy *p, const char *name);

/*
 * Checks a proposed policy (the exact bytes new_buf) against the current one.
 * sig_paths are minisign signatures of new_buf.  Accepts only when the serial
 * increases, at least cur->threshold distinct keys of cur and at least
 * new->threshold distinct keys of the new policy signed it, each signature's
 * trusted comment being BN_TRUST_UPDATE_COMMENT and the new serial.  -EKEYREJECTED or
 * -ESTALE (serial not higher) with a message otherwise.
 */
int bn_trust_check_update(const struct bn_trust_policy *cur, const char *new_buf, size_t new_len,
                          const char *const *sig_paths, size_t n_sigs, struct bn_trust_policy *ret_new,
                          struct bn_error *err) BN_WUR;
