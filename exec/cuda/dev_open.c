/*
 * dev_open — gdev_available and gdev_open of exec/cuda/dev.h: the one place
 * that chooses between the implementations (dev_host.c, and dev_cuda.cu or
 * dev_cuda_stub.c). It sits above them and above dev.c, the base they
 * share, so no file of the device calls back into one that calls it.
 */
#include "exec/cuda/dev_impl.h"

bool gdev_available(gdev_kind kind) { return kind == GDEV_HOST ? true : gdev_cuda_available(); }

llmsim_status gdev_open(gdev_kind kind, int threads, gdev **out, diag *e)
{
    *out = NULL;
    return kind == GDEV_HOST ? gdev_host_open(threads, out, e) : gdev_cuda_open(out, e);
}
