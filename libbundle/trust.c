/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bundle/fsutil.h"
#include "bundle/schema.h"
#include "bundle/trust.h"

#define TBAD(...) bn_fail(err, -EBADMSG, "trust policy: " __VA_ARGS__)

bool bn_pubkey_same(const struct bn_pubkey *a, const struct bn_pubkey *b)
{
	return !memcmp(a->pk, b->pk, sizeof a->pk);
}

int bn_trust_parse(const char *buf, size_t len, struct bn_trust_policy *ret, struct bn_error *err)
{
	if (len > BN_TRUST_MAX_BYTES)
		return TBAD("too large");
	json_error_t je;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return TBAD("not valid JSON (line %d: %s)", je.line, je.text);
	struct bn_trust_policy *p = calloc(1, sizeof *p);
	int r = 0;
	if (!p) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	json_t *v = json_object_get(root, "agkit_trust");
	if (!json_is_object(root) || !json_is_integer(v)) {
		r = TBAD("not an agkit trust policy");
		goto out;
	}
	if (json_integer_value(v) != 1) {
		r = bn_fail(err, -EPROTO, "trust policy: unsupported version %" JSON_INTEGER_FORMAT, json_integer_value(v));
		goto out;
	}
	/* Unknown keys (a typo such as "treshold") and wrong types are refused,
	 * never ignored: each weakens the policy silently. */
	r = bn_schema_check(&bn_trust_schema, root, "trust policy", NULL, err);
	if (r < 0)
		goto out;
	json_t *serial = json_object_get(root, "serial"), *th = json_object_get(root, "threshold"),
	       *keys = json_object_get(root, "keys"), *age = json_object_get(root, "max_bundle_age_days"),
	       *chans = json_object_get(root, "channels"), *jump = json_object_get(root, "max_version_jump"),
	       *bundles = json_object_get(root, "bundles");
	if (!json_is_integer(serial) || json_integer_value(serial) < 0) {
		r = TBAD("\"serial\" must be a non-negative integer");
		goto out;
	}
	p->serial = (uint64_t)json_integer_value(serial);
	if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > BN_TRUST_MAX_KEYS) {
		r = TBAD("\"keys\" must list 1 to %d keys", BN_TRUST_MAX_KEYS);
		goto out;
	}
	size_t i;
	json_t *k;
	json_array_foreach(keys, i, k) {
		char where[32];
		snprintf(where, sizeof where, "key %zu", i);
		r = bn_schema_check(&bn_trust_key_schema, k, "trust policy", where, err);
		if (r < 0)
			goto out;
		const char *pk = json_string_value(json_object_get(k, "public_key"));
		struct bn_error e2 = {0};
		if (!pk || bn_pubkey_parse(pk, strlen(pk), &p->keys[i], &e2) < 0) {
			r = TBAD("key %zu: %s", i, pk ? e2.msg : "no \"public_key\"");
			goto out;
		}
		for (size_t j = 0; j < i; j++)
			if (!memcmp(p->keys[j].keyid, p->keys[i].keyid, BN_KEYID_LEN) ||
			    bn_pubkey_same(&p->keys[j], &p->keys[i])) {
				/* Another id for the same key would count one signature twice. */
				r = TBAD("key %zu is listed twice (key %zu is the same public key)", i, j);
				goto out;
			}
		p->n_keys = i + 1;
	}
	if (!json_is_integer(th) || json_integer_value(th) < 1 || (size_t)json_integer_value(th) > p->n_keys) {
		r = TBAD("\"threshold\" must be between 1 and the number of keys (%zu)", p->n_keys);
		goto out;
	}
	p->threshold = (unsigned)json_integer_value(th);
	if (age) {
		if (!json_is_integer(age) || json_integer_value(age) < 0) {
			r = TBAD("\"max_bundle_age_days\" must be a non-negative integer");
			goto out;
		}
		p->max_age_days = (uint64_t)json_integer_value(age);
	}
	if (jump) {
		if (!json_is_integer(jump) || json_integer_value(jump) < 0) {
			r = TBAD("\"max_version_jump\" must be a non-negative integer");
			goto out;
		}
		p->max_version_jump = (uint64_t)json_integer_value(jump);
	}
	if (bundles) {
		json_t *bv;
		if (!json_is_array(bundles) || json_array_size(bundles) > BN_TRUST_MAX_BUNDLES) {
			r = TBAD("\"bundles\" must be an array of at most %d bundle names", BN_TRUST_MAX_BUNDLES);
			goto out;
		}
		json_array_foreach(bundles, i, bv)
		{
			const char *bn = json_string_value(bv);
			if (!bn || !bn_name_valid(bn)) {
				r = TBAD("\"bundles\" entry %zu is not a valid bundle name", i);
				goto out;
			}
			snprintf(p->bundles[p->n_bundles++], sizeof p->bundles[0], "%s", bn);
		}
	}
	if (chans) {
		const char *name;
		json_t *c;
		if (!json_is_object(chans) || json_object_size(chans) > BN_TRUST_MAX_CHANNELS) {
			r = TBAD("\"channels\" must be an object of at most %d channels", BN_TRUST_MAX_CHANNELS);
			goto out;
		}
		json_object_foreach(chans, name, c) {
			char where[96];
			snprintf(where, sizeof where, "channel '%.64s'", name);
			r = bn_schema_check(&bn_trust_channel_schema, c, "trust policy", where, err);
			if (r < 0)
				goto out;
			json_t *mv = json_object_get(c, "min_version");
			if (!bn_name_valid(name) || !json_is_integer(mv) || json_integer_value(mv) < 0) {
				r = TBAD("channel '%s' needs a valid name and a non-negative \"min_version\"", name);
				goto out;
			}
			struct bn_trust_channel *tc = &p->channels[p->n_channels++];
			snprintf(tc->name, sizeof tc->name, "%s", name);
			tc->min_version = (uint64_t)json_integer_value(mv);
		}
	}
	*ret = *p;
out:
	free(p);
	json_decref(root);
	return r;
}

int bn_trust_load(const char *path, struct bn_trust_policy *ret, struct bn_error *err)
{
	char *buf = NULL;
	size_t len = 0;
	int r = bn_read_file(path, BN_TRUST_MAX_BYTES, &buf, &len, err);
	if (r < 0)
		return r;
	r = bn_trust_parse(buf, len, ret, err);
	free(buf);
	if (r < 0)
		bn_error_prefix(err, "%s", path);
	return r;
}

int bn_trust_format(const struct bn_trust_policy *p, char **ret_text)
{
	json_t *root = json_object(), *keys = json_array(), *chans = json_object();
	if (!root || !keys || !chans) {
		json_decref(root);
		json_decref(keys);
		json_decref(chans);
		return -ENOMEM;
	}
	json_object_set_new(root, "agkit_trust", json_integer(1));
	json_object_set_new(root, "serial", json_integer((json_int_t)p->serial));
	json_object_set_new(root, "threshold", json_integer(p->threshold));
	for (size_t i = 0; i < p->n_keys; i++) {
		char id[BN_KEYID_HEX], *text = NULL;
		bn_keyid_hex(p->keys[i].keyid, id);
		if (bn_pubkey_format(&p->keys[i], &text) < 0)
			continue;
		/* The key file's second line is the bare base64 key. */
		char *line = strchr(text, '\n');
		line = line ? line + 1 : text;
		line[strcspn(line, "\n")] = '\0';
		json_array_append_new(keys, json_pack("{s:s, s:s}", "id", id, "public_key", line));
		free(text);
	}
	json_object_set_new(root, "keys", keys);
	for (size_t j = 0; j < p->n_channels; j++)
		json_object_set_new(chans, p->channels[j].name,
		                    json_pack("{s:I}", "min_version", (json_int_t)p->channels[j].min_version));
	json_object_set_new(root, "channels", chans);
	json_object_set_new(root, "max_bundle_age_days", json_integer((json_int_t)p->max_age_days));
	if (p->max_version_jump)
		json_object_set_new(root, "max_version_jump", json_integer((json_int_t)p->max_version_jump));
	if (p->n_bundles) {
		json_t *bl = json_array();
		for (size_t j = 0; j < p->n_bundles; j++)
			json_array_append_new(bl, json_string(p->bundles[j]));
		json_object_set_new(root, "bundles", bl);
	}
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return -ENOMEM;
	size_t l = strlen(text);
	char *t2 = realloc(text, l + 2);
	if (!t2) {
		free(text);
		return -ENOMEM;
	}
	t2[l] = '\n';
	t2[l + 1] = '\0';
	*ret_text = t2;
	return 0;
}

struct bn_trust bn_trust_view(const struct bn_trust_policy *p)
{
	return (struct bn_trust){.keys = p->keys, .n_keys = p->n_keys, .threshold = p->threshold};
}

uint64_t bn_trust_min_version(const struct bn_trust_policy *p, const char *channel)
{
	for (size_t i = 0; i < p->n_channels; i++)
		if (!strcmp(p->channels[i].name, channel))
			return p->channels[i].min_version;
	return 0;
}

bool bn_trust_accepts_channel(const struct bn_trust_policy *p, const char *channel)
{
	if (p->n_channels == 0)
		return true;
	for (size_t i = 0; i < p->n_channels; i++)
		if (!strcmp(p->channels[i].name, channel))
			return true;
	return false;
}

bool bn_trust_accepts_bundle(const struct bn_trust_policy *p, const char *name)
{
	if (p->n_bundles == 0)
		return true;
	for (size_t i = 0; i < p->n_bundles; i++)
		if (!strcmp(p->bundles[i], name))
			return true;
	return false;
}

/* Whether a trust-update signature's trusted comment says what it signs:
 * BN_TRUST_UPDATE_COMMENT followed by serial (any serial when serial is
 * NULL), optionally followed by tab-separated fields. */
static bool update_comment_ok(const char *tc, const uint64_t *serial)
{
	size_t pl = strlen(BN_TRUST_UPDATE_COMMENT);
	if (strncmp(tc, BN_TRUST_UPDATE_COMMENT, pl))
		return false;
	const char *s = tc + pl;
	if (*s < '0' || *s > '9')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || (*end && *end != '\t'))
		return false;
	return !serial || v == *serial;
}

/* Distinct public keys of `keys` with a valid trust-update signature over buf
 * among sigs.  A key listed twice under two ids counts once. */
static size_t count_signers(const struct bn_pubkey *keys, size_t n_keys, const char *buf, size_t len,
                            const struct bn_minisig *sigs, size_t n_sigs, const uint64_t *serial)
{
	size_t count = 0;
	for (size_t k = 0; k < n_keys; k++) {
		bool seen = false;
		for (size_t j = 0; j < k && !seen; j++)
			seen = bn_pubkey_same(&keys[j], &keys[k]);
		if (seen)
			continue;
		for (size_t s = 0; s < n_sigs; s++)
			if (update_comment_ok(sigs[s].trusted_comment, serial) &&
			    bn_minisig_verify(&sigs[s], &keys[k], buf, len) == 0) {
				count++;
				break;
			}
	}
	return count;
}

/* Signatures by a key of keys that verify but do not say they sign a trust update. */
static size_t count_undeclared(const struct bn_pubkey *keys, size_t n_keys, const char *buf, size_t len,
                               const struct bn_minisig *sigs, size_t n_sigs)
{
	size_t count = 0;
	for (size_t s = 0; s < n_sigs; s++)
		for (size_t k = 0; k < n_keys; k++)
			if (!update_comment_ok(sigs[s].trusted_comment, NULL) &&
			    bn_minisig_verify(&sigs[s], &keys[k], buf, len) == 0) {
				count++;
				break;
			}
	return count;
}

int bn_trust_check_update(const struct bn_trust_policy *cur, const char *new_buf, size_t new_len,
                          const char *const *sig_paths, size_t n_sigs, struct bn_trust_policy *ret_new,
                          struct bn_error *err)
{
	if (n_sigs > BN_MAX_SIGNATURES)
		return bn_fail(err, -EINVAL, "too many signatures");
	struct bn_minisig *sigs = calloc(n_sigs ? n_sigs : 1, sizeof *sigs);
	struct bn_trust_policy *np = calloc(1, sizeof *np);
	int r = 0;
	if (!sigs || !np) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_sigs; i++) {
		char *text = NULL;
		size_t tl = 0;
		r = bn_read_file(sig_paths[i], BN_SIGFILE_MAX, &text, &tl, err);
		if (r == 0) {
			r = bn_minisig_parse(text, tl, &sigs[i], err);
			if (r < 0)
				bn_error_prefix(err, "%s", sig_paths[i]);
		}
		free(text);
		if (r < 0)
			goto out;
	}
	/* Signatures are checked before the proposed policy is parsed. */
	size_t old_ok = count_signers(cur->keys, cur->n_keys, new_buf, new_len, sigs, n_sigs, NULL);
	if (old_ok < cur->threshold) {
		size_t undeclared = count_undeclared(cur->keys, cur->n_keys, new_buf, new_len, sigs, n_sigs);
		r = bn_fail(err, -EKEYREJECTED,
		            "new trust policy is signed by %zu key(s) of the current policy; it needs %u%s", old_ok,
		            cur->threshold,
		            undeclared ? " (a signature whose trusted comment is not \"" BN_TRUST_UPDATE_COMMENT
		                         "N\" is not a trust-update signature)"
		                       : "");
		goto out;
	}
	r = bn_trust_parse(new_buf, new_len, np, err);
	if (r < 0)
		goto out;
	/* Now that the serial is known, the comments must name exactly it. */
	old_ok = count_signers(cur->keys, cur->n_keys, new_buf, new_len, sigs, n_sigs, &np->serial);
	if (old_ok < cur->threshold) {
		r = bn_fail(err, -EKEYREJECTED,
		            "new trust policy is signed by %zu key(s) of the current policy for serial %" PRIu64
		            "; it needs %u (the trusted comment must be \"" BN_TRUST_UPDATE_COMMENT "%" PRIu64 "\")",
		            old_ok, np->serial, cur->threshold, np->serial);
		goto out;
	}
	size_t new_ok = count_signers(np->keys, np->n_keys, new_buf, new_len, sigs, n_sigs, &np->serial);
	if (new_ok < np->threshold) {
		r = bn_fail(err, -EKEYREJECTED, "new trust policy is signed by %zu of its own key(s); it needs %u", new_ok,
		            np->threshold);
		goto out;
	}
	if (np->serial <= cur->serial) {
		r = bn_fail(err, -ESTALE, "new trust policy has serial %" PRIu64 ", not above the current %" PRIu64,
		            np->serial, cur->serial);
		goto out;
	}
	*ret_new = *np;
out:
	free(sigs);
	free(np);
	return r;
}
