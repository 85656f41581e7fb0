/* SPDX-License-Identifier: Apache-2.0 */
/* Memory-mapped safetensors files, single or sharded. */
#pragma once

#include <stdint.h>

#include "agrt/agrt.h"

#define ST_MAX_DIMS 8

struct st_tensor {
	char *name;
	int dtype; /* enum rt_dtype */
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	const void *data; /* inside the mapping, may be unaligned */
	uint64_t nbytes;
	int file; /* index into st_set.maps */
};

struct st_set;

/* Open DIR/model.safetensors or, failing that, DIR/model.safetensors.index.json. */
int rt_st_open_dir(const char *dir, struct st_set **ret_set, struct rt_error *err);
void rt_st_close(struct st_set *s);
const struct st_tensor *rt_st_find(const struct st_set *s, const char *name);
uint64_t rt_st_total_bytes(const struct st_set *s);
/* Bytes of the mapped files now in RAM (mincore), and their total size. */
int rt_st_resident(const struct st_set *s, uint64_t *ret_resident, uint64_t *ret_mapped);
int rt_st_count(const struct st_set *s);
const struct st_tensor *rt_st_get(const struct st_set *s, int i);
/* File name of tensor t, for error messages. */
const char *rt_st_file_name(const struct st_set *s, const struct st_tensor *t);
/* Path of tensor t's file and the byte offset of its data in that file, for
 * backends that read the weights with pread instead of the mapping (CUDA
 * upload).  -EINVAL if t is not inside its mapping. */
int rt_st_locate(const struct st_set *s, const struct st_tensor *t, const char **ret_path, uint64_t *ret_off);
