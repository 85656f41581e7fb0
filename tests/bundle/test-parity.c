/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of parity (libbundle/parity.c, rebuilt by layout.c): a bundle
 * with p parity volumes per group survives every loss of up to p volumes of a
 * group (data or parity, missing or altered), each rebuilt volume checked;
 * p + 1 losses in one group are refused naming the group's lost volumes; a
 * tampered parity volume never yields bytes.  The first parity volume is
 * recomputed here from docs/FORMAT.md section 9 (GF(2^8) with polynomial
 * 0x11D, Cauchy rows 1/((k + j) ^ i)), independently of ISA-L.
 */
#include "unit.h"

#include "bundle/parity.h"

static struct bn_pubkey pk;
static struct bn_seckey sk;

static int verify_dir(const char *dir, struct bn_error *err)
{
	struct bn_bundle *b = ut_open(ut_path("%s", dir), &pk, err);
	if (!b)
		return -1;
	int r = bn_bundle_verify(b, NULL, NULL, err);
	bn_bundle_free(b);
	return r;
}

/* Copies W/b to W/w and runs action on it (remove or alter the named files). */
static void damaged_copy(const char *const *lose, size_t n, const char *alter)
{
	bn_rm_rf(ut_path("w"));
	if (ut_sh("cp -a '%s' '%s'", ut_path("b"), ut_path("w")) != 0)
		ut_die("cp");
	for (size_t i = 0; i < n; i++)
		if (unlink(ut_path("w/%s", lose[i])) < 0)
			ut_die(lose[i]);
	if (alter && ut_sh("printf 'X' | dd of='%s' bs=1 seek=100 conv=notrunc 2>/dev/null", ut_path("w/%s", alter)))
		ut_die("dd");
}

static uint8_t gexp[512], glog[256];

static void gf_init(void)
{
	unsigned x = 1;
	for (int i = 0; i < 255; i++) {
		gexp[i] = (uint8_t)x;
		glog[x] = (uint8_t)i;
		x <<= 1;
		if (x & 0x100)
			x ^= 0x11D;
	}
	for (int i = 255; i < 512; i++)
		gexp[i] = gexp[i - 255];
}

static bool parity_matches_formula(const struct bn_manifest *m)
{
	gf_init();
	const struct bn_parity_group *g = &m->parity->groups[0];
	uint8_t *want = calloc(1, g->len);
	bool ok = want != NULL;
	for (uint32_t i = 0; i < g->k && ok; i++) {
		char *v = NULL;
		size_t vl = 0;
		ok = bn_read_file(ut_path("b/%s", m->volumes[g->data[i]].name), 1 << 24, &v, &vl, NULL) == 0;
		uint8_t c = gexp[255 - glog[(g->k + 0) ^ i]];
		for (size_t x = 0; ok && x < vl; x++)
			if (v[x])
				want[x] ^= gexp[glog[c] + glog[(uint8_t)v[x]]];
		free(v);
	}
	char *par = NULL;
	size_t pl = 0;
	ok = ok && bn_read_file(ut_path("b/%s", m->parity->volumes[g->par[0]].name), 1 << 24, &par, &pl, NULL) == 0 &&
	     pl == g->len && !memcmp(par, want, pl);
	free(par);
	free(want);
	return ok;
}

static void test_one_group(void)
{
	struct bn_error err = {0};
	struct ut_pack_opts o = {.volume_size = 40000, .chunk_size = 16384, .parity = 2};
	TAP_OK(ut_pack("in", "b", &sk, &o, &err) == 0, "pack with 2 parity volumes (%s)", err.msg);
	struct bn_bundle *b = ut_open(ut_path("b"), &pk, &err);
	if (!b)
		ut_die("open");
	const struct bn_manifest *m = b->m;
	size_t nv = m->n_volumes;
	TAP_OK(m->parity && m->parity->n_groups == 1 && m->parity->groups[0].k == nv && m->parity->groups[0].p == 2 &&
	               m->format_minor == 1,
	       "one group of %zu data volumes and 2 parity volumes, format 1.1", nv);
	TAP_OK(nv >= 6 && parity_matches_formula(m), "par-00001.agp is the FORMAT.md section 9 formula");
	char names[64][32];
	for (size_t i = 0; i < nv; i++)
		snprintf(names[i], 32, "%s", m->volumes[i].name);
	snprintf(names[nv], 32, "par-00001.agp");
	snprintf(names[nv + 1], 32, "par-00002.agp");
	bn_bundle_free(b);

	/* Every pair of the k + p volumes lost. */
	size_t all = nv + 2, pairs = 0, good = 0;
	for (size_t i = 0; i < all; i++)
		for (size_t j = i + 1; j < all; j++) {
			const char *lose[] = {names[i], names[j]};
			damaged_copy(lose, 2, NULL);
			pairs++;
			int r = verify_dir("w", &err);
			good += r == 0;
			if (r)
				printf("# losing %s and %s: %s\n", names[i], names[j], err.msg);
		}
	TAP_OK(good == pairs, "each of the %zu pairs of lost volumes is rebuilt and verifies", pairs);

	const char *lose1[] = {names[1]};
	damaged_copy(lose1, 1, names[3]);
	TAP_OK(verify_dir("w", &err) == 0, "one lost and one altered data volume rebuilt (%s)", err.msg);
	struct bn_bundle *wb = ut_open(ut_path("w"), &pk, &err);
	TAP_OK(wb && bn_bundle_extract(wb, ut_path("x"), NULL, &err) == 0 && ut_same_tree(ut_path("in"), ut_path("x/data")),
	       "and extracts to the input tree (%s)", err.msg);
	bn_bundle_free(wb);

	const char *lose3[] = {names[0], names[2], names[4]};
	damaged_copy(lose3, 3, NULL);
	int r = verify_dir("w", &err);
	TAP_OK(r < 0 && strstr(err.msg, names[0]) && strstr(err.msg, names[4]),
	       "three lost volumes (one more than the parity) refused, naming them (%d: %s)", r, err.msg);
	damaged_copy(lose1, 1, names[nv]);
	r = verify_dir("w", &err);
	TAP_OK(r == 0, "a lost data volume with one altered parity volume: the other parity rebuilds it (%s)", err.msg);
	const char *lose_pair[] = {names[1], names[2]};
	damaged_copy(lose_pair, 2, names[nv]);
	r = verify_dir("w", &err);
	TAP_OK(r < 0, "two lost data volumes and an altered parity volume refused (%d: %s)", r, err.msg);
	bn_rm_rf(ut_path("b"));
	bn_rm_rf(ut_path("x"));
}

static void test_groups(void)
{
	struct bn_error err = {0};
	struct ut_pack_opts o = {.volume_size = 40000, .chunk_size = 16384, .parity = 1, .groups = 2};
	TAP_OK(ut_pack("in", "b", &sk, &o, &err) == 0, "pack with 2 groups of 1 parity volume (%s)", err.msg);
	struct bn_bundle *b = ut_open(ut_path("b"), &pk, &err);
	if (!b)
		ut_die("open");
	const struct bn_parity *p = b->m->parity;
	bool alternate = p && p->n_groups == 2;
	for (size_t v = 0; alternate && v < b->m->n_volumes; v++)
		alternate = p->vgroup[v] == v % 2;
	TAP_OK(alternate, "data volume i joins group i mod 2");
	char v0[32], v1[32], v2[32];
	snprintf(v0, 32, "%s", b->m->volumes[0].name);
	snprintf(v1, 32, "%s", b->m->volumes[1].name);
	snprintf(v2, 32, "%s", b->m->volumes[2].name);
	bn_bundle_free(b);
	const char *one_each[] = {v0, v1};
	damaged_copy(one_each, 2, NULL);
	TAP_OK(verify_dir("w", &err) == 0, "one lost volume in each group rebuilt (%s)", err.msg);
	const char *two_in_one[] = {v0, v2};
	damaged_copy(two_in_one, 2, NULL);
	TAP_OK(verify_dir("w", &err) < 0, "two lost volumes in a group of one parity volume refused (%s)", err.msg);

	struct bn_manifest *m = NULL;
	char *text = NULL;
	size_t len = 0;
	if (bn_read_file(ut_path("b/manifest.json"), 1 << 20, &text, &len, NULL) < 0 ||
	    bn_manifest_parse(text, len, &m, &err) < 0)
		ut_die("manifest");
	bn_parity_free(m->parity);
	m->parity = NULL;
	TAP_OK(bn_parity_build(ut_path("b"), m, BN_PARITY_MAX + 1, 0, &err) == -EINVAL, "more than %u parity volumes refused (%s)",
	       BN_PARITY_MAX, err.msg);
	bn_manifest_free(m);
	free(text);
}

int main(void)
{
	ut_setup("parity", &pk, &sk);
	ut_tunables(false);
	ut_random_file(ut_path("in/big"), 300000);
	ut_random_file(ut_path("in/sub/small"), 777);
	test_one_group();
	test_groups();
	bn_rm_rf(W);
	return tap_done();
}
