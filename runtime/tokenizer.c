#include <errno.h>
#include "agrt/agrt.h"
#include "rt_error.h"
int rt_tokenizer_load(const char *path, struct rt_tokenizer **ret_tok, struct rt_error *err) { return rt_fail(err, 3, -ENOTSUP, "%s: todo", path); }
void rt_tokenizer_free(struct rt_tokenizer *t) {}
int rt_tokenize(const struct rt_tokenizer *t, const char *text, size_t len, bool add_special, int32_t **ret_ids, size_t *ret_n, struct rt_error *err) { return -ENOTSUP; }
int rt_detokenize(const struct rt_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **ret_text, size_t *ret_len, struct rt_error *err) { return -ENOTSUP; }
int rt_tokenizer_vocab_size(const struct rt_tokenizer *t) { return 0; }
