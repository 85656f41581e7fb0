/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bundle/fsutil.h"
#include "bundle/sha256.h"
#include "pkgdb.h"
#include "sbom.h"

#define SBOM_MAX_CONFIG    (16u << 20)  /* config.json, tokenizer_config.json, health suite */
#define SBOM_MAX_TOKENIZER (64u << 20)  /* tokenizer.json (read for the tokenizer type only) */
#define SBOM_MAX_ST_HEADER (100u << 20) /* safetensors JSON header */

struct sbom {
	json_t *components;
	bool rpm_not_covered;
};

struct sbom *sbom_new(void)
{
	struct sbom *s = calloc(1, sizeof *s);
	if (s && !(s->components = json_array())) {
		free(s);
		return NULL;
	}
	return s;
}

void sbom_free(struct sbom *s)
{
	if (!s)
		return;
	json_decref(s->components);
	free(s);
}

void sbom_purl_escape(const char *in, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		unsigned char c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		    c == '-' || c == '_' || c == '~') {
			*out++ = (char)c;
		} else {
			*out++ = '%';
			*out++ = hex[c >> 4];
			*out++ = hex[c & 15];
		}
	}
	*out = 0;
}

/* "pkg:TYPE/NS/NAME@VERSION?QUALIFIERS" with the parts escaped; ns, quals may
 * be NULL.  quals is already "k=v&k=v" with escaped values. */
static json_t *purl(const char *type, const char *ns, const char *name, const char *version, const char *quals)
{
	char *en = malloc(3 * strlen(name) + 1), *ev = malloc(3 * strlen(version) + 1),
	     *es = ns ? malloc(3 * strlen(ns) + 1) : NULL, *p = NULL;
	json_t *j = NULL;
	if (en && ev && (!ns || es)) {
		sbom_purl_escape(name, en);
		sbom_purl_escape(version, ev);
		if (ns)
			sbom_purl_escape(ns, es);
		if (asprintf(&p, "pkg:%s/%s%s%s@%s%s%s", type, ns ? es : "", ns ? "/" : "", en, ev,
		             quals && *quals ? "?" : "", quals ? quals : "") >= 0) {
			j = json_string(p);
			free(p);
		}
	}
	free(en);
	free(ev);
	free(es);
	return j;
}

static void prop(json_t *arr, const char *name, const char *value)
{
	if (value)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "name", name, "value", value));
}

static json_t *sha_hashes(const uint8_t h[BN_SHA256_LEN])
{
	char hex[BN_SHA256_HEX];
	bn_hex(h, BN_SHA256_LEN, hex);
	return json_pack("[{s:s, s:s}]", "alg", "SHA-256", "content", hex);
}

/* Reads a small JSON file of the artifact; NULL when absent or unreadable. */
static json_t *load_small(const char *dir, const char *name, size_t max)
{
	char *p = bn_path_join(dir, name), *buf = NULL;
	size_t len = 0;
	struct bn_error e = {0};
	json_t *j = NULL;
	if (p && bn_read_file_nofollow(p, max, &buf, &len, &e) == 0) {
		json_error_t je;
		j = json_loadb(buf, len, 0, &je);
		if (j && !json_is_object(j)) {
			json_decref(j);
			j = NULL;
		}
	}
	free(buf);
	free(p);
	return j;
}

static bool ends_with_ci(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcasecmp(s + a - b, suf);
}

/* Adds the tensors of one safetensors file's header to the parameter count
 * and the dtype set.  Unreadable headers are skipped (the writer already
 * refused nothing; this is informative). */
static void safetensors_stats(const char *path, uint64_t *params, json_t *dtypes)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	uint8_t lb[8];
	char *hdr = NULL;
	if (read(fd, lb, 8) == 8) {
		uint64_t n = 0;
		for (int i = 7; i >= 0; i--)
			n = n << 8 | lb[i];
		if (n > 0 && n <= SBOM_MAX_ST_HEADER && (hdr = malloc(n)) && pread(fd, hdr, n, 8) == (ssize_t)n) {
			json_error_t je;
			json_t *h = json_loadb(hdr, n, 0, &je);
			const char *k;
			json_t *t;
			json_object_foreach(h, k, t)
			{
				if (!strcmp(k, "__metadata__"))
					continue;
				const char *dt = json_string_value(json_object_get(t, "dtype"));
				json_t *shape = json_object_get(t, "shape");
				if (dt)
					json_object_set_new(dtypes, dt, json_true());
				uint64_t c = 1;
				size_t i;
				json_t *d;
				json_array_foreach(shape, i, d)
				{
					json_int_t v = json_integer_value(d);
					if (v < 0 || (v && c > UINT64_MAX / (uint64_t)v)) {
						c = 0;
						break;
					}
					c *= (uint64_t)v;
				}
				*params += c;
			}
			json_decref(h);
		}
	}
	free(hdr);
	close(fd);
}

static bool is_model_dir(const char *local, json_t **ret_cfg)
{
	json_t *cfg = load_small(local, "config.json", SBOM_MAX_CONFIG);
	if (cfg && (json_object_get(cfg, "architectures") || json_object_get(cfg, "model_type"))) {
		*ret_cfg = cfg;
		return true;
	}
	json_decref(cfg);
	return false;
}

static json_t *model_card(const struct bn_artifact *ma, const char *local, json_t *cfg, const struct sbom_extra *x)
{
	json_t *mc = json_object(), *mp = json_object(), *props = json_array();
	const char *family = json_string_value(json_object_get(cfg, "model_type"));
	const char *arch = json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0));
	json_object_set_new(mp, "task", json_string("text-generation"));
	if (family)
		json_object_set_new(mp, "architectureFamily", json_string(family));
	if (arch)
		json_object_set_new(mp, "modelArchitecture", json_string(arch));
	json_object_set_new(mc, "modelParameters", mp);
	/* Parameters and dtypes from the safetensors headers. */
	uint64_t params = 0;
	json_t *dtypes = json_object();
	for (size_t i = 0; i < ma->n_entries; i++) {
		const struct bn_entry *e = &ma->entries[i];
		if (e->type != BN_ENTRY_FILE || !ends_with_ci(e->path, ".safetensors"))
			continue;
		char *p = bn_path_join(local, e->path);
		if (p)
			safetensors_stats(p, &params, dtypes);
		free(p);
	}
	char buf[256];
	if (params) {
		snprintf(buf, sizeof buf, "%" PRIu64, params);
		prop(props, "agkit:model:parameters", buf);
	}
	if (json_object_size(dtypes)) {
		buf[0] = 0;
		const char *k;
		json_t *v;
		json_object_foreach(dtypes, k, v)
		{
			size_t l = strlen(buf);
			snprintf(buf + l, sizeof buf - l, "%s%s", l ? "," : "", k);
		}
		prop(props, "agkit:model:tensor_dtypes", buf);
	}
	json_decref(dtypes);
	const char *tdt = json_string_value(json_object_get(cfg, "torch_dtype"));
	if (!tdt)
		tdt = json_string_value(json_object_get(cfg, "dtype"));
	prop(props, "agkit:model:torch_dtype", tdt);
	json_t *q = json_object_get(cfg, "quantization_config");
	if (json_is_object(q)) {
		const char *qm = json_string_value(json_object_get(q, "quant_method"));
		json_t *bits = json_object_get(q, "bits");
		if (json_is_integer(bits))
			snprintf(buf, sizeof buf, "%s %" JSON_INTEGER_FORMAT "-bit", qm ? qm : "unknown",
			         json_integer_value(bits));
		else
			snprintf(buf, sizeof buf, "%s", qm ? qm : "unknown");
		prop(props, "agkit:model:quantization", buf);
	} else {
		prop(props, "agkit:model:quantization", "none");
	}
	static const char *const ctx_keys[] = {"max_position_embeddings", "n_positions", "max_sequence_length",
	                                       "seq_length", "n_ctx"};
	for (size_t i = 0; i < sizeof ctx_keys / sizeof *ctx_keys; i++) {
		json_t *v = json_object_get(cfg, ctx_keys[i]);
		if (json_is_integer(v)) {
			snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			prop(props, "agkit:model:context_length", buf);
			break;
		}
	}
	/* Tokenizer: the class from tokenizer_config.json, the model type from
	 * tokenizer.json; the chat template's hash. */
	json_t *tc = load_small(local, "tokenizer_config.json", SBOM_MAX_CONFIG);
	json_t *tj = load_small(local, "tokenizer.json", SBOM_MAX_TOKENIZER);
	const char *tclass = json_string_value(json_object_get(tc, "tokenizer_class"));
	const char *ttype = json_string_value(json_object_get(json_object_get(tj, "model"), "type"));
	if (tclass || ttype) {
		snprintf(buf, sizeof buf, "%s%s%s", tclass ? tclass : "", tclass && ttype ? " " : "",
		         ttype ? ttype : "");
		prop(props, "agkit:model:tokenizer", buf);
	}
	json_decref(tj);
	json_t *ct = json_object_get(tc, "chat_template");
	const char *cts = json_string_value(ct);
	if (!cts && json_is_array(ct)) /* [{"name": "default", "template": ...}, ...] */
		cts = json_string_value(json_object_get(json_array_get(ct, 0), "template"));
	char hex[BN_SHA256_HEX];
	if (cts) {
		uint8_t h[BN_SHA256_LEN];
		bn_sha256(cts, strlen(cts), h);
		bn_hex(h, BN_SHA256_LEN, hex);
		prop(props, "agkit:model:chat_template_sha256", hex);
	} else {
		for (size_t i = 0; i < ma->n_entries; i++)
			if (ma->entries[i].type == BN_ENTRY_FILE &&
			    !strcmp(ma->entries[i].path, "chat_template.jinja")) {
				bn_hex(ma->entries[i].sha256, BN_SHA256_LEN, hex);
				prop(props, "agkit:model:chat_template_sha256", hex);
			}
	}
	json_decref(tc);
	/* The health suite: how many golden prompts, what tolerances. */
	if (x && x->health_suite) {
		char *sbuf = NULL;
		size_t sl = 0;
		struct bn_error e = {0};
		if (bn_read_file(x->health_suite, SBOM_MAX_CONFIG, &sbuf, &sl, &e) == 0) {
			json_error_t je;
			json_t *suite = json_loadb(sbuf, sl, 0, &je);
			json_t *pr = json_object_get(suite, "prompts"), *tol = json_object_get(suite, "tolerances");
			if (json_is_array(pr)) {
				snprintf(buf, sizeof buf, "%zu", json_array_size(pr));
				prop(props, "agkit:health:prompts", buf);
			}
			if (json_is_object(tol)) {
				char *t = json_dumps(tol, JSON_COMPACT | JSON_SORT_KEYS);
				prop(props, "agkit:health:tolerances", t);
				free(t);
			}
			json_decref(suite);
		}
		free(sbuf);
	}
	if (x && x->allow_remote_code)
		prop(props, "agkit:offline:allow_remote_code", "true");
	json_object_set_new(mc, "properties", props);
	return mc;
}

/* NAME_VERSION_ARCH.deb and NAME-VERSION-*.whl, by their naming conventions. */
static json_t *file_purl(const char *path, const char **ret_type)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	char tmp[512];
	if (n >= sizeof tmp)
		return NULL;
	memcpy(tmp, base, n + 1);
	if (n > 4 && !strcmp(tmp + n - 4, ".deb")) {
		tmp[n - 4] = 0;
		char *u1 = strchr(tmp, '_'), *u2 = u1 ? strchr(u1 + 1, '_') : NULL;
		if (!u1 || !u2 || u1 == tmp || u2 == u1 + 1 || !u2[1])
			return NULL;
		*u1 = *u2 = 0;
		char ver[256], q[3 * sizeof tmp + 8];
		/* Debian file names write the epoch's ':' as "%3a". */
		snprintf(ver, sizeof ver, "%s", u1 + 1);
		char *pc = strstr(ver, "%3a");
		if (pc) {
			*pc = ':';
			memmove(pc + 1, pc + 3, strlen(pc + 3) + 1);
		}
		char ea[3 * sizeof tmp];
		sbom_purl_escape(u2 + 1, ea);
		snprintf(q, sizeof q, "arch=%s", ea);
		*ret_type = "library";
		return purl("deb", "debian", tmp, ver, q);
	}
	if (n > 4 && !strcmp(tmp + n - 4, ".whl")) {
		char *d1 = strchr(tmp, '-'), *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
		if (!d1 || !d2 || d1 == tmp || d2 == d1 + 1)
			return NULL;
		*d1 = *d2 = 0;
		for (char *c = tmp; *c; c++) /* PEP 503 normalised name */
			*c = *c == '_' || *c == '.' ? '-' : (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		*ret_type = "library";
		return purl("pypi", NULL, tmp, d1 + 1, NULL);
	}
	return NULL;
}

static json_t *file_components(const struct bn_artifact *ma)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < ma->n_entries; i++) {
		const struct bn_entry *e = &ma->entries[i];
		if (e->type != BN_ENTRY_FILE)
			continue;
		char ref[BN_MAX_NAME + BN_MAX_PATH + 8];
		snprintf(ref, sizeof ref, "%s/%s", ma->name, e->path);
		const char *type = "file";
		json_t *p = file_purl(e->path, &type);
		json_t *c = json_pack("{s:s, s:s, s:s, s:o}", "type", type, "bom-ref", ref, "name", e->path, "hashes",
		                      sha_hashes(e->sha256));
		if (p)
			json_object_set_new(c, "purl", p);
		json_array_append_new(arr, c);
	}
	return arr;
}

static const char *kind_type(enum image_pkg_kind k)
{
	return k == IMAGE_PKG_DEB ? "deb" : k == IMAGE_PKG_APK ? "apk" : "pypi";
}

static json_t *image_component(struct sbom *s, const struct bn_artifact *ma, const struct image_info *ii)
{
	char ref[512], q[1024];
	snprintf(ref, sizeof ref, "%s@%s", ma->name, ii->digest);
	/* The artifact's name: an OCI ref.name is often only a tag. */
	const char *name = ma->name;
	json_t *c =
	    json_pack("{s:s, s:s, s:s, s:s}", "type", "container", "bom-ref", ref, "name", name, "version", ii->digest);
	uint8_t h[BN_SHA256_LEN];
	if (strlen(ii->digest) == 71 && bn_unhex(ii->digest + 7, h, BN_SHA256_LEN))
		json_object_set_new(c, "hashes", sha_hashes(h));
	char ea[64 * 3 + 1] = "", et[256 * 3 + 1] = "";
	if (ii->arch && strlen(ii->arch) < 64)
		sbom_purl_escape(ii->arch, ea);
	if (ii->ref && strlen(ii->ref) < 256)
		sbom_purl_escape(ii->ref, et);
	snprintf(q, sizeof q, "%s%s%s%s%s", ea[0] ? "arch=" : "", ea, ea[0] && et[0] ? "&" : "", et[0] ? "tag=" : "",
	         et);
	/* pkg:oci/NAME@sha256%3A...?arch=...&tag=... (purl names are lower case). */
	char oname[BN_MAX_NAME + 1];
	snprintf(oname, sizeof oname, "%s", name);
	for (char *c2 = oname; *c2; c2++)
		if (*c2 >= 'A' && *c2 <= 'Z')
			*c2 = (char)(*c2 + 32);
	json_t *pu = purl("oci", NULL, oname, ii->digest, q);
	if (pu)
		json_object_set_new(c, "purl", pu);
	json_t *props = json_array();
	prop(props, "agkit:image:ref", ii->ref);
	prop(props, "agkit:image:os", ii->os);
	prop(props, "agkit:image:architecture", ii->arch);
	prop(props, "agkit:image:os-release:id", ii->os_id);
	prop(props, "agkit:image:os-release:version_id", ii->os_version);
	size_t i;
	json_t *v;
	json_array_foreach(ii->env, i, v)
	{
		const char *e = json_string_value(v);
		if (e && (!strncmp(e, "HF_", 3) || !strncmp(e, "TRANSFORMERS_", 13) || !strncmp(e, "VLLM_", 5) ||
		          !strncmp(e, "DO_NOT_TRACK=", 13)))
			prop(props, "agkit:image:env", e);
	}
	if (ii->has_rpmdb) {
		prop(props, "agkit:sbom:not-covered", "rpm database (var/lib/rpm): its packages are not listed");
		s->rpm_not_covered = true;
	}
	json_object_set_new(c, "properties", props);
	json_t *pk = json_array();
	for (size_t k = 0; k < ii->n_pkgs; k++) {
		const struct image_pkg *p = &ii->pkgs[k];
		const char *ns = NULL;
		char quals[4096] = "", t[3 * PKGDB_FIELD_MAX + 1];
		if (p->kind == IMAGE_PKG_DEB)
			ns = ii->os_id ? ii->os_id : "debian";
		else if (p->kind == IMAGE_PKG_APK)
			ns = ii->os_id ? ii->os_id : "alpine";
		if (p->arch && strlen(p->arch) <= PKGDB_FIELD_MAX) {
			sbom_purl_escape(p->arch, t);
			snprintf(quals, sizeof quals, "arch=%s", t);
		}
		if (ns && ii->os_id && ii->os_version && strlen(ii->os_id) + strlen(ii->os_version) < 100) {
			char d[256];
			snprintf(d, sizeof d, "%s-%s", ii->os_id, ii->os_version);
			sbom_purl_escape(d, t);
			size_t l = strlen(quals);
			snprintf(quals + l, sizeof quals - l, "%sdistro=%s", l ? "&" : "", t);
		}
		char nname[PKGDB_FIELD_MAX + 1];
		snprintf(nname, sizeof nname, "%s", p->name);
		if (p->kind == IMAGE_PKG_PYPI)
			for (char *c2 = nname; *c2; c2++)
				*c2 =
				    *c2 == '_' || *c2 == '.' ? '-' : (char)(*c2 >= 'A' && *c2 <= 'Z' ? *c2 + 32 : *c2);
		json_t *pc = json_pack("{s:s, s:s, s:s}", "type", "library", "name", p->name, "version", p->version);
		json_t *pp = purl(kind_type(p->kind), ns, nname, p->version, p->kind == IMAGE_PKG_PYPI ? NULL : quals);
		if (pp)
			json_object_set_new(pc, "purl", pp);
		if (p->license)
			json_object_set_new(pc, "licenses", json_pack("[{s:{s:s}}]", "license", "name", p->license));
		json_t *pprops = json_array();
		prop(pprops, "agkit:package:database", p->db);
		json_object_set_new(pc, "properties", pprops);
		json_array_append_new(pk, pc);
	}
	json_object_set_new(c, "components", pk);
	return c;
}

int sbom_add_artifact(struct sbom *s, const struct bn_artifact *ma, const char *local, const struct sbom_extra *x,
                      struct bn_error *err)
{
	json_t *c = NULL, *cfg = NULL;
	char ref[BN_MAX_NAME + 16];
	snprintf(ref, sizeof ref, "artifact:%s", ma->name);
	if (!strcmp(ma->type, "oci-archive")) {
		json_t *sub = json_array();
		for (size_t i = 0; x && i < x->n_images; i++)
			json_array_append_new(sub, image_component(s, ma, &x->images[i]));
		c = json_pack("{s:s, s:s, s:s, s:o}", "type", "container", "bom-ref", ref, "name", ma->name,
		              "components", sub);
	} else if (is_model_dir(local, &cfg)) {
		c = json_pack("{s:s, s:s, s:s, s:o, s:o}", "type", "machine-learning-model", "bom-ref", ref, "name",
		              ma->name, "modelCard", model_card(ma, local, cfg, x), "components", file_components(ma));
		json_decref(cfg);
	} else {
		c = json_pack("{s:s, s:s, s:s, s:o}", "type", "file", "bom-ref", ref, "name", ma->name, "components",
		              file_components(ma));
	}
	if (!c)
		return bn_fail(err, -ENOMEM, "out of memory");
	json_t *props = json_array();
	prop(props, "agkit:artifact:type", ma->type);
	if (x && json_array_size(x->findings)) {
		size_t i;
		json_t *v;
		json_array_foreach(x->findings, i, v) prop(props, "agkit:offline:finding", json_string_value(v));
	}
	json_object_set_new(c, "properties", props);
	/* Where it came from: a url artifact's URL, a hub model's repository
	 * at its commit (images: the purl of each manifest). */
	if (ma->source) {
		const char *u = json_string_value(json_object_get(ma->source, "url"));
		const char *ep = json_string_value(json_object_get(ma->source, "endpoint"));
		const char *repo = json_string_value(json_object_get(ma->source, "repo"));
		const char *commit = json_string_value(json_object_get(ma->source, "commit"));
		char *hub = NULL;
		if (!u && ep && repo && asprintf(&hub, "%s/%s%s%s", ep, repo, commit ? "/tree/" : "", commit ? commit : "") >= 0)
			u = hub;
		if (u)
			json_object_set_new(c, "externalReferences",
			                    json_pack("[{s:s, s:s}]", "type", "distribution", "url", u));
		free(hub);
		prop(props, "agkit:source:commit", commit);
	}
	json_array_append_new(s->components, c);
	return 0;
}

int sbom_format(struct sbom *s, const struct spec *spec, char **ret_text, struct bn_error *err)
{
	char ver[32];
	snprintf(ver, sizeof ver, "%" PRIu64, spec->version);
	json_t *bprops = json_array();
	prop(bprops, "agkit:bundle:channel", spec->channel);
	prop(bprops, "agkit:bundle:version", ver);
	json_t *meta =
	    json_pack("{s:{s:[{s:s, s:s, s:s, s:s}]}, s:{s:s, s:s, s:s, s:s, s:o}}", "tools", "components", "type",
	              "application", "group", "agkit", "name", "agpack", "version", AGKIT_VERSION, "component", "type",
	              "application", "bom-ref", "bundle", "name", spec->name, "version", ver, "properties", bprops);
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	if (meta && sde && *sde) {
		char *end;
		long long t = strtoll(sde, &end, 10);
		struct tm tm;
		time_t tt = (time_t)t;
		char ts[32];
		if (!*end && t >= 0 && gmtime_r(&tt, &tm) && strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm))
			json_object_set_new(meta, "timestamp", json_string(ts));
	}
	json_t *bom = json_pack("{s:s, s:s, s:i, s:o, s:O}", "bomFormat", "CycloneDX", "specVersion", "1.6", "version",
	                        1, "metadata", meta, "components", s->components);
	if (!bom)
		return bn_fail(err, -ENOMEM, "out of memory");
	if (s->rpm_not_covered) {
		json_t *p = json_array();
		prop(p, "agkit:sbom:not-covered", "rpm package databases");
		json_object_set_new(bom, "properties", p);
	}
	/* Serial number: a UUID (version 8, RFC 9562) made of the SHA-256 of the
	 * BOM without it, so identical inputs give identical SBOMs. */
	char *body = json_dumps(bom, JSON_COMPACT | JSON_SORT_KEYS);
	if (!body) {
		json_decref(bom);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	uint8_t h[BN_SHA256_LEN];
	bn_sha256(body, strlen(body), h);
	free(body);
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x80);
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	char hex[BN_SHA256_HEX], serial[64];
	bn_hex(h, 16, hex);
	snprintf(serial, sizeof serial, "urn:uuid:%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
	         hex + 20);
	json_object_set_new(bom, "serialNumber", json_string(serial));
	char *text = json_dumps(bom, JSON_INDENT(1));
	json_decref(bom);
	/* a text file: it ends with a newline */
	size_t tl = text ? strlen(text) : 0;
	char *nt = text ? realloc(text, tl + 2) : NULL;
	if (!nt) {
		free(text);
		return bn_fail(err, -ENOMEM, "out of memory");
	}
	nt[tl] = '\n';
	nt[tl + 1] = 0;
	*ret_text = nt;
	return 0;
}
