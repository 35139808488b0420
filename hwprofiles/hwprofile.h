/*
 * hwprofile — what a machine can do: memory per tier, the bandwidth and
 * latency of every link, GEMM and attention throughput per device, and where
 * these numbers came from (provenance).
 *
 * Units: bytes, bytes/s, FLOP/s, seconds, in every field (names say which).
 * A profile without a `gpu` section describes a CPU-only machine: compute
 * runs on the CPU and the gpu tier is empty (ARCHITECTURE §4).
 */
#ifndef LLMSIM_HWPROFILES_HWPROFILE_H
#define LLMSIM_HWPROFILES_HWPROFILE_H

#include <stdbool.h>

#include "common/diag.h"
#include "common/strbuf.h"

#define HW_MAX_POINTS 64

/* What a profile may plausibly say: outside these, the unit is wrong. */
#define HW_MIN_BANDWIDTH 1e6  /* 1 MB/s */
#define HW_MAX_BANDWIDTH 1e15 /* 1 PB/s */
#define HW_MAX_LATENCY 1.0    /* 1 s per copy or kernel launch */
#define HW_MIN_FLOPS 1e6      /* 1 MFLOP/s */
#define HW_MAX_FLOPS 1e18     /* 1 EFLOP/s */

/* A measured figure whose spread, (max - min) / median over its runs,
 * exceeds this is FLAGGED: `llmsim profile` measures it again once, and
 * what still spreads is kept but marked (hwprofile_flagged lists it);
 * `validate` refuses a profile whose predictions depend on one unless
 * --allow-noisy, and predict, simulate and calibrate warn. */
#define HW_SPREAD_LIMIT 0.10

/* One measured point: x = size in bytes, y = seconds; spread = (max-min)/median. */
typedef struct hw_point {
    double bytes;
    double time_s;
    double spread;
} hw_point;

/* A transfer path with a fitted latency + bandwidth (time = latency + bytes / bandwidth)
 * and the points it was fitted on (may be empty for spec or paper profiles). */
typedef struct hw_link {
    bool present;
    double bandwidth_Bps;
    double latency_s;
    int npoints;
    hw_point points[HW_MAX_POINTS];
} hw_link;

/* GEMM throughput for an (m x k) @ (k x n) product; n == k == 0 means "any
 * shape" (a single peak figure). */
typedef struct hw_gemm_point {
    double m, n, k;
    double flops; /* FLOP/s achieved */
    double spread;
} hw_gemm_point;

typedef struct hw_gemm_table {
    int npoints;
    hw_gemm_point points[HW_MAX_POINTS];
} hw_gemm_table;

/* How fast the CPU reads weights (the engine's fp16 GEMV at m = 1) when a
 * working set of ws_bytes is read over and over: from the caches while it
 * fits in them, from DRAM beyond. */
typedef struct hw_read_point {
    double ws_bytes;
    double Bps; /* bytes of weights read per second */
    double spread;
} hw_read_point;

typedef struct hw_read_table {
    int npoints; /* 0: unknown (reads at memory_bandwidth) */
    hw_read_point points[HW_MAX_POINTS];
} hw_read_table;

/* How fast the engine's CPU kernel dequantizes group-quantized weights
 * (group 64) into fp16: bytes of fp16 written per second, by bits. */
typedef struct hw_dequant_point {
    int bits;   /* 4 or 8 */
    double Bps; /* fp16 output bytes per second */
    double spread;
} hw_dequant_point;
#define HW_MAX_DEQUANT 4

typedef struct hw_gpu {
    bool present;
    char name[64];
    double memory_bytes;         /* usable device memory */
    double memory_bandwidth_Bps; /* HBM/GDDR bandwidth */
    hw_gemm_table gemm;          /* fp16 dense GEMM */
    /* bf16 dense GEMM, measured by `llmsim profile` (same shapes and method
     * as `gemm`); npoints 0 when unknown: the shipped spec-sheet profiles
     * leave it empty, and it is saved only when it has points. */
    hw_gemm_table gemm_bf16;
    double attn_prefill_flops;   /* batched matmul throughput over a prompt */
    double attn_decode_Bps;      /* decode attention: bytes of K and V read per second */
    double launch_latency_s;     /* per kernel */
} hw_gpu;

typedef struct hw_cpu {
    char name[64];
    int cores;
    double memory_bytes;
    double memory_bandwidth_Bps;
    double memory_bandwidth_spread; /* of the measured figure; 0 when not measured */
    /* weight reads by working set, measured by `llmsim profile`; optional
     * (spec-sheet profiles leave it empty, and it is saved only when set) */
    hw_read_table read;
    hw_gemm_table gemm;
    double attn_Bps; /* CPU attention kernel: bytes of K and V read per second */
    double attn_spread;
    /* weight dequantization by bits, measured by `llmsim profile`; optional
     * (without it, a dequantization is priced as a memory pass) */
    int ndequant;
    hw_dequant_point dequant[HW_MAX_DEQUANT];
    /* fixed cost of each compute task the CPU runs (dispatch to the threads,
     * the small kernels around the GEMMs); 0 unless calibrated */
    double task_overhead_s;
} hw_cpu;

typedef struct hw_disk {
    bool present;
    double capacity_bytes;
    hw_link read;
    hw_link write;
    /* Compute time lost per GB (1e9 bytes) read or written with O_DIRECT
     * while the CPU computes: the kernel's CPU time for the transfer, and the
     * memory traffic of the DMA (and, on a virtual machine, of the copies
     * through bounce buffers) against a decode pass that reads its weights
     * from DRAM. Measured by `llmsim profile`; optional, 0 when unknown.
     * Without a GPU, the cost model and the plan add it to the compute that
     * overlaps the transfer. */
    double read_loss_s_per_GB;
    double write_loss_s_per_GB;
} hw_disk;

typedef enum hw_link_id {
    HW_LINK_H2D_PINNED,
    HW_LINK_H2D_PAGEABLE,
    HW_LINK_D2H_PINNED,
    HW_LINK_D2H_PAGEABLE,
    HW_NLINKS
} hw_link_id;
extern const char *const hw_link_names[HW_NLINKS];

typedef enum hw_source { HW_SOURCE_MEASURED, HW_SOURCE_PAPER, HW_SOURCE_SPEC } hw_source;
extern const char *const hw_source_names[3];

typedef struct hw_provenance {
    hw_source source;
    char description[512]; /* one line: what machine, from where */
    char host[128];        /* measured: host name */
    char date[64];         /* measured: ISO date */
    char tool[64];         /* measured: llmsim version */
    char command[512];     /* measured: the command line */
    char notes[4096];      /* why each figure is what it is */
} hw_provenance;

/* What `llmsim calibrate` fitted a profile on, so that no figure is judged
 * on its own training data: the inputs (model, policy, workload by content
 * hash, "M:P:W") of every run of the fit, and the simulation's error on
 * total time, after the fit, over the runs held out from it. */
#define HW_MAX_FIT_INPUTS 128
#define HW_FIT_INPUT_LEN 52 /* three 16-hex hashes, two colons, NUL */
typedef struct hw_calibration {
    bool present;
    int nfit;
    char fit_inputs[HW_MAX_FIT_INPUTS][HW_FIT_INPUT_LEN];
    int nheld;                       /* held-out runs the error was measured on; 0: none */
    double held_err_p10, held_err_p90; /* (simulated - measured) / measured, fractions */
} hw_calibration;

typedef struct hwprofile {
    char name[64];
    hw_provenance prov;
    hw_calibration calib; /* absent unless calibrated */
    hw_gpu gpu;
    hw_cpu cpu;
    hw_disk disk;
    hw_link links[HW_NLINKS]; /* host<->device; all absent without a GPU */
} hwprofile;

/* Resolve `spec` (shipped name in hwprofiles/, or a path) and load it. */
llmsim_status hwprofile_load(const char *spec, hwprofile *hw, diag *e);
llmsim_status hwprofile_load_yaml(const char *path, hwprofile *hw, diag *e);
/* The same over YAML text in memory (the store keeps inputs as text); name
 * stands for the file in messages. */
llmsim_status hwprofile_load_yaml_text(const char *name, const char *text, hwprofile *hw, diag *e);
/* A measured profile's provenance: source measured, this host, the date
 * now (UTC), this llmsim's version, and the command line given. */
void hwprofile_stamp(hw_provenance *prov, const char *command);
/* Canonical YAML: loads back to an identical struct (hwprofile_load_yaml). */
void hwprofile_save(const hwprofile *hw, strbuf *out);
llmsim_status hwprofile_write(const hwprofile *hw, const char *path, diag *e);

/* Which parts of a profile a prediction reads, for hwprofile_flagged. */
typedef enum hw_uses {
    HW_USES_CPU = 1,        /* memory, GEMM table, weight reads, attention */
    HW_USES_DISK_READ = 2,
    HW_USES_DISK_WRITE = 4,
    HW_USES_GPU = 8,        /* the GPU's tables and its host links */
} hw_uses;

/* The FLAGGED figures (spread over HW_SPREAD_LIMIT) among the parts `uses`
 * of hw, one line each ("CPU GEMM m=16 n=2048 k=2048: spread 14%") into out
 * when given; their number. */
int hwprofile_flagged(const hwprofile *hw, unsigned uses, strbuf *out);

/* Names of the shipped profiles, NULL-terminated. */
extern const char *const hwprofile_shipped_names[];

#endif
