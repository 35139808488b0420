/*
 * reftx — a naive reference transformer for the engine's tests: one token
 * at a time, plain loops, fp64 accumulation, the same synthetic weights
 * (engine_synthetic_values) rounded as the engines store them (fp16, or
 * quantized and dequantized to fp16), the KV cache rounded as stored (fp16
 * or quantized), and hidden states rounded to fp16 between layers. With
 * round_gemm_inputs, every matrix-vector product's input is rounded to fp16
 * first, as the GPU engine's GEMMs take it; with q_f16, a delegated
 * sequence's decode queries are rounded to fp16, as they cross PCIe.
 */
#ifndef LLMSIM_TESTS_REFTX_H
#define LLMSIM_TESTS_REFTX_H

#include <stdbool.h>
#include <stdint.h>

#include "models/model.h"
#include "policies/policy.h"

typedef struct ref {
    const model *m;
    quant wq, kq;
    bool round_gemm_inputs;
    /* delegated attention takes q across PCIe in fp16: sequence s's q is
     * rounded to fp16 at positions >= q_f16_from when q_f16[s] (NULL: never) */
    const bool *q_f16;
    int q_f16_from;
    bool q_f16_now;     /* ref_max_logit_error sets it for the sequence at hand */
    double **w[64];     /* [unit][tensor] values as stored, fp64 */
    int nt[64];
    model_tensor t[64][MODEL_MAX_TENSORS];
} ref;

void ref_init(ref *r, const model *m, uint64_t seed, quant wq, quant kq);
void ref_free(ref *r);
/* Logits of one sequence after positions first .. npos-1 of tokens[npos];
 * out [npos - first][V]. */
void ref_sequence(ref *r, const int32_t *tokens, int npos, int first, double *out);
/* The largest |logit - reference| (NaN if any logit is NaN) over a run of
 * bls sequences with random prompts from prompt_seed: logits
 * [gen][bls][vocab] as engine_opts.logits_out has them, tokens [bls][gen]
 * the generated ones, which the reference follows. */
double ref_max_logit_error(ref *r, const float *logits, const int32_t *tokens, uint64_t prompt_seed, int bls,
                           int prompt, int gen);
/* Token a of the random prompt of sequence seq (the engines' mio_prompt). */
int32_t ref_prompt_token(uint64_t prompt_seed, long long seq, long long a, uint64_t vocab);

#endif
