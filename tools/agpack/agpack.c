/* SPDX-License-Identifier: Apache-2.0 */
/* agpack: the dirty-zone command.  keygen, build, sign. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
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
#include "bundle/stream.h"
#include "bundle/parity.h"
#include "bundle/trust.h"
#include "bundle/writer.h"
#include "artifact_types.h"
#include "image.h"
#include "offline.h"
#include "sbom.h"
#include "sources.h"
#include "spec.h"
#include "cli.h"
#include "report.h"
#include "toolutil.h"

const char *tool_name = "agpack";

#define U_KEYGEN "agpack keygen --out PREFIX [--no-passphrase] [--force]\n"
#define U_BUILD                                                                                                     \
	"agpack build SPEC --key KEY --out DIR [--volume-size SIZE] [--level N] [--chunk-size SIZE]\n"                  \
	"                   [--threads N]\n"                                                                            \
	"                   [--cache DIR] [--insecure-registry HOST:PORT]... [--ca-file FILE]\n"                        \
	"                   [--auth-file FILE] [--dry-run] [--parity P] [--media SIZE] [--stream]\n"                  \
	"                   [--base BUNDLE|MANIFEST [--base-pubkey KEY.pub]] [--no-sbom] [--json] [-q|--quiet]\n"
#define U_LINT "agpack lint SPEC                 (checks a pack spec without building: keys, files, pins)\n"
#define U_SIGN "agpack sign DIR --key KEY\n"
#define U_SIGN_TRUST "agpack sign-trust POLICY.json --key KEY   (writes POLICY.json.KEYID.minisig for agctl trust update)\n"
#define U_STREAM "agpack stream DIR                (one-way stream of the bundle on stdout, for data diodes)\n"
#define U_SIZES                                                                                                     \
	"\nSIZE: 4096, 700M, 1.5G, 4GiB, 4GB (K M G T and KiB MiB GiB TiB binary, KB MB GB TB decimal).\n"
#define U_EXIT                                                                                                      \
	"       agpack help COMMAND | agpack COMMAND --help   (that command's usage)\n"                                 \
	"Exit status: 0 ok, 1 failure, 2 usage or pack spec error, 3 verification or unsafe input, 4 I/O error.\n"

static void usage(FILE *f)
{
	fprintf(f, "usage: " U_KEYGEN "       " U_BUILD "       " U_LINT "       " U_SIGN "       " U_SIGN_TRUST
	           "       " U_STREAM U_SIZES U_EXIT);
}

static int write_new_file(const char *path, const char *text, mode_t mode, bool force, struct bn_error *err)
{
	struct stat st;
	if (!force && lstat(path, &st) == 0)
		return bn_fail(err, -EEXIST, "%s: already exists (use --force to overwrite)", path);
	return bn_write_file_atomic(path, text, strlen(text), mode, err);
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"out", required_argument, NULL, 'o'},
		{"no-passphrase", no_argument, NULL, 'W'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *out = NULL;
	bool nopass = false, force = false;
	int c;
	while ((c = getopt_long(argc, argv, "o:Wfh", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'W': nopass = true; break;
		case 'f': force = true; break;
		case 'h': usage(stdout); return 0;
		default: return cli_bad_option(argv[0], argv, opts);
		}
	}
	if (optind != argc) {
		tool_err("keygen: unexpected argument '%s'", argv[optind]);
		return BN_EXIT_USAGE;
	}
	if (!out)
		return cli_missing("keygen", "--out PREFIX");
	struct bn_error err = {0};
	struct bn_pubkey pk;
	struct bn_seckey sk;
	char *pass = NULL, *ptext = NULL, *stext = NULL, *ppath = NULL, *spath = NULL;
	int r = bn_keygen(&pk, &sk);
	if (r < 0) {
		bn_fail(&err, r, "key generation failed");
		goto out;
	}
	if (!nopass) {
		r = tool_passphrase("Passphrase for the new key: ", true, &pass, &err);
		if (r < 0)
			goto out;
	}
	if (asprintf(&ppath, "%s.pub", out) < 0 || asprintf(&spath, "%s.key", out) < 0) {
		r = bn_fail(&err, -ENOMEM, "out of memory");
		goto out;
	}
	r = bn_pubkey_format(&pk, &ptext);
	if (r == 0)
		r = bn_seckey_format(&sk, pass, &stext);
	if (r < 0) {
		bn_fail(&err, r, "cannot encode key: %s", strerror(-r));
		goto out;
	}
	r = write_new_file(spath, stext, 0600, force, &err);
	if (r == 0)
		r = write_new_file(ppath, ptext, 0644, force, &err);
	if (r == 0) {
		char id[BN_KEYID_HEX];
		bn_keyid_hex(pk.keyid, id);
		printf("key id %s\npublic key: %s\nsecret key: %s\n", id, ppath, spath);
	}
out:
	bn_seckey_wipe(&sk);
	tool_passphrase_free(pass);
	if (stext) {
		memset(stext, 0, strlen(stext));
		free(stext);
	}
	free(ptext);
	free(ppath);
	free(spath);
	return r < 0 ? tool_fail(r, &err) : 0;
}

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
			r = bn_fail(err, st < 0 ? st : -EIO, "recording the health suite failed (%s exit %d)", agrun, st);
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

static int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"out", required_argument, NULL, 'o'},
		{"volume-size", required_argument, NULL, 'V'},
		{"level", required_argument, NULL, 'l'},
		{"chunk-size", required_argument, NULL, 'C'},
		{"cache", required_argument, NULL, 'c'},
		{"insecure-registry", required_argument, NULL, 'I'},
		{"ca-file", required_argument, NULL, 'A'},
		{"auth-file", required_argument, NULL, 'a'},
		{"dry-run", no_argument, NULL, 'n'},
		{"threads", required_argument, NULL, 'j'},
		{"parity", required_argument, NULL, 'P'},
		{"media", required_argument, NULL, 'M'},
		{"stream", no_argument, NULL, 'S'},
		{"json", no_argument, NULL, 'J'},
		{"quiet", no_argument, NULL, 'q'},
		{"no-sbom", no_argument, NULL, 'B'},
		{"base", required_argument, NULL, 'b'},
		{"base-pubkey", required_argument, NULL, 'K'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *key = NULL, *out = NULL, *base_path = NULL, *base_pubkey = NULL;
	struct bn_manifest *base = NULL;
	struct bn_bundle *base_b = NULL;
	uint8_t base_sha[BN_SHA256_LEN];
	uint64_t vsize = 0, csize = 0;
	int level = 0;
	unsigned threads = 0;
	unsigned parity = 0;
	bool stream = false, no_sbom = false;
	char *stream_out = NULL;
	uint64_t media_cap = 0, media_max_file = 0;
	struct net_opts no = {0};
	const char *insecure[32];
	int c;
	while ((c = getopt_long(argc, argv, "k:o:V:l:C:c:I:A:a:nj:P:M:SqBb:K:h", opts, NULL)) != -1) {
		switch (c) {
		case 'J': tool_json = true; break;
		case 'q': tool_quiet = true; break;
		case 'P': {
			uint64_t p;
			if (cli_count("--parity (parity volumes per group)", optarg, 0, BN_PARITY_MAX, &p) < 0)
				return BN_EXIT_USAGE;
			parity = (unsigned)p;
			break;
		}
		case 'S': stream = true; break;
		case 'B': no_sbom = true; break;
		case 'b': base_path = optarg; break;
		case 'K': base_pubkey = optarg; break;
		case 'M':
			if (bn_media_parse_size(optarg, &media_cap, &media_max_file) < 0) {
				tool_err("--media: expected dvd, dvd-dl, bd25, bd50, bd100, usb-fat32 or a size (700M, 4G)");
				return BN_EXIT_USAGE;
			}
			break;
		case 'k': key = optarg; break;
		case 'o': out = optarg; break;
		case 'V':
			if (cli_size("--volume-size", optarg, BN_MIN_CHUNK_SIZE, 1ull << 50, &vsize) < 0)
				return BN_EXIT_USAGE;
			break;
		case 'C':
			if (cli_size("--chunk-size (4K to 64M)", optarg, BN_MIN_CHUNK_SIZE, BN_MAX_CHUNK_SIZE, &csize) < 0)
				return BN_EXIT_USAGE;
			break;
		case 'l': {
			uint64_t l;
			if (cli_count("--level (zstd level)", optarg, 1, 22, &l) < 0)
				return BN_EXIT_USAGE;
			level = (int)l;
			break;
		}
		case 'c': no.cache_dir = optarg; break;
		case 'I':
			if (no.n_insecure == 32) {
				tool_err("too many --insecure-registry options");
				return BN_EXIT_USAGE;
			}
			insecure[no.n_insecure++] = optarg;
			break;
		case 'A': no.ca_file = optarg; break;
		case 'a': no.auth_file = optarg; break;
		case 'n': no.dry_run = true; break;
		case 'j': {
			uint64_t t;
			if (cli_count("--threads", optarg, 1, 256, &t) < 0)
				return BN_EXIT_USAGE;
			threads = (unsigned)t;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: return cli_bad_option(argv[0], argv, opts);
		}
	}
	no.insecure = insecure;
	if (stream && media_cap) {
		tool_err("--stream and --media do not combine");
		return BN_EXIT_USAGE;
	}
	if (base_pubkey && !base_path) {
		tool_err("--base-pubkey needs --base");
		return BN_EXIT_USAGE;
	}
	if (stream && !out && !no.dry_run) {
		/* The bundle is built in a scratch directory, streamed, removed. */
		const char *td = getenv("TMPDIR");
		if (asprintf(&stream_out, "%s/agpack-stream.%d", td && *td ? td : "/var/tmp", (int)getpid()) < 0)
			return BN_EXIT_FAILURE;
		out = stream_out;
	}
	if (stream && isatty(STDOUT_FILENO)) {
		tool_err("--stream writes binary records to stdout: redirect it to a file or the diode");
		free(stream_out);
		return BN_EXIT_USAGE;
	}
	if (optind == argc) {
		free(stream_out);
		return cli_missing("build", "the pack spec SPEC");
	}
	if (optind + 1 != argc) {
		tool_err("build: one pack spec at a time ('%s' is extra)", argv[optind + 1]);
		free(stream_out);
		return BN_EXIT_USAGE;
	}
	if (!no.dry_run && (!key || !out)) {
		free(stream_out);
		return cli_missing("build", !key ? "--key KEY (the secret key that signs)" : "--out DIR (the new bundle)");
	}
	/* Every option is checked before the key's passphrase is asked for,
	 * and a dry run fails exactly where the build would. */
	if (media_cap && !vsize) {
		/* On media, a volume fits a medium with room for the signed
		 * files, and stays below the medium's file-size limit. */
		vsize = media_cap > (64u << 20) ? media_cap - (64u << 20) : media_cap / 2;
		if (vsize > media_max_file)
			vsize = media_max_file;
	}
	if (!csize)
		csize = bn_writer_fit_chunk_size(vsize); /* --volume-size 1M works without --chunk-size */
	{
		struct bn_error e = {0};
		struct bn_writer_opts chk = {.volume_size = vsize, .chunk_size = (uint32_t)csize, .level = level};
		if (bn_writer_check_opts(&chk, &e) < 0) {
			free(stream_out);
			tool_err("build: %s", e.msg);
			return BN_EXIT_USAGE;
		}
		struct stat kst;
		if (key && !no.dry_run && stat(key, &kst) < 0) {
			free(stream_out);
			tool_err("--key %s: %s", key, strerror(errno));
			return BN_EXIT_IO;
		}
		if (key && !no.dry_run && !S_ISREG(kst.st_mode)) {
			free(stream_out);
			tool_err("--key %s: not a regular file (the secret key file, PREFIX.key)", key);
			return BN_EXIT_USAGE;
		}
		const char *files[][2] = {{"--ca-file", no.ca_file}, {"--auth-file", no.auth_file}};
		for (size_t i = 0; i < 2; i++)
			if (files[i][1] && stat(files[i][1], &kst) < 0) {
				free(stream_out);
				tool_err("%s %s: %s", files[i][0], files[i][1], strerror(errno));
				return BN_EXIT_IO;
			}
		if (out && !stream_out && !no.dry_run && lstat(out, &kst) == 0) {
			free(stream_out);
			tool_err("--out %s: already exists; choose a new output directory", out);
			return BN_EXIT_IO;
		}
	}
	/* With --stream, stdout carries the stream: reports go to stderr. */
	FILE *info = stream || tool_json ? stderr : stdout;
	const char *spec_path = argv[optind];
	struct bn_error err = {0};
	struct spec spec = {0};
	struct bn_seckey sk = {0};
	struct bn_writer *w = NULL;
	char *tmp = NULL, *stage = NULL, *cache_default = NULL, *mtext = NULL;
	struct sbom *sb = NULL;
	int r = spec_load(spec_path, &spec, &err);
	if (r == 0 && !no.dry_run)
		r = spec_check_files(&spec, &err); /* before the passphrase */
	if (r < 0) {
		spec_release(&spec);
		free(stream_out);
		return tool_fail(r, &err);
	}
	no_sbom = no_sbom || spec.no_sbom;
	for (size_t i = 0; i < spec.n_artifacts && !no_sbom; i++)
		if (!strcmp(spec.artifacts[i].name, SBOM_ARTIFACT)) {
			tool_err("%s: an artifact is named '%s', which the SBOM needs; rename it or build with --no-sbom",
			         spec_path, SBOM_ARTIFACT);
			spec_release(&spec);
			return BN_EXIT_USAGE;
		}
	tool_catch_signals();
	if (!no.cache_dir) {
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		if (xdg && *xdg)
			cache_default = bn_path_join(xdg, "agkit");
		else if (asprintf(&cache_default, "%s/.cache/agkit", home && *home ? home : "/tmp") < 0)
			cache_default = NULL;
		no.cache_dir = cache_default;
	}
	if (no.dry_run) {
		for (size_t i = 0; i < spec.n_artifacts && r == 0; i++) {
			const struct spec_artifact *a = &spec.artifacts[i];
			struct stat st;
			if (a->path) {
				if (stat(a->path, &st) < 0)
					r = bn_fail(&err, -errno, "%s: %s", a->path, strerror(errno));
				else
					printf("%-12s %-24s %" PRIu64 " bytes local %s\n", a->type, a->name, local_size(a->path),
					       a->path);
				continue;
			}
			char *p = NULL;
			json_t *src = NULL;
			r = artifact_type_find(a->type)->fetch(a, &no, "/nonexistent-dry-run", &p, &src, &err);
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
		goto out;
	}
	r = tool_load_seckey(key, &sk, &err);
	if (r < 0)
		goto out;
	struct stat st;
	if (lstat(out, &st) == 0) {
		r = bn_fail(&err, -EEXIST, "%s: already exists; choose a new output directory", out);
		goto out;
	}
	r = bn_mktemp_sibling(out, &tmp, &err);
	if (r < 0)
		goto out;
	char *stage_base = NULL;
	if (asprintf(&stage_base, "%s.stage", out) < 0) {
		r = bn_fail(&err, -ENOMEM, "out of memory");
		goto out;
	}
	r = bn_mktemp_sibling(stage_base, &stage, &err);
	free(stage_base);
	if (r < 0)
		goto out;
	struct bn_writer_opts wo = {.dir = tmp, .volume_size = vsize, .chunk_size = (uint32_t)csize, .level = level,
	                            .threads = threads,
	                            .warn = warn_cb, .progress = tool_progress, .progress_userdata = "pack"};
	r = bn_writer_new(&wo, &w, &err);
	if (r == 0 && base_path && (r = load_base(base_path, base_pubkey, &base, &base_b, base_sha, &err)) == 0)
		r = bn_writer_set_base(w, base, base_sha, &err);
	if (r == 0 && base_b)
		r = bn_writer_set_base_content(w, base_b, &err);
	if (r < 0)
		goto out;
	if (!no_sbom && !(sb = sbom_new())) {
		r = bn_fail(&err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < spec.n_artifacts && r == 0; i++) {
		const struct spec_artifact *a = &spec.artifacts[i];
		if (tool_interrupted) {
			r = bn_fail(&err, -EINTR, "interrupted");
			break;
		}
		char *astage = NULL;
		if (asprintf(&astage, "%s/%zu", stage, i) < 0 || mkdir(astage, 0700) < 0) {
			free(astage);
			r = bn_fail(&err, -EIO, "%s: cannot create staging directory", stage);
			break;
		}
		const struct artifact_type *t = artifact_type_find(a->type); /* spec_load refused unknown types */
		char *path = NULL;
		json_t *source = NULL;
		if (t->local) {
			path = strdup(a->path);
			if (!path)
				r = bn_fail(&err, -ENOMEM, "out of memory");
		} else {
			r = t->fetch(a, &no, astage, &path, &source, &err);
		}
		uint8_t pin[BN_SHA256_LEN];
		bool pinned = a->sha256 && !strcmp(t->bundle_type, "files") && strcmp(a->sha256, "unpinned") != 0 &&
		              bn_unhex(a->sha256, pin, BN_SHA256_LEN);
		if (r == 0 && t->pack) {
			char *packed = NULL;
			r = t->pack(path, astage, &packed, &err);
			if (r == 0) {
				free(path);
				path = packed;
			}
		}
		/* Offline readiness (docs/SBOM.md), before anything is packed. */
		json_t *findings = json_array();
		struct image_info *images = NULL;
		size_t n_images = 0;
		if (!findings && r == 0)
			r = bn_fail(&err, -ENOMEM, "out of memory");
		bool is_image = !strcmp(t->bundle_type, "oci-archive");
		if (r == 0 && is_image && a->offline_env) {
			/* On a private copy: the input may be the user's directory or the cache. */
			char *copy = NULL;
			r = offline_env_copy(path, astage, &copy, &err);
			if (r == 0) {
				free(path);
				path = copy;
				r = offline_env_apply(path, findings, &err);
			}
		}
		if (r == 0 && is_image) {
			r = image_scan(path, &images, &n_images, &err);
			if (r == 0)
				offline_check_images(a->name, images, n_images, findings);
		}
		if (r == 0 && !is_image && offline_is_model(path)) {
			r = offline_check_path(a->name, path, a->allow_remote_code, findings, &err);
			if (r == 0 && a->allow_remote_code) {
				/* Recorded in the signed manifest as provenance. */
				if (!source)
					source = json_object();
				if (json_object_set_new(source, "allow_remote_code", json_true()) < 0)
					r = bn_fail(&err, -ENOMEM, "out of memory");
			}
		}
		for (size_t k = 0; k < json_array_size(findings); k++)
			tool_warn("%s", json_string_value(json_array_get(findings, k)));
		if (r == 0) {
			fprintf(stderr, "agpack: packing %s '%s'\n", t->bundle_type, a->name);
			r = bn_writer_add(w, a->name, t->bundle_type, t->layout, path, pinned ? pin : NULL, source, &err);
			tool_progress_end();
		}
		json_t *health = json_object_get(a->json, "health");
		char *suite = NULL;
		if (r == 0 && health)
			r = add_health(w, a, health, path, astage, &spec, &suite, &err);
		if (r == 0 && sb) {
			struct sbom_extra x = {.health_suite = suite, .allow_remote_code = a->allow_remote_code,
			                       .findings = findings, .images = images, .n_images = n_images};
			r = sbom_add_artifact(sb, bn_writer_artifact(w, a->name), path, &x, &err);
			char hname[BN_MAX_NAME + 16];
			snprintf(hname, sizeof hname, "%s-health", a->name);
			if (r == 0 && suite)
				r = sbom_add_artifact(sb, bn_writer_artifact(w, hname), suite, NULL, &err);
		}
		if (r < 0 && r != -EINTR)
			bn_error_prefix(&err, "artifact '%s'", a->name);
		free(suite);
		image_free(images, n_images);
		json_decref(findings);
		json_decref(source);
		free(path);
		/* Fetched content lives in the cache; the staging copy goes now. */
		bn_rm_rf(astage);
		free(astage);
	}
	if (r == 0 && sb) {
		/* The SBOM: one more artifact, packed before the manifest is signed. */
		char *text = NULL, *sdir = NULL, *sfile = NULL;
		r = sbom_format(sb, &spec, &text, &err);
		if (r == 0 && (asprintf(&sdir, "%s/%s", stage, SBOM_ARTIFACT) < 0 || !(sfile = bn_path_join(sdir, SBOM_FILE))))
			r = bn_fail(&err, -ENOMEM, "out of memory");
		if (r == 0 && mkdir(sdir, 0700) < 0)
			r = bn_fail(&err, -errno, "%s: %s", sdir, strerror(errno));
		if (r == 0)
			r = bn_write_file_atomic(sfile, text, strlen(text), 0644, &err);
		if (r == 0) {
			fprintf(stderr, "agpack: packing the SBOM as '%s' (%s)\n", SBOM_ARTIFACT, SBOM_FILE);
			r = bn_writer_add(w, SBOM_ARTIFACT, "files", "tree", sdir, NULL, NULL, &err);
		}
		free(text);
		free(sdir);
		free(sfile);
	}
	if (r < 0)
		goto out;
	char created[32];
	iso_now(created);
	const struct bn_manifest *m = NULL;
	r = bn_writer_finish(w, spec.name, spec.channel, spec.version, created, &m, &err);
	if (r < 0)
		goto out;
	size_t mlen = 0;
	/* The writer owns the manifest; parity and media are added to it before
	 * it is formatted and signed. */
	r = add_parity_media((struct bn_manifest *)m, tmp, parity, media_cap, &err);
	if (r < 0)
		goto out;
	r = bn_manifest_format(m, &mtext, &mlen);
	if (r < 0) {
		bn_fail(&err, r, "cannot encode manifest");
		goto out;
	}
	r = bn_bundle_write_signed(tmp, mtext, mlen, m, &sk, &err);
	if (r < 0)
		goto out;
	if (r == 0)
		r = bn_media_layout(tmp, m, &err);
	if (r < 0)
		goto out;
	if (tool_interrupted) {
		r = bn_fail(&err, -EINTR, "interrupted");
		goto out;
	}
	if (chmod(tmp, 0755) < 0 || bn_fsync_dir(tmp) < 0 ||
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_NOREPLACE) < 0) {
		r = bn_fail(&err, -errno, "%s: cannot move into place: %s", out, strerror(errno));
		goto out;
	}
	bn_fsync_parent(out);
	uint64_t total = 0, stored = 0;
	for (size_t i = 0; i < m->n_artifacts; i++)
		total += m->artifacts[i].size;
	for (size_t i = 0; i < m->n_volumes; i++)
		stored += m->volumes[i].size;
	fprintf(info, "%s: bundle %s channel %s version %" PRIu64 ": %zu artifact(s), %" PRIu64 " bytes in %zu chunk(s), "
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
		fprintf(info, "%s: %zu parity volume(s) in %zu group(s): any %u lost or damaged volume(s) of a group can be "
		       "rebuilt\n", out, m->parity->n_volumes, m->parity->n_groups, m->parity->groups[0].p);
	if (m->media)
		fprintf(info, "%s: %u media of %" PRIu64 " bytes: %s/medium-01 ... medium-%02u\n", out, m->media->count,
		       m->media->capacity, out, m->media->count);
	if (tool_json && !stream) {
		/* agpack build --json (docs/OPERATIONS.md). */
		json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "out", out, "bundle", m->name,
		                      "channel", m->channel, "version", (json_int_t)m->version, "artifacts",
		                      (json_int_t)m->n_artifacts, "bytes", (json_int_t)total, "chunks", (json_int_t)m->n_chunks,
		                      "volumes", (json_int_t)m->n_volumes, "stored_bytes", (json_int_t)stored);
		json_object_set_new(o, "parity_volumes", json_integer((json_int_t)(m->parity ? m->parity->n_volumes : 0)));
		json_object_set_new(o, "media", m->media ? json_integer(m->media->count) : json_null());
		json_object_set_new(o, "created", json_string(m->created));
		json_object_set_new(o, "base",
		                    m->base ? json_pack("{s:s, s:s, s:I}", "bundle", m->base->name, "channel",
		                                        m->base->channel, "version", (json_int_t)m->base->version)
		                            : json_null());
		json_object_set_new(o, "reused_bytes", json_integer((json_int_t)reused));
		tool_json_print(o);
	}
	if (stream) {
		r = bn_stream_write(out, STDOUT_FILENO, &err);
		if (r == 0)
			fprintf(stderr, "%s: streamed to stdout\n", out);
		if (stream_out)
			bn_rm_rf(stream_out);
	}
out:
	sbom_free(sb);
	bn_writer_free(w);
	if (base_b)
		bn_bundle_free(base_b); /* and base, its manifest */
	else
		bn_manifest_free(base);
	if (tmp && r < 0)
		bn_rm_rf(tmp);
	if (stage)
		bn_rm_rf(stage);
	bn_seckey_wipe(&sk);
	spec_release(&spec);
	free(tmp);
	free(stage);
	free(mtext);
	free(cache_default);
	free(stream_out);
	return r < 0 ? tool_fail(r, &err) : 0;
}

static int cmd_stream(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	if (isatty(STDOUT_FILENO)) {
		tool_err("agpack stream writes binary records to stdout: redirect it to a file or the diode");
		return BN_EXIT_USAGE;
	}
	struct bn_error err = {0};
	int r = bn_stream_write(argv[1], STDOUT_FILENO, &err);
	return r < 0 ? tool_fail(r, &err) : 0;
}

/* The options of sign and sign-trust: --key KEY and one FILE (argv[optind]).
 * Returns -1 to go on, else the exit code. */
static int key_and_file(int argc, char **argv, const char **ret_key)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *key = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return cli_bad_option(argv[0], argv, opts);
		}
	}
	if (optind == argc)
		return cli_missing(argv[0], !strcmp(argv[0], "sign") ? "the bundle directory DIR" : "the policy file POLICY.json");
	if (optind + 1 != argc) {
		tool_err("%s: one file at a time ('%s' is extra)", argv[0], argv[optind + 1]);
		return BN_EXIT_USAGE;
	}
	if (!key)
		return cli_missing(argv[0], "--key KEY");
	*ret_key = key;
	return -1;
}

static int cmd_sign(int argc, char **argv)
{
	const char *key = NULL;
	int ex = key_and_file(argc, argv, &key);
	if (ex >= 0)
		return ex;
	struct bn_error err = {0};
	struct bn_seckey sk;
	int r = tool_load_seckey(key, &sk, &err);
	if (r == 0)
		r = bn_media_is_set(argv[optind]) ? bn_media_add_signature(argv[optind], &sk, &err)
		                                  : bn_bundle_add_signature(argv[optind], &sk, &err);
	char id[BN_KEYID_HEX];
	bn_keyid_hex(sk.keyid, id);
	bn_seckey_wipe(&sk);
	if (r < 0)
		return tool_fail(r, &err);
	printf("%s: signed by %s\n", argv[optind], id);
	return 0;
}

/* Signs a trust policy for `agctl trust update`: the trusted comment says
 * what is signed ("agkit-trust-update v1 serial N"), so the signature can be
 * neither a bundle signature nor one for another serial. */
static int cmd_sign_trust(int argc, char **argv)
{
	const char *key = NULL;
	int ex = key_and_file(argc, argv, &key);
	if (ex >= 0)
		return ex;
	const char *file = argv[optind];
	struct bn_error err = {0};
	char *buf = NULL, *text = NULL, *out = NULL;
	size_t len = 0;
	struct bn_trust_policy *p = calloc(1, sizeof *p);
	struct bn_seckey sk;
	bool have_key = false;
	int r = p ? bn_read_file(file, BN_TRUST_MAX_BYTES, &buf, &len, &err) : bn_fail(&err, -ENOMEM, "out of memory");
	if (r == 0) {
		r = bn_trust_parse(buf, len, p, &err);
		if (r < 0)
			bn_error_prefix(&err, "%s", file);
	}
	if (r == 0) {
		r = tool_load_seckey(key, &sk, &err);
		have_key = r == 0;
	}
	char id[BN_KEYID_HEX] = "", tc[128];
	if (r == 0) {
		bn_keyid_hex(sk.keyid, id);
		snprintf(tc, sizeof tc, BN_TRUST_UPDATE_COMMENT "%" PRIu64, p->serial);
		r = bn_minisig_sign(&sk, buf, len, "agkit trust policy signature", tc, &text, &err);
	}
	if (r == 0 && asprintf(&out, "%s.%s.minisig", file, id) < 0)
		r = bn_fail(&err, -ENOMEM, "out of memory");
	if (r == 0)
		r = bn_write_file_atomic(out, text, strlen(text), 0644, &err);
	if (have_key)
		bn_seckey_wipe(&sk);
	if (r == 0)
		printf("%s: trust policy serial %" PRIu64 " signed by %s (%s)\n", file, p->serial, id, out);
	free(buf);
	free(text);
	free(out);
	free(p);
	return r < 0 ? tool_fail(r, &err) : 0;
}

static int cmd_lint(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		if (argc < 2)
			return cli_missing("lint", "the pack spec SPEC");
		tool_err("lint: one pack spec, no options ('%s')", argv[argc > 2 ? 2 : 1]);
		return BN_EXIT_USAGE;
	}
	struct bn_error err = {0};
	struct spec spec = {0};
	int r = spec_load(argv[1], &spec, &err);
	if (r == 0)
		r = spec_check_files(&spec, &err);
	/* offline readiness of the local artifacts, as build checks them (docs/SBOM.md) */
	for (size_t i = 0; r == 0 && i < spec.n_artifacts; i++) {
		const struct spec_artifact *a = &spec.artifacts[i];
		json_t *findings = json_array();
		if (!findings) {
			r = bn_fail(&err, -ENOMEM, "out of memory");
			break;
		}
		if (a->path)
			r = offline_check_path(a->name, a->path, a->allow_remote_code, findings, &err);
		for (size_t k = 0; k < json_array_size(findings); k++)
			tool_warn("%s", json_string_value(json_array_get(findings, k)));
		json_decref(findings);
		if (r < 0 && r != -EINTR)
			bn_error_prefix(&err, "artifact '%s'", a->name);
	}
	if (r == 0)
		printf("%s: OK: bundle %s channel %s version %" PRIu64 ", %zu artifact(s)\n", argv[1], spec.name,
		       spec.channel, spec.version, spec.n_artifacts);
	spec_release(&spec);
	return r < 0 ? tool_fail(r, &err) : 0;
}

static const struct cli_cmd commands[] = {
	{"keygen", U_KEYGEN, cmd_keygen, false},
	{"build", U_BUILD U_SIZES, cmd_build, false},
	{"lint", U_LINT, cmd_lint, false},
	{"sign", U_SIGN, cmd_sign, false},
	{"sign-trust", U_SIGN_TRUST, cmd_sign_trust, false},
	{"stream", U_STREAM, cmd_stream, false},
	{0},
};

int main(int argc, char **argv)
{
	return cli_main(argc, argv, commands, usage,
	                agpack_have_network ? "agpack " AGKIT_VERSION " (network sources: yes)"
	                                    : "agpack " AGKIT_VERSION " (network sources: no)",
	                NULL);
}
