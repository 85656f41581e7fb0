/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the trust policy (libbundle/trust.c) and of the m-of-n rule
 * as the reader applies it: a bundle needs `threshold` distinct trusted keys;
 * untrusted and duplicate signers do not count; a policy update needs a
 * threshold of the old and of the new keys with the trust-update comment of
 * its serial and a higher serial; a key the update drops (revoked) no longer
 * opens a bundle; the per-channel floor and the policy's limits parse as
 * documented (the floor and expiry at import are test-deploy's).
 */
#include "unit.h"

#include "bundle/minisign.h"
#include "bundle/trust.h"

#define NK 4
static struct bn_pubkey pub[NK];
static struct bn_seckey sec[NK];

/* A policy over keys [first, first + n) with threshold t and serial s. */
static char *policy_text(size_t first, size_t n, unsigned t, uint64_t s)
{
	static struct bn_trust_policy p;
	memset(&p, 0, sizeof p);
	p.serial = s;
	p.threshold = t;
	p.n_keys = n;
	for (size_t i = 0; i < n; i++)
		p.keys[i] = pub[first + i];
	p.n_channels = 1;
	snprintf(p.channels[0].name, sizeof p.channels[0].name, "stable");
	p.channels[0].min_version = 3;
	char *text = NULL;
	if (bn_trust_format(&p, &text) < 0)
		ut_die("trust format");
	return text;
}

static void test_parse(void)
{
	struct bn_error err = {0};
	struct bn_trust_policy p;
	char *t = policy_text(0, 3, 2, 5);
	TAP_OK(bn_trust_parse(t, strlen(t), &p, &err) == 0 && p.serial == 5 && p.threshold == 2 && p.n_keys == 3 &&
	               bn_trust_min_version(&p, "stable") == 3 && bn_trust_min_version(&p, "other") == 0,
	       "a formatted policy parses back (%s)", err.msg);
	TAP_OK(bn_trust_accepts_channel(&p, "stable") && !bn_trust_accepts_channel(&p, "beta"),
	       "a policy that lists channels accepts only those");
	TAP_OK(bn_trust_accepts_bundle(&p, "anything"), "a policy without bundles accepts any name");
	struct bn_trust v = bn_trust_view(&p);
	TAP_OK(v.n_keys == 3 && v.threshold == 2 && !memcmp(v.keys[1].pk, pub[1].pk, 32), "the reader's view");
	free(t);

	t = policy_text(0, 2, 3, 1);
	TAP_OK(bn_trust_parse(t, strlen(t), &p, &err) == -EBADMSG, "threshold above the key count refused (%s)",
	       err.msg);
	free(t);
	t = policy_text(0, 2, 0, 1);
	TAP_OK(bn_trust_parse(t, strlen(t), &p, &err) < 0, "threshold 0 refused (%s)", err.msg);
	free(t);
	/* The same public key twice under two key ids counts once: refused. */
	struct bn_pubkey save = pub[1];
	pub[1] = pub[0];
	pub[1].keyid[0] ^= 1;
	t = policy_text(0, 2, 1, 1);
	pub[1] = save;
	TAP_OK(bn_trust_parse(t, strlen(t), &p, &err) == -EBADMSG && strstr(err.msg, "twice"),
	       "one public key listed twice refused (%s)", err.msg);
	free(t);
	const char *v2 = "{\"agkit_trust\": 2, \"serial\": 1, \"threshold\": 1, \"keys\": []}";
	TAP_OK(bn_trust_parse(v2, strlen(v2), &p, &err) == -EPROTO, "unknown policy version refused (%s)", err.msg);
	char *age = policy_text(0, 1, 1, 1), *at = strstr(age, "\"max_bundle_age_days\": 0");
	if (!at)
		ut_die("max_bundle_age_days not in the formatted policy");
	char agebuf[4096];
	snprintf(agebuf, sizeof agebuf, "%.*s\"max_bundle_age_days\": -1%s", (int)(at - age), age,
	         at + strlen("\"max_bundle_age_days\": 0"));
	free(age);
	age = agebuf;
	TAP_OK(bn_trust_parse(age, strlen(age), &p, &err) < 0, "a negative max_bundle_age_days refused (%s)", err.msg);
	const char *nokeys = "{\"agkit_trust\": 1, \"serial\": 1, \"threshold\": 1, \"keys\": []}";
	TAP_OK(bn_trust_parse(nokeys, strlen(nokeys), &p, &err) < 0, "no keys refused (%s)", err.msg);
	TAP_OK(bn_trust_parse("{", 1, &p, &err) == -EBADMSG, "truncated JSON refused");
}

/* W/b signed by the keys in `who` (a bit per key), the first with the writer. */
static void sign_bundle(unsigned who)
{
	struct bn_error err = {0};
	bn_rm_rf(ut_path("b"));
	int first = __builtin_ctz(who);
	if (ut_pack("in", "b", &sec[first], NULL, &err) < 0)
		ut_die(err.msg);
	for (int k = first + 1; k < NK; k++)
		if (who & (1u << k) && bn_bundle_add_signature(ut_path("b"), &sec[k], &err) < 0)
			ut_die(err.msg);
}

static int open_under(size_t first, size_t n, unsigned t, struct bn_error *err)
{
	struct bn_trust tr = {.keys = &pub[first], .n_keys = n, .threshold = t};
	struct bn_bundle *b = NULL;
	int r = bn_bundle_open(ut_path("b"), &tr, &b, err);
	bn_bundle_free(b);
	return r;
}

static void test_m_of_n(void)
{
	struct bn_error err = {0};
	sign_bundle(1u << 0);
	TAP_OK(open_under(0, 3, 1, &err) == 0, "1 of 3: one signature opens (%s)", err.msg);
	TAP_OK(open_under(0, 3, 2, &err) == -EKEYREJECTED, "2 of 3: one signature refused (%s)", err.msg);
	TAP_OK(open_under(1, 3, 1, &err) == -EKEYREJECTED, "a signature by a key outside the policy refused (%s)",
	       err.msg);
	sign_bundle(1u << 0 | 1u << 3);
	TAP_OK(open_under(0, 3, 2, &err) == -EKEYREJECTED, "2 of 3: a second signature by an untrusted key does not count");
	sign_bundle(1u << 0 | 1u << 2);
	TAP_OK(open_under(0, 3, 2, &err) == 0, "2 of 3: two trusted signatures open (%s)", err.msg);
	TAP_OK(open_under(0, 3, 3, &err) == -EKEYREJECTED, "3 of 3: two are not enough");
	/* Re-signing with the same key replaces its signature: still one signer. */
	sign_bundle(1u << 0);
	if (bn_bundle_add_signature(ut_path("b"), &sec[0], &err) < 0)
		ut_die(err.msg);
	TAP_OK(open_under(0, 3, 2, &err) == -EKEYREJECTED, "the same key signing twice counts once");
	/* A manifest changed after signing. */
	sign_bundle(1u << 0);
	if (ut_sh("sed -i 's/\"version\": 1/\"version\": 2/' '%s'", ut_path("b/manifest.json")) != 0)
		ut_die("sed");
	int r = open_under(0, 3, 1, &err);
	TAP_OK(r < 0, "a manifest edited after signing refused (%d: %s)", r, err.msg);
}

/* Writes a signature of text by key k with the trusted comment for serial s. */
static const char *sign_update(const char *text, int k, uint64_t s, const char *name)
{
	char tc[128], *sig = NULL;
	snprintf(tc, sizeof tc, BN_TRUST_UPDATE_COMMENT "%" PRIu64, s);
	struct bn_error err = {0};
	if (bn_minisig_sign(&sec[k], text, strlen(text), "test", tc, &sig, &err) < 0)
		ut_die(err.msg);
	const char *p = ut_path("%s", name);
	ut_write(p, sig, strlen(sig));
	free(sig);
	return p;
}

static void test_update(void)
{
	struct bn_error err = {0};
	struct bn_trust_policy cur, np;
	char *ct = policy_text(0, 3, 2, 5);
	if (bn_trust_parse(ct, strlen(ct), &cur, &err) < 0)
		ut_die(err.msg);
	/* New policy: keys 1, 2, 3 (key 0 revoked), threshold 2, serial 6. */
	char *nt = policy_text(1, 3, 2, 6);
	char s0[512], s1[512], s2[512], s3[512];
	snprintf(s0, sizeof s0, "%s", sign_update(nt, 0, 6, "u0.minisig"));
	snprintf(s1, sizeof s1, "%s", sign_update(nt, 1, 6, "u1.minisig"));
	snprintf(s2, sizeof s2, "%s", sign_update(nt, 2, 6, "u2.minisig"));
	snprintf(s3, sizeof s3, "%s", sign_update(nt, 3, 6, "u3.minisig"));
	const char *one_old[] = {s0, s3};
	TAP_OK(bn_trust_check_update(&cur, nt, strlen(nt), one_old, 2, &np, &err) == -EKEYREJECTED,
	       "update signed by 1 of the 2 old keys needed refused (%s)", err.msg);
	const char *old_only[] = {s0, s1};
	struct bn_trust_policy n1;
	int r = bn_trust_check_update(&cur, nt, strlen(nt), old_only, 2, &n1, &err);
	TAP_OK(r == -EKEYREJECTED && strstr(err.msg, "its own"),
	       "update signed by 2 old keys but only 1 of its own refused (%s)", err.msg);
	const char *good[] = {s1, s2};
	TAP_OK(bn_trust_check_update(&cur, nt, strlen(nt), good, 2, &np, &err) == 0 && np.serial == 6,
	       "update signed by 2 old keys that are also 2 of its own accepted (%s)", err.msg);
	/* The same signatures for the same serial cannot be replayed over the new policy. */
	TAP_OK(bn_trust_check_update(&np, nt, strlen(nt), good, 2, &n1, &err) == -ESTALE,
	       "serial not above the current refused (%s)", err.msg);
	/* A signature with another trusted comment (a bundle's) is no trust-update signature. */
	char w1[512], w2[512];
	snprintf(w1, sizeof w1, "%s", sign_update(nt, 1, 7, "w1.minisig"));
	snprintf(w2, sizeof w2, "%s", sign_update(nt, 2, 7, "w2.minisig"));
	const char *wrong[] = {w1, w2};
	TAP_OK(bn_trust_check_update(&cur, nt, strlen(nt), wrong, 2, &n1, &err) == -EKEYREJECTED,
	       "signatures naming another serial refused (%s)", err.msg);
	/* Signatures of other bytes. */
	char *other = policy_text(1, 3, 1, 6);
	const char *moved[] = {s1, s2};
	TAP_OK(bn_trust_check_update(&cur, other, strlen(other), moved, 2, &n1, &err) == -EKEYREJECTED,
	       "signatures of another policy text refused (%s)", err.msg);
	free(other);

	/* The revoked key no longer opens a bundle; the kept ones do. */
	sign_bundle(1u << 0);
	struct bn_trust v = bn_trust_view(&np);
	struct bn_bundle *b = NULL;
	TAP_OK(bn_bundle_open(ut_path("b"), &v, &b, &err) == -EKEYREJECTED, "a bundle signed by the revoked key refused");
	bn_bundle_free(b);
	b = NULL;
	sign_bundle(1u << 1 | 1u << 3);
	TAP_OK(bn_bundle_open(ut_path("b"), &v, &b, &err) == 0, "keys of the new policy open (%s)", err.msg);
	bn_bundle_free(b);
	free(ct);
	free(nt);
}

int main(void)
{
	ut_setup("trust", NULL, NULL);
	for (int i = 0; i < NK; i++)
		if (bn_keygen(&pub[i], &sec[i]) < 0)
			ut_die("keygen");
	ut_random_file(ut_path("in/f"), 20000);
	test_parse();
	test_m_of_n();
	test_update();
	bn_rm_rf(W);
	return tap_done();
}
