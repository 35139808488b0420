#!/usr/bin/env python3
"""selftest — checks of make_tiny.py and hf_reference.py on their own (no
llmsim needed): identities that transformers' math implies, the file
formats, and that every --disable feature matters. Exit 0 when all pass.

    selftest.py [--quick]
"""
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import hf_reference as R  # noqa: E402
import make_tiny as M  # noqa: E402

FAILS = []


def check(ok, text):
    print("%s %s" % ("ok  " if ok else "FAIL", text), flush=True)
    if not ok:
        FAILS.append(text)


def maxdiff(a, b):
    return max(abs(x - y) for sa, sb in zip(a, b) for pa, pb in zip(sa, sb) for x, y in zip(pa, pb))


def logits(cfg, tensors, seqs, disable=None, rounding=True):
    m = R.Model(cfg, tensors, disable)
    return [m.forward(s, rounding) for s in seqs]


def main():
    work = tempfile.mkdtemp(prefix="llmsim-ref-selftest-")
    rng = random.Random(7)
    seqs = [[rng.randrange(256) for _ in range(28)] for _ in range(2)]
    try:
        # ---- formats
        d = os.path.join(work, "llama-3")
        M.write_checkpoint(d, "llama", 0, "bfloat16", 3)
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            idx = json.load(f)
        files = sorted(set(idx["weight_map"].values()))
        check(files == ["model-%05d-of-00003.safetensors" % i for i in (1, 2, 3)],
              "3 shards are named model-0000i-of-00003.safetensors: %s" % files)
        total = 0
        for fn in files:
            with open(os.path.join(d, fn), "rb") as f:
                data = f.read()
            (n,) = struct.unpack("<Q", data[:8])
            hdr = json.loads(data[8:8 + n])
            names = [k for k in hdr if k != "__metadata__"]
            offs = [hdr[k]["data_offsets"] for k in names]
            contiguous = all(offs[i][1] == offs[i + 1][0] for i in range(len(offs) - 1)) and offs[0][0] == 0
            check(n % 8 == 0 and names == sorted(names) and contiguous and 8 + n + offs[-1][1] == len(data)
                  and data[8 + n - 1:8 + n] in (b" ", b"}"),
                  "%s: header of %d bytes (8-aligned, space-padded), tensors sorted and contiguous" % (fn, n))
            total += offs[-1][1]
        check(idx["metadata"]["total_size"] == total, "index total_size = the tensors' bytes (%d)" % total)

        # encoders and decoders: round to nearest even at the ties
        one = 1.0
        cases = {"bfloat16": [(one + 2 ** -8, one), (one + 3 * 2 ** -8, one + 2 ** -6), (-2.5, -2.5)],
                 "float16": [(one + 2 ** -11, one), (one + 3 * 2 ** -11, one + 2 ** -9), (65504.0, 65504.0)]}
        for dt, pairs in cases.items():
            st = M.DTYPES[dt][0]
            got = R._decode(M.encode([a for a, _ in pairs], dt), st, len(pairs))
            check(got == [b for _, b in pairs] and all(R.round_dtype(a, dt) == b for a, b in pairs),
                  "%s: ties round to even in make_tiny's encoder, hf_reference's decoder and round_dtype" % dt)

        # sharded == single file, exactly
        d1 = os.path.join(work, "llama-1")
        M.write_checkpoint(d1, "llama", 0, "bfloat16", 1)
        c1, t1 = R.read_checkpoint(d1)
        c3, t3 = R.read_checkpoint(d)
        check(t1 == t3, "3 shards hold exactly the tensors of the single file")

        # ---- identities
        base = {}
        for fam in M.FAMILIES:
            dd = os.path.join(work, fam)
            M.write_checkpoint(dd, fam, 0, "float32", 1)
            base[fam] = R.read_checkpoint(dd)
        cfg, ten = base["llama"]

        # causality: a prefix's logits are the first positions of the whole
        m = R.Model(cfg, ten)
        full, pre = m.forward(seqs[0], True), m.forward(seqs[0][:15], True)
        check(full[:15] == pre, "causal: the logits of a 15-token prefix equal the first 15 of 28, exactly")

        # llama3 with factor 1, or with a huge original context, is plain RoPE
        plain = logits(cfg, ten, seqs)
        for rs, what in [({"rope_type": "llama3", "factor": 1.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 32}, "llama3 factor 1"),
                         ({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 10 ** 9}, "llama3 original context 1e9"),
                         ({"type": "linear", "factor": 1.0}, "linear factor 1 (legacy key \"type\")")]:
            c = dict(cfg, rope_scaling=rs)
            dd = maxdiff(logits(c, ten, seqs), plain)
            check(dd < 1e-9, "%s = no scaling (max diff %.1e)" % (what, dd))
        # llama3's three bands, as _compute_llama3_parameters puts them
        m3 = R.Model(*base["llama3"])
        ratio = [a / b for a, b in zip(m3.inv_freq, m3.inv_freq_plain)]
        check(ratio[0] == 1.0 and 1 / 8 < ratio[1] < 1.0 and all(abs(r - 1 / 8) < 1e-15 for r in ratio[2:]),
              "llama3 tiny: inv_freq ratios %s (high kept, one interpolated, low / 8)"
              % ["%.3f" % r for r in ratio])

        # a window as long as the sequence is no window
        cm, tm = base["mistral"]
        nowin = logits(cm, tm, seqs, "sliding_window")
        dd = maxdiff(logits(dict(cm, sliding_window=28), tm, seqs), nowin)
        check(dd == 0.0, "mistral: sliding_window 28 over 28 tokens = no window (max diff %.1e)" % dd)
        dd = maxdiff(logits(dict(cm, sliding_window=27), tm, seqs), nowin)
        check(dd > 1e-3, "mistral: sliding_window 27 over 28 tokens is not (max diff %.2g)" % dd)
        c = dict(cm)
        del c["sliding_window"]
        dd = maxdiff(logits(c, tm, seqs), nowin)
        check(dd == 0.0, "mistral: no sliding_window key = MistralConfig's 4096 = no window here")

        # the window's exact edge, on one layer (no receptive-field growth):
        # query i sees key j iff i - W < j <= i
        c1l = dict(cm, num_hidden_layers=1)
        t1l = {k: v for k, v in tm.items() if not k.startswith("model.layers.1.")}
        m1 = R.Model(c1l, t1l)
        W, s0 = cm["sliding_window"], seqs[0][:20]
        ref0 = m1.forward(s0, True)
        j = 8
        s1 = list(s0)
        s1[j] = (s1[j] + 1) % 256
        ref1 = m1.forward(s1, True)
        changed = [i for i in range(20) if ref0[i] != ref1[i]]
        check(changed == list(range(j, j + W)),
              "mistral window %d: changing token %d changes exactly positions %s (want %d..%d)"
              % (W, j, changed, j, j + W - 1))

        # GQA: kv heads repeated to every query head equal grouped heads
        c = dict(cfg, num_key_value_heads=cfg["num_attention_heads"])
        t = dict(ten)
        hd, nh, nkv = 16, cfg["num_attention_heads"], cfg["num_key_value_heads"]
        for jj in range(cfg["num_hidden_layers"]):
            for w in ("k_proj", "v_proj"):
                name = "model.layers.%d.self_attn.%s.weight" % (jj, w)
                dt, shape, vals = t[name]
                rows = [vals[r * 64:(r + 1) * 64] for r in range(shape[0])]
                rep = []
                for hh in range(nh):  # repeat_kv: query head hh reads kv head hh // (nh / nkv)
                    rep += rows[(hh // (nh // nkv)) * hd:(hh // (nh // nkv) + 1) * hd]
                t[name] = (dt, [nh * hd, 64], [x for r in rep for x in r])
        dd = maxdiff(logits(c, t, seqs, rounding=False), logits(cfg, ten, seqs, rounding=False))
        check(dd < 1e-9, "GQA: 2 kv heads = 4 kv heads holding repeat_kv's copies (max diff %.1e)" % dd)

        # gemma's multiplier is rounded to the dtype
        cg, tg = base["gemma"]
        for dt, want in (("float32", struct.unpack("<f", struct.pack("<f", math.sqrt(48)))[0]),
                         ("float16", 6.9296875), ("bfloat16", 6.9375)):
            got = R.Model(dict(cg, torch_dtype=dt), tg).embed_scale
            check(got == want, "gemma %s: embed scale sqrt(48) rounded to the dtype = %r" % (dt, got))
        check(R.Model(dict(cg, hidden_activation=None), tg).act is R.gelu_tanh,
              "gemma: hidden_activation null is gelu_pytorch_tanh (hidden_act \"gelu\" ignored)")

        # engine rounding changes little, but something
        dd = maxdiff(logits(cfg, ten, seqs, rounding=True), logits(cfg, ten, seqs, rounding=False))
        check(0 < dd < 0.1, "--engine-rounding moves llama's logits by %.2g (fp16 storage)" % dd)

        # ---- every feature matters, relative to the noise of fp16 storage
        feats = {"llama3": ["rope_scaling"], "llama-linear": ["rope_scaling"], "qwen2": ["qkv_bias"],
                 "qwen3": ["qk_norm"], "mistral": ["sliding_window"],
                 "gemma": ["embed_scale", "norm_plus_one", "gelu_tanh"], "phi3": ["fused_split", "sliding_window"]}
        for fam, fs in feats.items():
            c, t = base[fam]
            on = logits(c, t, seqs)
            # the noise: every stored value jittered by 3e-7 (another fp32
            # implementation) before its fp16 rounding
            mdl = R.Model(c, t)
            noise = max(maxdiff([mdl.forward(s, True, (random.Random(k), 3e-7)) for s in seqs], on)
                        for k in range(2))
            for ft in fs:
                dd = maxdiff(logits(c, t, seqs, ft), on)
                check(dd > 0.2 and dd > 20 * noise, "%s: --disable %s moves the logits by %.3g (fp16 noise %.1e)"
                      % (fam, ft, dd, noise))

        # ---- refusals (exit 2 with a message)
        def refused(fam, change, disable=None):
            dd = os.path.join(work, "bad")
            shutil.rmtree(dd, ignore_errors=True)
            shutil.copytree(os.path.join(work, fam), dd)
            with open(os.path.join(dd, "config.json")) as f:
                c = json.load(f)
            c.update(change)
            with open(os.path.join(dd, "config.json"), "w") as f:
                json.dump(c, f)
            tok = os.path.join(work, "tok.txt")
            with open(tok, "w") as f:
                f.write("1 2 3\n")
            cmd = [sys.executable, os.path.join(HERE, "hf_reference.py"), dd, "--tokens", tok]
            if disable:
                cmd += ["--disable", disable]
            p = subprocess.run(cmd, capture_output=True, text=True)
            return p.returncode == 2 and p.stderr.strip(), p.stderr.strip()

        for fam, change, dis, what in [
                ("llama", {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, None, "rope_type dynamic"),
                ("llama", {"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, None, "rope_type yarn"),
                ("qwen2", {"use_sliding_window": True}, None, "qwen2 use_sliding_window true"),
                ("phi3", {"rope_scaling": {"type": "longrope", "short_factor": [1.0] * 8,
                                           "long_factor": [1.0] * 8}}, None, "phi3 longrope"),
                ("llama", {"model_type": "opt"}, None, "model_type opt"),
                ("llama", {}, "sliding_window", "--disable sliding_window on llama"),
                ("gemma", {}, "qk_norm", "--disable qk_norm on gemma")]:
            ok, msg = refused(fam, change, dis)
            check(bool(ok), "refused: %s (%s)" % (what, msg))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%s: %d failed" % ("PASS" if not FAILS else "FAIL", len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
