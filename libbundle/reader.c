/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening a bundle: signatures checked over the raw manifest bytes before
 * jansson parses them, the manifest, the layout (layout.c); then fetching
 * chunks' stored bytes from their volume or, for a delta, the base tree.
 * Checking them is verify.c's; signing, sign.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "bundle/tunables.h"
#include "reader_internal.h"

void bn_bundle_free(struct bn_bundle *b)
{
	if (!b)
		return;
	free(b->dir);
	free(b->manifest_buf);
	if (b->base_dir)
		close(b->base_fd);
	free(b->base_dir);
	bn_layout_free(b->layout);
	bn_manifest_free(b->m);
	free(b);
}

/* Value of "key:" in a tab-separated trusted comment, copied into out. */
static bool tc_field(const char *tc, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	const char *p = tc;
	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == ':') {
			const char *v = p + kl + 1, *e = strchr(v, '\t');
			size_t l = e ? (size_t)(e - v) : strlen(v);
			if (l >= outlen)
				return false;
			memcpy(out, v, l);
			out[l] = '\0';
			return true;
		}
		p = strchr(p, '\t');
		if (p)
			p++;
	}
	return false;
}

static int check_trusted_comment(const struct bn_bundle *b, const char *file, const char *tc, struct bn_error *err)
{
	char name[256], channel[256], version[32], sha[80], want_ver[32], want_sha[BN_SHA256_HEX];
	if (!tc_field(tc, "bundle", name, sizeof name) || !tc_field(tc, "channel", channel, sizeof channel) ||
	    !tc_field(tc, "version", version, sizeof version) || !tc_field(tc, "sha256", sha, sizeof sha))
		return bn_fail(err, -EBADMSG, "%s: trusted comment lacks bundle, channel, version or sha256", file);
	snprintf(want_ver, sizeof want_ver, "%" PRIu64, b->m->version);
	bn_hex(b->manifest_sha256, BN_SHA256_LEN, want_sha);
	if (strcmp(name, b->m->name) || strcmp(channel, b->m->channel) || strcmp(version, want_ver) ||
	    strcmp(sha, want_sha))
		return bn_fail(err, -EBADMSG, "%s: trusted comment (bundle %s, channel %s, version %s) does not match "
		               "manifest.json (bundle %s, channel %s, version %s)", file, name, channel, version,
		               b->m->name, b->m->channel, want_ver);
	return 0;
}

int bn_bundle_open(const char *dir, const struct bn_trust *trust, struct bn_bundle **ret, struct bn_error *err)
{
	struct bn_bundle *b = calloc(1, sizeof *b);
	char *mpath = NULL, *sdir = NULL, *mdir = NULL;
	DIR *d = NULL;
	int r = 0;
	char (*tcs)[BN_TRUSTED_COMMENT_MAX] = NULL;
	char (*tcfiles)[300] = NULL;
	size_t n_tcs = 0;
	/* A media set (DIR/medium-NN/) keeps the signed files on each medium. */
	r = b ? bn_layout_manifest_dir(dir, &mdir, err) : 0;
	if (r < 0)
		goto out;
	if (!b || !(b->dir = strdup(dir)) || !(mpath = bn_path_join(mdir ? mdir : dir, "manifest.json")) ||
	    !(sdir = bn_path_join(mdir ? mdir : dir, "signatures"))) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		r = bn_fail(err, errno ? -errno : -ENOTDIR, "%s: not a bundle directory", dir);
		goto out;
	}
	r = bn_read_file_nofollow(mpath, BN_MANIFEST_MAX, &b->manifest_buf, &b->manifest_len, err);
	if (r < 0) {
		if (r == -ENOENT)
			r = bn_fail(err, -EBADMSG, "%s: missing", mpath);
		else if (r == -EFBIG)
			r = bn_fail(err, -EFBIG, "%s: larger than %u bytes", mpath, BN_MANIFEST_MAX);
		goto out;
	}
	bn_sha256(b->manifest_buf, b->manifest_len, b->manifest_sha256);

	/* Signatures: bounded count and size, parsed before anything else. */
	d = opendir(sdir);
	if (!d) {
		r = bn_fail(err, errno == ENOENT ? -EKEYREJECTED : -errno, "%s: no signatures directory", sdir);
		goto out;
	}
	tcs = calloc(BN_MAX_SIGNATURES, sizeof *tcs);
	tcfiles = calloc(BN_MAX_SIGNATURES, sizeof *tcfiles);
	if (!tcs || !tcfiles) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	unsigned threshold = trust->threshold ? trust->threshold : 1;
	size_t seen = 0, signer_key[BN_MAX_SIGNATURES];
	char bad[BN_ERROR_MAX] = "", untrusted[256] = "";
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (++seen > BN_MAX_SIGNATURES) {
			r = bn_fail(err, -EBADMSG, "%s: more than %d files", sdir, BN_MAX_SIGNATURES);
			goto out;
		}
		size_t nl = strlen(de->d_name);
		if (nl < 9 || nl > 200 || strcmp(de->d_name + nl - 8, ".minisig") != 0) {
			r = bn_fail(err, -EBADMSG, "%s/%s: unexpected file in signatures/", sdir, de->d_name);
			goto out;
		}
		char spath[512];
		snprintf(spath, sizeof spath, "%s/%s", sdir, de->d_name);
		char *text = NULL;
		size_t tl = 0;
		struct bn_error e2 = {0};
		struct bn_minisig sig;
		int q = bn_read_file_nofollow(spath, BN_SIGFILE_MAX, &text, &tl, &e2);
		if (q == 0)
			q = bn_minisig_parse(text, tl, &sig, &e2);
		free(text);
		if (q < 0) {
			r = bn_fail(err, q == -EFBIG ? -EBADMSG : q, "signatures/%s: %s", de->d_name, e2.msg);
			goto out;
		}
		bool matched = false;
		for (size_t k = 0; k < trust->n_keys; k++) {
			q = bn_minisig_verify(&sig, &trust->keys[k], b->manifest_buf, b->manifest_len);
			if (q == -ENOKEY)
				continue;
			matched = true;
			if (q < 0) {
				char id[BN_KEYID_HEX];
				bn_keyid_hex(sig.keyid, id);
				snprintf(bad, sizeof bad,
				         "signatures/%s: signature by trusted key %s does not verify (manifest.json or its trusted comment was altered)",
				         de->d_name, id);
				break;
			}
			/* Counted per distinct public key: the key id is not covered by
			 * the signature, so one key listed under two ids (or one
			 * signature copied with another id) must not count twice. */
			bool dup = false;
			for (size_t j = 0; j < b->n_signers; j++)
				dup |= !memcmp(b->signers[j], sig.keyid, BN_KEYID_LEN) ||
				       bn_pubkey_same(&trust->keys[signer_key[j]], &trust->keys[k]);
			if (!dup) {
				signer_key[b->n_signers] = k;
				memcpy(b->signers[b->n_signers], sig.keyid, BN_KEYID_LEN);
				b->n_signers++;
				memcpy(tcs[n_tcs], sig.trusted_comment, sizeof sig.trusted_comment);
				snprintf(tcfiles[n_tcs], sizeof tcfiles[n_tcs], "signatures/%s", de->d_name);
				n_tcs++;
			}
			break;
		}
		if (!matched && strlen(untrusted) < sizeof untrusted - 20) {
			char id[BN_KEYID_HEX];
			bn_keyid_hex(sig.keyid, id);
			strncat(untrusted, untrusted[0] ? ", " : "", sizeof untrusted - strlen(untrusted) - 1);
			strncat(untrusted, id, sizeof untrusted - strlen(untrusted) - 1);
		}
	}
	if (bad[0]) {
		r = bn_fail(err, -EBADMSG, "%s: %s", dir, bad);
		goto out;
	}
	if (b->n_signers < threshold) {
		if (b->n_signers == 0)
			r = bn_fail(err, -EKEYREJECTED, "%s: no valid signature by a trusted key (signed by: %s)", dir,
			            untrusted[0] ? untrusted : "nobody");
		else
			r = bn_fail(err, -EKEYREJECTED, "%s: signed by %zu trusted key(s), the policy needs %u", dir,
			            b->n_signers, threshold);
		goto out;
	}

	/* Only now is the manifest trusted enough to parse. */
	r = bn_manifest_parse(b->manifest_buf, b->manifest_len, &b->m, err);
	if (r < 0) {
		bn_error_prefix(err, "%s", dir);
		goto out;
	}
	for (size_t i = 0; i < n_tcs; i++) {
		r = check_trusted_comment(b, tcfiles[i], tcs[i], err);
		if (r < 0) {
			bn_error_prefix(err, "%s", dir);
			goto out;
		}
		char ts[32];
		if (!b->signed_at && tc_field(tcs[i], "timestamp", ts, sizeof ts))
			b->signed_at = strtoull(ts, NULL, 10);
	}
	r = bn_layout_attach(b, err);
	if (r < 0)
		goto out;
	*ret = b;
	b = NULL;
out:
	if (d)
		closedir(d);
	free(tcs);
	free(tcfiles);
	free(mpath);
	free(sdir);
	free(mdir);
	bn_bundle_free(b);
	return r;
}

void bn_describe_chunk(const struct bn_bundle *b, size_t ci, char *out, size_t outlen)
{
	const struct bn_chunk *c = &b->m->chunks[ci];
	const struct bn_artifact *a = &b->m->artifacts[c->artifact];
	ssize_t fi = bn_artifact_file_at(a, c->soffset);
	if (bn_chunk_reused(c))
		snprintf(out, outlen, "chunk %zu (artifact '%s', reused from base file %s/%s at offset %" PRIu64 ")",
		         ci, a->name, b->m->brefs[c->bref].artifact, b->m->brefs[c->bref].path, c->boffset);
	else if (fi >= 0)
		snprintf(out, outlen, "%s: chunk %zu (artifact '%s', file '%s' at offset %" PRIu64 ")",
		         b->m->volumes[c->volume].name, ci, a->name, a->entries[fi].path,
		         c->soffset - a->entries[fi].offset);
	else
		snprintf(out, outlen, "%s: chunk %zu (artifact '%s')", b->m->volumes[c->volume].name, ci, a->name);
}

int bn_chunk_reader_init(struct bn_chunk_reader *cr, struct bn_bundle *b, struct bn_error *err)
{
	memset(cr, 0, sizeof *cr);
	cr->b = b;
	cr->fd = -1;
	cr->vol = (size_t)-1;
	cr->bfd = -1;
	(void)err;
	return 0;
}

void bn_chunk_reader_release(struct bn_chunk_reader *cr)
{
	if (cr->fd >= 0)
		close(cr->fd);
	if (cr->bfd >= 0)
		close(cr->bfd);
	memset(cr, 0, sizeof *cr);
	cr->fd = -1;
	cr->bfd = -1;
}

void bn_bundle_base_describe(const struct bn_manifest *m, char *out, size_t outlen)
{
	char hex[BN_SHA256_HEX];
	if (!m->base) {
		snprintf(out, outlen, "(none)");
		return;
	}
	bn_hex(m->base->sha256, BN_SHA256_LEN, hex);
	snprintf(out, outlen, "bundle %s channel %s version %" PRIu64 " (manifest sha256 %.16s...)", m->base->name,
	         m->base->channel, m->base->version, hex);
}

int bn_bundle_set_base(struct bn_bundle *b, const char *tree, struct bn_error *err)
{
	if (!b->m->base)
		return bn_fail(err, -EINVAL, "%s: not a delta bundle", b->dir);
	int fd = open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return bn_fail(err, -errno, "%s: %s", tree, strerror(errno));
	char *d = strdup(tree);
	if (!d) {
		close(fd);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	if (b->base_dir)
		close(b->base_fd);
	free(b->base_dir);
	b->base_dir = d;
	b->base_fd = fd;
	return 0;
}

/* A reused chunk's bytes, read from the base tree (unchecked: bn_chunk_check
 * compares them with the delta's signed sha256). */
static int fetch_reused(struct bn_chunk_reader *cr, size_t ci, uint8_t *buf, struct bn_error *err)
{
	struct bn_bundle *b = cr->b;
	const struct bn_chunk *c = &b->m->chunks[ci];
	const struct bn_bref *br = &b->m->brefs[c->bref];
	char base[BN_ERROR_MAX / 2];
	bn_bundle_base_describe(b->m, base, sizeof base);
	if (!b->base_dir)
		return bn_fail(err, -EBADMSG, "%s: delta bundle: needs its base %s (not given)", b->dir, base);
	if (cr->bfd < 0 || cr->bref != c->bref) {
		if (cr->bfd >= 0)
			close(cr->bfd);
		char *p = NULL;
		cr->bfd = asprintf(&p, "%s/%s", br->artifact, br->path) < 0
		              ? -1
		              : openat(b->base_fd, p, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		int e = errno;
		free(p);
		if (cr->bfd < 0)
			return bn_fail(err, -EBADMSG, "%s/%s/%s: base file missing (%s); the base %s was modified",
			               b->base_dir, br->artifact, br->path, strerror(e), base);
		cr->bref = c->bref;
	}
	if (bn_pread_all(cr->bfd, buf, c->usize, c->boffset) < 0)
		return bn_fail(
		    err, -EBADMSG,
		    "%s/%s/%s: base file shorter than the delta's signed manifest says; the base %s was modified",
		    b->base_dir, br->artifact, br->path, base);
	return 0;
}

void bn_chunk_reader_reopen(struct bn_chunk_reader *cr)
{
	if (cr->fd >= 0)
		close(cr->fd);
	cr->fd = -1;
	cr->vol = (size_t)-1;
}

/* One hashing pass over stored bytes (docs/FORMAT.md section 5): the chunks
 * of a volume tile it exactly (manifest.c refuses any gap, overlap or
 * remainder) and the volume's size is checked, so when every chunk's stored
 * SHA-256 matches, the volume's bytes are the signed ones; the whole-volume
 * hash is not computed again here.  (Parity rebuilding still hashes whole
 * volumes: a rebuilt volume has no other check before its chunks are read.) */
int bn_chunk_fetch(struct bn_chunk_reader *cr, size_t ci, uint8_t *buf, struct bn_error *err)
{
	struct bn_bundle *b = cr->b;
	const struct bn_chunk *c = &b->m->chunks[ci];
	if (bn_chunk_reused(c))
		return fetch_reused(cr, ci, buf, err);
	if (c->volume != cr->vol) {
		bn_chunk_reader_reopen(cr);
		/* layout.c finds the volume (on its medium, or rebuilt from parity). */
		cr->fd = bn_layout_open_volume(b, c->volume, err);
		if (cr->fd < 0)
			return cr->fd;
		cr->vol = c->volume;
		posix_fadvise(cr->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	int r = bn_pread_all(cr->fd, buf, c->csize, c->voffset);
	if (r < 0) {
		char what[BN_ERROR_MAX];
		bn_describe_chunk(b, ci, what, sizeof what);
		return bn_fail(err, -EIO, "%s/%s: read error (%s)", b->dir, what, strerror(-r));
	}
	return 0;
}
