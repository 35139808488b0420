/*
 * primitives — the time of one basic operation on modelled hardware. The
 * analytic cost model, the LP search and the simulator all price work with
 * these functions and nothing else, so a calibration of the profile reaches
 * all three.
 *
 * Units: bytes, FLOPs, seconds. Sizes may be fractional (expected values).
 */
#ifndef LLMSIM_COSTMODEL_PRIMITIVES_H
#define LLMSIM_COSTMODEL_PRIMITIVES_H

#include "hwprofiles/hwprofile.h"

typedef enum cm_device { CM_DEV_GPU, CM_DEV_CPU } cm_device;

/* A copy of `bytes` over a link: latency + bytes / bandwidth; 0 for 0 bytes. */
double cm_copy_time(const hw_link *link, double bytes);
/* Bandwidth part only (bytes / bandwidth): what a stream of many copies that
 * are pipelined costs per byte, latency hidden. */
double cm_stream_time(const hw_link *link, double bytes);

/* Achieved GEMM throughput (FLOP/s) from a table: interpolated linearly in
 * log m, and between shape classes in log(n*k); clamped outside the table. */
double cm_gemm_rate(const hw_gemm_table *t, double m, double n, double k);

/* Bytes/s at which the CPU reads weights out of a working set of ws_bytes:
 * the profile's read_bandwidth points interpolated in log(ws), clamped at
 * the ends; the memory bandwidth when the profile has none or ws_bytes <= 0. */
double cm_cpu_read_Bps(const hwprofile *hw, double ws_bytes);

/* (m x k) @ (k x n) with elements of elem_bytes on `dev`. The (k x n)
 * operand is the weights, read from a working set of ws_bytes (the layer's
 * working copy, or every weight of the model when each is read once per
 * pass; 0: unknown).
 * GPU, or a CPU profile without read_bandwidth: the larger of the compute
 * time at the table's rate and the memory time of reading both operands and
 * writing the result at the memory bandwidth.
 * CPU with read_bandwidth: the table's time plus the extra time of reading
 * W from ws_bytes rather than from the working set the table measured it
 * in (the weights of the table's shape class the rate comes from: a GEMM
 * larger than the table's largest shape was measured in that shape's
 * working set, closer to the caches than its own), and the engine's kernels
 * do not hide the slower reads under the arithmetic: the fused kernel with
 * a few rows is as much compute as memory (this VM, OPT-1.3B from a 2.6 GB
 * working set: the max of the two was 10% low at m = 2 and 33% low at
 * m = 4). */
double cm_gemm_time(const hwprofile *hw, cm_device dev, double m, double n, double k,
                    double elem_bytes, double ws_bytes);

/* Attention over a prompt: `batch` sequences of q_len tokens attending to
 * themselves (QK^T and PV, 4 * batch * q_len^2 * heads * head_dim FLOPs). */
double cm_attention_prefill_time(const hwprofile *hw, cm_device dev, double batch, double q_len,
                                 double heads, double head_dim);

/* One decode step of attention: `batch` queries, each over ctx tokens of K
 * and V (kv_heads * head_dim wide, fp16 after any dequantization). Memory
 * bound: bytes of K and V at the device's attention rate, or FLOPs at the
 * prefill rate when grouped-query attention makes it compute bound. */
double cm_attention_decode_time(const hwprofile *hw, cm_device dev, double batch, double ctx,
                                double heads, double kv_heads, double head_dim);

/* A memory-bound pass that reads `read_bytes` and writes `write_bytes` on
 * the device (dequantization, norms, residual adds). */
double cm_memory_pass_time(const hwprofile *hw, cm_device dev, double read_bytes,
                           double write_bytes);

/* Dequantizing group-quantized weights of `bits` (read_bytes as stored)
 * into fp16_bytes on the device: on a CPU whose profile measured its
 * dequantization at those bits (cpu.dequant), fp16_bytes at that rate;
 * else a memory pass. */
double cm_dequant_time(const hwprofile *hw, cm_device dev, int bits, double read_bytes, double fp16_bytes);

#endif
