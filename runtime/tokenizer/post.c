/* SPDX-License-Identifier: Apache-2.0 */
/* Post-processors: TemplateProcessing (special tokens around the
 * sequence) and ByteLevel (offsets only, nothing to do). */

#include "tok.h"

static int post_step(struct rt_tokenizer *t, json_t *n, const char *type, struct rt_error *err)
{
	size_t i;
	json_t *e;

	if (!strcmp(type, "ByteLevel"))
		return 0; /* only adjusts offsets */
	if (strcmp(type, "TemplateProcessing"))
		return UNSUP("%s: post_processor '%.40s' not supported", t->path, type);
	t->n_tmpl = 0;
	json_array_foreach(json_object_get(n, "single"), i, e)
	{
		json_t *sp = json_object_get(e, "SpecialToken"), *seq = json_object_get(e, "Sequence");
		if (t->n_tmpl >= MAX_TEMPLATE)
			return BAD("%s: template too long", t->path);
		if (seq) {
			t->tmpl[t->n_tmpl++] = -1;
		} else if (sp) {
			const char *name = json_string_value(json_object_get(sp, "id"));
			json_t *st = json_object_get(json_object_get(n, "special_tokens"), name ? name : "");
			json_t *ids = json_object_get(st, "ids");
			size_t k;
			json_t *idv;
			if (!name || !json_is_array(ids))
				return BAD("%s: template special token '%.40s' not defined", t->path,
				           name ? name : "?");
			json_array_foreach(ids, k, idv)
			{
				json_int_t id = json_integer_value(idv);
				if (!json_is_integer(idv) || id < 0 || id >= t->n_ids || t->n_tmpl >= MAX_TEMPLATE)
					return BAD("%s: template special token '%.40s' has a bad id", t->path, name);
				t->tmpl[t->n_tmpl++] = (int32_t)id;
			}
		} else {
			return BAD("%s: bad template entry", t->path);
		}
	}
	return 0;
}

const struct tok_stage tok_post_processors = {"post_processor", "processors", NULL, NULL, post_step};

/* The template around the sequence when add_special asks for it; moves
 * body's ids into *ret (body is empty afterwards). */
int tok_post_process(const struct rt_tokenizer *t, bool add_special, struct ids *body, struct ids *ret)
{
	int r = 0;

	if (!(add_special && t->n_tmpl)) {
		*ret = *body;
		*body = (struct ids){0};
		return 0;
	}
	for (int k = 0; k < t->n_tmpl && r == 0; k++) {
		if (t->tmpl[k] >= 0) {
			r = tok_ids_add(ret, t->tmpl[k]);
			continue;
		}
		for (size_t j = 0; j < body->n && r == 0; j++)
			r = tok_ids_add(ret, body->v[j]);
	}
	free(body->v);
	*body = (struct ids){0};
	return r;
}
