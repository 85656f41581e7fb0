/* SPDX-License-Identifier: Apache-2.0 */
/* Quantized checkpoints (issue 19): the first input byte picks one of the
 * quantization_configs below for the harness model (FUZZ_RT_CONFIG with 2 KV
 * heads, so every matrix has rows and columns that are multiples of 8); the
 * rest is model.safetensors.  When the model loads, one forward pass over the
 * mapped (hostile) codes, scales, zero points and g_idx. */
#include <string.h>

#include "fuzz_rt.h"

#define QC_HEAD                                                                                                        \
	"{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 8,\n"                 \
	" \"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,\n"                          \
	" \"num_key_value_heads\": 2, \"vocab_size\": 16, \"max_position_embeddings\": 64,\n"                          \
	" \"rms_norm_eps\": 1e-05, \"hidden_act\": \"silu\", \"rope_theta\": 10000.0,\n"                               \
	" \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2,\n"                                 \
	" \"quantization_config\": "

static const char *const configs[] = {
    QC_HEAD "{\"quant_method\": \"fp8\", \"fmt\": \"e4m3\", \"weight_block_size\": [4, 4]}}",
    QC_HEAD "{\"quant_method\": \"compressed-tensors\", \"format\": \"pack-quantized\", \"config_groups\": "
            "{\"g\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, \"type\": \"int\", "
            "\"symmetric\": false, \"strategy\": \"group\", \"group_size\": 4}}}, \"ignore\": [\"lm_head\"]}}",
    QC_HEAD "{\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", \"config_groups\": "
            "{\"g\": {\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 8, \"type\": \"float\", "
            "\"strategy\": \"channel\"}}}, \"ignore\": [\"re:.*lm_head\"]}}",
    QC_HEAD "{\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 4, \"zero_point\": true, \"version\": "
            "\"gemm\"}}",
    QC_HEAD "{\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 4, \"desc_act\": true, \"sym\": false}}",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *config;
	char *dir;

	if (size < 1)
		return 0;
	config = configs[data[0] % (sizeof(configs) / sizeof(configs[0]))];
	dir = fuzz_mkdtemp();
	free(fuzz_write(dir, "config.json", config, strlen(config)));
	free(fuzz_write(dir, "model.safetensors", data + 1, size - 1));
	(void)fuzz_rt_load_and_run(dir);
	fuzz_assert_only(dir, (const char *const[]){"config.json", "model.safetensors", NULL});
	fuzz_rmdir(dir);
	return 0;
}
