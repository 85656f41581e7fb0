/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agimport inspect: what a bundle (or one medium of a media set) holds,
 * without importing it.  Without --pubkey or --root nothing is verified: the
 * manifest is only parsed (the same bounded, fuzzed parser) and every line
 * says UNVERIFIED.  With a key or a root the signatures and threshold are
 * checked first, by bn_bundle_open(), and only then is the manifest read.
 * Volume contents are not hashed here (that is agimport verify).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle/bundle.h"
#include "bundle/deploy.h"
#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "inspect.h"
#include "report.h"
#include "toolutil.h"

#define MAX_KEYS      64
#define SBOM_ARTIFACT "sbom"
#define SBOM_FILE     "sbom.cdx.json"
#define SBOM_MAX      (64u << 20)
#define HUMAN_FILES   20 /* files listed per artifact without --json */

static const char *const entry_types[] = {"file", "dir", "symlink"};

static void usage_inspect(FILE *f)
{
	fprintf(f, "usage: agimport inspect DIR [--json] [--pubkey KEY.pub ... [--threshold N] | --root R] [--sbom]\n"
	           "Shows the artifacts, files, sizes, digests, provenance, version, channel, signers, volumes,\n"
	           "media and parity of a bundle or of one medium.  UNVERIFIED unless --pubkey or --root is given.\n"
	           "--sbom prints the artifact 'sbom''s file sbom.cdx.json (needs --pubkey or --root).\n");
}

/* The signature files' key ids, parsed but not verified. */
static json_t *claimed_signers(const char *dir)
{
	json_t *a = json_array();
	char *mdir = NULL, *sdir = NULL;
	struct bn_error e = {0};
	if (bn_layout_manifest_dir(dir, &mdir, &e) < 0 || !(sdir = bn_path_join(mdir ? mdir : dir, "signatures"))) {
		free(mdir);
		return a;
	}
	DIR *d = opendir(sdir);
	struct dirent *de;
	size_t n = 0;
	while (d && (de = readdir(d)) && n < BN_MAX_SIGNATURES) {
		size_t nl = strlen(de->d_name);
		if (de->d_name[0] == '.' || nl < 9 || nl > 200 || strcmp(de->d_name + nl - 8, ".minisig"))
			continue;
		n++;
		char *p = bn_path_join(sdir, de->d_name), *text = NULL;
		size_t tl = 0;
		struct bn_minisig sig;
		if (p && bn_read_file_nofollow(p, BN_SIGFILE_MAX, &text, &tl, &e) == 0 &&
		    bn_minisig_parse(text, tl, &sig, &e) == 0) {
			char id[BN_KEYID_HEX];
			bn_keyid_hex(sig.keyid, id);
			json_array_append_new(a, json_pack("{s:s, s:b}", "keyid", id, "verified", 0));
		}
		free(text);
		free(p);
	}
	if (d)
		closedir(d);
	free(sdir);
	free(mdir);
	return a;
}

static int open_unverified(const char *dir, struct bn_manifest **ret, struct bn_error *err)
{
	char *mdir = NULL, *buf = NULL;
	size_t len = 0;
	int r = bn_layout_manifest_dir(dir, &mdir, err);
	if (r < 0)
		return r;
	char *mp = bn_path_join(mdir ? mdir : dir, "manifest.json");
	free(mdir);
	if (!mp)
		return bn_fail(err, -ENOMEM, "out of memory");
	r = bn_read_file_nofollow(mp, BN_MANIFEST_MAX, &buf, &len, err);
	if (r == -ENOENT)
		r = bn_fail(err, -ENOENT, "%s: missing (not a bundle directory or medium)", mp);
	free(mp);
	if (r == 0) {
		r = bn_manifest_parse(buf, len, ret, err);
		if (r < 0)
			bn_error_prefix(err, "%s", dir);
	}
	free(buf);
	return r;
}

/* The medium number from DIR/LABEL.txt ("medium N of M"), 0 when none. */
static unsigned medium_label(const char *dir)
{
	char *p = bn_path_join(dir, BN_MEDIUM_LABEL), *buf = NULL;
	size_t len = 0;
	struct bn_error e = {0};
	unsigned n = 0, c = 0;
	const char *l = p && bn_read_file_nofollow(p, 4096, &buf, &len, &e) == 0 ? strstr(buf, "\nmedium ") : NULL;
	if (!l || sscanf(l, "\nmedium %u of %u", &n, &c) != 2)
		n = 0;
	free(buf);
	free(p);
	return n;
}

/* Whether volume name is in dir with its signed size; in a media set's top
 * directory, on its medium's medium-NN/. */
static bool present(const char *dir, bool set, uint32_t medium, const char *name, uint64_t size)
{
	char sub[48];
	snprintf(sub, sizeof sub, "medium-%02u/%s", (unsigned)medium, name);
	char *p = bn_path_join(dir, set ? sub : name);
	struct stat st;
	bool r = p && lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
	free(p);
	return r;
}

static void describe(json_t *o, const char *dir, const struct bn_manifest *m, unsigned medium)
{
	char hex[BN_SHA256_HEX], fmt[16];
	json_t *arts = json_array(), *vols = json_array();
	bool set = m->media && !medium && bn_media_is_set(dir);
	snprintf(fmt, sizeof fmt, "%u.%u", m->format_major, m->format_minor);
	json_object_set_new(o, "format", json_string(fmt));
	json_object_set_new(o, "bundle", json_string(m->name));
	json_object_set_new(o, "channel", json_string(m->channel));
	json_object_set_new(o, "version", json_integer((json_int_t)m->version));
	json_object_set_new(o, "created", m->created ? json_string(m->created) : json_null());
	json_object_set_new(o, "chunk_size", json_integer(m->chunk_size));
	json_object_set_new(o, "volume_size", json_integer((json_int_t)m->volume_size));
	uint64_t total = 0;
	for (size_t i = 0; i < m->n_artifacts; i++) {
		const struct bn_artifact *a = &m->artifacts[i];
		json_t *ao =
		    json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", a->name, "type", a->type, "layout",
		              a->layout ? a->layout : "", "size", (json_int_t)a->size, "files", (json_int_t)a->n_files);
		json_t *ents = json_array();
		for (size_t j = 0; j < a->n_entries; j++) {
			const struct bn_entry *e = &a->entries[j];
			json_t *eo = json_pack("{s:s, s:s, s:i}", "path", e->path, "type", entry_types[e->type], "mode",
			                       (int)e->mode);
			if (e->type == BN_ENTRY_FILE) {
				bn_hex(e->sha256, BN_SHA256_LEN, hex);
				json_object_set_new(eo, "size", json_integer((json_int_t)e->size));
				json_object_set_new(eo, "sha256", json_string(hex));
			} else if (e->type == BN_ENTRY_SYMLINK) {
				json_object_set_new(eo, "target", json_string(e->target ? e->target : ""));
			}
			json_array_append_new(ents, eo);
		}
		json_object_set_new(ao, "entries", ents);
		json_object_set_new(ao, "source", a->source ? json_deep_copy(a->source) : json_null());
		json_object_set_new(ao, "health", a->health ? json_string(a->health) : json_null());
		json_array_append_new(arts, ao);
		total += a->size;
	}
	json_object_set_new(o, "size", json_integer((json_int_t)total));
	json_object_set_new(o, "artifacts", arts);
	/* Delta bundles: the base the site must hold, and what travels. */
	uint64_t carried = 0, reused = 0;
	bn_manifest_delta_bytes(m, &carried, &reused);
	if (m->base) {
		bn_hex(m->base->sha256, BN_SHA256_LEN, hex);
		json_object_set_new(o, "base",
		                    json_pack("{s:s, s:s, s:I, s:s}", "bundle", m->base->name, "channel",
		                              m->base->channel, "version", (json_int_t)m->base->version,
		                              "manifest_sha256", hex));
	} else {
		json_object_set_new(o, "base", json_null());
	}
	json_object_set_new(o, "carried_bytes", json_integer((json_int_t)carried));
	json_object_set_new(o, "reused_bytes", json_integer((json_int_t)reused));
	for (size_t i = 0; i < m->n_volumes; i++) {
		const struct bn_volume *v = &m->volumes[i];
		bn_hex(v->sha256, BN_SHA256_LEN, hex);
		json_t *vo = json_pack("{s:s, s:I, s:s}", "name", v->name, "size", (json_int_t)v->size, "sha256", hex);
		json_object_set_new(vo, "medium", m->media ? json_integer(m->media->vol_medium[i]) : json_null());
		/* On a media set's top directory the volumes are in medium-NN/. */
		json_object_set_new(
		    vo, "present",
		    json_boolean(present(dir, set, m->media ? m->media->vol_medium[i] : 0, v->name, v->size)));
		json_array_append_new(vols, vo);
	}
	json_object_set_new(o, "volumes", vols);
	if (m->parity) {
		json_t *po = json_object(), *pv = json_array(), *gs = json_array();
		for (size_t i = 0; i < m->parity->n_volumes; i++) {
			const struct bn_volume *v = &m->parity->volumes[i];
			bn_hex(v->sha256, BN_SHA256_LEN, hex);
			json_t *vo =
			    json_pack("{s:s, s:I, s:s}", "name", v->name, "size", (json_int_t)v->size, "sha256", hex);
			json_object_set_new(vo, "medium",
			                    m->media ? json_integer(m->media->par_medium[i]) : json_null());
			json_object_set_new(
			    vo, "present",
			    json_boolean(present(dir, set, m->media ? m->media->par_medium[i] : 0, v->name, v->size)));
			json_array_append_new(pv, vo);
		}
		for (size_t g = 0; g < m->parity->n_groups; g++)
			json_array_append_new(gs, json_pack("{s:i, s:i}", "data", (int)m->parity->groups[g].k, "parity",
			                                    (int)m->parity->groups[g].p));
		json_object_set_new(po, "volumes", pv);
		json_object_set_new(po, "groups", gs);
		json_object_set_new(o, "parity", po);
	} else {
		json_object_set_new(o, "parity", json_null());
	}
	if (m->media)
		json_object_set_new(o, "media",
		                    json_pack("{s:i, s:I, s:o}", "count", (int)m->media->count, "capacity",
		                              (json_int_t)m->media->capacity, "this_medium",
		                              medium ? json_integer(medium) : json_null()));
	else
		json_object_set_new(o, "media", json_null());
}

static void print_human(json_t *o)
{
	bool verified = json_is_true(json_object_get(o, "verified"));
	const char *dir = json_string_value(json_object_get(o, "dir"));
	const char *mark = verified ? "" : "UNVERIFIED ";
	printf("%s: %sbundle %s channel %s version %" JSON_INTEGER_FORMAT " created %s, format %s\n", dir, mark,
	       json_string_value(json_object_get(o, "bundle")), json_string_value(json_object_get(o, "channel")),
	       json_integer_value(json_object_get(o, "version")),
	       json_is_string(json_object_get(o, "created")) ? json_string_value(json_object_get(o, "created")) : "-",
	       json_string_value(json_object_get(o, "format")));
	if (!verified)
		printf("%s: UNVERIFIED: no --pubkey or --root given; nothing below is checked against a trusted key\n",
		       dir);
	else
		printf("%s: verified: signatures checked (%s); volume contents not hashed (agimport verify does)\n",
		       dir, json_string_value(json_object_get(o, "trust")));
	size_t i;
	json_t *v;
	printf("signers:");
	json_array_foreach(json_object_get(o, "signers"), i, v)
	    printf(" %s%s", json_string_value(json_object_get(v, "keyid")),
	           json_is_true(json_object_get(v, "verified")) ? "" : " (UNVERIFIED)");
	printf("%s\n", json_array_size(json_object_get(o, "signers")) ? "" : " none");
	printf("artifacts: %zu, %" JSON_INTEGER_FORMAT " byte(s) in all\n",
	       json_array_size(json_object_get(o, "artifacts")), json_integer_value(json_object_get(o, "size")));
	json_array_foreach(json_object_get(o, "artifacts"), i, v)
	{
		printf("  %s (%s): %" JSON_INTEGER_FORMAT " file(s), %" JSON_INTEGER_FORMAT " byte(s)\n",
		       json_string_value(json_object_get(v, "name")), json_string_value(json_object_get(v, "type")),
		       json_integer_value(json_object_get(v, "files")), json_integer_value(json_object_get(v, "size")));
		json_t *src = json_object_get(v, "source");
		if (json_is_object(src)) {
			char *s = json_dumps(src, JSON_COMPACT | JSON_PRESERVE_ORDER);
			printf("    source: %s\n", s ? s : "?");
			free(s);
		}
		if (json_is_string(json_object_get(v, "health")))
			printf("    health suite: %s\n", json_string_value(json_object_get(v, "health")));
		size_t j, shown = 0, nfiles = 0;
		json_t *e;
		json_array_foreach(json_object_get(v, "entries"), j, e)
		{
			if (strcmp(json_string_value(json_object_get(e, "type")), "file"))
				continue;
			if (shown++ < HUMAN_FILES)
				printf("    %s  %" JSON_INTEGER_FORMAT "  sha256:%s\n",
				       json_string_value(json_object_get(e, "path")),
				       json_integer_value(json_object_get(e, "size")),
				       json_string_value(json_object_get(e, "sha256")));
			nfiles++;
		}
		if (nfiles > HUMAN_FILES)
			printf("    ... and %zu more file(s) (--json lists them all)\n", nfiles - HUMAN_FILES);
	}
	json_t *bo = json_object_get(o, "base");
	if (json_is_object(bo))
		printf("base: bundle %s channel %s version %" JSON_INTEGER_FORMAT
		       " (manifest sha256 %s): %" JSON_INTEGER_FORMAT " byte(s) carried, %" JSON_INTEGER_FORMAT
		       " byte(s) reused from the base\n",
		       json_string_value(json_object_get(bo, "bundle")),
		       json_string_value(json_object_get(bo, "channel")),
		       json_integer_value(json_object_get(bo, "version")),
		       json_string_value(json_object_get(bo, "manifest_sha256")),
		       json_integer_value(json_object_get(o, "carried_bytes")),
		       json_integer_value(json_object_get(o, "reused_bytes")));
	else
		printf("base: none (a full bundle)\n");
	json_t *vols = json_object_get(o, "volumes");
	size_t here = 0;
	json_array_foreach(vols, i, v) here += json_is_true(json_object_get(v, "present"));
	printf("volumes: %zu (%zu present in %s), chunk size %" JSON_INTEGER_FORMAT
	       ", volume size %" JSON_INTEGER_FORMAT "\n",
	       json_array_size(vols), here, dir, json_integer_value(json_object_get(o, "chunk_size")),
	       json_integer_value(json_object_get(o, "volume_size")));
	json_t *par = json_object_get(o, "parity");
	if (json_is_object(par)) {
		json_t *g0 = json_array_get(json_object_get(par, "groups"), 0);
		printf("parity: %zu volume(s) in %zu group(s) (first group: %" JSON_INTEGER_FORMAT
		       " data + %" JSON_INTEGER_FORMAT " parity)\n",
		       json_array_size(json_object_get(par, "volumes")),
		       json_array_size(json_object_get(par, "groups")), json_integer_value(json_object_get(g0, "data")),
		       json_integer_value(json_object_get(g0, "parity")));
	} else {
		printf("parity: none\n");
	}
	json_t *md = json_object_get(o, "media");
	if (json_is_object(md)) {
		json_t *t = json_object_get(md, "this_medium");
		printf("media: a set of %" JSON_INTEGER_FORMAT " medium(s) of %" JSON_INTEGER_FORMAT " byte(s)",
		       json_integer_value(json_object_get(md, "count")),
		       json_integer_value(json_object_get(md, "capacity")));
		if (json_is_integer(t))
			printf("; this is medium %" JSON_INTEGER_FORMAT, json_integer_value(t));
		printf("\n");
	} else {
		printf("media: none (one directory)\n");
	}
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"pubkey", required_argument, NULL, 'p'}, {"threshold", required_argument, NULL, 't'},
	    {"root", required_argument, NULL, 'r'},   {"json", no_argument, NULL, 'J'},
	    {"sbom", no_argument, NULL, 'S'},         {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},         {0},
	};
	static struct bn_pubkey keys[MAX_KEYS];
	size_t n_keys = 0;
	unsigned threshold = 0;
	const char *root = NULL;
	bool sbom = false;
	int c;
	while ((c = getopt_long(argc, argv, "p:t:r:qh", opts, NULL)) != -1) {
		struct bn_error err = {0};
		switch (c) {
		case 'p': {
			if (n_keys == MAX_KEYS) {
				tool_err("too many --pubkey options");
				return BN_EXIT_USAGE;
			}
			int q = bn_pubkey_load(optarg, &keys[n_keys], &err);
			if (q < 0)
				return tool_fail(q == -EBADMSG ? -EINVAL : q, &err);
			n_keys++;
			break;
		}
		case 't': {
			char *end;
			unsigned long t = strtoul(optarg, &end, 10);
			if (!*optarg || *end || t == 0 || t > MAX_KEYS) {
				tool_err("--threshold: expected a number from 1 to %d", MAX_KEYS);
				return BN_EXIT_USAGE;
			}
			threshold = (unsigned)t;
			break;
		}
		case 'r': root = optarg; break;
		case 'J': tool_json = true; break;
		case 'S': sbom = true; break;
		case 'q': tool_quiet = true; break;
		case 'h': usage_inspect(stdout); return 0;
		default: usage_inspect(stderr); return BN_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		tool_err(optind == argc ? "inspect: give one bundle directory"
		                        : "inspect: one bundle directory at a time");
		usage_inspect(stderr);
		return BN_EXIT_USAGE;
	}
	if (root && n_keys) {
		tool_err("inspect: --pubkey and --root exclude each other");
		return BN_EXIT_USAGE;
	}
	if (threshold > n_keys) {
		tool_err("--threshold %u needs at least as many --pubkey options", threshold);
		return BN_EXIT_USAGE;
	}
	if (sbom && !root && !n_keys) {
		tool_err(
		    "inspect --sbom: the SBOM is read from the volumes, which needs a verified manifest: give --pubkey "
		    "or --root");
		return BN_EXIT_USAGE;
	}
	const char *dir = argv[optind];
	struct bn_error err = {0};
	struct bn_deploy *d = NULL;
	struct bn_bundle *b = NULL;
	struct bn_manifest *um = NULL;
	int r = 0;
	json_t *o = NULL;
	if (root)
		r = bn_deploy_open_ro(root, &d, &err);
	if (r == 0 && (root || n_keys)) {
		struct bn_trust t =
		    d ? bn_deploy_trust(d) : (struct bn_trust){.keys = keys, .n_keys = n_keys, .threshold = threshold};
		r = bn_bundle_open(dir, &t, &b, &err);
	} else if (r == 0) {
		r = open_unverified(dir, &um, &err);
	}
	if (r < 0)
		goto out;
	if (sbom) {
		char *text = NULL;
		size_t len = 0;
		r = bn_bundle_read_file(b, SBOM_ARTIFACT, SBOM_FILE, SBOM_MAX, &text, &len, &err);
		if (r == -ENOENT)
			r = bn_fail(&err, -ENOENT,
			            "%s: no SBOM: the bundle has no artifact '%s' with a file %s (agpack writes "
			            "one when the spec asks for it)",
			            dir, SBOM_ARTIFACT, SBOM_FILE);
		if (r == 0) {
			fwrite(text, 1, len, stdout);
			if (len && text[len - 1] != '\n')
				putchar('\n');
		}
		free(text);
		goto out;
	}
	unsigned medium = b ? bn_bundle_medium(b) : medium_label(dir);
	o = json_object();
	json_object_set_new(o, "dir", json_string(dir));
	json_object_set_new(o, "verified", json_boolean(b != NULL));
	json_object_set_new(o, "trust", json_string(root ? "root" : n_keys ? "pubkey" : "none"));
	describe(o, dir, b ? b->m : um, medium);
	if (b) {
		json_t *sg = json_array();
		for (size_t i = 0; i < b->n_signers; i++) {
			char id[BN_KEYID_HEX];
			bn_keyid_hex(b->signers[i], id);
			json_array_append_new(sg, json_pack("{s:s, s:b}", "keyid", id, "verified", 1));
		}
		json_object_set_new(o, "signers", sg);
		json_object_set_new(o, "signed_at",
		                    b->signed_at ? json_integer((json_int_t)b->signed_at) : json_null());
	} else {
		json_object_set_new(o, "signers", claimed_signers(dir));
		json_object_set_new(o, "signed_at", json_null());
	}
	if (tool_json) {
		tool_json_print(o);
		o = NULL;
	} else {
		print_human(o);
	}
out:
	json_decref(o);
	bn_bundle_free(b);
	bn_manifest_free(um);
	bn_deploy_close(d);
	return r < 0 ? tool_fail(r, &err) : 0;
}
