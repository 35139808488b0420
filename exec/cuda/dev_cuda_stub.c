/*
 * dev_cuda_stub — GDEV_CUDA in a build without CUDA (LLMSIM_CUDA=OFF): never
 * available, and an open that says how to get it.
 */
#include "exec/cuda/dev_impl.h"

bool gdev_cuda_available(void) { return false; }

llmsim_status gdev_cuda_open(gdev **out, diag *e)
{
    *out = NULL;
    return diag_set(e, LLMSIM_EINPUT, "this llmsim was built without CUDA (configure with "
                    "-DLLMSIM_CUDA=ON where the CUDA Toolkit is installed)");
}
