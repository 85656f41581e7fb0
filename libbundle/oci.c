/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "bundle/fsutil.h"
#include "bundle/oci.h"
#include "bundle/sha256.h"

#define OCI_JSON_MAX (16u << 20)

int bn_oci_is_layout(const char *dir)
{
	char *a = bn_path_join(dir, "oci-layout"), *b = bn_path_join(dir, "index.json");
	struct stat s1, s2;
	int ok = a && b && stat(a, &s1) == 0 && S_ISREG(s1.st_mode) && stat(b, &s2) == 0 && S_ISREG(s2.st_mode);
	free(a);
	free(b);
	return ok;
}

/* True when a member name denotes the extraction root itself ("", ".", "./"). */
static bool names_root(const char *n)
{
	for (; *n; n++)
		if (*n != '/' && *n != '.')
			return false;
		else if (n[0] == '.' && n[1] == '.')
			return false;
	return true;
}

static int untar(const char *src, const char *dest, struct bn_error *err)
{
	struct archive *in = archive_read_new(), *out = archive_write_disk_new();
	int r = 0;
	if (!in || !out) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto done;
	}
	archive_read_support_filter_all(in);
	archive_read_support_format_tar(in);
	/* Members are written as dest/NAME: absolute by design when dest is, so
	 * libarchive's NOABSOLUTEPATHS cannot be used (it refused every member
	 * under an absolute work directory); absolute member and hard link names
	 * are refused below instead.  dest is canonical (see bn_oci_prepare()),
	 * so NODOTDOT and SECURE_SYMLINKS only ever see the member's own parts. */
	archive_write_disk_set_options(out, ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
	                                        ARCHIVE_EXTRACT_PERM);
	if (archive_read_open_filename(in, src, 1 << 20) != ARCHIVE_OK) {
		r = bn_fail(err, -EBADMSG, "%s: not a readable tar archive: %s", src, archive_error_string(in));
		goto done;
	}
	for (;;) {
		struct archive_entry *e;
		int q = archive_read_next_header(in, &e);
		if (q == ARCHIVE_EOF)
			break;
		if (q != ARCHIVE_OK) {
			r = bn_fail(err, -EBADMSG, "%s: %s", src, archive_error_string(in));
			goto done;
		}
		mode_t t = archive_entry_filetype(e);
		if (t != AE_IFREG && t != AE_IFDIR && t != AE_IFLNK)
			continue;
		/* A copy: archive_entry_set_pathname() below frees the entry's own
		 * string, and error messages still name the member. */
		const char *n0 = archive_entry_pathname(e), *h0 = archive_entry_hardlink(e);
		if ((n0 && n0[0] == '/') || (h0 && h0[0] == '/')) {
			r = bn_fail(err, -EBADMSG, "%s: unsafe member '%s': absolute path", src, n0);
			goto done;
		}
		/* The root is ours: a member named "" or "." must not replace it
		 * (as a symlink it would redirect everything that reads dest). */
		if (n0 && names_root(n0)) {
			if (t == AE_IFDIR)
				continue;
			r = bn_fail(err, -EBADMSG, "%s: unsafe member '%s': replaces the archive root", src, n0);
			goto done;
		}
		char *name = n0 ? strdup(n0) : NULL;
		char *full = name ? bn_path_join(dest, name) : NULL;
		if (!full) {
			free(name);
			r = n0 ? bn_fail(err, -ENOMEM, "out of memory") : bn_fail(err, -EBADMSG, "%s: member without a name", src);
			goto done;
		}
		archive_entry_set_pathname(e, full);
		free(full);
		archive_entry_set_perm(e, archive_entry_perm(e) & 0755);
		if (archive_entry_hardlink(e)) {
			char *hl = bn_path_join(dest, archive_entry_hardlink(e));
			archive_entry_set_hardlink(e, hl);
			free(hl);
		}
		q = archive_write_header(out, e);
		if (q != ARCHIVE_OK) {
			r = bn_fail(err, -EBADMSG, "%s: unsafe or unwritable member '%s': %s", src, name, archive_error_string(out));
			free(name);
			goto done;
		}
		free(name);
		const void *buf;
		size_t len;
		la_int64_t off;
		while ((q = archive_read_data_block(in, &buf, &len, &off)) == ARCHIVE_OK)
			if (archive_write_data_block(out, buf, len, off) != ARCHIVE_OK) {
				r = bn_fail(err, -EIO, "%s: %s", dest, archive_error_string(out));
				goto done;
			}
		if (q != ARCHIVE_EOF) {
			r = bn_fail(err, -EBADMSG, "%s: %s", src, archive_error_string(in));
			goto done;
		}
		archive_write_finish_entry(out);
	}
done:
	if (in)
		archive_read_free(in);
	if (out)
		archive_write_free(out);
	return r;
}

/* Resolves rel inside root (following links only within it). */
static char *resolve_inside(const char *root, const char *rel)
{
	char *p = bn_path_join(root, rel);
	char real[PATH_MAX], rroot[PATH_MAX];
	if (!p || !realpath(p, real) || !realpath(root, rroot)) {
		free(p);
		return NULL;
	}
	free(p);
	size_t l = strlen(rroot);
	if (strncmp(real, rroot, l) != 0 || real[l] != '/')
		return NULL;
	return strdup(real);
}

static const char *layer_media_type(const char *path)
{
	unsigned char m[4] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, m, 4) < 0)
			m[0] = 0;
		close(fd);
	}
	if (m[0] == 0x1f && m[1] == 0x8b)
		return "application/vnd.oci.image.layer.v1.tar+gzip";
	if (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		return "application/vnd.oci.image.layer.v1.tar+zstd";
	return "application/vnd.oci.image.layer.v1.tar";
}

/* Copies (hard links when possible) file into out/blobs/sha256/<digest>; returns a descriptor. */
static json_t *add_blob(const char *file, const char *out, const char *media, struct bn_error *err)
{
	uint8_t h[BN_SHA256_LEN];
	char hex[BN_SHA256_HEX], *dst = NULL, *digest = NULL;
	uint64_t size = 0;
	if (bn_sha256_file(file, h, &size, err) < 0)
		return NULL;
	bn_hex(h, BN_SHA256_LEN, hex);
	if (asprintf(&dst, "%s/blobs/sha256/%s", out, hex) < 0 || asprintf(&digest, "sha256:%s", hex) < 0) {
		free(dst);
		bn_fail(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if (link(file, dst) < 0 && errno != EEXIST) {
		bn_fail(err, -errno, "%s: %s", dst, strerror(errno));
		free(dst);
		free(digest);
		return NULL;
	}
	free(dst);
	json_t *d = json_pack("{s:s, s:s, s:I}", "mediaType", media, "digest", digest, "size", (json_int_t)size);
	free(digest);
	if (!d)
		bn_fail(err, -ENOMEM, "out of memory");
	return d;
}

static int write_json_blob(json_t *j, const char *out, char **ret_digest, uint64_t *ret_size, struct bn_error *err)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text)
		return bn_fail(err, -ENOMEM, "out of memory");
	uint8_t h[BN_SHA256_LEN];
	char hex[BN_SHA256_HEX], *path = NULL;
	size_t len = strlen(text);
	bn_sha256(text, len, h);
	bn_hex(h, BN_SHA256_LEN, hex);
	int r = 0;
	if (asprintf(&path, "%s/blobs/sha256/%s", out, hex) < 0 || asprintf(ret_digest, "sha256:%s", hex) < 0)
		r = bn_fail(err, -ENOMEM, "out of memory");
	else
		r = bn_write_file_atomic(path, text, len, 0644, err);
	*ret_size = len;
	free(path);
	free(text);
	return r;
}

static int convert_docker(const char *raw, const char *out, struct bn_error *err)
{
	char *mpath = bn_path_join(raw, "manifest.json"), *buf = NULL, *blobs = NULL;
	size_t len = 0;
	json_t *dm = NULL, *index = NULL;
	int r = 0;
	if (!mpath || asprintf(&blobs, "%s/blobs/sha256", out) < 0) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto done;
	}
	r = bn_read_file(mpath, OCI_JSON_MAX, &buf, &len, err);
	if (r < 0)
		goto done;
	json_error_t je;
	dm = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_array(dm) || json_array_size(dm) == 0) {
		r = bn_fail(err, -EBADMSG, "docker save manifest.json: not a non-empty array");
		goto done;
	}
	r = bn_mkdir_p(blobs, 0755);
	if (r < 0) {
		r = bn_fail(err, r, "%s: %s", blobs, strerror(-r));
		goto done;
	}
	index = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", "application/vnd.oci.image.index.v1+json",
	                  "manifests");
	size_t i;
	json_t *img;
	json_array_foreach(dm, i, img) {
		const char *cfg = json_string_value(json_object_get(img, "Config"));
		json_t *layers = json_object_get(img, "Layers");
		if (!cfg || !json_is_array(layers)) {
			r = bn_fail(err, -EBADMSG, "docker save manifest.json: image %zu lacks Config or Layers", i);
			goto done;
		}
		char *cfile = resolve_inside(raw, cfg);
		if (!cfile) {
			r = bn_fail(err, -EBADMSG, "docker save: config '%s' is missing or outside the archive", cfg);
			goto done;
		}
		json_t *cdesc = add_blob(cfile, out, "application/vnd.oci.image.config.v1+json", err);
		free(cfile);
		if (!cdesc) {
			r = err ? err->code : -EIO;
			goto done;
		}
		json_t *ldescs = json_array();
		size_t k;
		json_t *l;
		json_array_foreach(layers, k, l) {
			const char *lp = json_string_value(l);
			char *lfile = lp ? resolve_inside(raw, lp) : NULL;
			json_t *ld = lfile ? add_blob(lfile, out, layer_media_type(lfile), err) : NULL;
			if (!lfile)
				bn_fail(err, -EBADMSG, "docker save: layer '%s' is missing or outside the archive", lp ? lp : "?");
			free(lfile);
			if (!ld) {
				json_decref(ldescs);
				json_decref(cdesc);
				r = err ? err->code : -EIO;
				goto done;
			}
			json_array_append_new(ldescs, ld);
		}
		json_t *man = json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType",
		                        "application/vnd.oci.image.manifest.v1+json", "config", cdesc, "layers", ldescs);
		char *digest = NULL;
		uint64_t msize = 0;
		r = man ? write_json_blob(man, out, &digest, &msize, err) : bn_fail(err, -ENOMEM, "out of memory");
		json_decref(man);
		if (r < 0) {
			free(digest);
			goto done;
		}
		json_t *desc = json_pack("{s:s, s:s, s:I}", "mediaType", "application/vnd.oci.image.manifest.v1+json",
		                         "digest", digest, "size", (json_int_t)msize);
		free(digest);
		json_t *tags = json_object_get(img, "RepoTags");
		const char *rt = json_string_value(json_array_get(tags, 0));
		if (rt) {
			/* "repo:tag" -> "tag": skopeo's oci:DIR:TAG looks the tag up here. */
			const char *colon = strrchr(rt, ':'), *slash = strrchr(rt, '/');
			const char *tag = colon && (!slash || colon > slash) ? colon + 1 : "latest";
			json_object_set_new(desc, "annotations", json_pack("{s:s}", "org.opencontainers.image.ref.name", tag));
		}
		json_array_append_new(json_object_get(index, "manifests"), desc);
	}
	char *ipath = bn_path_join(out, "index.json"), *lpath = bn_path_join(out, "oci-layout");
	char *itext = json_dumps(index, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	if (!ipath || !lpath || !itext)
		r = bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0)
		r = bn_write_file_atomic(ipath, itext, strlen(itext), 0644, err);
	if (r == 0)
		r = bn_write_file_atomic(lpath, layout, sizeof layout - 1, 0644, err);
	free(ipath);
	free(lpath);
	free(itext);
done:
	json_decref(dm);
	json_decref(index);
	free(buf);
	free(mpath);
	free(blobs);
	return r;
}

int bn_oci_prepare(const char *src, const char *work, char **ret_dir, struct bn_error *err)
{
	struct stat st;
	if (stat(src, &st) < 0)
		return bn_fail(err, -errno, "%s: %s", src, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (!bn_oci_is_layout(src))
			return bn_fail(err, -EBADMSG, "%s: not an OCI image layout (no oci-layout and index.json)", src);
		*ret_dir = strdup(src);
		return *ret_dir ? 0 : bn_fail(err, -ENOMEM, "out of memory");
	}
	/* Canonical (absolute, no symlinks or ".."): untar() relies on it. */
	char *rwork = realpath(work, NULL);
	if (!rwork)
		return bn_fail(err, -errno, "%s: %s", work, strerror(errno));
	char *raw = bn_path_join(rwork, "raw"), *out = bn_path_join(rwork, "layout");
	free(rwork);
	int r = 0;
	if (!raw || !out) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto done;
	}
	if (mkdir(raw, 0700) < 0) {
		r = bn_fail(err, -errno, "%s: %s", raw, strerror(errno));
		goto done;
	}
	r = untar(src, raw, err);
	if (r < 0)
		goto done;
	if (bn_oci_is_layout(raw)) {
		*ret_dir = raw;
		raw = NULL;
		goto done;
	}
	char *dm = bn_path_join(raw, "manifest.json");
	bool docker = dm && access(dm, F_OK) == 0;
	free(dm);
	if (!docker) {
		r = bn_fail(err, -EBADMSG, "%s: neither an OCI image layout nor a docker save archive", src);
		goto done;
	}
	if (mkdir(out, 0755) < 0) {
		r = bn_fail(err, -errno, "%s: %s", out, strerror(errno));
		goto done;
	}
	r = convert_docker(raw, out, err);
	if (r < 0) {
		bn_error_prefix(err, "%s", src);
		goto done;
	}
	*ret_dir = out;
	out = NULL;
done:
	free(raw);
	free(out);
	return r;
}
