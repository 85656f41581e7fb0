/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
/*
 * The bundle manifest (manifest.json): the signed description of every
 * artifact, file, chunk and volume.  docs/FORMAT.md is the normative text.
 *
 * Invariants established by bn_manifest_parse() (and relied on by readers):
 *  - names are [A-Za-z0-9._-], 1..128 bytes, starting with a letter or digit, unique;
 *  - entry paths are relative, normalised (no "", ".", ".." components),
 *    strictly increasing in byte order, each parent present as a "dir" entry;
 *  - file entries tile their artifact's data stream in entry order
 *    (offset == sum of earlier sizes), and the stream length is the sum;
 *  - chunks tile the artifact streams and the volumes in order: chunk i of
 *    the global list follows chunk i-1 in the same volume or starts the next;
 *  - every size is capped (BN_MAX_*), modes carry permission bits only,
 *    symlink targets are relative and stay inside the artifact.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "bundle/error.h"
#include "bundle/sha256.h"

#define BN_FORMAT_NAME "agkit-bundle"
#define BN_FORMAT_MAJOR 1
#define BN_FORMAT_MINOR 1 /* the highest minor this reader understands; plain bundles are written as 1.0 */
#define BN_FORMAT_DELTA_MAJOR 2 /* delta bundles (a "base" key) are written as 2.0: 1.x readers refuse them */

#define BN_MANIFEST_MAX (128u << 20)    /* bytes of manifest.json */
#define BN_MAX_ENTRIES 4000000u         /* entries per artifact */
#define BN_MAX_ARTIFACTS 1024u
#define BN_MAX_CHUNKS 4000000u
#define BN_MAX_VOLUMES 100000u
#define BN_MAX_CHUNK_SIZE (64u << 20)   /* uncompressed bytes per chunk */
#define BN_MIN_CHUNK_SIZE (4u << 10)
#define BN_DEFAULT_CHUNK_SIZE (4u << 20)
#define BN_MAX_PATH 4096u
#define BN_MAX_NAME 128u
#define BN_DEFAULT_VOLUME_SIZE (4095ull << 20) /* below FAT32's 4 GiB - 1 file limit */

enum bn_entry_type { BN_ENTRY_FILE = 0, BN_ENTRY_DIR = 1, BN_ENTRY_SYMLINK = 2 };
/* Chunk codings (docs/FORMAT.md section 4): plain zstd; byte groups of 2 or 4
 * (format 1.1). */
enum bn_coding {
	BN_CODING_ZSTD = 0,
	BN_CODING_BG2 = 1,
	BN_CODING_BG4 = 2,
	/* format 2 (delta): the bytes are not in a volume but in the base
	 * bundle's extracted file m->brefs[bref] at boffset */
	BN_CODING_BASE = 3
};

struct bn_entry {
	char *path;           /* relative to the artifact root */
	uint8_t type;         /* enum bn_entry_type */
	uint32_t mode;        /* permission bits (0..0777) */
	uint64_t size;        /* files: byte length */
	uint64_t offset;      /* files: offset in the artifact's data stream */
	uint8_t sha256[BN_SHA256_LEN]; /* files: of the content */
	char *target;         /* symlinks */
};

struct bn_artifact {
	char *name;
	char *type;           /* "files" | "oci-archive" */
	char *layout;         /* "tree" | "oci-image-layout" */
	uint64_t size;        /* length of the data stream (sum of file sizes) */
	uint64_t n_files;
	size_t n_entries;
	struct bn_entry *entries;
	size_t chunk_first, n_chunks;
	json_t *source;       /* optional provenance object (owned) */
	char *health;         /* optional "ARTIFACT/PATH" of this model's health suite, or NULL */
};

struct bn_chunk {
	uint32_t artifact;
	uint32_t volume;
	uint64_t voffset;     /* offset in the volume */
	uint64_t soffset;     /* offset in the artifact's stream (derived) */
	uint32_t csize, usize;
	uint8_t coding;       /* enum bn_coding */
	uint8_t sha256[BN_SHA256_LEN];  /* of the uncompressed bytes */
	uint8_t csha256[BN_SHA256_LEN]; /* of the stored bytes */
	uint32_t bref;                  /* BN_CODING_BASE: index into m->brefs */
	uint64_t boffset;               /* BN_CODING_BASE: offset in that base file */
};

static inline bool bn_chunk_reused(const struct bn_chunk *c)
{
	return c->coding == BN_CODING_BASE;
}

/* Format 2 (docs/FORMAT.md section 12): the bundle a delta was built
 * against, and the files of it that reused chunks come from. */
struct bn_base {
	char *name, *channel;
	uint64_t version;
	uint8_t sha256[BN_SHA256_LEN]; /* of the base's manifest.json */
};
struct bn_bref {
	char *artifact, *path; /* a file of the base: BASE_TREE/ARTIFACT/PATH */
};

struct bn_volume {
	char name[32];        /* "vol-00001.agv" */
	uint64_t size;
	uint8_t sha256[BN_SHA256_LEN];
};

struct bn_parity;  /* bundle/parity.h */
struct bn_media;

struct bn_manifest {
	unsigned format_major, format_minor;
	char *name, *channel;
	uint64_t version;
	char *created;        /* RFC 3339 UTC */
	uint32_t chunk_size;
	uint64_t volume_size;
	size_t n_artifacts, n_chunks, n_volumes;
	struct bn_artifact *artifacts;
	struct bn_chunk *chunks;
	struct bn_volume *volumes;
	struct bn_parity *parity;  /* format 1.1: optional parity volumes, or NULL */
	struct bn_media *media;    /* format 1.1: optional media assignment, or NULL */
	struct bn_base *base;      /* format 2: the base of a delta bundle, or NULL */
	size_t n_brefs;
	struct bn_bref *brefs; /* the base files reused chunks name */
};

void bn_manifest_free(struct bn_manifest *m); /* accepts NULL */
/* Frees what the artifact owns (entries, names, source, health) and zeroes it. */
void bn_artifact_release(struct bn_artifact *a);

/* Parses and validates (see invariants above).  Errors are -EBADMSG with a
 * message naming the field; an unknown major format version is -EPROTO. */
int bn_manifest_parse(const char *buf, size_t len, struct bn_manifest **ret, struct bn_error *err) BN_WUR;

/* Serialises deterministically (fixed key order, one space indent). */
int bn_manifest_format(const struct bn_manifest *m, char **ret_text, size_t *ret_len) BN_WUR;

/* Checks the naming rules used for bundle, channel and artifact names. */
bool bn_name_valid(const char *s);
/* Checks a relative entry path (normalised, no "..", bounded). */
bool bn_path_valid(const char *p);
/* True when a symlink at `path` with `target` resolves lexically inside the root. */
bool bn_symlink_inside(const char *path, const char *target);
/* Volume file name for index i (0-based): "vol-%05u.agv" of i+1. */
void bn_volume_name(size_t i, char out[32]);
/* Bytes of m's artifacts carried in its volumes and reused from its base. */
void bn_manifest_delta_bytes(const struct bn_manifest *m, uint64_t *ret_carried, uint64_t *ret_reused);
/* Index of the file entry covering stream offset off in artifact a, or -1. */
ssize_t bn_artifact_file_at(const struct bn_artifact *a, uint64_t off);
