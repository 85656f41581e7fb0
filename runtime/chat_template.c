/* SPDX-License-Identifier: Apache-2.0 */
/* Chat templates: placeholder until the Jinja subset engine lands. */
#include <errno.h>

#include "agrt/agrt.h"
#include "rt_error.h"

int rt_chat_template_load(const char *model_dir, const char *name, struct rt_chat_template **ret,
                          struct rt_error *err)
{
	(void)name;
	(void)ret;
	return rt_fail(err, RT_ERR_MODEL, -ENOSYS, "%s: chat templates are not supported yet", model_dir);
}

int rt_chat_template_new(const char *src, size_t len, const char *bos, const char *eos,
                         struct rt_chat_template **ret, struct rt_error *err)
{
	(void)src, (void)len, (void)bos, (void)eos, (void)ret;
	return rt_fail(err, RT_ERR_MODEL, -ENOSYS, "chat templates are not supported yet");
}

void rt_chat_template_free(struct rt_chat_template *t)
{
	(void)t;
}

int rt_chat_template_render(const struct rt_chat_template *t, const char *ctx_json, size_t len, char **ret_text,
                            size_t *ret_len, struct rt_error *err)
{
	(void)t, (void)ctx_json, (void)len, (void)ret_text, (void)ret_len;
	return rt_fail(err, RT_ERR_USAGE, -ENOSYS, "chat templates are not supported yet");
}

bool rt_chat_template_mentions(const struct rt_chat_template *t, const char *name)
{
	(void)t, (void)name;
	return false;
}
