/* SPDX-License-Identifier: Apache-2.0 */
/* A trusted signer with a fixed key for the harnesses that need their input
 * past the signature check (fuzz-bundle, fuzz-media); see fuzz_sign.h. */
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sodium.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/sha256.h"
#include "fuzz_common.h"
#include "fuzz_sign.h"

struct bn_pubkey fuzz_pub;
static struct bn_seckey sec;
static bool ready;

void fuzz_signer_setup(void)
{
	if (ready)
		return;
	FUZZ_ASSERT(bn_crypto_init() == 0);
	/* A fixed seed rather than bn_keygen(): key id and signatures, and so
	 * every error message, are the same on every run. */
	uint8_t seed[32], pk[32], sk[64];
	memset(seed, 0x5a, sizeof seed);
	crypto_sign_seed_keypair(pk, sk, seed);
	static const uint8_t id[BN_KEYID_LEN] = {0x66, 0x75, 0x7a, 0x7a, 0x61, 0x67, 0x6b, 0x31};
	memcpy(fuzz_pub.keyid, id, BN_KEYID_LEN);
	memcpy(fuzz_pub.pk, pk, 32);
	memcpy(sec.keyid, id, BN_KEYID_LEN);
	memcpy(sec.sk, sk, 64);
	ready = true;
}

/* Signs manifest bytes the way agpack does (reader.c: write_signature()). */
void fuzz_sign(const char *bdir, const char *m, size_t ml)
{
	json_t *root = json_loadb(m, ml, 0, NULL);
	const char *name = json_string_value(json_object_get(root, "name"));
	const char *channel = json_string_value(json_object_get(root, "channel"));
	json_t *v = json_object_get(root, "version");
	uint64_t version = json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : 0;
	uint8_t h[BN_SHA256_LEN];
	char hex[BN_SHA256_HEX], id[BN_KEYID_HEX], tc[BN_TRUSTED_COMMENT_MAX];
	bn_sha256(m, ml, h);
	bn_hex(h, BN_SHA256_LEN, hex);
	bn_keyid_hex(sec.keyid, id);
	snprintf(tc, sizeof tc, "timestamp:1700000000\tfile:manifest.json\tprehashed\tbundle:%s\tchannel:%s\tversion:%" PRIu64
	         "\tsha256:%s", name ? name : "x", channel ? channel : "x", version, hex);
	json_decref(root);
	char *text = NULL;
	struct bn_error err = {0};
	if (bn_minisig_sign(&sec, m, ml, "fuzz", tc, &text, &err) < 0) {
		/* A name with a newline cannot go into a trusted comment. */
		snprintf(tc, sizeof tc, "timestamp:1700000000\tfile:manifest.json\tsha256:%s", hex);
		FUZZ_ASSERT(bn_minisig_sign(&sec, m, ml, "fuzz", tc, &text, &err) == 0);
	}
	char *sdir = bn_path_join(bdir, "signatures"), *fn = NULL;
	FUZZ_ASSERT(sdir && mkdir(sdir, 0755) == 0 && asprintf(&fn, "%s.minisig", id) > 0);
	free(fuzz_write(sdir, fn, text, strlen(text)));
	free(fn);
	free(sdir);
	free(text);
}
