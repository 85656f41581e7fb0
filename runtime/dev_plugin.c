/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CUDA backend is a plugin (kernels/, libagrt-cuda.so), loaded with
 * dlopen the first time a device is asked for, so that agrun and agserve have
 * no libcudart or libcublas NEEDED and start on a host without the CUDA
 * runtime (the split llama.cpp makes with its dynamically loaded ggml
 * backends).  The runtime owns the interface (backend.h); the plugin uses
 * nothing else of the runtime.
 *
 * Where it is looked for: $AGRT_CUDA_PLUGIN (an absolute path) when set,
 * else AGRT_CUDA_PLUGIN_DIR/libagrt-cuda.so (libdir/agkit, fixed at build
 * time).  Never the working directory, PATH or LD_LIBRARY_PATH.  The file
 * must be a regular file owned by root or by this user and writable by no
 * one else: agctl runs agrun as root, and a plugin is code.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"

#ifndef AGRT_CUDA_PLUGIN_DIR
#define AGRT_CUDA_PLUGIN_DIR "" /* a build without CUDA: no plugin exists */
#endif
#define PLUGIN_FILE "libagrt-cuda.so"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct rt_dev_ops *cuda_ops;
static char cuda_why[600];

static int plugin_file_ok(const char *path)
{
	struct stat st;
	if (path[0] != '/') {
		snprintf(cuda_why, sizeof cuda_why,
		         "AGRT_CUDA_PLUGIN=%.400s is not an absolute path; CUDA plugin not loaded", path);
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		int e = errno;
		if (e == ENOENT)
			snprintf(cuda_why, sizeof cuda_why,
			         "the CUDA plugin is not installed (%.400s, package agkit-cuda)", path);
		else
			snprintf(cuda_why, sizeof cuda_why, "CUDA plugin %.400s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 022) || (st.st_uid != 0 && st.st_uid != geteuid())) {
		snprintf(cuda_why, sizeof cuda_why,
		         "CUDA plugin %.400s not loaded: it must be a regular file owned by root or this user and "
		         "writable by no one else",
		         path);
		return -EPERM;
	}
	return 0;
}

static void load_cuda_plugin(void)
{
	char path[4096];
	const char *env = getenv("AGRT_CUDA_PLUGIN");

	if (!AGRT_CUDA_PLUGIN_DIR[0]) {
		snprintf(cuda_why, sizeof cuda_why, "this build has no CUDA support");
		return;
	}
	if (env && *env)
		snprintf(path, sizeof path, "%s", env);
	else
		snprintf(path, sizeof path, "%s/%s", AGRT_CUDA_PLUGIN_DIR, PLUGIN_FILE);
	if (plugin_file_ok(path) < 0)
		return;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		/* typically "libcudart.so.N: cannot open shared object file" */
		const char *e = dlerror();
		snprintf(cuda_why, sizeof cuda_why, "CUDA plugin %.300s cannot be loaded: %.250s", path, e ? e : "?");
		return;
	}
	rt_dev_plugin_fn entry = (rt_dev_plugin_fn)dlsym(h, RT_DEV_PLUGIN_SYMBOL);
	const struct rt_dev_ops *ops = entry ? entry(RT_DEV_ABI, sizeof(struct rt_config), sizeof(struct rt_layer),
	                                             sizeof(struct rt_dev_model_desc))
	                                     : NULL;
	if (!ops) {
		snprintf(cuda_why, sizeof cuda_why, "CUDA plugin %.400s %s", path,
		         entry ? "was built for another version of agkit" : "is not an agkit plugin");
		dlclose(h);
		return;
	}
	cuda_ops = ops; /* the handle stays open for the life of the process */
}

const struct rt_dev_ops *rt_dev_cuda(const char **ret_why)
{
	pthread_once(&once, load_cuda_plugin);
	if (ret_why)
		*ret_why = cuda_why;
	return cuda_ops;
}

bool rt_dev_cuda_built(void)
{
	return AGRT_CUDA_PLUGIN_DIR[0] != 0;
}
