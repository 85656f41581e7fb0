/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the media layout (libbundle/media.c lays a set out,
 * libbundle/layout.c reads it): docs/FORMAT.md section 10 checked from the
 * directories on disk (every medium verifiable alone: its own signed files,
 * label and SHA256SUMS; every volume on the medium the manifest assigns; no
 * medium over its capacity); a set and a single medium open with the right
 * view; a lost medium is rebuilt from the parity media, two are refused; a
 * volume on the wrong medium and a foreign label are refused.
 */
#include <dirent.h>

#include "unit.h"

#include "bundle/parity.h"
#include "layout_internal.h" /* bn_layout_in_view */

#define CAP 100000u

static struct bn_pubkey pk;
static struct bn_seckey sk;

static uint64_t dir_bytes(const char *dir)
{
	uint64_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		char p[1200];
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		if (de->d_name[0] != '.' && lstat(p, &st) == 0)
			n += S_ISDIR(st.st_mode) ? dir_bytes(p) : (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	return n;
}

static void test_sizes(void)
{
	uint64_t cap = 0, maxf = 0;
	TAP_OK(bn_media_parse_size("dvd", &cap, &maxf) == 0 && cap == 4700000000ull && maxf < (4ull << 30),
	       "dvd: 4.7 GB, files under 4 GiB");
	TAP_OK(bn_media_parse_size("bd25", &cap, &maxf) == 0 && cap == 25000000000ull, "bd25: 25 GB");
	TAP_OK(bn_media_parse_size("700M", &cap, &maxf) == 0 && cap == 700ull << 20, "700M");
	TAP_OK(bn_media_parse_size("floppy", &cap, &maxf) == -EINVAL && bn_media_parse_size("0", &cap, &maxf) == -EINVAL,
	       "unknown names and 0 refused");
}

static int verify(const char *dir, struct bn_bundle **ret, struct bn_error *err)
{
	struct bn_bundle *b = ut_open(ut_path("%s", dir), &pk, err);
	int r = b ? bn_bundle_verify(b, NULL, NULL, err) : -1;
	if (ret)
		*ret = b;
	else
		bn_bundle_free(b);
	return r;
}

static void fresh_copy(void)
{
	bn_rm_rf(ut_path("w"));
	if (ut_sh("cp -a '%s' '%s'", ut_path("s"), ut_path("w")) != 0)
		ut_die("cp");
}

static void test_set(void)
{
	struct bn_error err = {0};
	struct ut_pack_opts o = {.volume_size = 30000, .chunk_size = 8192, .parity = 1, .media = CAP};
	TAP_OK(ut_pack("in", "s", &sk, &o, &err) == 0, "pack a media set of %u-byte media with parity (%s)", CAP, err.msg);
	TAP_OK(bn_media_is_set(ut_path("s")) && !bn_media_is_set(ut_path("in")), "bn_media_is_set");
	struct bn_bundle *b = NULL;
	TAP_OK(verify("s", &b, &err) == 0 && b, "the whole set verifies (%s)", err.msg);
	if (!b)
		ut_die("open");
	const struct bn_manifest *m = b->m;
	unsigned count = m->media->count;
	printf("# %zu data volumes, %zu parity volumes, %u media\n", m->n_volumes, m->parity->n_volumes, count);
	TAP_OK(count >= 4 && bn_bundle_medium(b) == 0, "several media; the set is no single medium");
	bool on_disk = true, own_files = true, cap_ok = true, labels = true;
	for (size_t v = 0; v < m->n_volumes; v++)
		on_disk &= access(ut_path("s/medium-%02u/%s", m->media->vol_medium[v], m->volumes[v].name), F_OK) == 0;
	for (size_t v = 0; v < m->parity->n_volumes; v++)
		on_disk &= access(ut_path("s/medium-%02u/%s", m->media->par_medium[v], m->parity->volumes[v].name), F_OK) == 0;
	for (unsigned i = 1; i <= count; i++) {
		own_files &= ut_same_file(ut_path("s/medium-%02u/manifest.json", i), ut_path("s/medium-01/manifest.json")) &&
		             ut_sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1",
		                   ut_path("s/medium-%02u", i)) == 0;
		cap_ok &= dir_bytes(ut_path("s/medium-%02u", i)) <= CAP;
		char *label = NULL, want[64];
		snprintf(want, sizeof want, "medium %u of %u", i, count);
		labels &= bn_read_file(ut_path("s/medium-%02u/" BN_MEDIUM_LABEL, i), 4096, &label, NULL, NULL) == 0 &&
		          strstr(label, want);
		free(label);
	}
	TAP_OK(on_disk, "every volume lies on the medium the signed manifest assigns");
	TAP_OK(own_files, "every medium has the signed manifest and a SHA256SUMS that checks");
	TAP_OK(cap_ok, "no medium holds more than its capacity");
	TAP_OK(labels, "each label says \"medium N of %u\"", count);
	bool parity_apart = true;
	for (size_t pv = 0; pv < m->parity->n_volumes; pv++)
		for (size_t v = 0; v < m->n_volumes; v++)
			parity_apart &= m->media->par_medium[pv] != m->media->vol_medium[v];
	TAP_OK(parity_apart, "parity volumes are on media of their own");

	/* One medium alone. */
	struct bn_bundle *one = NULL;
	TAP_OK(verify("s/medium-02", &one, &err) == 0 && one && bn_bundle_medium(one) == 2,
	       "medium 2 alone opens as medium 2 and verifies (%s)", err.msg);
	if (one) {
		bool view = true;
		for (size_t v = 0; v < m->n_volumes; v++)
			view &= bn_layout_in_view(one, v) == (m->media->vol_medium[v] == 2);
		TAP_OK(view, "its view is exactly its own volumes");
		int r = bn_bundle_extract(one, ut_path("x1"), NULL, &err);
		TAP_OK(r < 0 && access(ut_path("x1"), F_OK) < 0, "extracting one medium refused (%s)", err.msg);
		bn_bundle_free(one);
	}
	unsigned lost = m->media->vol_medium[0];
	bn_bundle_free(b);

	fresh_copy();
	bn_rm_rf(ut_path("w/medium-%02u", lost));
	int r = verify("w", &b, &err);
	TAP_OK(r == 0 && b && bn_bundle_note(b, 0), "the set without medium %u verifies from parity (%s; note: %s)", lost,
	       err.msg, b && bn_bundle_note(b, 0) ? bn_bundle_note(b, 0) : "none");
	if (b) {
		TAP_OK(bn_bundle_extract(b, ut_path("x"), NULL, &err) == 0 && ut_same_tree(ut_path("in"), ut_path("x/data")),
		       "and extracts to the input tree (%s)", err.msg);
		bn_bundle_free(b);
	}
	bn_rm_rf(ut_path("w/medium-%02u", lost == 1 ? 2 : 1));
	r = verify("w", NULL, &err);
	TAP_OK(r < 0, "without two data media refused (%d: %s)", r, err.msg);

	fresh_copy();
	if (ut_sh("mv '%s'/vol-*.agv '%s'/", ut_path("w/medium-02"), ut_path("w/medium-03")) != 0)
		ut_die("mv");
	r = verify("w/medium-03", NULL, &err);
	TAP_OK(r == -EBADMSG && strstr(err.msg, "belongs on medium 2"), "a volume on the wrong medium refused (%s)",
	       err.msg);
	fresh_copy();
	if (ut_sh("cp '%s' '%s'", ut_path("w/medium-01/" BN_MEDIUM_LABEL), ut_path("w/medium-02/")) != 0)
		ut_die("cp");
	r = verify("w/medium-02", NULL, &err);
	TAP_OK(r < 0, "medium 2 labelled as medium 1 refused (%d: %s)", r, err.msg);
	fresh_copy();
	ut_write(ut_path("w/medium-02/" BN_MEDIUM_LABEL), "medium 2 of 99\n", 15);
	r = verify("w/medium-02", NULL, &err);
	TAP_OK(r < 0 && strstr(err.msg, "not a label of this bundle"), "a label of another set refused (%s)", err.msg);
}

int main(void)
{
	ut_setup("layout", &pk, &sk);
	ut_tunables(false);
	ut_random_file(ut_path("in/big"), 250000);
	ut_random_file(ut_path("in/sub/small"), 500);
	test_sizes();
	test_set();
	bn_rm_rf(W);
	return tap_done();
}
