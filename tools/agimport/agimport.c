/* SPDX-License-Identifier: Apache-2.0 */
/* agimport: the clean-zone import command.  No network code. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bundle/bundle.h"
#include "bundle/deploy.h"
#include "bundle/media.h"
#include "bundle/stream.h"
#include "bundle/fsutil.h"
#include "cli.h"
#include "inspect.h"
#include "report.h"
#include "toolutil.h"

const char *tool_name = "agimport";

#define MAX_KEYS 64

#define U_STAGE                                                                                                     \
	"agimport [stage] DIR [--root R] [--allow-downgrade] [--force] [--wait] [--dry-run]\n"                         \
	"       agimport [stage] --stream [--root R] ...   (reads a one-way stream on stdin)\n"
#define U_RECEIVE "agimport receive DIR [-q]                 (writes a stream from stdin into the new DIR)\n"
#define U_VERIFY "agimport verify DIR --pubkey KEY.pub [--pubkey ...] [--threshold N] [--threads N]\n"
#define U_INSPECT "agimport inspect DIR [--json] [--pubkey KEY.pub ... | --root R] [--sbom]\n"
#define U_EXTRACT "agimport extract DIR --pubkey KEY.pub [--pubkey ...] [--threshold N] [--threads N] --to TARGET\n"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: " U_STAGE "       " U_RECEIVE "       " U_VERIFY "       " U_INSPECT "       " U_EXTRACT
	        "       (stage, verify, extract and inspect: --json prints one JSON object; -q|--quiet: no progress)\n"
	        "       agimport help COMMAND | agimport COMMAND --help   (that command's usage)\n"
	        "\n"
	        "stage (the default) verifies DIR under R's trust policy and stages it into the\n"
	        "idle slot of the deployment root R ($AGKIT_ROOT or " BN_DEFAULT_ROOT ").\n"
	        "Exit status: 0 ok, 1 failure, 2 usage, 3 verification failed or unsafe bundle,\n"
	        "             4 I/O error (missing file, not enough space), 5 refused by policy,\n"
	        "             6 another agkit command holds the lock.\n");
}

struct args {
	const char *dir, *to;
	struct bn_pubkey keys[MAX_KEYS];
	size_t n_keys;
	unsigned threshold;
	unsigned threads; /* 0: online CPUs */
};

static int parse(int argc, char **argv, struct args *a, bool want_to)
{
	static const struct option opts[] = {
		{"pubkey", required_argument, NULL, 'p'},
		{"threshold", required_argument, NULL, 't'},
		{"to", required_argument, NULL, 'T'},
		{"threads", required_argument, NULL, 'j'},
		{"json", no_argument, NULL, 'J'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "p:t:T:j:qh", opts, NULL)) != -1) {
		struct bn_error err = {0};
		switch (c) {
		case 'J': tool_json = true; break;
		case 'q': tool_quiet = true; break;
		case 'p':
			if (a->n_keys == MAX_KEYS) {
				tool_err("too many --pubkey options");
				return BN_EXIT_USAGE;
			}
			int q = bn_pubkey_load(optarg, &a->keys[a->n_keys], &err);
			if (q < 0)
				return tool_fail(q == -EBADMSG ? -EINVAL : q, &err);
			a->n_keys++;
			break;
		case 't': {
			uint64_t t;
			if (cli_count("--threshold", optarg, 1, MAX_KEYS, &t) < 0)
				return BN_EXIT_USAGE;
			a->threshold = (unsigned)t;
			break;
		}
		case 'T': a->to = optarg; break;
		case 'j': {
			uint64_t t;
			if (cli_count("--threads", optarg, 1, 256, &t) < 0)
				return BN_EXIT_USAGE;
			a->threads = (unsigned)t;
			break;
		}
		case 'h': usage(stdout); exit(0);
		default: return cli_bad_option(argv[0], argv, opts);
		}
	}
	const char *cmd = argv[0];
	if (optind == argc)
		return cli_missing(cmd, "the bundle directory DIR");
	if (optind + 1 != argc) {
		tool_err("%s %s: one bundle directory at a time ('%s' is extra)", cmd, argv[optind], argv[optind + 1]);
		return BN_EXIT_USAGE;
	}
	char what[600];
	snprintf(what, sizeof what, "%s %.500s", cmd, argv[optind]);
	if (a->n_keys == 0)
		return cli_missing(what, "--pubkey KEY.pub");
	if (want_to && !a->to)
		return cli_missing(what, "--to TARGET");
	if (!want_to && a->to) {
		tool_err("%s: --to is for extract", what);
		return BN_EXIT_USAGE;
	}
	if (a->threshold > a->n_keys) {
		tool_err("--threshold %u is more than the %zu key(s) given", a->threshold, a->n_keys);
		return BN_EXIT_USAGE;
	}
	a->dir = argv[optind];
	return 0;
}

static void print_signers(const struct bn_bundle *b)
{
	tool_say("%s: bundle %s channel %s version %" PRIu64 ", signed by", b->dir, b->m->name, b->m->channel,
	         b->m->version);
	for (size_t i = 0; i < b->n_signers; i++) {
		char id[BN_KEYID_HEX];
		bn_keyid_hex(b->signers[i], id);
		tool_say(" %s", id);
	}
	tool_say("\n");
}

/* verify and extract --json: {"dir", "ok", "bundle", "channel", "version",
 * "signers", "volumes", "chunks", "parity_volumes", "medium", "media",
 * "notes", "to" (extract)}. */
static void json_result(const struct bn_bundle *b, const char *to)
{
	json_t *sg = json_array(), *notes = json_array();
	for (size_t i = 0; i < b->n_signers; i++) {
		char id[BN_KEYID_HEX];
		bn_keyid_hex(b->signers[i], id);
		json_array_append_new(sg, json_string(id));
	}
	const char *n;
	for (size_t i = 0; (n = bn_bundle_note(b, i)); i++)
		json_array_append_new(notes, json_string(n));
	const struct bn_manifest *m = b->m;
	json_t *o = json_pack("{s:s, s:b, s:s, s:s, s:I, s:o, s:I, s:I, s:I}", "dir", b->dir, "ok", 1, "bundle", m->name,
	                      "channel", m->channel, "version", (json_int_t)m->version, "signers", sg, "volumes",
	                      (json_int_t)m->n_volumes, "chunks", (json_int_t)m->n_chunks, "parity_volumes",
	                      (json_int_t)(m->parity ? m->parity->n_volumes : 0));
	json_object_set_new(o, "medium", bn_bundle_medium(b) ? json_integer(bn_bundle_medium(b)) : json_null());
	json_object_set_new(o, "media", m->media ? json_integer(m->media->count) : json_null());
	json_object_set_new(o, "notes", notes);
	if (to)
		json_object_set_new(o, "to", json_string(to));
	tool_json_print(o);
}

/* Rebuilt volumes and damaged parity volumes: said on stderr, not fatal. */
static void print_notes(const struct bn_bundle *b)
{
	const char *n;
	for (size_t i = 0; (n = bn_bundle_note(b, i)); i++)
		tool_warn("%s", n);
}

static void print_medium(const struct bn_bundle *b)
{
	const struct bn_manifest *m = b->m;
	unsigned mi = bn_bundle_medium(b);
	size_t nv = 0, np = 0;
	for (size_t i = 0; i < m->n_volumes; i++)
		nv += m->media->vol_medium[i] == mi;
	for (size_t i = 0; m->parity && i < m->parity->n_volumes; i++)
		np += m->media->par_medium[i] == mi;
	tool_say("%s: OK: medium %u of %u of bundle %s channel %s version %" PRIu64 ": its %zu volume(s) and %zu parity "
	         "volume(s) match the signed manifest\n", b->dir, mi, m->media->count, m->name, m->channel, m->version, nv,
	         np);
	tool_say("%s: the set is medium-01 ... medium-%02u; import needs them all (or all but %u with parity)\n", b->dir,
	         m->media->count, m->parity ? m->parity->groups[0].p : 0);
}

static bool is_medium(const char *dir)
{
	char *l = bn_path_join(dir, BN_MEDIUM_LABEL), *mf = bn_path_join(dir, "manifest.json");
	bool r = l && mf && access(l, F_OK) == 0 && access(mf, F_OK) == 0;
	free(l);
	free(mf);
	return r;
}

static void audit_medium(struct bn_deploy *d, const struct bn_bundle *b, const char *result, const char *why)
{
	struct bn_audit_event ev = {.action = "import-medium", .bundle = b->m->name, .channel = b->m->channel,
	                            .version = b->m->version, .has_version = true, .result = result, .reason = why};
	struct bn_error e2 = {0};
	if (bn_deploy_audit(d, &ev, &e2) < 0)
		tool_warn("%s", e2.msg);
}

/* One medium of a set.  Its manifest and signatures are read and verified
 * once, here: the floor, the expiry, the chunks staged and (with the last
 * medium) the installed tree are all checked against that one bundle,
 * handed back in *ret_b when the set is complete. */
static int stage_medium(struct bn_deploy *d, const char *dir, const struct bn_import_opts *io, struct bn_bundle **ret_b,
                        char **ret_work, bool *ret_complete, struct bn_error *err)
{
	struct bn_trust trust = bn_deploy_trust(d);
	struct bn_bundle *b = NULL;
	int r = bn_bundle_open(dir, &trust, &b, err);
	if (r < 0)
		return r;
	if (!bn_bundle_medium(b)) {
		/* A label in a bundle that is no media set: never a silent success. */
		r = bn_fail(err, -EBADMSG, "%s/%s: a medium label in a bundle that is not a media set (bundle %s version %"
		            PRIu64 "); remove it to import the bundle", dir, BN_MEDIUM_LABEL, b->m->name, b->m->version);
		bn_bundle_free(b);
		return r;
	}
	struct bn_media_stage_result res;
	char *work = bn_path_join(bn_deploy_root(d), "staging/media");
	if (!work) {
		bn_bundle_free(b);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	/* The same floor and expiry as a directory import, before anything is
	 * staged; a staging of this bundle can then never complete: it goes. */
	struct bn_import_opts chk = *io;
	chk.check_only = true;
	chk.media_work = NULL;
	r = bn_deploy_import_bundle(d, b, &chk, NULL, err);
	if (r < 0) {
		bn_media_stage_discard(b, work);
		char why[BN_ERROR_MAX + 64];
		snprintf(why, sizeof why, "medium %u: %s", bn_bundle_medium(b), err->msg);
		audit_medium(d, b, "refused", why);
		free(work);
		bn_bundle_free(b);
		return r;
	}
	r = bn_media_stage(b, work, &res, err);
	print_notes(b);
	{
		/* Every medium taken (or refused) is audited, not only the last. */
		char why[BN_ERROR_MAX + 64];
		if (r < 0)
			snprintf(why, sizeof why, "medium %u: %s", bn_bundle_medium(b), err->msg);
		else
			snprintf(why, sizeof why, "medium %u of %u: %zu new chunk(s); %s%s", res.medium, res.count,
			         res.chunks_new, res.complete ? "all chunks in place" : "still needed: medium ",
			         res.complete ? "" : res.missing);
		audit_medium(d, b, r < 0 ? "failed" : "ok", why);
	}
	if (r == 0) {
		tool_say("%s: medium %u of %u of bundle %s channel %s version %" PRIu64 ": %zu new chunk(s) in place; %zu of "
		         "%zu chunk(s) done\n", dir, res.medium, res.count, b->m->name, b->m->channel, b->m->version,
		         res.chunks_new, res.chunks_done, res.chunks_total);
		if (!res.complete)
			tool_say("%s: still needed: medium %s (insert them in any order and run agimport stage again)\n", dir,
			         res.missing);
		if (!res.complete && tool_json)
			tool_json_print(json_pack("{s:s, s:b, s:s, s:s, s:I, s:i, s:i, s:I, s:I, s:I, s:s}", "dir", dir,
			                          "staged", 0, "bundle", b->m->name, "channel", b->m->channel, "version",
			                          (json_int_t)b->m->version, "medium", (int)res.medium, "media",
			                          (int)res.count, "chunks_new", (json_int_t)res.chunks_new, "chunks_done",
			                          (json_int_t)res.chunks_done, "chunks_total", (json_int_t)res.chunks_total,
			                          "missing", res.missing));
	}
	if (r < 0 || !res.complete) {
		bn_bundle_free(b);
		free(work);
		return r;
	}
	*ret_b = b;
	*ret_work = work;
	*ret_complete = true;
	return 0;
}

/* A one-way stream from stdin into the new directory dir. */
static int receive(const char *dir, struct bn_error *err)
{
	if (isatty(STDIN_FILENO))
		return bn_fail(err, -EINVAL, "the stream comes on stdin: redirect it from a file or the diode");
	struct bn_stream_result res;
	int r = bn_stream_read_progress(STDIN_FILENO, dir, tool_progress_bytes, "receive", &res, err);
	tool_progress_bytes_end();
	if (r < 0)
		return r;
	fprintf(stderr, "%s: received %" PRIu64 " record(s); %" PRIu64 " damaged, %" PRIu64 " byte(s) skipped\n", dir,
	        res.records_ok, res.records_bad, res.bytes_skipped);
	if (res.files_incomplete)
		tool_warn("%s: %zu volume(s) incomplete after the stream, dropped (rebuilt from parity on import if the "
		          "bundle has enough): %s", dir, res.files_incomplete, res.incomplete);
	return 0;
}

static int cmd_receive(int argc, char **argv)
{
	const char *dir = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet"))
			tool_quiet = true;
		else if (argv[i][0] != '-' && !dir)
			dir = argv[i];
		else
			dir = "";
	}
	if (!dir || !*dir) {
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	struct bn_error err = {0};
	int r = receive(dir, &err);
	return r < 0 ? tool_fail(r, &err) : 0;
}

/* agimport DIR --dry-run: the checks of an import and a report of what it
 * would stage; bn_deploy_import() writes nothing but the audit record. */
static int dry_run(struct bn_deploy *d, const char *dir, struct bn_import_opts *io)
{
	struct bn_error err = {0};
	struct bn_import_result res = {0};
	int r = bn_deploy_import(d, dir, io, &res, &err);
	char now[300] = "empty";
	const struct bn_slot *s = &res.replaces;
	if (r == 0 && s->has_bundle)
		snprintf(now, sizeof now, "%s: %s %s v%" PRIu64, bn_slot_state_name(s->state), s->bundle, s->channel,
		         s->version);
	else if (r == 0)
		snprintf(now, sizeof now, "%s", bn_slot_state_name(s->state));
	bn_deploy_close(d);
	if (r < 0)
		return tool_fail(r, &err);
	tool_say("%s: dry run: bundle %s channel %s version %" PRIu64 " would be staged into slot %s (now %s)\n", dir,
	         res.bundle, res.channel, res.version, bn_slot_name(res.slot), now);
	tool_say("%s: dry run: signatures and threshold, channel, floor, expiry, volume files and free space checked "
	         "(needs %" PRIu64 " MiB, %" PRIu64 " MiB free); volume contents are hashed on import (or agimport "
	         "verify); nothing staged\n", dir, (res.need_bytes + (1u << 20) - 1) >> 20, res.free_bytes >> 20);
	if (tool_json) {
		json_t *rep = json_pack("{s:s, s:s}", "state", bn_slot_state_name(s->state), "bundle",
		                        s->has_bundle ? s->bundle : "");
		json_object_set_new(rep, "version", s->has_bundle ? json_integer((json_int_t)s->version) : json_null());
		if (!s->has_bundle)
			json_object_set_new(rep, "bundle", json_null());
		json_t *o = json_pack("{s:s, s:b, s:b, s:s, s:s, s:I, s:s, s:o, s:I, s:I}", "dir", dir, "dry_run", 1,
		                      "staged", 0, "bundle", res.bundle, "channel", res.channel, "version",
		                      (json_int_t)res.version, "slot", bn_slot_name(res.slot), "replaces", rep, "need_bytes",
		                      (json_int_t)res.need_bytes, "free_bytes", (json_int_t)res.free_bytes);
		tool_json_print(o);
	}
	return 0;
}

static int cmd_stage(int argc, char **argv)
{
	static const struct option opts[] = {
		{"root", required_argument, NULL, 'r'},
		{"allow-downgrade", no_argument, NULL, 'D'},
		{"force", no_argument, NULL, 'f'},
		{"wait", no_argument, NULL, 'w'},
		{"stream", no_argument, NULL, 'S'},
		{"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'J'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	bool stream = false;
	const char *root = getenv("AGKIT_ROOT");
	if (!root || !*root)
		root = BN_DEFAULT_ROOT;
	struct bn_import_opts io = {.cancel = &tool_interrupted, .progress = tool_progress, .userdata = "import"};
	bool wait = false;
	int c;
	while ((c = getopt_long(argc, argv, "r:DfwSnqh", opts, NULL)) != -1) {
		switch (c) {
		case 'n': io.dry_run = true; break;
		case 'J': tool_json = true; break;
		case 'q': tool_quiet = true; break;
		case 'S': stream = true; break;
		case 'r': root = optarg; break;
		case 'D': io.allow_downgrade = true; break;
		case 'f': io.force = true; break;
		case 'w': wait = true; break;
		case 'h': usage(stdout); return 0;
		default: return cli_bad_option("stage", argv, opts);
		}
	}
	if (optind == argc && !stream)
		return cli_missing("stage", "the bundle directory DIR (or --stream)");
	if (optind + (stream ? 0 : 1) != argc) {
		if (optind + 1 < argc || stream)
			tool_err(stream ? "--stream reads stdin: no bundle directory" : "one bundle directory at a time");
		usage(stderr);
		return BN_EXIT_USAGE;
	}
	if (stream && io.dry_run) {
		tool_err("--dry-run checks a bundle directory or medium; receive the stream first (agimport receive DIR)");
		return BN_EXIT_USAGE;
	}
	tool_catch_signals();
	struct bn_error err = {0};
	struct bn_deploy *d = NULL;
	int r = bn_deploy_open(root, wait, &d, &err);
	if (r < 0)
		return tool_fail(r, &err);
	if (io.dry_run)
		return dry_run(d, argv[optind], &io);
	char *received = NULL;
	if (stream) {
		/* The stream lands in R/staging/stream, then imports like a directory. */
		received = bn_path_join(bn_deploy_root(d), "staging/stream");
		if (!received) {
			bn_deploy_close(d);
			return BN_EXIT_FAILURE;
		}
		bn_rm_rf(received);
		r = receive(received, &err);
		if (r < 0) {
			free(received);
			bn_deploy_close(d);
			return tool_fail(r, &err);
		}
		argv[optind] = received;
		argc = optind + 1;
	}
	struct bn_import_result res = {0};
	char *work = NULL;
	if (is_medium(argv[optind])) {
		/* One medium of a set: its chunks go into place now; the import
		 * completes with the last medium needed, as the bundle verified
		 * here (never a second read of the medium). */
		bool complete = false;
		struct bn_bundle *b = NULL;
		r = stage_medium(d, argv[optind], &io, &b, &work, &complete, &err);
		if (r < 0 || !complete) {
			free(work);
			bn_deploy_close(d);
			return r < 0 ? tool_fail(r, &err) : 0;
		}
		io.media_work = work;
		r = bn_deploy_import_bundle(d, b, &io, &res, &err);
		bn_bundle_free(b);
	} else {
		r = bn_deploy_import(d, argv[optind], &io, &res, &err);
	}
	free(work);
	tool_progress_end();
	bn_deploy_close(d);
	if (received) {
		bn_rm_rf(received);
		free(received);
		received = NULL;
		argv[optind] = "stream";
	}
	if (r < 0)
		return tool_fail(r, &err);
	if (res.notes[0])
		tool_warn("%s", res.notes);
	tool_say("%s: staged bundle %s channel %s version %" PRIu64 " into slot %s%s\n", argv[optind], res.bundle,
	         res.channel, res.version, bn_slot_name(res.slot), res.resumed_chunks ? " (resumed)" : "");
	tool_log(LOG_NOTICE, "%s: staged bundle %s channel %s version %" PRIu64 " into slot %s%s", argv[optind],
	         res.bundle, res.channel, res.version, bn_slot_name(res.slot), res.resumed_chunks ? " (resumed)" : "");
	if (tool_json) {
		json_t *o = json_pack("{s:s, s:b, s:s, s:s, s:I, s:s, s:b, s:s}", "dir", argv[optind], "staged", 1, "bundle",
		                      res.bundle, "channel", res.channel, "version", (json_int_t)res.version, "slot",
		                      bn_slot_name(res.slot), "resumed", res.resumed_chunks > 0, "notes", res.notes);
		tool_json_print(o);
	}
	return 0;
}

static int cmd_verify_extract(int argc, char **argv);

static const struct cli_cmd commands[] = {
	{"stage", U_STAGE, cmd_stage, true},
	{"receive", U_RECEIVE, cmd_receive, false},
	{"verify", U_VERIFY, cmd_verify_extract, false},
	{"extract", U_EXTRACT, cmd_verify_extract, false},
	{"inspect", U_INSPECT, cmd_inspect, false},
	{0},
};

int main(int argc, char **argv)
{
	/* agimport DIR ... is agimport stage DIR ... */
	return cli_main(argc, argv, commands, usage, "agimport " AGKIT_VERSION, cmd_stage);
}

/* argv[0]: verify or extract */
static int cmd_verify_extract(int argc, char **argv)
{
	bool verify = !strcmp(argv[0], "verify");
	int q;
	static struct args a;
	q = parse(argc, argv, &a, !verify);
	if (q)
		return q;
	tool_catch_signals();
	struct bn_error err = {0};
	struct bn_bundle *b = NULL;
	struct bn_trust trust = {.keys = a.keys, .n_keys = a.n_keys, .threshold = a.threshold};
	int r = bn_bundle_open(a.dir, &trust, &b, &err);
	if (r < 0)
		return tool_fail(r, &err);
	b->threads = a.threads;
	if (verify) {
		r = bn_bundle_verify(b, tool_progress, "verify", &err);
		tool_progress_end();
		print_notes(b);
		if (r == 0 && bn_bundle_medium(b)) {
			print_signers(b);
			print_medium(b);
		} else if (r == 0) {
			print_signers(b);
			uint64_t carried = 0, reused = 0;
			bn_manifest_delta_bytes(b->m, &carried, &reused);
			size_t nr = 0;
			for (size_t i = 0; i < b->m->n_chunks; i++)
				nr += bn_chunk_reused(&b->m->chunks[i]);
			tool_say("%s: OK: %zu volume(s), %zu chunk(s) match the signed manifest\n", a.dir,
			         b->m->n_volumes, b->m->n_chunks - nr);
			if (nr) {
				char bd[BN_ERROR_MAX / 2];
				bn_bundle_base_describe(b->m, bd, sizeof bd);
				tool_say("%s: delta: %zu chunk(s), %" PRIu64
				         " byte(s), come from the base %s and are checked "
				         "when it is imported\n",
				         a.dir, nr, reused, bd);
			}
			if (b->m->parity)
				tool_say("%s: OK: %zu parity volume(s) checked (damaged ones are listed above)\n", a.dir,
				         b->m->parity->n_volumes);
		}
		if (r == 0 && tool_json)
			json_result(b, NULL);
	} else {
		struct bn_extract_opts o = {.cancel = &tool_interrupted, .progress = tool_progress, .userdata = "extract"};
		r = bn_bundle_extract(b, a.to, &o, &err);
		tool_progress_end();
		print_notes(b);
		if (r == 0) {
			print_signers(b);
			tool_say("%s: extracted %zu artifact(s) to %s\n", a.dir, b->m->n_artifacts, a.to);
			if (tool_json)
				json_result(b, a.to);
		}
	}
	bn_bundle_free(b);
	return r < 0 ? tool_fail(r, &err) : 0;
}
