/* SPDX-License-Identifier: Apache-2.0 */
/* The debs artifact: see debs.h. */
#include "debs.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/sha256.h"
#include "bundle/proc.h"
#include "sources.h"

/* the ./control member of a control.tar held in memory */
static int control_from_tar(const void *tar, size_t tlen, const char *path, struct deb_control *ret,
                            struct bn_error *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int r = -ENOENT;
	if (!a)
		return bn_fail(err, -ENOMEM, "out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_memory(a, tar, tlen) != ARCHIVE_OK) {
		r = bn_fail(err, -EBADMSG, "%s: control.tar: %s", path, archive_error_string(a));
		goto out;
	}
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *n = archive_entry_pathname(e);
		if (!n || (strcmp(n, "./control") && strcmp(n, "control")))
			continue;
		la_int64_t sz = archive_entry_size(e);
		if (sz < 0 || sz > (la_int64_t)DEB_MAX_CONTROL) {
			r = bn_fail(err, -EFBIG, "%s: control file larger than %u bytes", path, DEB_MAX_CONTROL);
			goto out;
		}
		char *buf = malloc((size_t)sz + 1);
		if (!buf) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		la_ssize_t got = archive_read_data(a, buf, (size_t)sz);
		if (got != sz) {
			free(buf);
			r = bn_fail(err, -EBADMSG, "%s: control.tar: truncated control file", path);
			goto out;
		}
		r = deb_control_parse(buf, (size_t)sz, path, ret, err);
		free(buf);
		goto out;
	}
	r = bn_fail(err, -EBADMSG, "%s: malformed control data: control.tar has no control file", path);
out:
	archive_read_free(a);
	return r;
}

int deb_read_control(const char *path, struct deb_control *ret, struct bn_error *err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int r, first = 1;
	if (!a)
		return bn_fail(err, -ENOMEM, "out of memory");
	archive_read_support_format_ar(a);
	if (archive_read_open_filename(a, path, 64 << 10) != ARCHIVE_OK) {
		r = bn_fail(err, -EBADMSG, "%s: not a Debian package: %s", path, archive_error_string(a));
		goto out;
	}
	r = bn_fail(err, -EBADMSG, "%s: not a Debian package (no control.tar member)", path);
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *n = archive_entry_pathname(e);
		if (first && (!n || strcmp(n, "debian-binary"))) {
			r = bn_fail(err, -EBADMSG, "%s: not a Debian package (first member is not debian-binary)",
			            path);
			break;
		}
		first = 0;
		if (!n || strncmp(n, "control.tar", 11))
			continue;
		la_int64_t sz = archive_entry_size(e);
		if (sz <= 0 || sz > (la_int64_t)DEB_MAX_CTLTAR) {
			r = bn_fail(err, -EFBIG, "%s: control.tar member empty or larger than %u bytes", path,
			            DEB_MAX_CTLTAR);
			break;
		}
		char *buf = malloc((size_t)sz);
		if (!buf) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			break;
		}
		if (archive_read_data(a, buf, (size_t)sz) != sz)
			r = bn_fail(err, -EBADMSG, "%s: truncated control.tar member", path);
		else
			r = control_from_tar(buf, (size_t)sz, path, ret, err);
		free(buf);
		break;
	}
out:
	archive_read_free(a);
	return r;
}

/* ---- the artifact ---- */

/* a local .deb on another file system: streamed, not read whole */
static int copy_file(const char *src, const char *dst, struct bn_error *err)
{
	FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wxb") : NULL;
	char buf[1 << 16];
	size_t n;
	int r = 0;
	if (!in || !out)
		r = bn_fail(err, -errno, "%s: %s", in ? dst : src, strerror(errno));
	while (r == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			r = bn_fail(err, -EIO, "%s: write failed", dst);
	if (r == 0 && ferror(in))
		r = bn_fail(err, -EIO, "%s: read failed", src);
	if (out && fclose(out) != 0 && r == 0)
		r = bn_fail(err, -EIO, "%s: write failed", dst);
	if (in)
		fclose(in);
	return r;
}

struct debfile {
	char *path;
	struct deb_control c;
	char sha[BN_SHA256_HEX];
	uint64_t size;
	char name[400]; /* canonical file name in the artifact */
};

static int add_deb(struct debfile **v, size_t *n, const char *path, struct bn_error *err)
{
	if (*n == DEB_MAX_FILES)
		return bn_fail(err, -E2BIG, "more than %d packages", DEB_MAX_FILES);
	struct debfile *nv = realloc(*v, (*n + 1) * sizeof **v);
	if (!nv)
		return bn_fail(err, -ENOMEM, "out of memory");
	*v = nv;
	struct debfile *d = &nv[*n];
	memset(d, 0, sizeof *d);
	if (!(d->path = strdup(path)))
		return bn_fail(err, -ENOMEM, "out of memory");
	(*n)++;
	int r = deb_read_control(path, &d->c, err);
	if (r < 0)
		return r;
	uint8_t h[BN_SHA256_LEN];
	if ((r = bn_sha256_file(path, h, &d->size, err)) < 0)
		return r;
	bn_hex(h, sizeof h, d->sha);
	/* pool-style name: PACKAGE_VERSION_ARCH.deb, the epoch's ':' as %3a as apt does */
	char ver[200];
	size_t k = 0;
	for (const char *p = d->c.version; *p && k < sizeof ver - 4; p++) {
		if (*p == ':')
			ver[k++] = '%', ver[k++] = '3', ver[k++] = 'a';
		else
			ver[k++] = *p;
	}
	ver[k] = 0;
	snprintf(d->name, sizeof d->name, "%s_%s_%s.deb", d->c.package, ver, d->c.arch);
	return 0;
}

/* local .debs: a file, or every *.deb of a directory (not recursive) */
static int collect_local(const char *path, struct debfile **v, size_t *n, struct bn_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return bn_fail(err, -errno, "%s: %s", path, strerror(errno));
	if (S_ISREG(st.st_mode))
		return add_deb(v, n, path, err);
	if (!S_ISDIR(st.st_mode))
		return bn_fail(err, -EINVAL, "%s: not a .deb file or a directory of them", path);
	struct dirent **ents = NULL;
	int ne = scandir(path, &ents, NULL, alphasort), r = 0;
	if (ne < 0)
		return bn_fail(err, -errno, "%s: %s", path, strerror(errno));
	for (int i = 0; i < ne; i++) {
		size_t l = strlen(ents[i]->d_name);
		if (r == 0 && l > 4 && !strcmp(ents[i]->d_name + l - 4, ".deb")) {
			char *p = bn_path_join(path, ents[i]->d_name);
			r = p ? add_deb(v, n, p, err) : bn_fail(err, -ENOMEM, "out of memory");
			free(p);
		}
		free(ents[i]);
	}
	free(ents);
	return r;
}

/* The last "E:" line of apt's output (or its last line), for a one-line error. */
static void apt_reason(const char *text, char *out, size_t on)
{
	char *buf = strdup(text ? text : ""), *best = NULL;
	snprintf(out, on, "no output");
	if (!buf)
		return;
	for (char *s = buf, *save = NULL, *l; (l = strtok_r(s, "\n", &save)); s = NULL)
		if (!strncmp(l, "E: ", 3) || !best)
			best = l;
	if (best)
		snprintf(out, on, "%s", best);
	free(buf);
}

/* apt-get with a private state: only the spec's sources, the stated base as
 * the installed set, downloads into dir/archives.  Returns apt's exit
 * status (or a negative errno), and its last error line in reason. */
static int run_apt(const char *dir, const char *sources, const char *status, const char *arch, const char *const *pk,
                   size_t npk, bool update, char *reason, size_t rlen, struct bn_error *err)
{
	char o[6][4200];
	const char *argv[80];
	size_t k = 0;
	argv[k++] = "/usr/bin/apt-get";
	snprintf(o[0], sizeof o[0], "Dir=%s/apt", dir);
	snprintf(o[1], sizeof o[1], "Dir::Etc::sourcelist=%s", sources);
	snprintf(o[2], sizeof o[2], "Dir::State::status=%s", status);
	snprintf(o[3], sizeof o[3], "Dir::Cache::archives=%s/archives", dir);
	snprintf(o[4], sizeof o[4], "APT::Architecture=%s", arch);
	snprintf(o[5], sizeof o[5], "APT::Architectures=%s", arch);
	static const char *fixed[] = {"Dir::Etc::sourceparts=-", "Dir::Etc::preferencesparts=-", "Dir::Etc::parts=-",
	                              "Debug::NoLocking=1", "APT::Sandbox::User=root", "APT::Install-Recommends=0",
	                              "APT::Get::List-Cleanup=0", "Acquire::Languages=none"};
	for (int i = 0; i < 6; i++)
		argv[k++] = "-o", argv[k++] = o[i];
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		argv[k++] = "-o", argv[k++] = fixed[i];
	argv[k++] = "-q";
	if (update) {
		argv[k++] = "update";
	} else {
		argv[k++] = "install";
		argv[k++] = "--download-only";
		argv[k++] = "-y";
		for (size_t i = 0; i < npk && k < 78; i++)
			argv[k++] = pk[i];
	}
	argv[k] = NULL;
	/* apt's messages: the tail of stdout and stderr (E: lines go to stderr) */
	struct bn_proc_opts po = {.timeout_ms = 3600 * 1000, .cancellable = true, .stdout_max = 64 << 10,
	                          .stderr_max = 64 << 10};
	struct bn_proc_result pr = {0};
	int r = bn_proc_run((char *const *)argv, &po, &pr, err);
	if (r < 0)
		return r;
	apt_reason(pr.err && pr.err[0] ? pr.err : pr.out, reason, rlen);
	r = pr.timed_out ? -ETIMEDOUT : WIFEXITED(pr.status) ? WEXITSTATUS(pr.status) : 128 + WTERMSIG(pr.status);
	bn_proc_result_release(&pr);
	return r;
}

static int mkdirs(const char *base, const char *const *rel, size_t n, struct bn_error *err)
{
	for (size_t i = 0; i < n; i++) {
		char *p = bn_path_join(base, rel[i]);
		int r = p ? bn_mkdir_p(p, 0700) : -ENOMEM;
		if (r < 0)
			bn_fail(err, r, "%s: cannot create: %s", p ? p : base, strerror(-r));
		free(p);
		if (r < 0)
			return r;
	}
	return 0;
}

static int resolve_apt(const struct spec_artifact *a, const char *stage, struct debfile **v, size_t *n,
                       struct bn_error *err)
{
	json_t *pk = json_object_get(a->json, "packages");
	json_t *apt = json_object_get(a->json, "apt");
	const char *sources = json_string_value(json_object_get(apt, "sources"));
	const char *status = json_string_value(json_object_get(apt, "status"));
	const char *arch = json_string_value(json_object_get(apt, "architecture"));
	size_t np = json_array_size(pk);
	if (!json_is_array(pk) || np == 0 || np > 50)
		return bn_fail(err, -EINVAL, "\"packages\" must be a list of 1 to 50 package names");
	const char *names[50];
	for (size_t i = 0; i < np; i++) {
		names[i] = json_string_value(json_array_get(pk, i));
		if (!names[i] || !deb_name_valid(names[i], "+-.", true) || strlen(names[i]) > 100)
			return bn_fail(err, -EINVAL, "\"packages\" entry %zu is not a Debian package name", i);
	}
	if (!json_is_object(apt) || !sources)
		return bn_fail(
		    err, -EINVAL,
		    "\"packages\" needs \"apt\": {\"sources\": FILE} (deb lines of the target release), and may "
		    "name \"status\" (the target's dpkg status) and \"architecture\"");
	if (arch && !deb_name_valid(arch, "-", true))
		return bn_fail(err, -EINVAL, "\"apt\".\"architecture\" is not a Debian architecture");
	if (access("/usr/bin/apt-get", X_OK) < 0)
		return bn_fail(err, -ENOENT, "\"packages\" needs apt-get (/usr/bin/apt-get) in the dirty zone");
	char *src = sources[0] == '/' ? strdup(sources) : bn_path_join(a->dir, sources);
	char *st = status ? (status[0] == '/' ? strdup(status) : bn_path_join(a->dir, status)) : NULL;
	char *dir = bn_path_join(stage, "apt-work"), *empty = bn_path_join(stage, "apt-work/empty-status");
	int r = 0;
	if (!src || (status && !st) || !dir || !empty) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (access(src, R_OK) < 0 || (st && access(st, R_OK) < 0)) {
		r = bn_fail(err, -errno, "%s: %s", access(src, R_OK) < 0 ? src : st, strerror(errno));
		goto out;
	}
	static const char *const dirs[] = {"apt-work/apt/var/lib/apt/lists/partial", "apt-work/apt/var/cache/apt",
	                                   "apt-work/archives/partial", "apt-work/apt/etc/apt"};
	if ((r = mkdirs(stage, dirs, 4, err)) < 0)
		goto out;
	if (!st && (r = bn_write_file_atomic(empty, "", 0, 0600, err)) < 0)
		goto out;
	char reason[300];
#if defined(__x86_64__)
	const char *machine_arch = arch ? arch : "amd64";
#elif defined(__aarch64__)
	const char *machine_arch = arch ? arch : "arm64";
#else
	const char *machine_arch = arch;
	if (!machine_arch) {
		r = bn_fail(err, -EINVAL, "\"apt\" needs \"architecture\" on this machine");
		goto out;
	}
#endif
	int rc = run_apt(dir, src, st ? st : empty, machine_arch, NULL, 0, true, reason, sizeof reason, err);
	if (rc < 0) {
		r = rc;
		goto out;
	}
	if (rc != 0) {
		r = bn_fail(err, -EIO, "apt-get update with %s failed (exit %d): %s", src, rc, reason);
		goto out;
	}
	rc = run_apt(dir, src, st ? st : empty, machine_arch, names, np, false, reason, sizeof reason, err);
	if (rc < 0) {
		r = rc;
		goto out;
	}
	if (rc != 0) {
		r = bn_fail(err, -ENOENT, "apt cannot resolve the packages (exit %d): %s", rc, reason);
		goto out;
	}
	char *arch_dir = bn_path_join(dir, "archives");
	r = arch_dir ? collect_local(arch_dir, v, n, err) : bn_fail(err, -ENOMEM, "out of memory");
	free(arch_dir);
out:
	free(src);
	free(st);
	free(dir);
	free(empty);
	return r;
}

int agpack_debs(const struct spec_artifact *a, const char *stage, char **ret_path, json_t **ret_source,
                struct bn_error *err)
{
	struct debfile *v = NULL;
	size_t n = 0;
	char *out = NULL, *index = NULL;
	size_t ilen = 0;
	json_t *pkgs = NULL, *src = NULL;
	int r = 0;

	const char *lp = json_string_value(json_object_get(a->json, "path"));
	char *local = lp ? (lp[0] == '/' ? strdup(lp) : bn_path_join(a->dir, lp)) : NULL;
	if (lp && !local)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (!lp && !json_object_get(a->json, "packages"))
		return bn_fail(err, -EINVAL, "debs needs \"path\" (.deb files) and/or \"packages\"");
	r = local ? collect_local(local, &v, &n, err) : 0;
	free(local);
	if (r < 0)
		goto out;
	if (json_object_get(a->json, "packages") && (r = resolve_apt(a, stage, &v, &n, err)) < 0)
		goto out;
	if (n == 0) {
		r = bn_fail(err, -ENOENT, "%s: no .deb files", lp ? lp : "packages");
		goto out;
	}
	out = bn_path_join(stage, "repo");
	pkgs = json_array();
	if (!out || !pkgs) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	if ((r = bn_mkdir_p(out, 0755)) < 0) {
		bn_fail(err, r, "%s: cannot create: %s", out, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct debfile *d = &v[i];
		for (size_t j = 0; j < i; j++)
			if (!strcmp(v[j].name, d->name)) {
				if (strcmp(v[j].sha, d->sha)) {
					r = bn_fail(err, -EINVAL, "%s and %s are both %s %s (%s) but differ", v[j].path,
					            d->path, d->c.package, d->c.version, d->c.arch);
					goto out;
				}
				d->name[0] = 0; /* the same file twice: once */
			}
		if (!d->name[0])
			continue;
		char *dst = bn_path_join(out, d->name);
		if (!dst) {
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (link(d->path, dst) < 0)
			r = copy_file(d->path, dst, err);
		free(dst);
		if (r < 0)
			goto out;
		char *entry = NULL;
		int el = asprintf(&entry, "%sFilename: ./%s\nSize: %llu\nSHA256: %s\n\n", d->c.text, d->name,
		                  (unsigned long long)d->size, d->sha);
		char *ni = el < 0 ? NULL : realloc(index, ilen + (size_t)el + 1);
		if (!ni) {
			free(entry);
			r = bn_fail(err, -ENOMEM, "out of memory");
			goto out;
		}
		index = ni;
		memcpy(index + ilen, entry, (size_t)el + 1);
		ilen += (size_t)el;
		free(entry);
		json_array_append_new(pkgs, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "package", d->c.package,
		                                      "version", d->c.version, "architecture", d->c.arch, "file",
		                                      d->name, "sha256", d->sha, "size", (json_int_t)d->size));
	}
	char *ip = bn_path_join(out, "Packages");
	r = ip ? bn_write_file_atomic(ip, index, ilen, 0644, err) : bn_fail(err, -ENOMEM, "out of memory");
	free(ip);
	if (r < 0)
		goto out;
	src = json_pack("{s:s, s:o}", "type", "debs", "packages", pkgs);
	pkgs = NULL;
	if (!src) {
		r = bn_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	*ret_path = out;
	*ret_source = src;
	out = NULL;
	r = 0;
out:
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		deb_control_free(&v[i].c);
	}
	free(v);
	free(out);
	free(index);
	json_decref(pkgs);
	return r;
}

int agpack_fetch_debs(const struct spec_artifact *a, const struct net_opts *o, const char *stage, char **ret_path,
                      json_t **ret_source, struct bn_error *err)
{
	if (o && o->dry_run) {
		/* apt resolves "packages" only in a real build */
		json_t *p = json_object_get(a->json, "path"), *k = json_object_get(a->json, "packages");
		*ret_path = NULL;
		*ret_source = json_pack("{s:s, s:O?, s:O?}", "type", "debs", "path", p, "packages", k);
		return *ret_source ? 0 : bn_fail(err, -ENOMEM, "out of memory");
	}
	return agpack_debs(a, stage, ret_path, ret_source, err);
}
