/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test driver for the fetch module (the agpack CLI integration lives elsewhere):
 *   fetch-tool image REF OUT [--platform P]
 *   fetch-tool url URL SHA256|unpinned OUT
 *   fetch-tool hf REPO OUT [--revision R] [--endpoint E] [--include G]... [--exclude G]...
 * common: --cache DIR (required) --insecure HOST:PORT... --ca FILE --auth-file FILE
 *         --hf-token T --dry-run --quiet
 * Prints the provenance JSON, then "total_bytes N" and "downloaded_bytes N".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch.h"

#define MAXV 32

int main(int argc, char **argv)
{
	struct ag_fetch_opts o = {.log = stderr};
	const char *pos[4] = {0};
	size_t np = 0;
	const char *insecure[MAXV], *inc[MAXV], *exc[MAXV];
	size_t ni = 0, ninc = 0, nexc = 0;
	const char *platform = NULL, *revision = NULL, *endpoint = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--dry-run")) {
			o.dry_run = true;
		} else if (!strcmp(a, "--quiet")) {
			o.log = NULL;
		} else if (!strncmp(a, "--", 2)) {
			if (!v) {
				fprintf(stderr, "fetch-tool: %s needs a value\n", a);
				return 2;
			}
			i++;
			if (!strcmp(a, "--cache"))
				o.cache_dir = v;
			else if (!strcmp(a, "--insecure") && ni < MAXV)
				insecure[ni++] = v;
			else if (!strcmp(a, "--ca"))
				o.ca_file = v;
			else if (!strcmp(a, "--auth-file"))
				o.auth_file = v;
			else if (!strcmp(a, "--hf-token"))
				o.hf_token = v;
			else if (!strcmp(a, "--platform"))
				platform = v;
			else if (!strcmp(a, "--revision"))
				revision = v;
			else if (!strcmp(a, "--endpoint"))
				endpoint = v;
			else if (!strcmp(a, "--include") && ninc < MAXV)
				inc[ninc++] = v;
			else if (!strcmp(a, "--exclude") && nexc < MAXV)
				exc[nexc++] = v;
			else {
				fprintf(stderr, "fetch-tool: unknown option %s\n", a);
				return 2;
			}
		} else if (np < 4) {
			pos[np++] = a;
		} else {
			fprintf(stderr, "fetch-tool: too many arguments\n");
			return 2;
		}
	}
	o.insecure = insecure;
	o.n_insecure = ni;
	struct ag_fetch_result res = {0};
	struct bn_error err = {0};
	int r;
	if (np >= 3 && !strcmp(pos[0], "image"))
		r = ag_fetch_image(&o, pos[1], platform, pos[2], &res, &err);
	else if (np >= 4 && !strcmp(pos[0], "url"))
		r = ag_fetch_url(&o, pos[1], pos[2], pos[3], &res, &err);
	else if (np >= 3 && !strcmp(pos[0], "hf"))
		r = ag_fetch_hf_model(&o, pos[1], revision, endpoint, inc, ninc, exc, nexc, pos[2], &res, &err);
	else {
		fprintf(stderr, "usage: fetch-tool image REF OUT | url URL SHA256 OUT | hf REPO OUT [options]\n");
		return 2;
	}
	if (r < 0) {
		fprintf(stderr, "fetch-tool: error: %s\n", err.msg);
		if (err.code != r)
			fprintf(stderr, "fetch-tool: internal: err.code %d != return %d\n", err.code, r);
		return bn_exit_code(r);
	}
	char *s = json_dumps(res.provenance, JSON_SORT_KEYS | JSON_INDENT(1));
	printf("%s\ntotal_bytes %llu\ndownloaded_bytes %llu\n", s ? s : "null", (unsigned long long)res.total_bytes,
	       (unsigned long long)res.downloaded_bytes);
	free(s);
	json_decref(res.provenance);
	return 0;
}
