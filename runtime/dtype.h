/* Tensor element types and scalar conversions. */
#ifndef RT_DTYPE_H
#define RT_DTYPE_H

#include <stdint.h>
#include <string.h>

enum rt_dtype { RT_F32 = 0, RT_F16 = 1, RT_BF16 = 2 };

static inline size_t rt_dtype_size(int dt)
{
	return dt == RT_F32 ? 4 : 2;
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

#endif
