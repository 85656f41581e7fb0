/* SPDX-License-Identifier: Apache-2.0 */
/* rt_tokenizer_load(): tokenizer.json, and the one step loader that every
 * stage's "Sequence" goes through. */

#include "tok.h"
#include <stdio.h>
#include <sys/stat.h>

void rt_tokenizer_free(struct rt_tokenizer *t)
{
	if (!t)
		return;
	if (t->tok)
		for (int i = 0; i < t->n_ids; i++)
			free(t->tok[i]);
	if (t->dtok)
		for (int i = 0; i < t->n_ids; i++)
			free(t->dtok[i]);
	free(t->tok);
	free(t->dtok);
	free(t->tok_len);
	free(t->is_special);
	free(t->vocab.slot);
	free(t->merges);
	for (int i = 0; i < t->raw.n; i++)
		free(t->raw.v[i].s);
	for (int i = 0; i < t->norm.n; i++)
		free(t->norm.v[i].s);
	free(t->raw.v);
	free(t->norm.v);
	for (int i = 0; i < t->n_norms; i++) {
		free(t->norms[i].a);
		free(t->norms[i].b);
	}
	for (int i = 0; i < t->n_pres; i++) {
		pcre2_code_free(t->pres[i].re);
		free(t->pres[i].repl);
	}
	for (int i = 0; i < t->n_decs; i++) {
		free(t->decs[i].a);
		free(t->decs[i].b);
	}
	free(t);
}

int rt_tokenizer_vocab_size(const struct rt_tokenizer *t)
{
	return t->n_ids;
}

int rt_tokenizer_load(const char *path, struct rt_tokenizer **ret_tok, struct rt_error *err)
{
	struct rt_tokenizer *t;
	json_t *root = NULL;
	json_error_t jerr;
	struct stat st;
	int r;

	if (!path || !ret_tok)
		return rt_fail(err, RT_ERR_USAGE, -EINVAL, "invalid arguments");
	if (stat(path, &st) < 0)
		return rt_fail(err, RT_ERR_IO, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE)
		return rt_fail(err, RT_ERR_MODEL, -EFBIG, "%s: not a regular file of at most 512 MiB", path);
	t = calloc(1, sizeof(*t));
	if (!t)
		return rt_fail(err, RT_ERR_INTERNAL, -ENOMEM, "out of memory");
	t->path = path;
	tok_init_bytelevel(t);
	root = json_load_file(path, 0, &jerr);
	if (!root || !json_is_object(root)) {
		r = rt_fail(err, root ? RT_ERR_MODEL : (jerr.line < 0 ? RT_ERR_IO : RT_ERR_MODEL), -EBADMSG,
		            "%s: invalid JSON: %s", path, root ? "not an object" : jerr.text);
		goto out;
	}
	if ((r = tok_load_model(t, json_object_get(root, "model"), json_object_get(root, "added_tokens"), err)) < 0 ||
	    (r = tok_load_steps(t, &tok_normalizers, json_object_get(root, "normalizer"), err)) < 0 ||
	    (r = tok_split_added_sets(t, err)) < 0 ||
	    (r = tok_load_steps(t, &tok_pre_tokenizers, json_object_get(root, "pre_tokenizer"), err)) < 0 ||
	    (r = tok_load_steps(t, &tok_decoders, json_object_get(root, "decoder"), err)) < 0 ||
	    (r = tok_load_steps(t, &tok_post_processors, json_object_get(root, "post_processor"), err)) < 0)
		goto out;
	t->path = NULL;
	*ret_tok = t;
	t = NULL;
	r = 0;
out:
	json_decref(root);
	rt_tokenizer_free(t);
	return r;
}

/* ---- one loader for the steps of every stage ---- */

#define MAX_SEQUENCE_DEPTH 8 /* a Sequence inside a Sequence ... (real files: 1) */

static int load_steps(struct rt_tokenizer *t, const struct tok_stage *st, json_t *n, int depth, struct rt_error *err)
{
	const char *type;

	if (!n || json_is_null(n))
		return 0;
	type = json_string_value(json_object_get(n, "type"));
	if (!type)
		return BAD("%s: %s without type", t->path, st->what);
	if (!strcmp(type, "Sequence")) {
		size_t i;
		json_t *e;
		if (depth >= MAX_SEQUENCE_DEPTH)
			return BAD("%s: %s Sequences nested more than %d deep", t->path, st->what, MAX_SEQUENCE_DEPTH);
		json_array_foreach(json_object_get(n, st->seq_key), i, e)
		{
			int r = load_steps(t, st, e, depth + 1, err);
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (st->count && st->count(t) >= MAX_STEPS)
		return BAD("%s: too many %s", t->path, st->plural);
	return st->load_one(t, n, type, err);
}

int tok_load_steps(struct rt_tokenizer *t, const struct tok_stage *st, json_t *n, struct rt_error *err)
{
	return load_steps(t, st, n, 0, err);
}
