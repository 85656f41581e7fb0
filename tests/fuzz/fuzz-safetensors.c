/* SPDX-License-Identifier: Apache-2.0 */
/* The safetensors loader: the input is model.safetensors next to a fixed
 * tiny llama config.json (fuzz_rt.h); when the model loads, one forward pass
 * over the mapped (hostile) weights. */
#include <string.h>

#include "fuzz_rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char config[] = FUZZ_RT_CONFIG;
	char *dir = fuzz_mkdtemp();
	free(fuzz_write(dir, "config.json", config, strlen(config)));
	free(fuzz_write(dir, "model.safetensors", data, size));
	(void)fuzz_rt_load_and_run(dir);
	fuzz_assert_only(dir, (const char *const[]){"config.json", "model.safetensors", NULL});
	fuzz_rmdir(dir);
	return 0;
}
