#!/usr/bin/env python3
"""selftest — checks of make_tiny.py and hf_reference.py on their own (no
llmsim needed): identities that transformers' math implies, the file
formats, and that every --disable feature matters; for the mixtures of
experts (mixtral, qwen2_moe, qwen2_moe-norm) also: which layers are sparse,
every expert chosen (k = E) = the softmax-weighted sum of all experts, a
router that always prefers one expert (top-1) = a dense model with that
expert as its MLP, ties to the lowest expert ids, the routing margins, that
the routing matters, and the --routing-out file against the router logits.
Exit 0 when all pass.

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


# ---------------------------------------------------------------- MoE


def vecs(ten, name):
    """A tensor of the state dict as rows (or a flat list when 1-D)."""
    _, shape, vals = ten[name]
    if len(shape) == 1:
        return list(vals)
    return [vals[r * shape[1]:(r + 1) * shape[1]] for r in range(shape[0])]


def direct_mlp(ten, gate, up, down, x):
    """down(silu(gate x) * up x) straight from the tensors (not the Model's)."""
    g = [sum(a * b for a, b in zip(row, x)) for row in vecs(ten, gate)]
    u = [sum(a * b for a, b in zip(row, x)) for row in vecs(ten, up)]
    mid = [a / (1.0 + math.exp(-a)) * b for a, b in zip(g, u)]
    return [sum(a * b for a, b in zip(row, mid)) for row in vecs(ten, down)]


def expert_names(cfg, j, m):
    if cfg["model_type"] == "mixtral":
        q = "model.layers.%d.block_sparse_moe.experts.%d." % (j, m)
        return q + "w1.weight", q + "w3.weight", q + "w2.weight"
    q = "model.layers.%d.mlp.experts.%d." % (j, m)
    return q + "gate_proj.weight", q + "up_proj.weight", q + "down_proj.weight"


def router_name(cfg, j):
    return "model.layers.%d.%s.gate.weight" % (j, "block_sparse_moe" if cfg["model_type"] == "mixtral" else "mlp")


def with_rows(ten, name, fn):
    """A copy of tensor name with every row r replaced by fn(r, row)."""
    dt, shape, _ = ten[name]
    rows = [fn(r, row) for r, row in enumerate(vecs(ten, name))]
    return (dt, shape, [v for row in rows for v in row])


def routing_of(model, seqs, rounding=True, jitter=None):
    recs = []
    for s in seqs:
        r = []
        model.forward(s, rounding, jitter, routing=r)
        recs.append(r)
    return recs


def moe_checks(work, base, seqs):
    fams = list(M.MOE_FAMILIES)

    # ---- which layers are sparse (Qwen2MoeDecoderLayer's rule)
    want = {"mixtral": [0, 1], "qwen2_moe": [0, 2], "qwen2_moe-norm": [1]}
    for fam in fams:
        c, t = base[fam]
        got = R.Model(c, t).sparse
        check(got == want[fam] == M.sparse_layers(c),
              "%s: sparse layers %s (%s)" % (fam, got, "every layer" if fam == "mixtral" else
                                             "mlp_only_layers %s, decoder_sparse_step %s"
                                             % (c.get("mlp_only_layers"), c.get("decoder_sparse_step"))))
    cq = base["qwen2_moe"][0]
    for change, sp in [({"mlp_only_layers": [], "decoder_sparse_step": 2}, [1]),
                       ({"mlp_only_layers": None, "decoder_sparse_step": 1}, [0, 1, 2]),
                       ({"mlp_only_layers": [0, 2], "decoder_sparse_step": 1}, [1]),
                       ({"mlp_only_layers": [], "decoder_sparse_step": 3}, [2]),
                       ({"num_experts": 0}, [])]:
        c = dict(cq, **change)
        m = R.Model.__new__(R.Model)  # the config part alone (the tensors would not fit)
        m.type, m.L, m.f = "qwen2_moe", c["num_hidden_layers"], c["intermediate_size"]
        m._moe_config(c)
        check(m.sparse == sp == M.sparse_layers(c), "qwen2_moe %s: sparse layers %s" % (json.dumps(change), m.sparse))

    # ---- k = E with renormalization: the softmax-weighted sum of every expert
    rng = random.Random(11)
    for fam in ("mixtral", "qwen2_moe-norm"):
        c, t = base[fam]
        E = c.get("num_local_experts") or c.get("num_experts")
        m = R.Model(dict(c, num_experts_per_tok=E), t)
        worst = 0.0
        for j in m.sparse:
            ly = m.layers[j]
            for _ in range(4):
                x = [rng.gauss(0.0, 1.0) for _ in range(c["hidden_size"])]
                lg = [sum(a * b for a, b in zip(row, x)) for row in vecs(t, router_name(c, j))]
                mx = max(lg)
                z = sum(math.exp(v - mx) for v in lg)
                want_out = [0.0] * len(x)
                for e in range(E):
                    y = direct_mlp(t, *expert_names(c, j, e), x)
                    want_out = [a + math.exp(lg[e] - mx) / z * b for a, b in zip(want_out, y)]
                if fam.startswith("qwen2_moe"):
                    q = "model.layers.%d.mlp." % j
                    gsh = sum(a * b for a, b in zip(vecs(t, q + "shared_expert_gate.weight")[0], x))
                    y = direct_mlp(t, q + "shared_expert.gate_proj.weight", q + "shared_expert.up_proj.weight",
                                   q + "shared_expert.down_proj.weight", x)
                    want_out = [a + b / (1.0 + math.exp(-gsh)) for a, b in zip(want_out, y)]
                rec = []
                got = m.moe(ly, x, rec)
                worst = max(worst, max(abs(a - b) for a, b in zip(got, want_out)))
                if sorted(rec[0]["experts"]) != list(range(E)):
                    worst = float("inf")
        check(worst < 1e-12, "%s, k = E = %d, renormalized: the MoE block = sum over all experts of softmax(router) "
              "x expert%s, computed directly (max diff %.1e, 4 random inputs per sparse layer)"
              % (fam, E, " + sigmoid(shared gate) x shared expert" if fam != "mixtral" else "", worst))
        dd = maxdiff(logits(dict(c, num_experts_per_tok=E), t, seqs, "topk_renorm", rounding=False),
                     logits(dict(c, num_experts_per_tok=E), t, seqs, rounding=False))
        check(dd < 1e-12, "%s, k = E: renormalizing the full softmax changes nothing (max diff %.1e)" % (fam, dd))
    c, t = base["qwen2_moe"]
    E = c["num_experts"]
    dd = maxdiff(logits(dict(c, num_experts_per_tok=E), t, seqs, rounding=False),
                 logits(dict(c, num_experts_per_tok=E, norm_topk_prob=True), t, seqs, rounding=False))
    check(dd < 1e-12, "qwen2_moe, k = E: norm_topk_prob false = true (max diff %.1e)" % dd)

    # ---- top-1 of a router that always prefers expert m = a dense model with
    # expert m as its MLP. The preference: a constant channel 0 (every
    # embedding's channel 0 is 2, no o_proj, w2 or down_proj row 0 writes it:
    # it reaches every post-attention norm as 2 * rsqrt(mean(x^2)) * w[0] > 0)
    # and router row m = [BIG, 0, ...], the others 0: expert m's logit is
    # BIG * (> ~0.5), the others' 0.
    BIG = 200.0

    def prefer(fam, m_exp, big=BIG, k=1):
        c, t = base[fam]
        c = dict(c, num_experts_per_tok=k)
        t = dict(t)
        h, V = c["hidden_size"], c["vocab_size"]
        if fam.startswith("qwen2_moe"):
            # every layer sparse: the dense layers get a copy of a sparse
            # layer's block (a dense counterpart has one MLP width)
            src = M.sparse_layers(c)[0]
            c.update(mlp_only_layers=[], decoder_sparse_step=1)
            for j in range(c["num_hidden_layers"]):
                if j == src:
                    continue
                q = "model.layers.%d.mlp." % j
                for n in list(t):
                    if n.startswith(q):
                        del t[n]
                sq = "model.layers.%d.mlp." % src
                for n in list(base[fam][1]):
                    if n.startswith(sq):
                        t[q + n[len(sq):]] = base[fam][1][n]
        t["model.embed_tokens.weight"] = with_rows(t, "model.embed_tokens.weight", lambda r, row: [2.0] + row[1:])
        for n in list(t):
            if n.endswith(("o_proj.weight", "down_proj.weight", ".w2.weight")):
                t[n] = with_rows(t, n, lambda r, row: [0.0] * len(row) if r == 0 else row)
        E = c.get("num_local_experts") or c.get("num_experts")
        for j in range(c["num_hidden_layers"]):
            t[router_name(c, j)] = with_rows(t, router_name(c, j),
                                             lambda r, row: [big if (r == m_exp and i == 0) else 0.0
                                                             for i in range(h)])
        # the dense counterpart: llama (mixtral) or qwen2 (qwen2_moe)
        dc = dict(c, model_type="llama" if fam == "mixtral" else "qwen2",
                  intermediate_size=c["intermediate_size"] if fam == "mixtral" else c["moe_intermediate_size"])
        dt = {}
        for n, v in t.items():
            if ".block_sparse_moe." in n or ".mlp." in n:
                continue
            dt[n] = v
        for j in range(c["num_hidden_layers"]):
            g, u, d = expert_names(c, j, m_exp)
            q = "model.layers.%d.mlp." % j
            dt[q + "gate_proj.weight"], dt[q + "up_proj.weight"], dt[q + "down_proj.weight"] = t[g], t[u], t[d]
        return c, t, dc, dt

    for fam, experts in (("mixtral", (0, 3, 7)), ("qwen2_moe", (2, 6))):
        for m_exp in experts:
            c, t, dc, dt = prefer(fam, m_exp)
            dis = "shared_expert" if fam != "mixtral" else None
            mm = R.Model(c, t, dis)
            recs = routing_of(mm, seqs)
            moe_l = [mm.forward(s, True) for s in seqs]
            dense = logits(dc, dt, seqs)
            picks = set((tuple(r["experts"]), r["weights"][0]) for seq in recs for pos in seq for r in pos)
            dd = maxdiff(moe_l, dense)
            check(dd < 1e-12 and picks == {((m_exp,), 1.0)},
                  "%s top-1, router preferring expert %d (by >= %.0f%s): routed to %s, logits = the dense %s with "
                  "that expert as its MLP (max diff %.1e)"
                  % (fam, m_exp, min(r["margin"] for seq in recs for pos in seq for r in pos),
                     "" if fam == "mixtral" else "; norm_topk_prob false, shared expert off",
                     sorted(picks), "llama" if fam == "mixtral" else "qwen2", dd))

    # ---- ties: an all-zero router (uniform softmax) picks the lowest ids
    c, t, dc, dt = prefer("mixtral", 0, big=0.0, k=2)
    mm = R.Model(c, t)
    recs = routing_of(mm, seqs[:1])
    picks = set((tuple(r["experts"]), tuple(r["weights"])) for seq in recs for pos in seq for r in pos)
    check(picks == {((0, 1), (0.5, 0.5))}, "mixtral, all-zero router, top-2: experts (0, 1) weights 1/2 each "
          "everywhere (equal softmax values: lowest id first): %s" % sorted(picks))
    c, t, dc, dt = prefer("mixtral", 0, big=0.0, k=1)
    dd = maxdiff(logits(c, t, seqs), logits(dc, dt, seqs))
    check(dd < 1e-12, "mixtral, all-zero router, top-1: = the dense llama with expert 0 (max diff %.1e)" % dd)

    # ---- the routing at the tested positions: clear margins, stable under
    # another implementation's rounding, and it matters for the logits
    for fam in fams:
        c, t = base[fam]
        mm = R.Model(c, t)
        recs = routing_of(mm, seqs)
        margins = [r["margin"] for seq in recs for pos in seq for r in pos]
        def ids(rr):
            return [[[r["experts"] for r in pos] for pos in seq] for seq in rr]
        same = all(ids(routing_of(mm, seqs, True, (random.Random(k), 3e-7))) == ids(recs) for k in range(2))
        wsum = [sum(r["weights"]) for seq in recs for pos in seq for r in pos]
        check(min(margins) > 0.3 and same,
              "%s: %d routing choices, smallest top-k router-logit margin %.3g (> 0.3), the same experts with "
              "every stored value jittered by 3e-7; top-k weight sums %.2f..%.2f"
              % (fam, len(margins), min(margins), min(wsum), max(wsum)))
        on = logits(c, t, seqs)
        t2 = dict(t)  # expert e gets router row e+1: other experts chosen
        for j in mm.sparse:
            t2[router_name(c, j)] = with_rows(t, router_name(c, j), lambda r, row, rows=vecs(t, router_name(c, j)):
                                              rows[(r + 1) % len(rows)])
        d_rot = maxdiff(logits(c, t2, seqs), on)
        t3 = dict(t)  # the routed experts' outputs zeroed
        E = c.get("num_local_experts") or c.get("num_experts")
        for j in mm.sparse:
            for e in range(E):
                n = expert_names(c, j, e)[2]
                t3[n] = with_rows(t, n, lambda r, row: [0.0] * len(row))
        d_zero = maxdiff(logits(c, t3, seqs), on)
        check(d_rot > 1.0 and d_zero > 1.0, "%s: the experts matter: routing to other experts (router rows rotated) "
              "moves the logits by %.3g, zeroing the routed experts' outputs by %.3g" % (fam, d_rot, d_zero))

    # ---- sharded MoE checkpoints, and the routing file against the router
    d1, d3 = os.path.join(work, "qmoe-1"), os.path.join(work, "qmoe-3")
    M.write_checkpoint(d1, "qwen2_moe", 0, "bfloat16", 1)
    M.write_checkpoint(d3, "qwen2_moe", 0, "bfloat16", 3)
    check(R.read_checkpoint(d1)[1] == R.read_checkpoint(d3)[1], "qwen2_moe bfloat16: 3 shards hold exactly the "
          "tensors of the single file")
    tok = os.path.join(work, "moe-tok.txt")
    with open(tok, "w") as f:
        for s in seqs:
            f.write(" ".join(map(str, s)) + "\n")
    for fam, d in (("mixtral", os.path.join(work, "mixtral")), ("qwen2_moe", d3)):
        rpath, opath = os.path.join(work, "routing-%s.json" % fam), os.path.join(work, "out-%s.json" % fam)
        p = subprocess.run([sys.executable, os.path.join(HERE, "hf_reference.py"), d, "--tokens", tok,
                            "--engine-rounding", "--routing-out", rpath, "--out", opath],
                           capture_output=True, text=True)
        if p.returncode != 0:
            check(False, "hf_reference.py --routing-out on %s: exit %d: %s" % (fam, p.returncode, p.stderr.strip()))
            continue
        with open(rpath) as f:
            rt = json.load(f)
        with open(opath) as f:
            out = json.load(f)
        c, t = R.read_checkpoint(d)
        mm = R.Model(c, t)
        E, k, L = rt["num_experts"], rt["top_k"], rt["sparse_layers"]
        problems = []
        if (E, k, L, rt["renormalized"]) != (mm.E, c["num_experts_per_tok"], M.sparse_layers(c), fam == "mixtral"):
            problems.append("header %s" % [E, k, L, rt["renormalized"]])
        n = 0
        for s, seq in enumerate(seqs):
            if len(rt["experts"][s]) != len(seq):
                problems.append("sequence %d: %d positions" % (s, len(rt["experts"][s])))
                continue
            for p_ in range(len(seq)):
                for i in range(len(L)):
                    ids, w = rt["experts"][s][p_][i], rt["weights"][s][p_][i]
                    lg, mg = rt["router_logits"][s][p_][i], rt["margin"][s][p_][i]
                    n += 1
                    order = sorted(range(E), key=lambda e: (-lg[e], e))
                    mx = max(lg)
                    pr = [math.exp(v - mx) for v in lg]
                    pr = [v / sum(pr) for v in pr]
                    ww = [pr[e] for e in order[:k]]
                    if rt["renormalized"]:
                        ww = [v / sum(ww) for v in ww]
                    if ids != order[:k] or max(abs(a - b) for a, b in zip(w, ww)) > 1e-12 or \
                            abs(mg - (lg[order[k - 1]] - lg[order[k]])) > 1e-12:
                        problems.append("sequence %d position %d layer %d" % (s, p_, L[i]))
        # the router logits themselves: the in-memory run's, and at position
        # 0 of layer 0 from scratch (position 0 attends to itself only: the
        # attention output is its own (fp16-rounded) value row)
        recs = routing_of(mm, seqs)
        if [[[r["router_logits"] for r in pos] for pos in seq] for seq in recs] != rt["router_logits"]:
            problems.append("router logits differ from the in-memory run's")
        if out["logits"] != [mm.forward(sq, True) for sq in seqs]:
            problems.append("--out logits differ from the in-memory run's")
        worst0 = 0.0
        if L and L[0] == 0:
            h, hd, nh, nkv = c["hidden_size"], mm.hd, c["num_attention_heads"], c["num_key_value_heads"]

            def norm(x, w):
                r_ = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + c["rms_norm_eps"])
                return [a * r_ * b for a, b in zip(x, w)]
            for s, seq in enumerate(seqs):
                x = list(vecs(t, "model.embed_tokens.weight")[seq[0]])
                hn = norm(x, vecs(t, "model.layers.0.input_layernorm.weight"))
                v = [sum(a * b for a, b in zip(row, hn)) for row in vecs(t, "model.layers.0.self_attn.v_proj.weight")]
                if "model.layers.0.self_attn.v_proj.bias" in t:
                    v = [a + b for a, b in zip(v, vecs(t, "model.layers.0.self_attn.v_proj.bias"))]
                v = R.round_f16(v)
                att = []
                for hh in range(nh):
                    g = hh // (nh // nkv)
                    att += v[g * hd:(g + 1) * hd]
                x = [a + sum(p * q for p, q in zip(row, att))
                     for a, row in zip(x, vecs(t, "model.layers.0.self_attn.o_proj.weight"))]
                hn = norm(x, vecs(t, "model.layers.0.post_attention_layernorm.weight"))
                lg = [sum(a * b for a, b in zip(row, hn)) for row in vecs(t, router_name(c, 0))]
                worst0 = max(worst0, max(abs(a - b) for a, b in zip(lg, rt["router_logits"][s][0][0])))
            if worst0 > 1e-9:
                problems.append("position 0 layer 0 router logits off by %.1e" % worst0)
        check(not problems, "%s --routing-out: %d choices, each the top-%d of its router logits (lowest id first on "
              "ties) with the softmax%s weights and margin; logits as computed in memory and, at position 0 of "
              "layer 0, from scratch (max diff %.1e)%s"
              % (fam, n, k, " (renormalized)" if rt["renormalized"] else "", worst0,
                 "; " + "; ".join(problems[:3]) if problems else ""))

    # ---- causality, MoE included
    c, t = base["qwen2_moe"]
    m = R.Model(c, t)
    full, pre = m.forward(seqs[0], True), m.forward(seqs[0][:15], True)
    check(full[:15] == pre, "qwen2_moe causal: the logits of a 15-token prefix equal the first 15 of 28, exactly")


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
                 "gemma": ["embed_scale", "norm_plus_one", "gelu_tanh"], "phi3": ["fused_split", "sliding_window"],
                 "mixtral": ["topk_renorm"], "qwen2_moe": ["qkv_bias", "shared_expert"],
                 "qwen2_moe-norm": ["qkv_bias", "topk_renorm", "shared_expert"]}
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

        moe_checks(work, base, seqs)

        # ---- refusals (exit 2 with a message)
        def refused(fam, change, disable=None, extra=()):
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
            cmd += [a.replace("WORK", work) for a in extra]
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
                ("gemma", {}, "qk_norm", "--disable qk_norm on gemma"),
                ("qwen2_moe", {}, "topk_renorm", "--disable topk_renorm on qwen2_moe (norm_topk_prob false)"),
                ("mixtral", {}, "shared_expert", "--disable shared_expert on mixtral"),
                ("mixtral", {"num_experts_per_tok": 9}, None, "mixtral top-9 of 8 experts"),
                ("qwen2_moe", {"use_sliding_window": True}, None, "qwen2_moe use_sliding_window true"),
                ("qwen2_moe", {"decoder_sparse_step": 0}, None, "qwen2_moe decoder_sparse_step 0"),
                ("qwen2_moe", {"qkv_bias": False}, None, "qwen2_moe qkv_bias false with bias tensors"),
                ("qwen2_moe", {"mlp_only_layers": []}, None, "qwen2_moe: layer 1 sparse but its tensors dense"),
                ("llama", {}, ("--routing-out", "WORK/r.json"), "--routing-out on llama (no MoE)")]:
            extra = ()
            if isinstance(dis, tuple):
                dis, extra = None, dis
            ok, msg = refused(fam, change, dis, extra)
            check(bool(ok), "refused: %s (%s)" % (what, msg))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%s: %d failed" % ("PASS" if not FAILS else "FAIL", len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
