/* Build without CUDA (-Dcuda=disabled, or auto without nvcc): the device
 * table is absent, so rt_model_load refuses RT_BACKEND_CUDA and
 * rt_cuda_device_count reports "this build has no CUDA support". */
#include "backend.h"

const struct rt_dev_ops *rt_dev_cuda(void)
{
	return NULL;
}
