/* SPDX-License-Identifier: Apache-2.0 */
/* agpack: the dirty-zone command.  keygen, build (its pipeline in build.c), sign. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/bundle.h"
#include "bundle/fsutil.h"
#include "bundle/media.h"
#include "bundle/stream.h"
#include "bundle/trust.h"
#include "bundle/writer.h"
#include "build.h"
#include "offline.h"
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

/* agpack build's options into o (insecure: room for 32 registries; the
 * medium's file-size limit of --media in *media_max_file).
 * Returns -1 to go on, else the exit status. */
static int parse_build_opts(int argc, char **argv, struct build_opts *o, const char **insecure,
                            uint64_t *media_max_file)
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
	struct net_opts *no = &o->net;
	int c;
	while ((c = getopt_long(argc, argv, "k:o:V:l:C:c:I:A:a:nj:P:M:SqBb:K:h", opts, NULL)) != -1) {
		switch (c) {
		case 'J': tool_json = true; break;
		case 'q': tool_quiet = true; break;
		case 'P': {
			uint64_t p;
			if (cli_count("--parity (parity volumes per group)", optarg, 0, BN_PARITY_MAX, &p) < 0)
				return BN_EXIT_USAGE;
			o->parity = (unsigned)p;
			break;
		}
		case 'S': o->stream = true; break;
		case 'B': o->no_sbom = true; break;
		case 'b': o->base_path = optarg; break;
		case 'K': o->base_pubkey = optarg; break;
		case 'M':
			if (bn_media_parse_size(optarg, &o->media_cap, media_max_file) < 0) {
				tool_err("--media: expected dvd, dvd-dl, bd25, bd50, bd100, usb-fat32 or a size (700M, 4G)");
				return BN_EXIT_USAGE;
			}
			break;
		case 'k': o->key = optarg; break;
		case 'o': o->out = optarg; break;
		case 'V':
			if (cli_size("--volume-size", optarg, BN_MIN_CHUNK_SIZE, 1ull << 50, &o->volume_size) < 0)
				return BN_EXIT_USAGE;
			break;
		case 'C':
			if (cli_size("--chunk-size (4K to 64M)", optarg, BN_MIN_CHUNK_SIZE, BN_MAX_CHUNK_SIZE, &o->chunk_size) <
			    0)
				return BN_EXIT_USAGE;
			break;
		case 'l': {
			uint64_t l;
			if (cli_count("--level (zstd level)", optarg, 1, 22, &l) < 0)
				return BN_EXIT_USAGE;
			o->level = (int)l;
			break;
		}
		case 'c': no->cache_dir = optarg; break;
		case 'I':
			if (no->n_insecure == 32) {
				tool_err("too many --insecure-registry options");
				return BN_EXIT_USAGE;
			}
			insecure[no->n_insecure++] = optarg;
			break;
		case 'A': no->ca_file = optarg; break;
		case 'a': no->auth_file = optarg; break;
		case 'n': no->dry_run = true; break;
		case 'j': {
			uint64_t t;
			if (cli_count("--threads", optarg, 1, 256, &t) < 0)
				return BN_EXIT_USAGE;
			o->threads = (unsigned)t;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: return cli_bad_option(argv[0], argv, opts);
		}
	}
	no->insecure = insecure;
	return -1;
}

/* Every option is checked before the key's passphrase is asked for, and a
 * dry run fails exactly where the build would.  --stream without --out
 * builds in *ret_scratch (a scratch directory name, the caller frees).
 * Returns -1 to go on, else the exit status. */
static int check_build_opts(int argc, char **argv, struct build_opts *o, uint64_t media_max_file,
                            char **ret_scratch)
{
	const struct net_opts *no = &o->net;
	if (o->stream && o->media_cap) {
		tool_err("--stream and --media do not combine");
		return BN_EXIT_USAGE;
	}
	if (o->base_pubkey && !o->base_path) {
		tool_err("--base-pubkey needs --base");
		return BN_EXIT_USAGE;
	}
	if (o->stream && !o->out && !no->dry_run) {
		/* The bundle is built in a scratch directory, streamed, removed. */
		const char *td = getenv("TMPDIR");
		if (asprintf(ret_scratch, "%s/agpack-stream.%d", td && *td ? td : "/var/tmp", (int)getpid()) < 0) {
			*ret_scratch = NULL;
			return BN_EXIT_FAILURE;
		}
		o->out = o->scratch_out = *ret_scratch;
	}
	if (o->stream && isatty(STDOUT_FILENO)) {
		tool_err("--stream writes binary records to stdout: redirect it to a file or the diode");
		return BN_EXIT_USAGE;
	}
	if (optind == argc)
		return cli_missing("build", "the pack spec SPEC");
	if (optind + 1 != argc) {
		tool_err("build: one pack spec at a time ('%s' is extra)", argv[optind + 1]);
		return BN_EXIT_USAGE;
	}
	if (!no->dry_run && (!o->key || !o->out))
		return cli_missing("build", !o->key ? "--key KEY (the secret key that signs)" : "--out DIR (the new bundle)");
	if (o->media_cap && !o->volume_size) {
		/* On media, a volume fits a medium with room for the signed
		 * files, and stays below the medium's file-size limit. */
		o->volume_size = o->media_cap > (64u << 20) ? o->media_cap - (64u << 20) : o->media_cap / 2;
		if (o->volume_size > media_max_file)
			o->volume_size = media_max_file;
	}
	if (!o->chunk_size)
		o->chunk_size = bn_writer_fit_chunk_size(o->volume_size); /* --volume-size 1M works without --chunk-size */
	struct bn_error e = {0};
	struct bn_writer_opts chk = {.volume_size = o->volume_size, .chunk_size = (uint32_t)o->chunk_size,
	                             .level = o->level};
	if (bn_writer_check_opts(&chk, &e) < 0) {
		tool_err("build: %s", e.msg);
		return BN_EXIT_USAGE;
	}
	struct stat kst;
	if (o->key && !no->dry_run && stat(o->key, &kst) < 0) {
		tool_err("--key %s: %s", o->key, strerror(errno));
		return BN_EXIT_IO;
	}
	if (o->key && !no->dry_run && !S_ISREG(kst.st_mode)) {
		tool_err("--key %s: not a regular file (the secret key file, PREFIX.key)", o->key);
		return BN_EXIT_USAGE;
	}
	const char *files[][2] = {{"--ca-file", no->ca_file}, {"--auth-file", no->auth_file}};
	for (size_t i = 0; i < 2; i++)
		if (files[i][1] && stat(files[i][1], &kst) < 0) {
			tool_err("%s %s: %s", files[i][0], files[i][1], strerror(errno));
			return BN_EXIT_IO;
		}
	if (o->out && !o->scratch_out && !no->dry_run && lstat(o->out, &kst) == 0) {
		tool_err("--out %s: already exists; choose a new output directory", o->out);
		return BN_EXIT_IO;
	}
	return -1;
}

/* Options (agpack.c), then the pipeline (build.c). */
static int cmd_build(int argc, char **argv)
{
	struct build_opts o = {0};
	const char *insecure[32];
	uint64_t media_max_file = 0;
	char *scratch = NULL;
	int ex = parse_build_opts(argc, argv, &o, insecure, &media_max_file);
	if (ex < 0)
		ex = check_build_opts(argc, argv, &o, media_max_file, &scratch);
	if (ex < 0)
		ex = build_run(&o, argv[optind]);
	free(scratch);
	return ex;
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
