/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * Ed25519 keys and signatures in minisign's file formats, so that stock
 * minisign can sign with our secret keys and verify our signatures (and the
 * other way round).  Binary layouts (all base64 in the files):
 *
 *   public key  : "Ed" | key_id[8] | pk[32]
 *   secret key  : "Ed" | kdf "Sc" or "\0\0" | "B2" | salt[32] | opslimit_le[8] |
 *                 memlimit_le[8] | (key_id[8] | sk[64] | chk[32]) XOR scrypt stream
 *                 chk = BLAKE2b-256("Ed" | key_id | sk)
 *   signature   : "ED" | key_id[8] | Ed25519(BLAKE2b-512(message))   (prehashed)
 *                 ("Ed" legacy: Ed25519(message) is accepted on verify)
 *   global sig  : Ed25519(signature[64] | trusted comment bytes)
 *
 * Key ids print as the 8 bytes read as a little-endian integer in %016llX,
 * as minisign prints them.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle/error.h"

#define BN_KEYID_LEN 8
#define BN_KEYID_HEX 17
#define BN_TRUSTED_COMMENT_MAX 8192
#define BN_SIGFILE_MAX 16384 /* a signature file is never read past this */
#define BN_KEYFILE_MAX 4096

struct bn_pubkey {
	uint8_t keyid[BN_KEYID_LEN];
	uint8_t pk[32];
};

struct bn_seckey {
	uint8_t keyid[BN_KEYID_LEN];
	uint8_t sk[64]; /* wiped by bn_seckey_wipe() */
};

struct bn_minisig {
	char alg[3];                     /* "ED" or "Ed" */
	uint8_t keyid[BN_KEYID_LEN];
	uint8_t sig[64];
	char trusted_comment[BN_TRUSTED_COMMENT_MAX];
	uint8_t global_sig[64];
};

int bn_crypto_init(void) BN_WUR; /* sodium_init(); safe to call repeatedly */

void bn_keyid_hex(const uint8_t keyid[BN_KEYID_LEN], char out[BN_KEYID_HEX]);

int bn_keygen(struct bn_pubkey *ret_pub, struct bn_seckey *ret_sec) BN_WUR;
void bn_seckey_wipe(struct bn_seckey *sk);

/* Text of a minisign public key file. */
int bn_pubkey_format(const struct bn_pubkey *pk, char **ret_text) BN_WUR;
int bn_pubkey_parse(const char *text, size_t len, struct bn_pubkey *ret, struct bn_error *err) BN_WUR;
int bn_pubkey_load(const char *path, struct bn_pubkey *ret, struct bn_error *err) BN_WUR;
/* True when the two keys are the same Ed25519 key (key ids ignored). */
bool bn_pubkey_same(const struct bn_pubkey *a, const struct bn_pubkey *b);

/* Text of a minisign secret key file; passphrase NULL writes an unencrypted key
 * (kdf "\0\0", as `minisign -G -W`).  Encrypted keys use minisign's scrypt
 * parameters (opslimit 2^25, memlimit 1 GiB). */
int bn_seckey_format(const struct bn_seckey *sk, const char *passphrase, char **ret_text) BN_WUR;
/* True when the key file text needs a passphrase. */
int bn_seckey_needs_passphrase(const char *text, size_t len, bool *ret) BN_WUR;
int bn_seckey_parse(const char *text, size_t len, const char *passphrase, struct bn_seckey *ret,
                    struct bn_error *err) BN_WUR;

/* Signs data (prehashed "ED") and returns the text of a .minisig file. */
int bn_minisig_sign(const struct bn_seckey *sk, const void *data, size_t len, const char *untrusted_comment,
                    const char *trusted_comment, char **ret_text, struct bn_error *err) BN_WUR;
/* Parses a .minisig file text (bounded by BN_SIGFILE_MAX); checks only syntax. */
int bn_minisig_parse(const char *text, size_t len, struct bn_minisig *ret, struct bn_error *err) BN_WUR;
/* Verifies both the signature over data and the global signature over the
 * trusted comment.  Returns 0, -ENOKEY (key id differs) or -EBADMSG. */
int bn_minisig_verify(const struct bn_minisig *s, const struct bn_pubkey *pk, const void *data,
                      size_t len) BN_WUR;
