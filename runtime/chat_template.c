/* SPDX-License-Identifier: Apache-2.0 */
/* Chat templates: loading from a model directory (tokenizer_config.json
 * "chat_template" or chat_template.jinja, bos/eos tokens) and the public
 * API over the Jinja subset engine (jinja.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agrt/agrt.h"
#include "jinja.h"
#include "rt_error.h"

#define MAX_CONFIG  (16u << 20) /* tokenizer_config.json bytes */
#define MAX_CONTEXT (64u << 20) /* render context JSON bytes */
#define MAX_TOKEN   4096        /* bos/eos token bytes */

struct rt_chat_template {
	struct jtoks toks;
	struct jnode *tree;
	char *bos, *eos;
};

void rt_chat_template_free(struct rt_chat_template *t)
{
	if (!t)
		return;
	jinja_node_free(t->tree);
	jinja_toks_release(&t->toks);
	free(t->bos);
	free(t->eos);
	free(t);
}

int rt_chat_template_new(const char *src, size_t len, const char *bos, const char *eos,
                         struct rt_chat_template **ret, struct rt_error *err)
{
	struct rt_chat_template *t = calloc(1, sizeof(*t));
	struct jerr e = {0};
	int r;

	if (!t)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	if ((bos && !(t->bos = strdup(bos))) || (eos && !(t->eos = strdup(eos)))) {
		rt_chat_template_free(t);
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	}
	if ((r = jinja_lex(src, len, &t->toks, &e)) < 0 || (r = jinja_parse(&t->toks, &t->tree, &e)) < 0) {
		rt_chat_template_free(t);
		if (r == -ENOMEM)
			return rt_fail(err, RT_ERR_INTERNAL, r, "out of memory");
		return rt_fail(err, RT_ERR_MODEL, r, "chat template: %s", e.msg);
	}
	*ret = t;
	return 0;
}

/* JSON -> value; objects keep their key order, as Python dicts. */
static int from_json(json_t *j, int depth, struct jv *ret)
{
	int r;

	if (depth > JINJA_MAX_VDEPTH)
		return -ELOOP;
	switch (json_typeof(j)) {
	case JSON_NULL: *ret = jv_none(); return 0;
	case JSON_TRUE: *ret = jv_bool(true); return 0;
	case JSON_FALSE: *ret = jv_bool(false); return 0;
	case JSON_INTEGER: *ret = jv_int(json_integer_value(j)); return 0;
	case JSON_REAL: *ret = jv_float(json_real_value(j)); return 0;
	case JSON_STRING: return jv_str(json_string_value(j), json_string_length(j), ret);
	case JSON_ARRAY:
		if ((r = jv_list_new(json_array_size(j), false, ret)) < 0)
			return r;
		for (size_t i = 0; i < json_array_size(j); i++) {
			struct jv v;
			if ((r = from_json(json_array_get(j, i), depth + 1, &v)) < 0 || (r = jv_list_push(ret, v)) < 0) {
				jv_unref(ret);
				return r;
			}
		}
		return 0;
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		if ((r = jv_dict_new(JD_DICT, ret)) < 0)
			return r;
		/* JSON_PRESERVE_ORDER at load time keeps insertion order here */
		json_object_foreach(j, k, v)
		{
			struct jv key, val;
			if ((r = jv_str(k, strlen(k), &key)) < 0) {
				jv_unref(ret);
				return r;
			}
			if ((r = from_json(v, depth + 1, &val)) < 0) {
				jv_unref(&key);
				jv_unref(ret);
				return r;
			}
			if ((r = jv_dict_set(ret, key, val)) < 0) {
				jv_unref(ret);
				return r;
			}
		}
		return 0;
	}
	}
	return -EINVAL;
}

static int put_str(struct jv *d, const char *k, const char *v)
{
	struct jv key, val;
	int r;
	if ((r = jv_str(k, strlen(k), &key)) < 0)
		return r;
	if ((r = jv_str(v, strlen(v), &val)) < 0) {
		jv_unref(&key);
		return r;
	}
	return jv_dict_set(d, key, val);
}

int rt_chat_template_render(const struct rt_chat_template *t, const char *ctx_json, size_t len, char **ret_text,
                            size_t *ret_len, struct rt_error *err)
{
	json_error_t je;
	json_t *j;
	struct jv g = jv_undef();
	struct jerr e = {0};
	char *text;
	size_t tlen;
	int r;

	if (len > MAX_CONTEXT)
		return rt_fail(err, RT_ERR_USAGE, -E2BIG, "chat context is %zu bytes, limit %u", len, MAX_CONTEXT);
	j = json_loadb(ctx_json, len, JSON_PRESERVE_ORDER | JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "chat context: line %d: %s", je.line, je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "chat context: not a JSON object");
	}
	r = from_json(j, 0, &g);
	json_decref(j);
	if (r == -ELOOP)
		return rt_fail(err, RT_ERR_USAGE, r, "chat context: nested deeper than %d", JINJA_MAX_VDEPTH);
	if (r == -E2BIG)
		return rt_fail(err, RT_ERR_USAGE, r, "chat context: a string or list is over the limits");
	if (r < 0)
		return rt_fail(err, RT_ERR_INTERNAL, r, "out of memory");
	if (t->bos && !jv_dict_get(&g, "bos_token", 9))
		r = put_str(&g, "bos_token", t->bos);
	if (r == 0 && t->eos && !jv_dict_get(&g, "eos_token", 9))
		r = put_str(&g, "eos_token", t->eos);
	if (r < 0) {
		jv_unref(&g);
		return rt_fail(err, RT_ERR_INTERNAL, r, "out of memory");
	}
	r = jinja_render(t->tree, &g, &text, &tlen, &e);
	jv_unref(&g);
	if (r < 0) {
		if (r == -ENOMEM)
			return rt_fail(err, RT_ERR_INTERNAL, r, "out of memory");
		if (e.raised)
			return rt_fail(err, RT_ERR_USAGE, r, "%s", e.msg);
		return rt_fail(err, RT_ERR_USAGE, r, "chat template: %s", e.msg);
	}
	*ret_text = text;
	*ret_len = tlen;
	return 0;
}

/* Whole-word occurrence of name among the template's name tokens. */
bool rt_chat_template_mentions(const struct rt_chat_template *t, const char *name)
{
	size_t n = strlen(name);
	if (!t)
		return false;
	for (size_t i = 0; i < t->toks.n; i++) {
		const struct jtok *k = &t->toks.v[i];
		if (k->kind == T_NAME && k->len == n && !memcmp(k->p, name, n))
			return true;
		if (k->kind == T_STRING && k->len == n && !memcmp(k->str, name, n))
			return true;
	}
	return false;
}

bool rt_chat_template_has_text(const struct rt_chat_template *t, const char *text)
{
	size_t n = strlen(text);
	if (!t || !n)
		return false;
	for (size_t i = 0; i < t->toks.n; i++) {
		const struct jtok *k = &t->toks.v[i];
		if (k->kind == T_TEXT && memmem(k->p, k->len, text, n))
			return true;
		if (k->kind == T_STRING && memmem(k->str, k->len, text, n))
			return true;
	}
	return false;
}

static int read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf;
	size_t n = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (n < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + n, (size_t)st.st_size - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = 0;
	*ret = buf;
	*ret_len = n;
	return 0;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} (AddedToken) */
static const char *token_of(json_t *cfg, const char *key)
{
	json_t *v = json_object_get(cfg, key);
	if (json_is_object(v))
		v = json_object_get(v, "content");
	if (!json_is_string(v) || json_string_length(v) > MAX_TOKEN || strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

int rt_chat_template_load(const char *model_dir, const char *name, struct rt_chat_template **ret,
                          struct rt_error *err)
{
	char path[PATH_MAX];
	char *buf = NULL, *jsrc = NULL;
	size_t len = 0, jlen = 0;
	json_t *cfg = NULL, *ct = NULL;
	const char *src = NULL;
	size_t srclen = 0;
	int r;

	if (snprintf(path, sizeof(path), "%s/tokenizer_config.json", model_dir) >= (int)sizeof(path))
		return rt_fail(err, RT_ERR_USAGE, -ENAMETOOLONG, "%s: path too long", model_dir);
	r = read_file(path, MAX_CONFIG, &buf, &len);
	if (r < 0 && r != -ENOENT)
		return rt_fail(err, r == -EFBIG ? RT_ERR_MODEL : rt_errno_class(r), r, "%s: %s", path,
		               r == -EFBIG ? "file too large" : strerror(-r));
	if (r == 0) {
		json_error_t je;
		cfg = json_loadb(buf, len, 0, &je);
		free(buf);
		if (!cfg || !json_is_object(cfg)) {
			json_decref(cfg);
			return rt_fail(err, RT_ERR_MODEL, -EINVAL, "%s: line %d: %s", path, cfg ? 0 : je.line,
			               cfg ? "not a JSON object" : je.text);
		}
		ct = json_object_get(cfg, "chat_template");
	}
	if (json_is_string(ct)) {
		if (name && strcmp(name, "default")) {
			json_decref(cfg);
			return rt_fail(err, RT_ERR_MODEL, -ENOENT, "%s: no chat template named '%s'", path, name);
		}
		src = json_string_value(ct);
		srclen = json_string_length(ct);
	} else if (json_is_array(ct)) {
		const char *want = name ? name : "default";
		size_t i;
		json_t *it;
		json_array_foreach(ct, i, it)
		{
			json_t *nm = json_object_get(it, "name"), *tp = json_object_get(it, "template");
			if (json_is_string(nm) && json_is_string(tp) && !strcmp(json_string_value(nm), want)) {
				src = json_string_value(tp);
				srclen = json_string_length(tp);
				break;
			}
		}
		if (!src) {
			json_decref(cfg);
			return rt_fail(err, RT_ERR_MODEL, -ENOENT, "%s: no chat template named '%s'", path, want);
		}
	} else if (ct && !json_is_null(ct)) {
		json_decref(cfg);
		return rt_fail(err, RT_ERR_MODEL, -EINVAL, "%s: chat_template is neither a string nor a list", path);
	}
	if (!src) {
		char jpath[PATH_MAX];
		if (snprintf(jpath, sizeof(jpath), "%s/chat_template.jinja", model_dir) >= (int)sizeof(jpath)) {
			json_decref(cfg);
			return rt_fail(err, RT_ERR_USAGE, -ENAMETOOLONG, "%s: path too long", model_dir);
		}
		r = read_file(jpath, JINJA_MAX_SOURCE, &jsrc, &jlen);
		if (r < 0) {
			json_decref(cfg);
			if (r == -ENOENT)
				return rt_fail(err, RT_ERR_MODEL, -ENOENT, "%s: the model has no chat template", model_dir);
			return rt_fail(err, r == -EFBIG ? RT_ERR_MODEL : rt_errno_class(r), r, "%s: %s", jpath,
			               r == -EFBIG ? "file too large" : strerror(-r));
		}
		src = jsrc;
		srclen = jlen;
	}
	r = rt_chat_template_new(src, srclen, cfg ? token_of(cfg, "bos_token") : NULL,
	                         cfg ? token_of(cfg, "eos_token") : NULL, ret, err);
	free(jsrc);
	json_decref(cfg);
	return r;
}
