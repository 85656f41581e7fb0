/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Out-of-memory paths of parity (libbundle/parity.c: encoding) and the
 * layout (layout.c: attaching it when a bundle opens, rebuilding a lost
 * volume) close only the files they opened: every calloc of a pack with
 * parity, and of opening and verifying a bundle whose volume is damaged, is
 * made to fail in turn (calloc is interposed here), and after each failure
 * fd 0 is still the /dev/null this test put there.  A variable that holds
 * "no fd" as 0 instead of -1 would close it.
 */
#include "unit.h"

#include <stdatomic.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif

#ifdef ASAN
/* AddressSanitizer owns calloc: this test cannot stand in for it. */
int main(void)
{
	printf("1..0 # SKIP calloc cannot be interposed under AddressSanitizer\n");
	return 0;
}
#else
extern void *__libc_calloc(size_t, size_t);

static atomic_long calloc_left = -1; /* callocs before the one that fails; -1: none fails */

void *calloc(size_t n, size_t size);
void *calloc(size_t n, size_t size)
{
	long left = atomic_load(&calloc_left);
	while (left >= 0 && !atomic_compare_exchange_weak(&calloc_left, &left, left - 1))
		;
	if (left == 0) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}

static struct bn_pubkey pk;
static struct bn_seckey sk;
static struct stat null0;

/* fd 0 is still the /dev/null put there at the start. */
static bool fd0_intact(void)
{
	struct stat st;
	return fstat(0, &st) == 0 && st.st_dev == null0.st_dev && st.st_ino == null0.st_ino;
}

/* Runs step with the n-th calloc failing, for n = 0, 1, ... until a run has
 * no n-th calloc; the number of runs, and in *ret_bad those after which fd 0
 * was gone. */
static unsigned sweep(int (*step)(void), unsigned *ret_bad)
{
	unsigned n = 0, bad = 0;
	for (;; n++) {
		atomic_store(&calloc_left, (long)n);
		int r = step();
		bool reached = atomic_exchange(&calloc_left, -1) < 0;
		if (!fd0_intact()) {
			printf("# calloc %u failing (step: %d): fd 0 was closed\n", n, r);
			bad++;
			if (dup2(open("/dev/null", O_RDONLY), 0) < 0 || fstat(0, &null0) < 0)
				ut_die("/dev/null");
		}
		if (!reached)
			break;
		if (n > 5000)
			ut_die("the sweep does not end");
	}
	*ret_bad = bad;
	return n;
}

static int pack_with_parity(void)
{
	bn_rm_rf(ut_path("p"));
	struct bn_error err = {0};
	struct ut_pack_opts o = {.parity = 2, .threads = 2};
	return ut_pack("in", "p", &sk, &o, &err);
}

static int open_and_verify(void)
{
	struct bn_error err = {0};
	struct bn_trust t = {.keys = &pk, .n_keys = 1};
	struct bn_bundle *b = NULL;
	int r = bn_bundle_open(ut_path("w"), &t, &b, &err);
	if (r == 0)
		r = bn_bundle_verify(b, NULL, NULL, &err);
	bn_bundle_free(b);
	return r;
}

int main(void)
{
	ut_setup("oomfd", &pk, &sk);
	ut_tunables(false);
	int nul = open("/dev/null", O_RDONLY);
	if (nul < 0 || (nul != 0 && dup2(nul, 0) < 0) || fstat(0, &null0) < 0)
		ut_die("/dev/null on fd 0");
	if (nul > 0)
		close(nul);
	ut_random_file(ut_path("in/a.bin"), 300000);
	ut_random_file(ut_path("in/sub/b.bin"), 70000);

	unsigned bad = 0, runs = sweep(pack_with_parity, &bad);
	TAP_OK(runs > 10 && bad == 0, "pack with parity: %u calloc failures in turn, fd 0 closed after %u", runs, bad);
	TAP_OK(pack_with_parity() == 0, "the same pack without failures succeeds");

	/* A damaged data volume: verifying rebuilds it from parity. */
	if (ut_sh("cp -a '%s' '%s' && printf 'X' | dd of='%s' bs=1 seek=100 conv=notrunc 2>/dev/null", ut_path("p"),
	          ut_path("w"), ut_path("w/vol-00001.agv")) != 0)
		ut_die("damage");
	TAP_OK(open_and_verify() == 0, "the damaged bundle verifies (rebuilt from parity)");
	runs = sweep(open_and_verify, &bad);
	TAP_OK(runs > 10 && bad == 0, "open and rebuild: %u calloc failures in turn, fd 0 closed after %u", runs, bad);
	TAP_OK(fd0_intact(), "fd 0 is the test's /dev/null at the end");
	bn_rm_rf(W);
	return tap_done();
}
#endif
