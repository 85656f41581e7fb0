/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays inputs through a harness without libFuzzer (gcc builds, CI):
 * each argument is a file or a directory of files (replayed in name order,
 * so runs are deterministic).  Modelled on zstd's tests/fuzz/regression_driver.c.
 */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "bundle/fsutil.h"
#include "fuzz_common.h"

/* Harnesses that need set-up define it; weak so the others need not. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static int run_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	struct bn_error err = {0};
	/* 64 MiB: far above any corpus entry; libFuzzer's own default is 1 MiB. */
	if (bn_read_file(path, 64u << 20, &buf, &len, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	/* An exact-size copy, so that ASan sees any read past the input. */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact) {
		free(buf);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	LLVMFuzzerInitialize(&argc, &argv);
	size_t n_ok = 0;
	int failed = 0;
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed |= run_file(argv[i]) < 0;
			n_ok++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		if (!d) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		char **names = NULL;
		size_t n = 0, cap = 0;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				char **nn = realloc(names, cap * sizeof *nn);
				if (!nn)
					return 1;
				names = nn;
			}
			names[n] = bn_path_join(argv[i], de->d_name);
			if (!names[n])
				return 1;
			n++;
		}
		closedir(d);
		qsort(names, n, sizeof *names, cmp_name);
		for (size_t k = 0; k < n; k++) {
			failed |= run_file(names[k]) < 0;
			n_ok++;
			free(names[k]);
		}
		free(names);
	}
	if (failed)
		return 1;
	/* An empty corpus would make this test pass vacuously. */
	if (n_ok == 0) {
		fprintf(stderr, "no inputs given\n");
		return 1;
	}
	printf("%zu inputs replayed without a finding\n", n_ok);
	return 0;
}
