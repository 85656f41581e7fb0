/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the one-way stream (libbundle/stream.c): the records
 * bn_stream_write produces are parsed here from docs/FORMAT.md section 11
 * (fields, bounds, record SHA-256, names and order); a clean stream is
 * received to the same directory; a damaged record costs its volume, which
 * parity rebuilds; junk between records is skipped; a stream whose signed
 * files never arrive whole fails and leaves no directory.
 */
#include "unit.h"

#include "bundle/sha256.h"
#include "bundle/stream.h"

static struct bn_pubkey pk;
static struct bn_seckey sk;
static char *stream;
static size_t stream_len;

struct rec {
	size_t at, len;      /* the record's start and whole length */
	char name[65];
	uint64_t size, offset;
	uint32_t dlen;
};

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Parses the whole stream; the number of records, or -1 at the first bad one. */
static int parse_stream(struct rec *out, int max)
{
	const uint8_t *s = (const uint8_t *)stream;
	size_t at = 0;
	int n = 0;
	while (at < stream_len) {
		if (n == max || stream_len - at < 32 || memcmp(s + at, "AGS1", 4) || s[at + 4] != 1 || s[at + 5] < 1 ||
		    s[at + 5] > 64 || s[at + 6] || s[at + 7] || le(s + at + 28, 4))
			return -1;
		struct rec *r = &out[n];
		unsigned nl = s[at + 5];
		r->size = le(s + at + 8, 8);
		r->offset = le(s + at + 16, 8);
		r->dlen = (uint32_t)le(s + at + 24, 4);
		uint64_t want = r->size - r->offset < 65536 ? r->size - r->offset : 65536;
		if (r->size > (1ull << 40) || r->offset % 65536 || (r->size && r->offset >= r->size) || r->dlen != want)
			return -1;
		size_t body = 32 + nl + r->dlen;
		if (stream_len - at < body + 32)
			return -1;
		uint8_t h[BN_SHA256_LEN];
		bn_sha256(s + at, body, h);
		if (memcmp(h, s + at + body, 32))
			return -1;
		memcpy(r->name, s + at + 32, nl);
		r->name[nl] = '\0';
		r->at = at;
		r->len = body + 32;
		at += r->len;
		n++;
	}
	return n;
}

static bool is_signed_file(const char *n)
{
	return !strcmp(n, "manifest.json") || !strncmp(n, "signatures/", 11);
}

static void test_format(const struct bn_bundle *b, struct rec *recs, int n)
{
	TAP_OK(n > 0, "every record parses by FORMAT.md section 11 (%d records)", n);
	if (n <= 0)
		return;
	/* signed files, signed files, volumes in order, parity volumes, signed files */
	int i = 0, sig_runs = 0;
	bool order = true;
	while (i < n) {
		if (is_signed_file(recs[i].name)) {
			sig_runs++;
			while (i < n && is_signed_file(recs[i].name))
				i++;
			continue;
		}
		break;
	}
	size_t vol = 0;
	uint64_t next_off = 0;
	while (i < n && !strncmp(recs[i].name, "vol-", 4)) {
		if (strcmp(recs[i].name, b->m->volumes[vol].name) || recs[i].offset != next_off ||
		    recs[i].size != b->m->volumes[vol].size)
			order = false;
		next_off += recs[i].dlen;
		if (next_off == recs[i].size) {
			vol++;
			next_off = 0;
		}
		i++;
	}
	order &= vol == b->m->n_volumes;
	bool parity = false;
	while (i < n && !strncmp(recs[i].name, "par-", 4)) {
		parity = true;
		i++;
	}
	int tail = 0;
	while (i < n && is_signed_file(recs[i].name)) {
		tail++;
		i++;
	}
	TAP_OK(order && i == n, "data volumes in order, block by block at multiples of 65536");
	TAP_OK(sig_runs >= 1 && parity && tail >= 2, "signed files first and last, parity volumes after the data");
	/* The signed files are sent twice at the start: each name appears at least twice before vol-00001. */
	int manifests = 0;
	for (int k = 0; k < n && strncmp(recs[k].name, "vol-", 4); k++)
		manifests += !strcmp(recs[k].name, "manifest.json");
	TAP_OK(manifests == 2, "manifest.json twice before the volumes");
}

static int receive(const char *data, size_t len, const char *dir, struct bn_stream_result *res, struct bn_error *err)
{
	ut_write(ut_path("in.stream"), data, len);
	int fd = open(ut_path("in.stream"), O_RDONLY);
	if (fd < 0)
		ut_die("open");
	bn_rm_rf(ut_path("%s", dir));
	int r = bn_stream_read(fd, ut_path("%s", dir), res, err);
	close(fd);
	return r;
}

static int verify_dir(const char *dir, struct bn_error *err)
{
	struct bn_bundle *b = ut_open(ut_path("%s", dir), &pk, err);
	int r = b ? bn_bundle_verify(b, NULL, NULL, err) : -1;
	bn_bundle_free(b);
	return r;
}

int main(void)
{
	ut_setup("stream", &pk, &sk);
	ut_tunables(true);
	ut_random_file(ut_path("in/big"), 600000);
	ut_write(ut_path("in/hello"), "hello", 5);
	struct bn_error err = {0};
	struct ut_pack_opts o = {.volume_size = 150000, .chunk_size = 32768, .parity = 1};
	if (ut_pack("in", "b", &sk, &o, &err) < 0)
		ut_die(err.msg);
	struct bn_bundle *b = ut_open(ut_path("b"), &pk, &err);
	if (!b)
		ut_die("open");

	int fd = open(ut_path("b.stream"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	TAP_OK(fd >= 0 && bn_stream_write(ut_path("b"), fd, &err) == 0, "write the stream (%s)", err.msg);
	close(fd);
	if (bn_read_file(ut_path("b.stream"), 64u << 20, &stream, &stream_len, NULL) < 0)
		ut_die("read stream");
	static struct rec recs[4096];
	int n = parse_stream(recs, 4096);
	test_format(b, recs, n);

	struct bn_stream_result res;
	int r = receive(stream, stream_len, "r", &res, &err);
	TAP_OK(r == 0 && res.records_bad == 0 && res.files_incomplete == 0 && res.records_ok == (uint64_t)n,
	       "a clean stream: every record taken (%s)", err.msg);
	bool same = true;
	for (size_t v = 0; v < b->m->n_volumes; v++)
		same &= ut_same_file(ut_path("b/%s", b->m->volumes[v].name), ut_path("r/%s", b->m->volumes[v].name));
	same &= ut_same_file(ut_path("b/manifest.json"), ut_path("r/manifest.json"));
	TAP_OK(same && verify_dir("r", &err) == 0, "the received directory is the bundle and verifies (%s)", err.msg);

	/* One damaged byte in the second block of vol-00002.agv. */
	int hit = -1;
	for (int i = 0; i < n && hit < 0; i++)
		if (!strcmp(recs[i].name, "vol-00002.agv") && recs[i].offset == 65536)
			hit = i;
	if (hit < 0)
		ut_die("no second block of vol-00002.agv");
	char *bad = malloc(stream_len);
	memcpy(bad, stream, stream_len);
	bad[recs[hit].at + 32 + strlen(recs[hit].name) + 1000] ^= 0x20;
	r = receive(bad, stream_len, "r", &res, &err);
	TAP_OK(r == 0 && res.records_bad >= 1 && strstr(res.incomplete, "vol-00002.agv") &&
	               access(ut_path("r/vol-00002.agv"), F_OK) < 0,
	       "a damaged record costs its volume, dropped as incomplete (%s)", res.incomplete);
	TAP_OK(verify_dir("r", &err) == 0, "and parity rebuilds it (%s)", err.msg);

	/* Junk before and inside the stream (between two records). */
	size_t cut = recs[n / 2].at, jl = 3000;
	char *junk = malloc(stream_len + 2 * jl);
	for (size_t i = 0; i < jl; i++)
		junk[i] = junk[jl + cut + i] = (char)ut_rand();
	memcpy(junk + jl, stream, cut);
	memcpy(junk + 2 * jl + cut, stream + cut, stream_len - cut);
	r = receive(junk, stream_len + 2 * jl, "r", &res, &err);
	TAP_OK(r == 0 && res.records_bad == 0 && res.bytes_skipped >= 2 * jl && verify_dir("r", &err) == 0,
	       "junk is skipped: %" PRIu64 " bytes (%s)", res.bytes_skipped, err.msg);
	free(junk);

	/* Every manifest record damaged: the receive fails and leaves nothing. */
	memcpy(bad, stream, stream_len);
	for (int i = 0; i < n; i++)
		if (!strcmp(recs[i].name, "manifest.json"))
			bad[recs[i].at + recs[i].len - 1] ^= 1;
	r = receive(bad, stream_len, "r", &res, &err);
	TAP_OK(r < 0 && access(ut_path("r"), F_OK) < 0, "no whole manifest: refused, no directory left (%s)", err.msg);
	/* A stream cut in the middle of the data. */
	r = receive(stream, recs[n / 2].at + 100, "r", &res, &err);
	TAP_OK(r < 0 || verify_dir("r", &err) < 0, "a stream cut short does not give a bundle that verifies (%s)", err.msg);
	free(bad);
	bn_bundle_free(b);
	free(stream);
	bn_rm_rf(W);
	return tap_done();
}
