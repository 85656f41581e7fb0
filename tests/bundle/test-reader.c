/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the reader (libbundle/reader.c): the reading order of
 * docs/FORMAT.md section 5 (signatures before the JSON parser; the trusted
 * comment bound to the manifest), the signatures/ directory's rules, and
 * verify's checks of the directory and the volumes against the signed
 * manifest (extra, missing, short and altered files, each named), one file
 * read without extracting, and extraction leaving nothing on failure.  The
 * manifest's own rules (FORMAT.md section 3) are test-manifest's.
 */
#include "unit.h"

#include "bundle/sha256.h"

static struct bn_pubkey pk, pk2;
static struct bn_seckey sk, sk2;

static void fresh(void)
{
	struct bn_error err = {0};
	bn_rm_rf(ut_path("b"));
	struct ut_pack_opts o = {.volume_size = 40000, .chunk_size = 16384};
	if (ut_pack("in", "b", &sk, &o, &err) < 0)
		ut_die(err.msg);
}

static int open_b(struct bn_bundle **ret, struct bn_error *err)
{
	struct bn_trust t = {.keys = &pk, .n_keys = 1};
	*ret = NULL;
	return bn_bundle_open(ut_path("b"), &t, ret, err);
}

static int verify_b(struct bn_error *err)
{
	struct bn_bundle *b = NULL;
	int r = open_b(&b, err);
	if (r == 0)
		r = bn_bundle_verify(b, NULL, NULL, err);
	bn_bundle_free(b);
	return r;
}

/* Replaces manifest.json by text, signed by k with trusted comment tc (NULL: unsigned). */
static void write_manifest(const char *text, const struct bn_seckey *k, const char *tc)
{
	struct bn_error err = {0};
	bn_rm_rf(ut_path("b/signatures"));
	if (bn_mkdir_p(ut_path("b/signatures"), 0755) < 0)
		ut_die("mkdir");
	ut_write(ut_path("b/manifest.json"), text, strlen(text));
	if (!k)
		return;
	char *sig = NULL, id[BN_KEYID_HEX];
	if (bn_minisig_sign(k, text, strlen(text), "test", tc, &sig, &err) < 0)
		ut_die(err.msg);
	bn_keyid_hex(k->keyid, id);
	ut_write(ut_path("b/signatures/%s.minisig", id), sig, strlen(sig));
	free(sig);
}

static void test_reading_order(void)
{
	struct bn_error err = {0};
	struct bn_bundle *b = NULL;
	fresh();
	TAP_OK(open_b(&b, &err) == 0 && b->n_signers == 1 && b->signed_at > 0, "a fresh bundle opens (%s)", err.msg);
	char *good = b ? strdup(b->manifest_buf) : NULL;
	uint8_t mh[BN_SHA256_LEN];
	bn_sha256(good, strlen(good), mh);
	TAP_OK(b && !memcmp(mh, b->manifest_sha256, sizeof mh), "manifest_sha256 is the hash of the signed bytes");
	bn_bundle_free(b);

	/* Not JSON: refused by the signature check when unsigned, by the parser only once signed. */
	write_manifest("not json {", NULL, NULL);
	int r = open_b(&b, &err);
	TAP_OK(r == -EKEYREJECTED, "unsigned junk: refused before parsing (%d: %s)", r, err.msg);
	write_manifest("not json {", &sk2, "bundle:t\tchannel:c\tversion:1\tsha256:0");
	r = open_b(&b, &err);
	TAP_OK(r == -EKEYREJECTED, "junk signed by an untrusted key: refused before parsing (%d: %s)", r, err.msg);
	write_manifest("not json {", &sk, "bundle:t\tchannel:c\tversion:1\tsha256:0");
	r = open_b(&b, &err);
	TAP_OK(r == -EBADMSG && !strstr(err.msg, "signature"), "junk signed by the trusted key reaches the parser (%d: %s)",
	       r, err.msg);

	/* The trusted comment names the manifest it signs. */
	char tc[256], hex[BN_SHA256_HEX];
	bn_hex(mh, BN_SHA256_LEN, hex);
	snprintf(tc, sizeof tc, "bundle:t\tchannel:c\tversion:1\tsha256:%s", hex);
	write_manifest(good, &sk, tc);
	TAP_OK(open_b(&b, &err) == 0, "re-signed with a matching trusted comment (%s)", err.msg);
	bn_bundle_free(b);
	snprintf(tc, sizeof tc, "bundle:other\tchannel:c\tversion:1\tsha256:%s", hex);
	write_manifest(good, &sk, tc);
	r = open_b(&b, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "trusted comment"), "a trusted comment naming another bundle (%d: %s)", r,
	       err.msg);
	snprintf(tc, sizeof tc, "bundle:t\tchannel:c\tversion:9\tsha256:%s", hex);
	write_manifest(good, &sk, tc);
	r = open_b(&b, &err);
	TAP_OK(r == -EBADMSG, "a trusted comment naming another version (%d: %s)", r, err.msg);
	write_manifest(good, &sk, "timestamp:1");
	r = open_b(&b, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "lacks"), "a trusted comment without the bundle fields (%d: %s)", r,
	       err.msg);
	free(good);

	fresh();
	ut_write(ut_path("b/signatures/notes.txt"), "x", 1);
	r = open_b(&b, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "unexpected file"), "a stray file in signatures/ (%d: %s)", r, err.msg);
	fresh();
	bn_rm_rf(ut_path("b/signatures"));
	TAP_OK(open_b(&b, &err) == -EKEYREJECTED, "no signatures/ at all (%s)", err.msg);
	fresh();
	if (unlink(ut_path("b/manifest.json")) < 0)
		ut_die("unlink");
	TAP_OK(open_b(&b, &err) == -EBADMSG && strstr(err.msg, "missing"), "no manifest.json (%s)", err.msg);
	fresh();
	if (rename(ut_path("b/manifest.json"), ut_path("b/m")) < 0 || symlink("m", ut_path("b/manifest.json")) < 0)
		ut_die("symlink");
	TAP_OK(open_b(&b, &err) < 0, "manifest.json as a symlink refused (%s)", err.msg);
}

static void test_verify(void)
{
	struct bn_error err = {0};
	fresh();
	TAP_OK(verify_b(&err) == 0, "a fresh bundle verifies (%s)", err.msg);
	ut_write(ut_path("b/extra.bin"), "x", 1);
	int r = verify_b(&err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "extra.bin"), "a file the manifest does not name (%d: %s)", r, err.msg);
	fresh();
	if (unlink(ut_path("b/vol-00002.agv")) < 0)
		ut_die("unlink");
	r = verify_b(&err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "vol-00002.agv") && strstr(err.msg, "missing"),
	       "a missing volume named (%d: %s)", r, err.msg);
	fresh();
	if (truncate(ut_path("b/vol-00002.agv"), 100) < 0)
		ut_die("truncate");
	r = verify_b(&err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "vol-00002.agv") && strstr(err.msg, "size"),
	       "a short volume named (%d: %s)", r, err.msg);
	fresh();
	if (ut_sh("printf '\\377' | dd of='%s' bs=1 seek=5000 conv=notrunc 2>/dev/null", ut_path("b/vol-00002.agv")))
		ut_die("dd");
	r = verify_b(&err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "vol-00002.agv"), "one altered byte in a volume named (%d: %s)", r,
	       err.msg);
	struct bn_bundle *b = NULL;
	if (open_b(&b, &err) < 0)
		ut_die(err.msg);
	r = bn_bundle_extract(b, ut_path("x"), NULL, &err);
	TAP_OK(r < 0 && access(ut_path("x"), F_OK) < 0, "extracting the altered bundle fails and leaves no target (%s)",
	       err.msg);
	bn_bundle_free(b);
}

static void test_read_file(void)
{
	struct bn_error err = {0};
	struct bn_bundle *b = NULL;
	fresh();
	if (open_b(&b, &err) < 0)
		ut_die(err.msg);
	char *buf = NULL;
	size_t len = 0;
	int r = bn_bundle_read_file(b, "data", "sub/small", 1024, &buf, &len, &err);
	TAP_OK(r == 0 && len == 11 && !memcmp(buf, "hello world", 11) && buf[11] == '\0',
	       "one file read back, NUL-terminated (%s)", err.msg);
	free(buf);
	buf = NULL;
	TAP_OK(bn_bundle_read_file(b, "data", "big", 1000, &buf, &len, &err) == -EFBIG && !buf,
	       "a file over the limit: -EFBIG (%s)", err.msg);
	TAP_OK(bn_bundle_read_file(b, "data", "nope", 1000, &buf, &len, &err) == -ENOENT, "no such file: -ENOENT");
	TAP_OK(bn_bundle_read_file(b, "nope", "big", 1000, &buf, &len, &err) == -ENOENT, "no such artifact: -ENOENT");
	r = bn_bundle_read_file(b, "data", "big", 1 << 20, &buf, &len, &err);
	TAP_OK(r == 0 && len == 100000, "a file over several chunks and volumes (%s)", err.msg);
	free(buf);
	if (bn_mkdir_p(ut_path("exists"), 0755) < 0)
		ut_die("mkdir");
	TAP_OK(bn_bundle_extract(b, ut_path("exists"), NULL, &err) < 0, "extract refuses an existing target (%s)", err.msg);
	bn_bundle_free(b);
}

int main(void)
{
	ut_setup("reader", &pk, &sk);
	if (bn_keygen(&pk2, &sk2) < 0)
		ut_die("keygen");
	ut_random_file(ut_path("in/big"), 100000);
	ut_write(ut_path("in/sub/small"), "hello world", 11);
	test_reading_order();
	test_verify();
	test_read_file();
	bn_rm_rf(W);
	return tap_done();
}
