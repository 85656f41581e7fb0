/* SPDX-License-Identifier: Apache-2.0 */
/* agpack build: the pipeline from pack spec to signed bundle (build.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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
#include "bundle/parity.h"
#include "bundle/stream.h"
#include "bundle/trust.h"
#include "bundle/writer.h"
#include "artifact_types.h"
#include "build.h"
#include "image.h"
#include "offline.h"
#include "sbom.h"
#include "spec.h"
#include "report.h"
#include "toolutil.h"

/* One build's state, from the loaded spec to the moved-into-place bundle. */
struct build {
	struct build_opts *o;
	struct spec spec;
	struct bn_seckey sk;
	struct bn_writer *w;
	struct bn_manifest *base; /* --base's manifest (owned by base_b when set) */
	struct bn_bundle *base_b; /* --base with --base-pubkey on a bundle directory */
	uint8_t base_sha[BN_SHA256_LEN];
	struct sbom *sb;       /* NULL with --no-sbom */
	struct bn_manifest *m; /* the finished manifest, taken from the writer */
	char *tmp, *stage;     /* the bundle being written; fetched/staged inputs */
	char *cache_default;
	char *mtext;
	FILE *info; /* where reports go: stderr with --stream or --json */
	struct bn_error err;
};

static uint64_t local_bytes;

static int add_size(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode))
		local_bytes += (uint64_t)st->st_size;
	return 0;
}

/* Bytes of regular files under path (a file or a tree; links not followed). */
static uint64_t local_size(const char *path)
{
	local_bytes = 0;
	if (nftw(path, add_size, 16, FTW_PHYS) < 0)
		return 0;
	return local_bytes;
}

static void warn_cb(void *ud, const char *msg)
{
	(void)ud;
	tool_warn("%s", msg);
}

static void iso_now(char out[32])
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	time_t t = sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The spec, its files checked before the passphrase is asked for, and the
 * SBOM's artifact name free.  Returns an exit status, 0 to go on. */
static int load_spec(struct build *b, const char *spec_path)
{
	int r = spec_load(spec_path, &b->spec, &b->err);
	if (r == 0 && !b->o->net.dry_run)
		r = spec_check_files(&b->spec, &b->err); /* before the passphrase */
	if (r < 0)
		return tool_fail(r, &b->err);
	b->o->no_sbom = b->o->no_sbom || b->spec.no_sbom;
	for (size_t i = 0; i < b->spec.n_artifacts && !b->o->no_sbom; i++)
		if (!strcmp(b->spec.artifacts[i].name, SBOM_ARTIFACT)) {
			tool_err(
			    "%s: an artifact is named '%s', which the SBOM needs; rename it or build with --no-sbom",
			    spec_path, SBOM_ARTIFACT);
			return BN_EXIT_USAGE;
		}
	return 0;
}

/* $XDG_CACHE_HOME/agkit or ~/.cache/agkit unless --cache. */
static void default_cache(struct build *b)
{
	if (b->o->net.cache_dir)
		return;
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (xdg && *xdg)
		b->cache_default = bn_path_join(xdg, "agkit");
	else if (asprintf(&b->cache_default, "%s/.cache/agkit", home && *home ? home : "/tmp") < 0)
		b->cache_default = NULL;
	b->o->net.cache_dir = b->cache_default;
}

/* --dry-run: "TYPE NAME SIZE bytes SOURCE" per artifact, nothing written. */
static int dry_run(struct build *b)
{
	int r = 0;
	for (size_t i = 0; i < b->spec.n_artifacts && r == 0; i++) {
		const struct spec_artifact *a = &b->spec.artifacts[i];
		struct stat st;
		if (a->path) {
			if (stat(a->path, &st) < 0)
				r = bn_fail(&b->err, -errno, "%s: %s", a->path, strerror(errno));
			else
				printf("%-12s %-24s %" PRIu64 " bytes local %s\n", a->type, a->name,
				       local_size(a->path), a->path);
			continue;
		}
		char *p = NULL;
		json_t *src = NULL;
		r = artifact_type_find(a->type)->fetch(a, &b->o->net, "/nonexistent-dry-run", &p, &src, &b->err);
		if (r == 0) {
			/* "TYPE NAME SIZE bytes SOURCE": the size is what a build would fetch and pack. */
			char *s = src ? json_dumps(src, JSON_COMPACT) : NULL;
			json_t *sz = src ? json_object_get(src, "size") : NULL;
			if (json_is_integer(sz))
				printf("%-12s %-24s %" PRIu64 " bytes %s\n", a->type, a->name,
				       (uint64_t)json_integer_value(sz), s ? s : "");
			else
				printf("%-12s %-24s ? bytes %s\n", a->type, a->name, s ? s : "");
			free(s);
		}
		free(p);
		json_decref(src);
	}
	return r;
}

/* --base: a bundle directory (or media set) or just its manifest.json.  With
 * --base-pubkey its signatures are checked (signatures/ beside the
 * manifest) and, for a bundle directory, *ret_b is the opened bundle whose
 * volumes serve content-defined matching; without, the manifest is the
 * packer's own record of what it shipped and is taken as it is: a wrong base
 * costs only a delta the site refuses (the clean zone checks every reused
 * byte against the delta's signed hashes). */
static int load_base(const char *path, const char *pubkey, struct bn_manifest **ret, struct bn_bundle **ret_b,
                     uint8_t sha[BN_SHA256_LEN], struct bn_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return bn_fail(err, -errno, "--base %s: %s", path, strerror(errno));
	bool isdir = S_ISDIR(st.st_mode);
	if (pubkey) {
		struct bn_pubkey pk;
		int r = bn_pubkey_load(pubkey, &pk, err);
		if (r < 0)
			return r;
		char *dir = isdir ? strdup(path) : bn_dirname(path);
		struct bn_trust trust = {.keys = &pk, .n_keys = 1, .threshold = 1};
		struct bn_bundle *b = NULL;
		r = dir ? bn_bundle_open(dir, &trust, &b, err) : bn_fail(err, -ENOMEM, "out of memory");
		free(dir);
		if (r < 0) {
			bn_error_prefix(err, "--base");
			return r;
		}
		memcpy(sha, b->manifest_sha256, BN_SHA256_LEN);
		if (isdir) {
			*ret = b->m; /* owned by b */
			*ret_b = b;
			return 0;
		}
		*ret = b->m;
		b->m = NULL;
		bn_bundle_free(b);
		return 0;
	}
	/* A media set keeps the manifest on each medium. */
	char *mdir = NULL;
	int q = isdir ? bn_layout_manifest_dir(path, &mdir, err) : 0;
	if (q < 0)
		return q;
	char *mp = isdir ? bn_path_join(mdir ? mdir : path, "manifest.json") : strdup(path), *buf = NULL;
	free(mdir);
	size_t len = 0;
	int r =
	    mp ? bn_read_file_nofollow(mp, BN_MANIFEST_MAX, &buf, &len, err) : bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0) {
		bn_sha256(buf, len, sha);
		r = bn_manifest_parse(buf, len, ret, err);
	}
	if (r < 0)
		bn_error_prefix(err, "--base %s", mp ? mp : path);
	free(mp);
	free(buf);
	return r;
}

/* The key, the output and staging directories beside --out, the writer
 * (with --base's manifest and content) and the SBOM. */
static int start(struct build *b)
{
	const struct build_opts *o = b->o;
	int r = tool_load_seckey(o->key, &b->sk, &b->err);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(o->out, &st) == 0)
		return bn_fail(&b->err, -EEXIST, "%s: already exists; choose a new output directory", o->out);
	r = bn_mktemp_sibling(o->out, &b->tmp, &b->err);
	if (r < 0)
		return r;
	char *stage_base = NULL;
	if (asprintf(&stage_base, "%s.stage", o->out) < 0)
		return bn_fail(&b->err, -ENOMEM, "out of memory");
	r = bn_mktemp_sibling(stage_base, &b->stage, &b->err);
	free(stage_base);
	if (r < 0)
		return r;
	struct bn_writer_opts wo = {.dir = b->tmp,
	                            .volume_size = o->volume_size,
	                            .chunk_size = (uint32_t)o->chunk_size,
	                            .level = o->level,
	                            .threads = o->threads,
	                            .warn = warn_cb,
	                            .progress = tool_progress,
	                            .progress_userdata = "pack"};
	r = bn_writer_new(&wo, &b->w, &b->err);
	if (r == 0 && o->base_path &&
	    (r = load_base(o->base_path, o->base_pubkey, &b->base, &b->base_b, b->base_sha, &b->err)) == 0)
		r = bn_writer_set_base(b->w, b->base, b->base_sha, &b->err);
	if (r == 0 && b->base_b)
		r = bn_writer_set_base_content(b->w, b->base_b, &b->err);
	if (r < 0)
		return r;
	if (!o->no_sbom && !(b->sb = sbom_new()))
		return bn_fail(&b->err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * "health": "SUITE.json" attaches a recorded suite; {"record": true} (with an
 * optional "prompts" file) records one from the artifact itself with agrun.
 * Either way the suite travels as artifact NAME-health, and the model artifact
 * points at it, all covered by the signature.
 */
static int add_health(struct bn_writer *w, const struct spec_artifact *a, json_t *health, const char *model_path,
                      const char *stage, const struct spec *spec, char **ret_suite, struct bn_error *err)
{
	char hname[BN_MAX_NAME + 16], *suite = NULL, *ref = NULL;
	snprintf(hname, sizeof hname, "%s-health", a->name);
	if (!bn_name_valid(hname))
		return bn_fail(err, -EINVAL, "health artifact name '%s' is too long", hname);
	for (size_t i = 0; i < spec->n_artifacts; i++)
		if (!strcmp(spec->artifacts[i].name, hname))
			return bn_fail(err, -EINVAL, "an artifact is already named '%s'", hname);
	int r = 0;
	if (json_is_string(health)) {
		const char *p = json_string_value(health);
		suite = p[0] == '/' ? strdup(p) : bn_path_join(spec->dir, p);
	} else if (json_is_object(health) && json_is_true(json_object_get(health, "record"))) {
		char *agrun = tool_find_program("agrun");
		if (!agrun) {
			char why[300];
			tool_find_program_error("agrun", why, sizeof why);
			return bn_fail(err, -ENOENT, "cannot record the health suite of '%s': %s", a->name, why);
		}
		const char *prompts = json_string_value(json_object_get(health, "prompts"));
		char *pp = prompts ? (prompts[0] == '/' ? strdup(prompts) : bn_path_join(spec->dir, prompts)) : NULL;
		suite = bn_path_join(stage, "suite.json");
		if (!agrun || !suite || (prompts && !pp)) {
			free(agrun);
			free(pp);
			free(suite);
			return bn_fail(err, -ENOMEM, "out of memory");
		}
		fprintf(stderr, "agpack: recording the health suite of '%s' with %s\n", a->name, agrun);
		char *argv[] = {agrun, "record", (char *)model_path, "--out", suite, pp ? "--prompts" : NULL, pp, NULL};
		int st = tool_run(argv, NULL);
		if (st != 0)
			r = bn_fail(err, st < 0 ? st : -EIO, "recording the health suite failed (%s exit %d)", agrun,
			            st);
		free(agrun);
		free(pp);
	} else {
		return bn_fail(err, -EINVAL, "\"health\" must be a suite file or {\"record\": true}");
	}
	if (r == 0 && !suite)
		r = bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0)
		r = bn_writer_add(w, hname, "files", "tree", suite, NULL, NULL, err);
	const char *base = suite ? strrchr(suite, '/') : NULL;
	if (r == 0 && asprintf(&ref, "%s/%s", hname, base ? base + 1 : suite) < 0)
		r = bn_fail(err, -ENOMEM, "out of memory");
	if (r == 0)
		r = bn_writer_set_health(w, a->name, ref, err);
	if (r == 0) {
		*ret_suite = suite;
		suite = NULL;
	}
	free(suite);
	free(ref);
	return r;
}

/* One artifact on its way into the writer. */
struct staged {
	const struct spec_artifact *a;
	const struct artifact_type *t;
	char *dir;        /* its staging directory */
	char *path;       /* what the writer adds */
	json_t *source;   /* provenance, or NULL */
	json_t *findings; /* offline-readiness findings (strings) */
	struct image_info *images;
	size_t n_images;
	char *suite; /* its health suite, or NULL */
};

/* The local path, or the fetched one; then the type's pack step. */
static int artifact_input(struct build *b, struct staged *s)
{
	int r = 0;
	if (s->t->local) {
		s->path = strdup(s->a->path);
		if (!s->path)
			r = bn_fail(&b->err, -ENOMEM, "out of memory");
	} else {
		r = s->t->fetch(s->a, &b->o->net, s->dir, &s->path, &s->source, &b->err);
	}
	if (r == 0 && s->t->pack) {
		char *packed = NULL;
		r = s->t->pack(s->path, s->dir, &packed, &b->err);
		if (r == 0) {
			free(s->path);
			s->path = packed;
		}
	}
	return r;
}

/* Offline readiness (docs/SBOM.md), before anything is packed; findings
 * are warned about whatever the outcome. */
static int artifact_offline(struct build *b, struct staged *s)
{
	const struct spec_artifact *a = s->a;
	int r = 0;
	if (!(s->findings = json_array()))
		r = bn_fail(&b->err, -ENOMEM, "out of memory");
	bool is_image = !strcmp(s->t->bundle_type, "oci-archive");
	if (r == 0 && is_image && a->offline_env) {
		/* On a private copy: the input may be the user's directory or the cache. */
		char *copy = NULL;
		r = offline_env_copy(s->path, s->dir, &copy, &b->err);
		if (r == 0) {
			free(s->path);
			s->path = copy;
			r = offline_env_apply(s->path, s->findings, &b->err);
		}
	}
	if (r == 0 && is_image) {
		r = image_scan(s->path, &s->images, &s->n_images, &b->err);
		if (r == 0)
			offline_check_images(a->name, s->images, s->n_images, s->findings);
	}
	if (r == 0 && !is_image && offline_is_model(s->path)) {
		r = offline_check_path(a->name, s->path, a->allow_remote_code, s->findings, &b->err);
		if (r == 0 && a->allow_remote_code) {
			/* Recorded in the signed manifest as provenance. */
			if (!s->source)
				s->source = json_object();
			if (json_object_set_new(s->source, "allow_remote_code", json_true()) < 0)
				r = bn_fail(&b->err, -ENOMEM, "out of memory");
		}
	}
	for (size_t k = 0; k < json_array_size(s->findings); k++)
		tool_warn("%s", json_string_value(json_array_get(s->findings, k)));
	return r;
}

/* Into the writer (with its "sha256" pin), then its health suite, then its
 * SBOM entries. */
static int artifact_pack(struct build *b, struct staged *s)
{
	const struct spec_artifact *a = s->a;
	uint8_t pin[BN_SHA256_LEN];
	bool pinned = a->sha256 && !strcmp(s->t->bundle_type, "files") && strcmp(a->sha256, "unpinned") != 0 &&
	              bn_unhex(a->sha256, pin, BN_SHA256_LEN);
	fprintf(stderr, "agpack: packing %s '%s'\n", s->t->bundle_type, a->name);
	int r = bn_writer_add(b->w, a->name, s->t->bundle_type, s->t->layout, s->path, pinned ? pin : NULL, s->source,
	                      &b->err);
	tool_progress_end();
	json_t *health = json_object_get(a->json, "health");
	if (r == 0 && health)
		r = add_health(b->w, a, health, s->path, s->dir, &b->spec, &s->suite, &b->err);
	if (r == 0 && b->sb) {
		struct sbom_extra x = {.health_suite = s->suite,
		                       .allow_remote_code = a->allow_remote_code,
		                       .findings = s->findings,
		                       .images = s->images,
		                       .n_images = s->n_images};
		r = sbom_add_artifact(b->sb, bn_writer_artifact(b->w, a->name), s->path, &x, &b->err);
		char hname[BN_MAX_NAME + 16];
		snprintf(hname, sizeof hname, "%s-health", a->name);
		if (r == 0 && s->suite)
			r = sbom_add_artifact(b->sb, bn_writer_artifact(b->w, hname), s->suite, NULL, &b->err);
	}
	return r;
}

/* Artifact i of the spec: staged in STAGE/i, which goes when it is packed
 * (fetched content lives in the cache). */
static int add_artifact(struct build *b, size_t i)
{
	const struct spec_artifact *a = &b->spec.artifacts[i];
	struct staged s = {.a = a, .t = artifact_type_find(a->type)}; /* spec_load refused unknown types */
	if (asprintf(&s.dir, "%s/%zu", b->stage, i) < 0 || mkdir(s.dir, 0700) < 0) {
		free(s.dir);
		return bn_fail(&b->err, -EIO, "%s: cannot create staging directory", b->stage);
	}
	int r = artifact_input(b, &s);
	if (r == 0)
		r = artifact_offline(b, &s);
	if (r == 0)
		r = artifact_pack(b, &s);
	if (r < 0 && r != -EINTR)
		bn_error_prefix(&b->err, "artifact '%s'", a->name);
	free(s.suite);
	image_free(s.images, s.n_images);
	json_decref(s.findings);
	json_decref(s.source);
	free(s.path);
	bn_rm_rf(s.dir);
	free(s.dir);
	return r;
}

/* The SBOM: one more artifact, packed before the manifest is signed. */
static int add_sbom(struct build *b)
{
	char *text = NULL, *sdir = NULL, *sfile = NULL;
	int r = sbom_format(b->sb, &b->spec, &text, &b->err);
	if (r == 0 &&
	    (asprintf(&sdir, "%s/%s", b->stage, SBOM_ARTIFACT) < 0 || !(sfile = bn_path_join(sdir, SBOM_FILE))))
		r = bn_fail(&b->err, -ENOMEM, "out of memory");
	if (r == 0 && mkdir(sdir, 0700) < 0)
		r = bn_fail(&b->err, -errno, "%s: %s", sdir, strerror(errno));
	if (r == 0)
		r = bn_write_file_atomic(sfile, text, strlen(text), 0644, &b->err);
	if (r == 0) {
		fprintf(stderr, "agpack: packing the SBOM as '%s' (%s)\n", SBOM_ARTIFACT, SBOM_FILE);
		r = bn_writer_add(b->w, SBOM_ARTIFACT, "files", "tree", sdir, NULL, NULL, &b->err);
	}
	free(text);
	free(sdir);
	free(sfile);
	return r;
}

/* Media plan first (it fixes the parity groups as media columns), then the
 * parity volumes, then the parity volumes' media. */
static int add_parity_media(struct bn_manifest *m, const char *dir, unsigned parity, uint64_t media_cap,
                            struct bn_error *err)
{
	size_t columns = 0;
	int r = 0;
	if (media_cap) {
		char *text = NULL;
		size_t len = 0;
		if (bn_manifest_format(m, &text, &len) < 0)
			return bn_fail(err, -ENOMEM, "cannot encode manifest");
		free(text);
		/* Room on each medium for the manifest (grown by the parity and
		 * media records), signatures, label, SHA256SUMS and file-system
		 * overhead. */
		uint64_t slack = media_cap / 16 < (4u << 20) ? media_cap / 16 : (4u << 20);
		uint64_t reserve = len + len / 2 + slack;
		r = bn_media_plan(m, media_cap, reserve, &columns, err);
	}
	if (r == 0 && parity) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = bn_parity_build(dir, m, parity, columns, err);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (r == 0)
			fprintf(stderr, "agpack: %zu parity volume(s) written in %.2f s\n", m->parity->n_volumes,
			        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}
	if (r == 0 && media_cap)
		r = bn_media_assign_parity(m, columns, err);
	return r;
}

/* The manifest: finished, taken from the writer, given its parity and media
 * records, then signed with SHA256SUMS and laid out on media. */
static int finish_and_sign(struct build *b)
{
	char created[32];
	iso_now(created);
	const struct bn_manifest *wm = NULL;
	int r = bn_writer_finish(b->w, b->spec.name, b->spec.channel, b->spec.version, created, &wm, &b->err);
	if (r == 0)
		r = bn_writer_take_manifest(b->w, &b->m, &b->err);
	if (r == 0)
		r = add_parity_media(b->m, b->tmp, b->o->parity, b->o->media_cap, &b->err);
	if (r < 0)
		return r;
	size_t mlen = 0;
	r = bn_manifest_format(b->m, &b->mtext, &mlen);
	if (r < 0)
		return bn_fail(&b->err, r, "cannot encode manifest");
	r = bn_bundle_write_signed(b->tmp, b->mtext, mlen, b->m, &b->sk, &b->err);
	if (r == 0)
		r = bn_media_layout(b->tmp, b->m, &b->err);
	return r;
}

/* The finished directory replaces nothing: --out must still be free. */
static int move_into_place(struct build *b)
{
	const char *out = b->o->out;
	if (tool_interrupted)
		return bn_fail(&b->err, -EINTR, "interrupted");
	if (chmod(b->tmp, 0755) < 0 || bn_fsync_dir(b->tmp) < 0 ||
	    renameat2(AT_FDCWD, b->tmp, AT_FDCWD, out, RENAME_NOREPLACE) < 0)
		return bn_fail(&b->err, -errno, "%s: cannot move into place: %s", out, strerror(errno));
	bn_fsync_parent(out);
	return 0;
}

/* The summary lines, and with --json the object of docs/OPERATIONS.md. */
static void report(const struct build *b)
{
	const struct bn_manifest *m = b->m;
	const char *out = b->o->out;
	FILE *info = b->info;
	uint64_t total = 0, stored = 0;
	for (size_t i = 0; i < m->n_artifacts; i++)
		total += m->artifacts[i].size;
	for (size_t i = 0; i < m->n_volumes; i++)
		stored += m->volumes[i].size;
	fprintf(info,
	        "%s: bundle %s channel %s version %" PRIu64 ": %zu artifact(s), %" PRIu64 " bytes in %zu chunk(s), "
	        "%zu volume(s) of %" PRIu64 " bytes (%.1f%%)\n",
	        out, m->name, m->channel, m->version, m->n_artifacts, total, m->n_chunks, m->n_volumes, stored,
	        total ? 100.0 * (double)stored / (double)total : 100.0);
	uint64_t carried = total, reused = 0;
	if (m->base) {
		char bd[BN_ERROR_MAX / 2];
		bn_manifest_delta_bytes(m, &carried, &reused);
		bn_bundle_base_describe(m, bd, sizeof bd);
		fprintf(info,
		        "%s: delta against base %s: %" PRIu64 " bytes carried, %" PRIu64
		        " bytes reused from the base\n",
		        out, bd, carried, reused);
	}
	if (m->parity)
		fprintf(info,
		        "%s: %zu parity volume(s) in %zu group(s): any %u lost or damaged volume(s) of a group can be "
		        "rebuilt\n",
		        out, m->parity->n_volumes, m->parity->n_groups, m->parity->groups[0].p);
	if (m->media)
		fprintf(info, "%s: %u media of %" PRIu64 " bytes: %s/medium-01 ... medium-%02u\n", out, m->media->count,
		        m->media->capacity, out, m->media->count);
	if (tool_json && !b->o->stream) {
		/* agpack build --json (docs/OPERATIONS.md). */
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "out", out, "bundle", m->name, "channel",
		              m->channel, "version", (json_int_t)m->version, "artifacts", (json_int_t)m->n_artifacts,
		              "bytes", (json_int_t)total, "chunks", (json_int_t)m->n_chunks, "volumes",
		              (json_int_t)m->n_volumes, "stored_bytes", (json_int_t)stored);
		json_object_set_new(o, "parity_volumes",
		                    json_integer((json_int_t)(m->parity ? m->parity->n_volumes : 0)));
		json_object_set_new(o, "media", m->media ? json_integer(m->media->count) : json_null());
		json_object_set_new(o, "created", json_string(m->created));
		json_object_set_new(o, "base",
		                    m->base ? json_pack("{s:s, s:s, s:I}", "bundle", m->base->name, "channel",
		                                        m->base->channel, "version", (json_int_t)m->base->version)
		                            : json_null());
		json_object_set_new(o, "reused_bytes", json_integer((json_int_t)reused));
		tool_json_print(o);
	}
}

/* --stream: the bundle on stdout; a scratch --out goes after. */
static int stream(struct build *b)
{
	int r = bn_stream_write(b->o->out, STDOUT_FILENO, &b->err);
	if (r == 0)
		fprintf(stderr, "%s: streamed to stdout\n", b->o->out);
	if (b->o->scratch_out)
		bn_rm_rf(b->o->scratch_out);
	return r;
}

static int build(struct build *b)
{
	int r = start(b);
	for (size_t i = 0; i < b->spec.n_artifacts && r == 0; i++) {
		if (tool_interrupted) {
			r = bn_fail(&b->err, -EINTR, "interrupted");
			break;
		}
		r = add_artifact(b, i);
	}
	if (r == 0 && b->sb)
		r = add_sbom(b);
	if (r == 0)
		r = finish_and_sign(b);
	if (r == 0)
		r = move_into_place(b);
	if (r < 0)
		return r;
	report(b);
	return b->o->stream ? stream(b) : 0;
}

static void build_release(struct build *b, bool failed)
{
	sbom_free(b->sb);
	bn_manifest_free(b->m);
	bn_writer_free(b->w);
	if (b->base_b)
		bn_bundle_free(b->base_b); /* and base, its manifest */
	else
		bn_manifest_free(b->base);
	if (b->tmp && failed)
		bn_rm_rf(b->tmp);
	if (b->stage)
		bn_rm_rf(b->stage);
	bn_seckey_wipe(&b->sk);
	spec_release(&b->spec);
	free(b->tmp);
	free(b->stage);
	free(b->mtext);
	free(b->cache_default);
}

int build_run(struct build_opts *o, const char *spec_path)
{
	/* With --stream, stdout carries the stream: reports go to stderr. */
	struct build b = {.o = o, .info = o->stream || tool_json ? stderr : stdout};
	int ex = load_spec(&b, spec_path);
	if (ex != 0) {
		spec_release(&b.spec);
		return ex;
	}
	tool_catch_signals();
	default_cache(&b);
	int r = o->net.dry_run ? dry_run(&b) : build(&b);
	build_release(&b, r < 0);
	return r < 0 ? tool_fail(r, &b.err) : 0;
}
