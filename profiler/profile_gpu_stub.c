/*
 * profile_gpu_stub — profile_gpu when llmsim is built without CUDA
 * (LLMSIM_CUDA=OFF; with CUDA it is profile_gpu.cu): it measures nothing and
 * says why. The statistics and the link fit the probes share are in fit.c.
 */
#include "profiler/profile_gpu.h"

#include <stdio.h>
#include <string.h>

llmsim_status profile_gpu(hwprofile *hw, const profile_gpu_opts *o, char *note, size_t note_len,
                          diag *e)
{
    (void)o;
    (void)e;
    memset(&hw->gpu, 0, sizeof hw->gpu);
    memset(hw->links, 0, sizeof hw->links);
    if (note_len)
        snprintf(note, note_len,
                 "built without CUDA (LLMSIM_CUDA=OFF): the GPU probes were skipped");
    return LLMSIM_OK;
}
