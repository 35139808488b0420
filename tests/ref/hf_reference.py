#!/usr/bin/env python3
"""hf_reference — the forward pass of Hugging Face transformers' decoder LMs in
plain Python floats (fp64), for checking llmsim's engine on tiny checkpoints.

    hf_reference.py DIR --tokens FILE [--engine-rounding] [--disable FEATURE]
                    [--out FILE] [--routing-out FILE]

DIR     a checkpoint: config.json and model.safetensors, or the shards named by
        model.safetensors.index.json's weight_map (F32, F16 and BF16 tensors,
        converted to float exactly).
FILE    one sequence per line, whitespace-separated token ids. Each line is run
        teacher-forced (one causal pass over the whole line, which is what
        incremental decoding with a KV cache computes too) and the logits after
        every position are kept.

Output (to --out, else stdout), JSON:
    {"model_type": str, "vocab_size": V, "engine_rounding": bool,
     "disabled": FEATURE or null,
     "logits": [ [ [V floats] per position ] per line ]}
logits[s][p] are the logits after token p of line s (they predict token p+1).
Floats are written with repr, so they read back exactly.

--routing-out FILE (MoE models only), JSON:
    {"model_type", "num_experts": E, "top_k": k, "renormalized": bool (the
     top-k weights divided by their sum), "shared_expert": bool,
     "engine_rounding", "disabled", "sparse_layers": [layer ids],
     "experts":       [s][p][i] -> k expert ids, in torch.topk's order (by
                      routing weight, largest first; equal weights: lowest id
                      first),
     "weights":       [s][p][i] -> the k weights applied to those experts,
     "router_logits": [s][p][i] -> the E router logits,
     "margin":        [s][p][i] -> the k-th largest router logit minus the
                      (k+1)-th (null when k = E): how far the choice is from
                      flipping}
where i indexes sparse_layers.

Supported (transformers class: what is followed)
  llama   LlamaForCausalLM: RMSNorm, RoPE (rope_scaling null, "linear",
          "llama3"; anything else is refused), GQA, SwiGLU.
  mistral MistralForCausalLM: llama with a sliding window: query i attends key
          j iff j <= i and j > i - sliding_window (masking_utils'
          causal_mask_function and sliding_window_overlay). MistralConfig's
          default window, when the key is absent, is 4096.
  qwen2   Qwen2ForCausalLM: biases on q_proj, k_proj, v_proj (not o_proj, not
          the MLP); use_sliding_window true is refused.
  qwen3   Qwen3ForCausalLM: explicit head_dim; Qwen3RMSNorm over each head of
          q and k (q_norm, k_norm) after the projection, before RoPE.
  gemma   GemmaForCausalLM: embeddings times sqrt(hidden_size) rounded to the
          model dtype (GemmaModel: torch.tensor(hidden_size**0.5,
          dtype=hidden_states.dtype)); GemmaRMSNorm x * rsqrt(mean(x^2) + eps) *
          (1 + w); GemmaMLP down(act(gate(x)) * up(x)) with act =
          hidden_activation, "gelu_pytorch_tanh" when it is null (hidden_act is
          ignored, transformers >= 4.38.2); tied embeddings by default.
  phi3    Phi3ForCausalLM: fused qkv_proj (rows q, k, v: Phi3Attention's
          slices) and gate_up_proj (gate rows first: Phi3MLP's
          chunk(2, dim=-1)); sliding window as mistral; non-null rope_scaling
          (longrope, su, yarn) is refused.
  mixtral MixtralForCausalLM: attention as llama (sliding_window as mistral
          when not null; MixtralConfig's default is null); every layer's MLP
          is MixtralSparseMoeBlock (block_sparse_moe): see MoE below, with
          num_local_experts experts (MixtralBlockSparseTop2MLP: w2(silu(w1 x)
          * w3 x), width intermediate_size), top num_experts_per_tok,
          always renormalized. router_jitter_noise acts in training only.
  qwen2_moe Qwen2MoeForCausalLM: attention as qwen2 (q/k/v biases when
          qkv_bias, Qwen2MoeConfig's default true; use_sliding_window true is
          refused). Qwen2MoeDecoderLayer: layer i has a Qwen2MoeSparseMoeBlock
          iff i not in mlp_only_layers and num_experts > 0 and
          (i + 1) % decoder_sparse_step == 0, else a dense Qwen2MoeMLP of
          intermediate_size. The sparse block: MoE below with num_experts
          experts (Qwen2MoeMLP of moe_intermediate_size), top
          num_experts_per_tok, renormalized iff norm_topk_prob (default
          false), plus sigmoid(shared_expert_gate(x)) * shared_expert(x)
          (shared_expert_gate: [1][hidden]; shared_expert: a Qwen2MoeMLP of
          shared_expert_intermediate_size).

Shared math (LlamaModel and its relatives):
  RMSNorm (LlamaRMSNorm): x * rsqrt(mean(x^2) + eps) * w, in float.
  RoPE (_compute_default_rope_parameters, apply_rotary_pos_emb, rotate_half):
    inv_freq[i] = theta^(-2i/d), i < d/2, then rope_scaling; angle = pos *
    inv_freq[i]; x'[i] = x[i] cos - x[i+d/2] sin, x'[i+d/2] = x[i+d/2] cos +
    x[i] sin. linear (_compute_linear_scaling_rope_parameters): inv_freq /
    factor. llama3 (_compute_llama3_parameters): wavelen = 2 pi / inv_freq;
    wavelen > old/low: inv_freq / factor; wavelen < old/high: unchanged; else
    (1 - s) inv_freq / factor + s inv_freq with s = (old / wavelen - low) /
    (high - low). Both have attention_factor 1.
  Attention (eager_attention_forward): softmax(q k^T / sqrt(head_dim) + mask) v,
    query head h reads kv head h // (heads / kv_heads) (repeat_kv).
  MLP (LlamaMLP): down(silu(gate(x)) * up(x)).
  Head: final norm, then lm_head (or embed_tokens when tied).
  MoE (MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock.forward), per token x
    (the post-attention norm's output): router_logits = gate(x) (no bias);
    routing_weights = softmax(router_logits) over all E experts (HF: in
    float32, dtype=torch.float); routing_weights, selected_experts =
    torch.topk(routing_weights, k) (chosen on the probabilities, so on the
    logits' order; torch does not document the order of equal values: here
    equal probabilities go lowest expert id first, which is what torch.topk
    on CPU gives in practice; the tiny models never tie); renormalized:
    w /= sum(w); out = sum over the chosen experts, in increasing expert id
    (HF's loop over expert_hit and index_add_), of w * expert(x). Only the
    chosen experts are evaluated.
  Everything in fp64, inv_freq and the angles included (transformers takes
  those in float32, ~1e-7 relative away); the model's own rounding (bf16 or
  fp16 activations in transformers) is not modelled, apart from Gemma's
  normalizer, which is part of the model's definition.

--engine-rounding mirrors where llmsim's CPU engine stores numbers in fp16,
so that a comparison can be tight: the K and V rows are rounded to IEEE fp16
(round to nearest even) as they enter the KV cache (K after RoPE), and the
residual stream is rounded to fp16 after every decoder layer but the last.
Everything else stays fp64 (the weights are as stored in the file already;
the MoE's router logits and weights included: HF's cast of the routing
weights back to the activations' dtype is part of the bf16 / fp16 model's
rounding, not modelled).

--disable FEATURE switches one feature of the model's family off, so that a
test can show the feature matters: rope_scaling (unscaled inv_freq),
sliding_window (attend over the whole prefix), qkv_bias, qk_norm, embed_scale,
norm_plus_one (Gemma norm with w instead of 1 + w), gelu_tanh (exact erf GELU),
fused_split (phi3: gate and up halves swapped, a wrong split), topk_renorm
(mixtral, and qwen2_moe with norm_topk_prob true: the top-k softmax weights
used without dividing by their sum), shared_expert (qwen2_moe: the shared
expert and its gate dropped from every sparse layer). Disabling a feature the
model does not have is an error.

Exit status: 0 done, 2 bad input or an unsupported config.
"""
import argparse
import json
import math
import os
import struct
import sys
from operator import mul

FEATURES = ["rope_scaling", "sliding_window", "qkv_bias", "qk_norm", "embed_scale",
            "norm_plus_one", "gelu_tanh", "fused_split", "topk_renorm", "shared_expert"]


class RefError(Exception):
    """Bad input or a config this reference does not implement."""


# ---------------------------------------------------------------- safetensors


def _decode(raw, dtype, n):
    """n little-endian values of safetensors dtype from raw, as floats (exact)."""
    if dtype == "F32":
        return list(struct.unpack("<%df" % n, raw))
    if dtype == "F16":
        return list(struct.unpack("<%de" % n, raw))
    if dtype == "BF16":
        # a bfloat16 is the top half of a float32
        halves = struct.unpack("<%dH" % n, raw)
        return list(struct.unpack("<%df" % n, struct.pack("<%dI" % n, *[b << 16 for b in halves])))
    raise RefError("tensor dtype %s is not supported (F32, F16, BF16)" % dtype)


_SIZES = {"F32": 4, "F16": 2, "BF16": 2}


def read_safetensors(path):
    """{name: (dtype, shape, flat values)} of one safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise RefError("%s: too short for a safetensors file" % path)
    (hlen,) = struct.unpack("<Q", data[:8])
    if 8 + hlen > len(data):
        raise RefError("%s: header length %d past the end" % (path, hlen))
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    body = memoryview(data)[8 + hlen:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (b, e) = t["dtype"], t["shape"], t["data_offsets"]
        n = 1
        for d in shape:
            n *= d
        if dtype not in _SIZES:
            raise RefError("%s: %s has dtype %s (F32, F16, BF16 supported)" % (path, name, dtype))
        if e - b != n * _SIZES[dtype] or e > len(body) or b < 0:
            raise RefError("%s: %s: data_offsets [%d, %d] do not fit shape %s" % (path, name, b, e, shape))
        out[name] = (dtype, shape, _decode(bytes(body[b:e]), dtype, n))
    return out


def read_checkpoint(d):
    """(config dict, {name: (dtype, shape, values)}) of checkpoint directory d."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    index = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        with open(index) as f:
            wm = json.load(f)["weight_map"]
        for fname in sorted(set(wm.values())):
            part = read_safetensors(os.path.join(d, fname))
            for name, t in part.items():
                if wm.get(name) != fname:
                    raise RefError("%s: tensor %s is not mapped to this file by the index" % (fname, name))
                tensors[name] = t
        missing = set(wm) - set(tensors)
        if missing:
            raise RefError("index names tensors no shard holds: %s" % ", ".join(sorted(missing)[:5]))
    else:
        tensors = read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, tensors


# ---------------------------------------------------------------- numerics


def round_f16(v):
    """A list of floats rounded to IEEE binary16 (round to nearest even)."""
    n = len(v)
    return list(struct.unpack("<%de" % n, struct.pack("<%de" % n, *v)))


def round_dtype(x, dtype):
    """One float rounded to a torch dtype (float32, float16, bfloat16)."""
    if dtype in ("float32", "F32"):
        return struct.unpack("<f", struct.pack("<f", x))[0]
    if dtype in ("float16", "F16"):
        return struct.unpack("<e", struct.pack("<e", x))[0]
    if dtype in ("bfloat16", "BF16"):
        (b,) = struct.unpack("<I", struct.pack("<f", x))
        b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
        return struct.unpack("<f", struct.pack("<I", b & 0xFFFFFFFF))[0]
    if dtype in ("float64", "F64"):
        return x
    raise RefError("unknown dtype %r" % dtype)


def matvec(w, x):
    """w [rows][cols] times x [cols]: nn.Linear without bias (fp64 sums)."""
    return [sum(map(mul, row, x)) for row in w]


def rms_norm(x, w, eps, plus_one=False):
    """LlamaRMSNorm (x * rsqrt(mean(x^2) + eps) * w) or, plus_one,
    GemmaRMSNorm (... * (1 + w))."""
    r = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    if plus_one:
        return [v * r * (1.0 + g) for v, g in zip(x, w)]
    return [v * r * g for v, g in zip(x, w)]


def silu(x):
    # ACT2FN["silu"]: x * sigmoid(x)
    return x / (1.0 + math.exp(-x)) if x > -700 else 0.0


def gelu_tanh(x):
    # ACT2FN["gelu_pytorch_tanh"]: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def softmax(v):
    m = max(v)
    e = [math.exp(a - m) for a in v]
    z = sum(e)
    return [a / z for a in e]


def topk(probs, k):
    """torch.topk(probs, k) indices: largest first; equal values lowest index
    first (what torch.topk on CPU returns in practice; undocumented)."""
    return sorted(range(len(probs)), key=lambda i: (-probs[i], i))[:k]


def gelu_erf(x):
    # ACT2FN["gelu"]: 0.5 x (1 + erf(x / sqrt(2)))
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


# ---------------------------------------------------------------- the model


# transformers config classes' defaults of the keys read here
_DEFAULTS = {
    "llama": dict(eps=1e-6, theta=10000.0, tied=False, head_dim=None),
    "mistral": dict(eps=1e-6, theta=10000.0, tied=False, head_dim=None),
    "qwen2": dict(eps=1e-6, theta=10000.0, tied=False, head_dim=None),
    "qwen3": dict(eps=1e-6, theta=10000.0, tied=False, head_dim=128),
    "gemma": dict(eps=1e-6, theta=10000.0, tied=True, head_dim=256),
    "phi3": dict(eps=1e-5, theta=10000.0, tied=False, head_dim=None),
    "mixtral": dict(eps=1e-5, theta=1e6, tied=False, head_dim=None),
    "qwen2_moe": dict(eps=1e-6, theta=10000.0, tied=False, head_dim=None),
}


class Model:
    def __init__(self, cfg, tensors, disable=None):
        self.cfg = cfg
        mt = cfg.get("model_type")
        if mt not in _DEFAULTS:
            raise RefError("model_type %r is not supported (%s)" % (mt, ", ".join(_DEFAULTS)))
        self.type = mt
        dflt = _DEFAULTS[mt]

        def need(key):
            if cfg.get(key) is None:
                raise RefError("config.json: missing %r" % key)
            return cfg[key]

        self.h = need("hidden_size")
        self.nh = need("num_attention_heads")
        self.nkv = cfg.get("num_key_value_heads") or self.nh
        self.hd = cfg.get("head_dim") or dflt["head_dim"] or self.h // self.nh
        self.L = need("num_hidden_layers")
        self.V = need("vocab_size")
        # Qwen2MoeConfig's default dense width (read only by dense layers)
        self.f = cfg.get("intermediate_size", 5632) if mt == "qwen2_moe" else need("intermediate_size")
        self.eps = cfg.get("rms_norm_eps", dflt["eps"])
        self.theta = cfg.get("rope_theta", dflt["theta"])
        self.tied = cfg.get("tie_word_embeddings", dflt["tied"])
        if self.nh % self.nkv:
            raise RefError("num_attention_heads is not a multiple of num_key_value_heads")
        if self.hd % 2:
            raise RefError("head_dim must be even for RoPE")
        self.dtype = cfg.get("torch_dtype") or cfg.get("dtype")

        # ---- refuse what is not implemented (it would compute something else)
        if cfg.get("attention_bias") and mt not in ("qwen2", "qwen2_moe"):
            raise RefError("attention_bias true is not implemented")
        if cfg.get("mlp_bias"):
            raise RefError("mlp_bias true is not implemented")
        if cfg.get("partial_rotary_factor", 1.0) != 1.0:
            raise RefError("partial_rotary_factor != 1 is not implemented")
        for key in ("attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar"):
            if cfg.get(key) is not None:
                raise RefError("%s is not implemented" % key)
        if mt != "gemma" and cfg.get("hidden_act", "silu") != "silu":
            raise RefError("hidden_act %r is not implemented (silu)" % cfg.get("hidden_act"))

        # ---- the family's features
        self.inv_freq_plain = [self.theta ** (-(2.0 * i) / self.hd) for i in range(self.hd // 2)]
        self.inv_freq = self._rope_scaling(cfg.get("rope_scaling"))
        self.window = None
        if mt == "mistral":
            self.window = cfg["sliding_window"] if "sliding_window" in cfg else 4096
        elif mt == "phi3":
            self.window = cfg.get("sliding_window")
        elif mt == "mixtral":
            self.window = cfg.get("sliding_window")
        elif mt in ("qwen2", "qwen3", "qwen2_moe"):
            if cfg.get("use_sliding_window"):
                raise RefError("use_sliding_window true (%s) is not implemented" % mt)
        # Qwen2MoeAttention: bias=config.qkv_bias (True by default; older
        # transformers: always True)
        self.has_bias = mt == "qwen2" or (mt == "qwen2_moe" and bool(cfg.get("qkv_bias", True)))
        self.qkv_bias = self.has_bias
        self._moe_config(cfg)
        self.qk_norm = mt == "qwen3"
        self.gemma = mt == "gemma"
        self.act = silu
        if self.gemma:
            name = cfg.get("hidden_activation") or "gelu_pytorch_tanh"
            acts = {"gelu_pytorch_tanh": gelu_tanh, "gelu": gelu_erf}
            if name not in acts:
                raise RefError("hidden_activation %r is not implemented" % name)
            self.act = acts[name]
        self.embed_scale = None
        self.norm_plus_one = self.gemma
        self.fused = mt == "phi3"
        self.swap_fused = False

        # ---- --disable
        if disable:
            self._disable(disable)

        self._load(tensors)
        if self.gemma and self.embed_scale is None:  # (--disable embed_scale set it to 1)
            # GemmaModel: normalizer = torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype)
            self.embed_scale = round_dtype(math.sqrt(self.h), self.dtype or self.embed_dtype)

    def _moe_config(self, cfg):
        """The MoE settings: self.sparse (the layers with a sparse block),
        self.E, self.k, self.renorm, self.shared, self.fe (expert width),
        self.fs (shared expert width)."""
        mt = self.type
        self.sparse, self.E, self.k, self.renorm, self.shared = [], 0, 0, False, False
        if mt == "mixtral":
            self.E = cfg.get("num_local_experts", 8)
            self.k = cfg.get("num_experts_per_tok", 2)
            self.fe = self.f
            self.renorm = True  # MixtralSparseMoeBlock always renormalizes
            self.sparse = list(range(self.L))
        elif mt == "qwen2_moe":
            self.E = cfg.get("num_experts", 60)
            self.k = cfg.get("num_experts_per_tok", 4)
            self.fe = cfg.get("moe_intermediate_size", 1408)
            self.fs = cfg.get("shared_expert_intermediate_size", 5632)
            self.renorm = bool(cfg.get("norm_topk_prob", False))
            step = cfg.get("decoder_sparse_step", 1)
            only = cfg.get("mlp_only_layers") or []  # Qwen2MoeConfig: null -> []
            if not isinstance(step, int) or step < 1:
                raise RefError("decoder_sparse_step %r: want an integer >= 1" % (step,))
            # Qwen2MoeDecoderLayer.__init__
            self.sparse = [i for i in range(self.L)
                           if i not in only and self.E > 0 and (i + 1) % step == 0]
            self.shared = bool(self.sparse)
        if self.sparse:
            if not (isinstance(self.k, int) and isinstance(self.E, int) and 1 <= self.k <= self.E):
                raise RefError("num_experts_per_tok %r with %r experts: want 1 <= k <= experts" % (self.k, self.E))
        # (router_jitter_noise: MixtralSparseMoeBlock applies it only when training)

    def _rope_scaling(self, rs):
        """inv_freq after rope_scaling (transformers' ROPE_INIT_FUNCTIONS)."""
        self.rope_type = None
        if rs is None:
            return list(self.inv_freq_plain)
        if self.type not in ("llama", "mistral", "qwen2", "qwen3", "gemma"):
            raise RefError("rope_scaling %s is not implemented for %s" % (json.dumps(rs), self.type))
        rt = rs.get("rope_type", rs.get("type"))
        self.rope_type = rt
        if rt == "default":
            self.rope_type = None
            return list(self.inv_freq_plain)
        if rt == "linear":
            # _compute_linear_scaling_rope_parameters: inv_freq /= factor
            return [f / rs["factor"] for f in self.inv_freq_plain]
        if rt == "llama3":
            # _compute_llama3_parameters
            factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wl, high_wl = old / low, old / high
            out = []
            for f in self.inv_freq_plain:
                wl = 2 * math.pi / f
                if wl < high_wl:
                    out.append(f)  # high frequency: unchanged
                elif wl > low_wl:
                    out.append(f / factor)  # low frequency: divided by the factor
                else:  # medium: interpolated
                    s = (old / wl - low) / (high - low)
                    out.append((1 - s) * f / factor + s * f)
            return out
        raise RefError("rope_scaling type %r is not implemented (linear, llama3)" % rt)

    def _disable(self, feat):
        has = {
            "rope_scaling": self.rope_type is not None,
            "sliding_window": self.window is not None,
            "qkv_bias": self.qkv_bias,
            "qk_norm": self.qk_norm,
            "embed_scale": self.gemma,
            "norm_plus_one": self.gemma,
            "gelu_tanh": self.act is gelu_tanh,
            "fused_split": self.fused,
            "topk_renorm": bool(self.sparse) and self.renorm,
            "shared_expert": self.shared,
        }
        if feat not in has:
            raise RefError("--disable %s: unknown feature (%s)" % (feat, ", ".join(FEATURES)))
        if not has[feat]:
            raise RefError("--disable %s: this %s model does not have that feature" % (feat, self.type))
        if feat == "rope_scaling":
            self.inv_freq = list(self.inv_freq_plain)
        elif feat == "sliding_window":
            self.window = None
        elif feat == "qkv_bias":
            self.qkv_bias = False  # the biases are read, then ignored
        elif feat == "qk_norm":
            self.qk_norm = False
        elif feat == "embed_scale":
            self.embed_scale = 1.0
        elif feat == "norm_plus_one":
            self.norm_plus_one = False
        elif feat == "gelu_tanh":
            self.act = gelu_erf
        elif feat == "fused_split":
            self.swap_fused = True
        elif feat == "topk_renorm":
            self.renorm = False
        elif feat == "shared_expert":
            self.shared = False  # the shared expert's tensors are read, then ignored

    def _load(self, tensors):
        used = set()
        h, hd, qd, kvd, f = self.h, self.hd, self.nh * self.hd, self.nkv * self.hd, self.f

        def get(name, shape):
            if name not in tensors:
                raise RefError("checkpoint: missing tensor %s" % name)
            dtype, s, vals = tensors[name]
            if list(s) != list(shape):
                raise RefError("checkpoint: %s has shape %s, the config says %s" % (name, s, list(shape)))
            used.add(name)
            if len(shape) == 1:
                return vals
            cols = shape[1]
            return [vals[r * cols:(r + 1) * cols] for r in range(shape[0])]

        self.embed = get("model.embed_tokens.weight", (self.V, h))
        self.embed_dtype = tensors["model.embed_tokens.weight"][0]
        self.layers = []
        for j in range(self.L):
            p = "model.layers.%d." % j
            ly = {"in_norm": get(p + "input_layernorm.weight", (h,)),
                  "post_norm": get(p + "post_attention_layernorm.weight", (h,))}
            if j in self.sparse:
                ly.update(self._load_moe(p, get))
            if self.fused:
                # Phi3Attention: q = qkv[..., :qd], k = [qd:qd+kvd], v = [qd+kvd:]
                qkv = get(p + "self_attn.qkv_proj.weight", (qd + 2 * kvd, h))
                ly["q"], ly["k"], ly["v"] = qkv[:qd], qkv[qd:qd + kvd], qkv[qd + kvd:]
                # Phi3MLP: gate, up = gate_up_proj(x).chunk(2, dim=-1)
                gu = get(p + "mlp.gate_up_proj.weight", (2 * f, h))
                ly["gate"], ly["up"] = gu[:f], gu[f:]
                if self.swap_fused:
                    ly["gate"], ly["up"] = ly["up"], ly["gate"]
            else:
                ly["q"] = get(p + "self_attn.q_proj.weight", (qd, h))
                ly["k"] = get(p + "self_attn.k_proj.weight", (kvd, h))
                ly["v"] = get(p + "self_attn.v_proj.weight", (kvd, h))
                if j not in self.sparse:
                    ly["gate"] = get(p + "mlp.gate_proj.weight", (f, h))
                    ly["up"] = get(p + "mlp.up_proj.weight", (f, h))
            if self.has_bias:
                # Qwen2Attention: q_proj, k_proj, v_proj with bias=True, o_proj bias=False
                ly["qb"] = get(p + "self_attn.q_proj.bias", (qd,))
                ly["kb"] = get(p + "self_attn.k_proj.bias", (kvd,))
                ly["vb"] = get(p + "self_attn.v_proj.bias", (kvd,))
            if self.type == "qwen3":
                ly["q_norm"] = get(p + "self_attn.q_norm.weight", (hd,))
                ly["k_norm"] = get(p + "self_attn.k_norm.weight", (hd,))
            ly["o"] = get(p + "self_attn.o_proj.weight", (h, qd))
            if j not in self.sparse:
                ly["down"] = get(p + "mlp.down_proj.weight", (h, f))
            self.layers.append(ly)
        self.norm = get("model.norm.weight", (h,))
        # tied: lm_head shares embed_tokens (PreTrainedModel.tie_weights)
        self.lm_head = self.embed if self.tied else get("lm_head.weight", (self.V, h))
        extra = sorted(n for n in tensors if n not in used and not n.endswith("rotary_emb.inv_freq"))
        if extra:
            raise RefError("checkpoint: tensors this %s model does not use: %s" % (self.type, ", ".join(extra[:5])))

    def _load_moe(self, p, get):
        """One sparse layer's router, experts [(gate, up, down)] and (Qwen2-MoE)
        shared expert and its gate."""
        h, E, fe = self.h, self.E, self.fe
        if self.type == "mixtral":
            # MixtralSparseMoeBlock.gate, .experts[m].w1 (gate), .w3 (up), .w2 (down)
            q = p + "block_sparse_moe."
            return {"router": get(q + "gate.weight", (E, h)),
                    "experts": [(get(q + "experts.%d.w1.weight" % m, (fe, h)),
                                 get(q + "experts.%d.w3.weight" % m, (fe, h)),
                                 get(q + "experts.%d.w2.weight" % m, (h, fe))) for m in range(E)]}
        # Qwen2MoeSparseMoeBlock.gate, .experts[m], .shared_expert, .shared_expert_gate
        q, fs = p + "mlp.", self.fs
        return {"router": get(q + "gate.weight", (E, h)),
                "experts": [(get(q + "experts.%d.gate_proj.weight" % m, (fe, h)),
                             get(q + "experts.%d.up_proj.weight" % m, (fe, h)),
                             get(q + "experts.%d.down_proj.weight" % m, (h, fe))) for m in range(E)],
                "shared_mlp": (get(q + "shared_expert.gate_proj.weight", (fs, h)),
                               get(q + "shared_expert.up_proj.weight", (fs, h)),
                               get(q + "shared_expert.down_proj.weight", (h, fs))),
                "shared_gate": get(q + "shared_expert_gate.weight", (1, h))[0]}

    # ---- the forward pass

    def _mlp(self, w, x):
        """LlamaMLP / MixtralBlockSparseTop2MLP / Qwen2MoeMLP: down(act(gate(x)) * up(x))."""
        gate, up, down = w
        return matvec(down, [self.act(a) * b for a, b in zip(matvec(gate, x), matvec(up, x))])

    def moe(self, ly, x, record=None):
        """The sparse MoE block of layer ly on one token's normed hidden state
        x; appends {"experts", "weights", "router_logits", "margin"} to
        record when given."""
        logits = matvec(ly["router"], x)
        probs = softmax(logits)  # F.softmax(router_logits, dim=1, dtype=torch.float)
        chosen = topk(probs, self.k)  # torch.topk(routing_weights, top_k)
        w = [probs[i] for i in chosen]
        if self.renorm:  # routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
            s = sum(w)
            w = [a / s for a in w]
        if record is not None:
            srt = sorted(logits, reverse=True)
            record.append({"experts": chosen, "weights": w, "router_logits": logits,
                           "margin": srt[self.k - 1] - srt[self.k] if self.k < self.E else None})
        out = [0.0] * self.h
        for i, wi in sorted(zip(chosen, w)):  # HF adds the experts' outputs in expert order
            y = self._mlp(ly["experts"][i], x)
            out = [a + wi * b for a, b in zip(out, y)]
        if self.shared:
            # shared_expert_output = F.sigmoid(shared_expert_gate(x)) * shared_expert(x)
            g = sigmoid(sum(map(mul, ly["shared_gate"], x)))
            y = self._mlp(ly["shared_mlp"], x)
            out = [a + g * b for a, b in zip(out, y)]
        return out

    def _rope(self, vec, heads, cos, sin):
        """apply_rotary_pos_emb on every head of vec (rotate_half convention)."""
        hd, half = self.hd, self.hd // 2
        out = []
        for hh in range(heads):
            x1 = vec[hh * hd:hh * hd + half]
            x2 = vec[hh * hd + half:(hh + 1) * hd]
            out += [a * c - b * s for a, b, c, s in zip(x1, x2, cos, sin)]
            out += [b * c + a * s for a, b, c, s in zip(x1, x2, cos, sin)]
        return out

    def _head_norm(self, vec, heads, w):
        """Qwen3RMSNorm(head_dim) over each head of vec."""
        hd = self.hd
        out = []
        for hh in range(heads):
            out += rms_norm(vec[hh * hd:(hh + 1) * hd], w, self.eps)
        return out

    def forward(self, toks, engine_rounding=False, jitter=None, routing=None):
        """Logits after every position of toks (teacher-forced), [n][V].

        routing (MoE models): a list that receives, per position, the list of
        the sparse layers' records (see moe).

        jitter (for self-tests): (random.Random, rel) multiplies every value
        that --engine-rounding rounds by (1 + rel * N(0, 1)) first, to mimic
        another implementation's fp32 arithmetic and so estimate how far two
        correct implementations can differ (values that round the other way)."""
        n, hd, nh, nkv = len(toks), self.hd, self.nh, self.nkv

        def store(v):
            if jitter:
                rng, rel = jitter
                v = [a * (1.0 + rel * rng.gauss(0.0, 1.0)) for a in v]
            return round_f16(v) if engine_rounding else v

        if routing is not None:
            routing.extend([] for _ in range(n))
        for t in toks:
            if not 0 <= t < self.V:
                raise RefError("token id %d outside the vocabulary [0, %d)" % (t, self.V))
        # embed_tokens (GemmaModel: times the dtype-rounded normalizer)
        x = [list(self.embed[t]) for t in toks]
        if self.embed_scale is not None:
            x = [[v * self.embed_scale for v in row] for row in x]
        # LlamaRotaryEmbedding: cos/sin of pos * inv_freq
        cos = [[math.cos(p * f) for f in self.inv_freq] for p in range(n)]
        sin = [[math.sin(p * f) for f in self.inv_freq] for p in range(n)]
        scale = 1.0 / math.sqrt(hd)
        group = nh // nkv
        for j, ly in enumerate(self.layers):
            # ---- self-attention block (LlamaDecoderLayer: x + attn(norm(x)))
            K, Vv, Q = [], [], []
            for p in range(n):
                hn = rms_norm(x[p], ly["in_norm"], self.eps, self.norm_plus_one)
                q, k, v = matvec(ly["q"], hn), matvec(ly["k"], hn), matvec(ly["v"], hn)
                if self.qkv_bias:
                    q = [a + b for a, b in zip(q, ly["qb"])]
                    k = [a + b for a, b in zip(k, ly["kb"])]
                    v = [a + b for a, b in zip(v, ly["vb"])]
                if self.qk_norm:  # Qwen3Attention: q_norm / k_norm before RoPE
                    q = self._head_norm(q, nh, ly["q_norm"])
                    k = self._head_norm(k, nkv, ly["k_norm"])
                q = self._rope(q, nh, cos[p], sin[p])
                k = self._rope(k, nkv, cos[p], sin[p])
                if engine_rounding:  # llmsim's KV cache holds fp16 rows
                    k, v = store(k), store(v)
                Q.append(q)
                K.append([k[g * hd:(g + 1) * hd] for g in range(nkv)])
                Vv.append([v[g * hd:(g + 1) * hd] for g in range(nkv)])
            for p in range(n):
                # causal, and within the window: j <= p and j > p - window
                lo = 0 if self.window is None else max(0, p - self.window + 1)
                att = []
                for hh in range(nh):
                    g = hh // group  # repeat_kv
                    qh = Q[p][hh * hd:(hh + 1) * hd]
                    sc = [sum(map(mul, qh, K[i][g])) * scale for i in range(lo, p + 1)]
                    m = max(sc)
                    e = [math.exp(s - m) for s in sc]
                    z = sum(e)
                    o = [0.0] * hd
                    for wgt, i in zip(e, range(lo, p + 1)):
                        vr = Vv[i][g]
                        w = wgt / z
                        o = [a + w * b for a, b in zip(o, vr)]
                    att += o
                x[p] = [a + b for a, b in zip(x[p], matvec(ly["o"], att))]
                # ---- MLP block: x + down(act(gate(norm(x))) * up(norm(x)))
                hn = rms_norm(x[p], ly["post_norm"], self.eps, self.norm_plus_one)
                if "router" in ly:  # a sparse MoE block
                    mlp = self.moe(ly, hn, None if routing is None else routing[p])
                else:
                    mlp = self._mlp((ly["gate"], ly["up"], ly["down"]), hn)
                x[p] = [a + b for a, b in zip(x[p], mlp)]
                if engine_rounding and j < self.L - 1:  # llmsim's hidden states are fp16
                    x[p] = store(x[p])
        # final norm and lm_head
        return [matvec(self.lm_head, rms_norm(row, self.norm, self.eps, self.norm_plus_one)) for row in x]


def read_tokens(path):
    seqs = []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                seqs.append([int(t) for t in line.split()])
            except ValueError:
                raise RefError("%s:%d: not whitespace-separated integers" % (path, ln))
    if not seqs:
        raise RefError("%s: no sequences" % path)
    return seqs


def routing_doc(model, records, engine_rounding=False, disable=None):
    """The --routing-out document from forward's routing records, one list per
    sequence."""
    def field(key):
        return [[[r[key] for r in pos] for pos in seq] for seq in records]
    return {"model_type": model.type, "num_experts": model.E, "top_k": model.k, "renormalized": model.renorm,
            "shared_expert": model.shared, "engine_rounding": bool(engine_rounding), "disabled": disable,
            "sparse_layers": list(model.sparse), "experts": field("experts"), "weights": field("weights"),
            "router_logits": field("router_logits"), "margin": field("margin")}


def run(ckpt, tokens_path, engine_rounding=False, disable=None, routing=False):
    """The output document for checkpoint ckpt and the sequences of tokens_path;
    with routing, (document, routing document)."""
    cfg, tensors = read_checkpoint(ckpt)
    model = Model(cfg, tensors, disable)
    if routing and not model.sparse:
        raise RefError("--routing-out: this %s model has no sparse MoE layer" % model.type)
    seqs = read_tokens(tokens_path)
    records = [[] for _ in seqs]
    logits = [model.forward(s, engine_rounding, routing=r if routing else None) for s, r in zip(seqs, records)]
    doc = {"model_type": model.type, "vocab_size": model.V, "engine_rounding": bool(engine_rounding),
           "disabled": disable, "logits": logits}
    if routing:
        return doc, routing_doc(model, records, engine_rounding, disable)
    return doc


def main(argv=None):
    ap = argparse.ArgumentParser(description="Reference forward pass of a Hugging Face checkpoint (fp64).")
    ap.add_argument("ckpt", metavar="DIR")
    ap.add_argument("--tokens", required=True, metavar="FILE")
    ap.add_argument("--engine-rounding", action="store_true")
    ap.add_argument("--disable", choices=FEATURES)
    ap.add_argument("--out", metavar="FILE")
    ap.add_argument("--routing-out", metavar="FILE",
                    help="write the MoE routing (expert ids per sequence, position, sparse layer) as JSON")
    a = ap.parse_args(argv)
    try:
        doc = run(a.ckpt, a.tokens, a.engine_rounding, a.disable, bool(a.routing_out))
        if a.routing_out:
            doc, rdoc = doc
            with open(a.routing_out, "w") as f:
                f.write(json.dumps(rdoc, separators=(",", ":")))
    except (RefError, OSError, ValueError, KeyError) as ex:
        print("hf_reference: %s" % (ex if not isinstance(ex, KeyError) else "config.json: missing key %s" % ex),
              file=sys.stderr)
        return 2
    text = json.dumps(doc, separators=(",", ":"))
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
