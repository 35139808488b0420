#!/usr/bin/env python3
"""make_tiny — write a tiny random checkpoint in the Hugging Face layout.

    make_tiny.py --family F --out DIR [--seed N] [--dtype float32|float16|bfloat16]
                 [--shards K]
    make_tiny.py --list

DIR receives
  config.json          the keys of the family's transformers config class
                       (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config,
                       GemmaConfig, Phi3Config, MixtralConfig,
                       Qwen2MoeConfig), with torch_dtype = --dtype;
  model.safetensors    (K = 1), or model-0000i-of-0000K.safetensors and
                       model.safetensors.index.json {"metadata": {"total_size"},
                       "weight_map": {tensor: file}} (K > 1), as
                       transformers' save_pretrained writes them.

Tensor names are transformers' state-dict names (model.embed_tokens.weight,
model.layers.N.self_attn.q_proj.weight, ..., lm_head.weight when untied).
Every family has its distinguishing feature switched on and sized so that it
changes the logits at the positions a test looks at (< 40). Matrices are
normal with std 1/sqrt(fan_in), times 1.5 for q and k and 3 for lm_head and
the tied tables (logits of std ~3, at most ~15), untied tables N(0, 1), norm
weights N(1, 0.1) (Gemma: N(0, 0.1)); SCALES and FAMILY_SCALES say more:

  llama         plain LLaMA (the baseline)
  llama3        rope_scaling llama3, original_max_position_embeddings 32:
                of the 8 frequencies of a 16-wide head one is left alone,
                one is interpolated and six are divided by the factor
  llama-linear  rope_scaling linear, factor 2
  qwen2         biases on q_proj, k_proj, v_proj; tied embeddings; theta 1e6
  qwen3         head_dim 32 != hidden 64 / 4 heads; q_norm and k_norm per head;
                tied embeddings (q/k projections small and the norms' weights
                ~1.2, so the per-head norm scales the attention scores by ~16)
  mistral       sliding_window 6 (context 64)
  gemma         hidden 48 (sqrt(48) is not exact in any dtype, so the
                dtype-rounded embedding multiplier matters), head_dim 32,
                norms (1 + weight) with weight ~ 0, tanh GELU, tied embeddings
                (and a constant channel that makes the GELU variant matter:
                see make_gemma)
  phi3          fused qkv_proj and gate_up_proj, sliding_window 7
  mixtral       MixtralForCausalLM: 2 layers, each a sparse MoE block
                (block_sparse_moe) of 8 experts of width 64 (w1 gate, w3 up,
                w2 down), top-2, renormalized; sliding_window null, theta 1e6
  qwen2_moe     Qwen2MoeForCausalLM (Qwen1.5-MoE-A2.7B's layout): 3 layers,
                q/k/v biases; layers 0 and 2 sparse (8 experts of width 48,
                top-2, norm_topk_prob false: the top-2 softmax weights are
                used as they are; a shared expert of width 96 behind a sigmoid
                gate), layer 1 dense (mlp_only_layers [1], intermediate_size
                160)
  qwen2_moe-norm  the same model type with norm_topk_prob true and the dense
                layers chosen by decoder_sparse_step 2 (of 3 layers, layer 1
                sparse, layers 0 and 2 dense); 8 experts of width 64, top-2

In the MoE families the token chooses its experts (see route_by_token): the
last E channels of the residual carry a per-token code that no layer writes
and each router reads, so that the gap between the k-th and the (k+1)-th
router logit is ~2 (> 0.85 at every position selftest.py tests, seeds 0-9),
far from what fp16 storage or fp32 arithmetic can flip; the softmax weights
still move with the context (the residual's rms, a small random part of the
router), the second expert has a weight of 0.1 to 1 times the first's, and
renormalizing the top-2 multiplies the weights by 1.0 to 1.6. The experts'
down projections are scaled up (expert_down 2) so that what the routing picks
moves the logits by several units.

Weights are deterministic in --seed (Python's random). The safetensors file
is written here: 8-byte little-endian header length, the JSON header (a
"__metadata__" {"format": "pt"} entry, then the tensors sorted by name, each
{"dtype", "shape", "data_offsets"}), padded with spaces to a multiple of 8
bytes as the safetensors library does, then the raw little-endian data in the
header's order.
"""
import argparse
import array
import json
import math
import os
import random
import struct
import sys

FAMILIES = ["llama", "llama3", "llama-linear", "qwen2", "qwen3", "mistral", "gemma", "phi3", "mixtral", "qwen2_moe",
            "qwen2_moe-norm"]
MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen2_moe-norm")

DTYPES = {  # --dtype -> (safetensors dtype, bytes per value)
    "float32": ("F32", 4),
    "float16": ("F16", 2),
    "bfloat16": ("BF16", 2),
}

# ---------------------------------------------------------------- configs


def base_sizes(family):
    """The small sizes shared by all families, with per-family changes."""
    s = dict(hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, inter=160, vocab=256, max_pos=64)
    if family == "qwen3":
        s["head_dim"] = 32  # explicit head_dim, not hidden / heads = 16
    if family == "gemma":
        s["hidden"] = 48
        s["head_dim"] = 32  # gemma's head_dim is given, not hidden / heads = 12
    if family == "mixtral":
        s.update(experts=8, topk=2, expert_inter=64)
    if family == "qwen2_moe":
        s.update(layers=3, experts=8, topk=2, expert_inter=48, shared_inter=96)
    if family == "qwen2_moe-norm":
        s.update(layers=3, experts=8, topk=2, expert_inter=64, shared_inter=96)
    return s


def make_config(family, dtype):
    """config.json for the family: the key names (and order) of real hub
    configs of that family, with tiny sizes."""
    s = base_sizes(family)
    common = {
        "hidden_size": s["hidden"],
        "intermediate_size": s["inter"],
        "max_position_embeddings": s["max_pos"],
        "num_attention_heads": s["heads"],
        "num_hidden_layers": s["layers"],
        "num_key_value_heads": s["kv_heads"],
        "vocab_size": s["vocab"],
    }
    if family in ("llama", "llama3", "llama-linear"):
        rope_scaling = None
        if family == "llama3":
            # transformers' _compute_llama3_parameters; Llama 3.1's own
            # factor / low / high, with a short original context
            rope_scaling = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 32, "rope_type": "llama3"}
        elif family == "llama-linear":
            rope_scaling = {"rope_type": "linear", "factor": 2.0}
        cfg = {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "mlp_bias": False,
            "model_type": "llama",
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": rope_scaling,
            "rope_theta": 10000.0,
            "tie_word_embeddings": False,
            "use_cache": True,
        }
    elif family == "mistral":
        cfg = {
            "architectures": ["MistralForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "model_type": "mistral",
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "sliding_window": 6,
            "tie_word_embeddings": False,
            "use_cache": True,
        }
    elif family == "qwen2":
        cfg = {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "max_window_layers": s["layers"],
            "model_type": "qwen2",
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000.0,
            # as in Qwen2 / Qwen2.5 hub configs: a window the size of the
            # context, and switched off anyway by use_sliding_window
            "sliding_window": s["max_pos"],
            "tie_word_embeddings": True,
            "use_cache": True,
            "use_sliding_window": False,
        }
    elif family == "qwen3":
        cfg = {
            "architectures": ["Qwen3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "head_dim": s["head_dim"],
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "max_window_layers": s["layers"],
            "model_type": "qwen3",
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "tie_word_embeddings": True,
            "use_cache": True,
            "use_sliding_window": False,
        }
    elif family == "gemma":
        # google/gemma-2b's keys: no tie_word_embeddings (GemmaConfig's
        # default, True), hidden_act "gelu" that GemmaMLP ignores in favour of
        # hidden_activation (transformers >= 4.38.2)
        cfg = {
            "architectures": ["GemmaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 2,
            "eos_token_id": 1,
            "head_dim": s["head_dim"],
            "hidden_act": "gelu",
            "hidden_activation": "gelu_pytorch_tanh",
            "initializer_range": 0.02,
            "model_type": "gemma",
            "pad_token_id": 0,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 10000.0,
            "use_cache": True,
        }
    elif family == "phi3":
        cfg = {
            "architectures": ["Phi3ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "embd_pdrop": 0.0,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "model_type": "phi3",
            "original_max_position_embeddings": s["max_pos"],
            "pad_token_id": 0,
            "resid_pdrop": 0.0,
            "rms_norm_eps": 1e-05,
            "rope_scaling": None,
            "rope_theta": 10000.0,
            "sliding_window": 7,
            "tie_word_embeddings": False,
            "use_cache": True,
        }
    elif family == "mixtral":
        # mistralai/Mixtral-8x7B-v0.1's keys; intermediate_size is the width
        # of every expert (MixtralBlockSparseTop2MLP's ffn_dim)
        cfg = {
            "architectures": ["MixtralForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "model_type": "mixtral",
            "num_experts_per_tok": s["topk"],
            "num_local_experts": s["experts"],
            "output_router_logits": False,
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000.0,
            "router_aux_loss_coef": 0.02,
            "sliding_window": None,
            "tie_word_embeddings": False,
            "use_cache": True,
        }
    elif family in ("qwen2_moe", "qwen2_moe-norm"):
        # Qwen/Qwen1.5-MoE-A2.7B's keys, plus mlp_only_layers (Qwen2MoeConfig:
        # [] when null); intermediate_size is the dense layers' MLP width
        cfg = {
            "architectures": ["Qwen2MoeForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "decoder_sparse_step": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "max_window_layers": s["layers"],
            "mlp_only_layers": [1],
            "model_type": "qwen2_moe",
            "moe_intermediate_size": s["expert_inter"],
            "norm_topk_prob": False,
            "num_experts": s["experts"],
            "num_experts_per_tok": s["topk"],
            "output_router_logits": False,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "router_aux_loss_coef": 0.001,
            "shared_expert_intermediate_size": s["shared_inter"],
            "sliding_window": s["max_pos"],
            "tie_word_embeddings": False,
            "use_cache": True,
            "use_sliding_window": False,
        }
        if family == "qwen2_moe-norm":
            cfg.update(norm_topk_prob=True, decoder_sparse_step=2, mlp_only_layers=[])
    else:
        raise SystemExit("make_tiny: unknown family %r (one of: %s)" % (family, ", ".join(FAMILIES)))
    cfg.update(common)
    if family == "mixtral":
        cfg["intermediate_size"] = s["expert_inter"]
    cfg["torch_dtype"] = dtype
    cfg["transformers_version"] = "4.44.0"
    return dict(sorted(cfg.items()))


# ---------------------------------------------------------------- weights


# Scales of the random weights (standard deviations in units of 1/sqrt(fan_in)
# for matrices). Defaults: logits ~ N(0, 3^2) from lm_head 3/sqrt(h) over a
# final norm output of rms ~1; q and k at 1.5 so that the attention scores
# have std ~2 and positions (RoPE, windows) visibly move the attention.
SCALES = {
    "embed": 1.0,        # untied embedding table, absolute std
    "tied_embed": 3.0,   # tied table, in units of 1/sqrt(h): it is the lm_head too
    "lm_head": 3.0,
    "qk": 1.5,
    "v": 1.0,
    "o": 1.0,
    "gate": 1.0,
    "up": 1.0,
    "down": 1.0,
}
FAMILY_SCALES = {
    # tied tables predict the token they embed; larger attention and MLP
    # outputs keep the residual from being mostly the embedding
    "qwen2": {"o": 2.5, "down": 2.5},
    # raw q, k of rms ~0.3 under q_norm / k_norm weights ~1.2: the per-head
    # norm scales the attention scores by ~16
    "qwen3": {"qk": 0.3, "o": 2.5, "down": 2.5},
}
# The MoE families' extra scales (units of 1/sqrt(fan_in)): the router's, each
# expert's gate / up / down (w1 / w3 / w2 in Mixtral), the shared expert's
# and its gate's (Qwen2-MoE; the gate's logit has std ~1, so sigmoid ~0.3-0.7).
MOE_SCALES = {
    "router": 0.15,      # the router's random part (see route_by_token)
    "expert_gate": 1.0,
    "expert_up": 1.0,
    "expert_down": 2.0,
    "shared_gate": 1.0,
    "shared_up": 1.0,
    "shared_down": 1.5,
    "shared_expert_gate": 1.0,
}


def sparse_layers(cfg):
    """The layers with a sparse MoE block. Mixtral: all of them.
    Qwen2MoeDecoderLayer: layer i is sparse iff i not in mlp_only_layers and
    num_experts > 0 and (i + 1) % decoder_sparse_step == 0."""
    L = cfg["num_hidden_layers"]
    if cfg["model_type"] == "mixtral":
        return list(range(L))
    if cfg["model_type"] == "qwen2_moe":
        only = cfg.get("mlp_only_layers") or []
        step = cfg.get("decoder_sparse_step", 1)
        return [i for i in range(L) if i not in only and cfg.get("num_experts", 60) > 0 and (i + 1) % step == 0]
    return []


def make_tensors(family, cfg, seed):
    """The state dict, in transformers' module order: [(name, shape, values)]
    with values a flat row-major list of floats (fp64, rounded on writing)."""
    rng = random.Random("%s/%d" % (family, seed))
    h = cfg["hidden_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or h // nh
    qd, kvd, f, V = nh * hd, nkv * hd, cfg["intermediate_size"], cfg["vocab_size"]
    tied = cfg.get("tie_word_embeddings", family == "gemma")
    sc = dict(SCALES, **FAMILY_SCALES.get(family, {}))
    gemma = family == "gemma"
    sparse = sparse_layers(cfg)
    out = []

    def normal(rows, cols, std, mean=0.0):
        return [rng.gauss(mean, std) for _ in range(rows * cols)]

    def matrix(rows, cols, scale):  # nn.Linear(cols, rows).weight
        return normal(rows, cols, scale / math.sqrt(cols))

    def add(name, shape, values):
        out.append((name, list(shape), values))

    if gemma:
        make_gemma(cfg, rng, add, normal, matrix)
        return out
    add("model.embed_tokens.weight", (V, h),
        normal(V, h, sc["tied_embed"] / math.sqrt(h) if tied else sc["embed"]))
    for j in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % j
        add(p + "input_layernorm.weight", (h,), normal(1, h, 0.1, 1.0))
        bias = family in ("qwen2", "qwen2_moe", "qwen2_moe-norm")
        if family == "phi3":
            # rows: q (qd), then k (kvd), then v (kvd): Phi3Attention slices
            # qkv[..., :qd], [qd:qd+kvd], [qd+kvd:]
            qkv = matrix(qd, h, sc["qk"]) + matrix(kvd, h, sc["qk"]) + matrix(kvd, h, sc["v"])
            add(p + "self_attn.qkv_proj.weight", (qd + 2 * kvd, h), qkv)
        else:
            add(p + "self_attn.q_proj.weight", (qd, h), matrix(qd, h, sc["qk"]))
            if bias:
                add(p + "self_attn.q_proj.bias", (qd,), normal(1, qd, 0.5))
            add(p + "self_attn.k_proj.weight", (kvd, h), matrix(kvd, h, sc["qk"]))
            if bias:
                add(p + "self_attn.k_proj.bias", (kvd,), normal(1, kvd, 0.5))
            add(p + "self_attn.v_proj.weight", (kvd, h), matrix(kvd, h, sc["v"]))
            if bias:  # small: a large one is an output common to every token
                add(p + "self_attn.v_proj.bias", (kvd,), normal(1, kvd, 0.1))
        add(p + "self_attn.o_proj.weight", (h, qd), matrix(h, qd, sc["o"]))
        if family == "qwen3":
            # Qwen3RMSNorm(head_dim) weights ~1.2
            add(p + "self_attn.q_norm.weight", (hd,), normal(1, hd, 0.2, 1.2))
            add(p + "self_attn.k_norm.weight", (hd,), normal(1, hd, 0.2, 1.2))
        add(p + "post_attention_layernorm.weight", (h,), normal(1, h, 0.1, 1.0))
        if j in sparse:
            make_moe(family, cfg, p, add, matrix)
            continue
        if family == "phi3":
            # rows: gate (f), then up (f): Phi3MLP does gate, up = x.chunk(2, dim=-1)
            add(p + "mlp.gate_up_proj.weight", (2 * f, h), matrix(f, h, sc["gate"]) + matrix(f, h, sc["up"]))
        else:
            add(p + "mlp.gate_proj.weight", (f, h), matrix(f, h, sc["gate"]))
            add(p + "mlp.up_proj.weight", (f, h), matrix(f, h, sc["up"]))
        add(p + "mlp.down_proj.weight", (h, f), matrix(h, f, sc["down"]))
    add("model.norm.weight", (h,), normal(1, h, 0.1, 1.0))
    if not tied:
        add("lm_head.weight", (V, h), matrix(V, h, sc["lm_head"]))
    if sparse:
        route_by_token(cfg, rng, out, sparse)
    return out


def make_moe(family, cfg, p, add, matrix):
    """One layer's sparse MoE block, in module order: the router, then every
    expert, then (Qwen2-MoE) the shared expert and its gate."""
    h, E = cfg["hidden_size"], cfg.get("num_local_experts") or cfg.get("num_experts")
    g = MOE_SCALES
    if family == "mixtral":
        # MixtralSparseMoeBlock: gate [E][h]; MixtralBlockSparseTop2MLP w1, w2, w3
        f = cfg["intermediate_size"]
        add(p + "block_sparse_moe.gate.weight", (E, h), matrix(E, h, g["router"]))
        for m in range(E):
            q = p + "block_sparse_moe.experts.%d." % m
            add(q + "w1.weight", (f, h), matrix(f, h, g["expert_gate"]))
            add(q + "w2.weight", (h, f), matrix(h, f, g["expert_down"]))
            add(q + "w3.weight", (f, h), matrix(f, h, g["expert_up"]))
        return
    # Qwen2MoeSparseMoeBlock: gate [E][h], experts (Qwen2MoeMLP of
    # moe_intermediate_size), shared_expert (shared_expert_intermediate_size),
    # shared_expert_gate [1][h]
    f, fs = cfg["moe_intermediate_size"], cfg["shared_expert_intermediate_size"]
    add(p + "mlp.gate.weight", (E, h), matrix(E, h, g["router"]))
    for m in range(E):
        q = p + "mlp.experts.%d." % m
        add(q + "gate_proj.weight", (f, h), matrix(f, h, g["expert_gate"]))
        add(q + "up_proj.weight", (f, h), matrix(f, h, g["expert_up"]))
        add(q + "down_proj.weight", (h, f), matrix(h, f, g["expert_down"]))
    q = p + "mlp.shared_expert."
    add(q + "gate_proj.weight", (fs, h), matrix(fs, h, g["shared_gate"]))
    add(q + "up_proj.weight", (fs, h), matrix(fs, h, g["shared_up"]))
    add(q + "down_proj.weight", (h, fs), matrix(h, fs, g["shared_down"]))
    add(p + "mlp.shared_expert_gate.weight", (1, h), matrix(1, h, g["shared_expert_gate"]))


# The routing of the MoE families. With a router of random rows, the gap
# between the k-th and the (k+1)-th router logit has a density of ~2.3 / std
# at 0 (8 experts, top-2): over the ~100 choices a comparison makes, one
# within 0.05 of flipping is likely whatever the scale, and two correct
# implementations (fp32 and fp64, fp16 rounding now and then landing on the
# other neighbour) can then pick different experts. So the choice is made by
# the token, through ROUTE channels that no layer writes: the last E channels
# of every embedding row hold a code (ROUTE_CODE[0] on the token's first
# expert channel, ROUTE_CODE[1] on its second, ROUTE_CODE[2] on the others:
# a random ordered pair per token), the rows of every o_proj, down_proj, w2
# (and shared_expert.down_proj) that write those channels are zero, and
# layer j's router reads channel CODE + pi_j(e) for expert e (pi_j a random
# permutation per layer) with the weight ROUTE_GAIN * MOE_REST[j], MOE_REST[j]
# being the rms of the residual assumed at layer j's post-attention norm, on
# top of its random part (MOE_SCALES["router"], router logits of std ~0.15
# from the other channels). The router logits of the two chosen experts are
# then ~1 apart and the others ~2 below the second (renormalizing the top-2
# multiplies their weights by ~1.2), times the ratio of MOE_REST to the
# residual's actual rms (~0.8 to 1.3), plus the random part: the top-k margin
# is ~2 (0.89 the smallest over the positions selftest.py tests, seeds 0-9),
# while the weights still move with the context.
ROUTE_CODE = [0.5, 0.25, -0.25]
ROUTE_GAIN = 4.0
MOE_REST = [1.2, 1.75, 2.0]


def route_by_token(cfg, rng, out, sparse):
    """Impose the token-chosen routing (above) on the drawn state dict. The
    code has two chosen experts: it is meant for top-2 (every tiny MoE
    family's k)."""
    h, V = cfg["hidden_size"], cfg["vocab_size"]
    E = cfg.get("num_local_experts") or cfg.get("num_experts")
    code = h - E  # the first routing channel
    t = {name: (shape, vals) for name, shape, vals in out}
    emb = t["model.embed_tokens.weight"][1]
    for v in range(V):
        first, second = rng.sample(range(E), 2)
        for e in range(E):
            emb[v * h + code + e] = ROUTE_CODE[0 if e == first else 1 if e == second else 2]
    for name, (shape, vals) in t.items():
        if name.endswith(("o_proj.weight", "down_proj.weight", ".w2.weight")):
            cols = shape[1]  # [h][cols]: zero the rows that write the routing channels
            vals[code * cols:] = [0.0] * ((h - code) * cols)
    for j in sparse:
        name = "model.layers.%d.%s.gate.weight" % (j, "block_sparse_moe" if cfg["model_type"] == "mixtral" else "mlp")
        vals = t[name][1]
        perm = list(range(E))
        rng.shuffle(perm)
        gain = ROUTE_GAIN * MOE_REST[min(j, len(MOE_REST) - 1)]
        for e in range(E):
            vals[e * h + code:(e + 1) * h] = [gain if c == perm[e] else 0.0 for c in range(E)]


# Gemma's tanh GELU differs from the exact one by at most ~4.4e-4 (at
# |x| ~ 2.6), about 1e-4 of a typical MLP output: with plain random weights
# it moves the logits by ~3e-3, below what fp16 storage leaves between two
# implementations. So the tiny Gemma has a constant channel (dimension 0 of
# every embedding row is GEMMA_CONST; no attention or MLP output writes it,
# values and up read nothing from it; the final norm's weight -1 drops it from
# the head) through which gate_proj pushes the gate pre-activations negative
# (90% of them between -4.5 and 0), where the two GELUs differ by up to 50%
# of their value, and a down_proj large enough that this MLP dominates the
# residual: the exact GELU then moves the logits by 0.4 to 0.9 (seeds 0-12),
# 100 times what fp16 storage leaves between two correct implementations.
# Everything else is random as in the other families.
GEMMA_CONST = 2.0
GEMMA = {"embed": 0.2, "qk": 1.5, "v": 4.0, "o": 3.0, "gate_c": -4.0, "gate": 0.5, "up": 1.0,
         "down": 3000.0}
# the assumed rms of the residual's other channels at the post-attention
# norm of layer 0, 1: they set the size of the gate's constant column
GEMMA_REST = [3.5, 4.5]


def make_gemma(cfg, rng, add, normal, matrix):
    h, nh, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    qd, kvd, f, V = nh * hd, nkv * hd, cfg["intermediate_size"], cfg["vocab_size"]
    g = GEMMA
    emb = normal(V, h, g["embed"])
    for v in range(V):
        emb[v * h] = GEMMA_CONST
    add("model.embed_tokens.weight", (V, h), emb)
    # the constant channel's value in the post-attention norm's output of
    # layer j: x0 = const * sqrt(h) over the rms of x0 and the other channels
    # (GEMMA_REST[j])
    x0 = GEMMA_CONST * math.sqrt(h)

    def hn0(j):
        rest = GEMMA_REST[min(j, len(GEMMA_REST) - 1)]
        return x0 / math.sqrt((x0 * x0 + (h - 1) * rest * rest) / h)

    for j in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % j
        add(p + "input_layernorm.weight", (h,), normal(1, h, 0.1))  # offsets from 1
        add(p + "self_attn.q_proj.weight", (qd, h), matrix(qd, h, g["qk"]))
        add(p + "self_attn.k_proj.weight", (kvd, h), matrix(kvd, h, g["qk"]))
        v = matrix(kvd, h, g["v"])
        for r in range(kvd):  # values and up carry no constant part: no output
            v[r * h] = 0.0    # direction common to every token
        add(p + "self_attn.v_proj.weight", (kvd, h), v)
        o = matrix(h, qd, g["o"])
        o[0:qd] = [0.0] * qd  # row 0: the constant channel stays constant
        add(p + "self_attn.o_proj.weight", (h, qd), o)
        add(p + "post_attention_layernorm.weight", (h,), normal(1, h, 0.1))
        gate = matrix(f, h, g["gate"])
        for r in range(f):
            gate[r * h] = rng.gauss(g["gate_c"], 0.3) / hn0(j)
        add(p + "mlp.gate_proj.weight", (f, h), gate)
        up = matrix(f, h, g["up"])
        for r in range(f):
            up[r * h] = 0.0
        add(p + "mlp.up_proj.weight", (f, h), up)
        down = matrix(h, f, g["down"])
        down[0:f] = [0.0] * f
        add(p + "mlp.down_proj.weight", (h, f), down)
    nw = normal(1, h, 0.1)
    nw[0] = -1.0  # (1 + w) = 0: the head does not see the constant channel
    add("model.norm.weight", (h,), nw)


# ---------------------------------------------------------------- safetensors


def encode(values, dtype):
    """Raw little-endian bytes of values in dtype (round to nearest even)."""
    n = len(values)
    if dtype == "float32":
        return struct.pack("<%df" % n, *values)
    if dtype == "float16":
        return struct.pack("<%de" % n, *values)  # IEEE binary16, round-half-even
    # bfloat16: the top 16 bits of the float32, rounded to nearest even
    bits = array.array("I", struct.pack("<%df" % n, *values))
    if sys.byteorder != "little":
        bits.byteswap()
    top = array.array("H", [((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF for b in bits])
    if sys.byteorder != "little":
        top.byteswap()
    return top.tobytes()


def write_safetensors(path, tensors, dtype):
    """tensors: [(name, shape, values)]. Writes them sorted by name."""
    st_dtype, _ = DTYPES[dtype]
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name, shape, values in sorted(tensors, key=lambda t: t[0]):
        data = encode(values, dtype)
        header[name] = {"dtype": st_dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the safetensors library pads to 8 bytes with spaces
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    return off


def write_checkpoint(out, family, seed=0, dtype="float32", shards=1):
    if dtype not in DTYPES:
        raise SystemExit("make_tiny: --dtype must be one of %s" % ", ".join(DTYPES))
    if shards < 1:
        raise SystemExit("make_tiny: --shards must be >= 1")
    os.makedirs(out, exist_ok=True)
    cfg = make_config(family, dtype)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    tensors = make_tensors(family, cfg, seed)
    if shards > len(tensors):
        raise SystemExit("make_tiny: %d shards for %d tensors" % (shards, len(tensors)))
    if shards == 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype)
        return cfg
    # contiguous groups of the state dict of about equal bytes, as
    # transformers' split_torch_state_dict_into_shards fills shards in order
    size = DTYPES[dtype][1]
    nbytes = [len(v) * size for _, _, v in tensors]
    total = sum(nbytes)
    groups = [[] for _ in range(shards)]
    acc = 0
    for t, b in zip(tensors, nbytes):
        groups[min(shards - 1, acc * shards // total)].append(t)
        acc += b
    if any(not g for g in groups):  # a huge tensor first: fall back to counts
        groups = [tensors[i * len(tensors) // shards:(i + 1) * len(tensors) // shards] for i in range(shards)]
    weight_map = {}
    for i, g in enumerate(groups):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        write_safetensors(os.path.join(out, fname), g, dtype)
        for name, _, _ in g:
            weight_map[name] = fname
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return cfg


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a tiny random Hugging Face checkpoint.")
    ap.add_argument("--family", choices=FAMILIES)
    ap.add_argument("--out", help="the checkpoint directory (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float32", choices=list(DTYPES))
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--list", action="store_true", help="print the family names and exit")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(FAMILIES))
        return 0
    if not a.family or not a.out:
        ap.error("--family and --out are required (or --list)")
    write_checkpoint(a.out, a.family, a.seed, a.dtype, a.shards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
