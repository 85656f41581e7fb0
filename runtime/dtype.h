/* SPDX-License-Identifier: Apache-2.0 */
/* Tensor element types and scalar conversions. */
#pragma once

#include <stdint.h>
#include <string.h>

/* The first three are the dtypes of dense matrices and vectors (the CPU
 * kernels index tables by them); the others occur in quantized checkpoints
 * (codes, packed int4 words, zero points, shapes, g_idx) and are read only
 * through the quantized weight formats (backend_quant.c). */
enum rt_dtype {
	RT_F32 = 0,
	RT_F16 = 1,
	RT_BF16 = 2,
	RT_F8_E4M3 = 3,
	RT_F8_E5M2 = 4,
	RT_I8 = 5,
	RT_U8 = 6,
	RT_I32 = 7,
	RT_I64 = 8,
};
#define RT_N_DTYPES 9

static inline size_t rt_dtype_size(int dt)
{
	switch (dt) {
	case RT_F32:
	case RT_I32: return 4;
	case RT_F16:
	case RT_BF16: return 2;
	case RT_I64: return 8;
	default: return 1;
	}
}

/* F32, F16 or BF16: what rt_load_elem reads and dense kernels take. */
static inline int rt_dtype_is_float(int dt)
{
	return dt == RT_F32 || dt == RT_F16 || dt == RT_BF16;
}

static inline const char *rt_dtype_name(int dt)
{
	static const char *const n[RT_N_DTYPES] = {"F32", "F16", "BF16", "F8_E4M3", "F8_E5M2",
	                                           "I8",  "U8",  "I32",  "I64"};
	return dt >= 0 && dt < RT_N_DTYPES ? n[dt] : "?";
}

static inline float rt_bf16_to_f32(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline float rt_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	uint32_t u;
	float f;

	if (exp == 0) {
		/* zero or subnormal: value = man * 2^-24 */
		f = (float)man * (1.0f / 16777216.0f);
		return sign ? -f : f;
	}
	if (exp == 31)
		u = sign | 0x7f800000u | (man << 13);
	else
		u = sign | ((exp + 112) << 23) | (man << 13);
	memcpy(&f, &u, 4);
	return f;
}

/* Element i of a row stored as dtype dt (unaligned-safe). */
static inline float rt_load_elem(const void *p, int dt, size_t i)
{
	if (dt == RT_F32) {
		float f;
		memcpy(&f, (const char *)p + 4 * i, 4);
		return f;
	} else {
		uint16_t h;
		memcpy(&h, (const char *)p + 2 * i, 2);
		return dt == RT_BF16 ? rt_bf16_to_f32(h) : rt_f16_to_f32(h);
	}
}
