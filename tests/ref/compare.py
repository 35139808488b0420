#!/usr/bin/env python3
"""compare — check llmsim's CPU engine against the fp64 reference of
transformers' math (hf_reference.py) on a tiny random checkpoint
(make_tiny.py) of one model family.

    compare.py --llmsim BIN --family F [--dtype float32|float16|bfloat16]
               [--shards K] [--seed N] [--gen-len G] [--work DIR]
               [--set KEY=JSON ...] [--unset KEY ...] [--llmsim-args "ARGS"]
               [--hardware H] [--emulate-gpu] [--tol T]

--hardware H runs llmsim on hardware profile H (default cpu-only: the CPU
engine); a profile with a GPU (e.g. t4-flexgen) runs the GPU engine, which
needs a CUDA GPU unless --emulate-gpu is given too (passed to llmsim run: the
GPU engine on the host emulation of the device). --tol T replaces the
tolerance TOL below (the token and feature checks use it too: FEATURE_FACTOR
x T). The GPU engine rounds every GEMM input to the weights' dtype, which
--engine-rounding does not mirror: in float32 (no rounding) TOL holds it (on
the emulated device, attention on the GPU, it gives the CPU engine's logits
bit for bit; CPU attention, which takes q in fp16, up to 1.2e-2); in float16
and bfloat16 it does not (measured at seed 0 on the emulated device over the
families and placements: float16 9e-3 to 3.0e-2, bfloat16 5.5e-2 to 1.3e-1,
plain llama included, where the CPU engine stays below 5e-3).

--llmsim-args appends ARGS (split as a shell would) to the llmsim run command,
e.g. --llmsim-args="--percent 0 0 0 0 0 0" for weights, cache and activations
on disk (write it with "=": ARGS starts with a dash).

--set / --unset edit config.json after make_tiny.py wrote it (a value that
is not JSON is taken as a string; the tensors keep their shapes), for the
edge cases of a family: e.g. --family qwen2 --set sliding_window=4 (ignored:
use_sliding_window is false), --family gemma --unset hidden_activation (null:
gelu_pytorch_tanh). With an edit, the feature lines are information, not
checks (the edit may have switched the feature off).

BIN defaults to $LLMSIM. Exit status: 0 every check passed, 1 a check
failed (llmsim refusing the config included), 77 skipped (no BIN given, or
BIN is not an executable file), 2 bad usage.

Steps
 1. make_tiny.py writes the checkpoint (F, dtype, shards) under the work dir.
 2. Two prompts of 12 tokens (deterministic) go to llmsim:
      BIN run --model DIR/config.json --weights DIR --hardware cpu-only
          --prompt-tokens PROMPTS --gen-len G --gpu-batch-size 2
          --num-gpu-batches 1 --tokens-out TOK --logits-out LOG
          --db WORK/store.db --offload-dir WORK --threads 2
    LOG is float32 little-endian [G][2][vocab]: step g's logits (after the
    prompt, then after generated token g-1); TOK one line of G ids a prompt.
    G = 16 by default: positions 0..27, past every family's window (6, 7),
    and far enough for the rescaled rotary frequencies (linear, llama3: the
    wavelengths of 20 and 63 stretched by up to 8) to turn other angles.
 3. hf_reference.py --engine-rounding runs each prompt followed by the
    engine's first G-1 tokens (teacher forcing); its logits at positions
    11 .. 11+G-1 are the engine's steps 0 .. G-1.
 4. Checks:
    logits   max |engine - reference| <= TOL over every step, sequence, vocab
             entry;
    tokens   every engine token is the reference's argmax, unless the
             reference's top-2 margin there is below TOL (a near tie);
    greedy   every engine token is the argmax of the engine's own logits (the
             logits file and the tokens file agree);
    feature  for each feature of the family, the reference with
             --disable FEATURE differs from the engine by more than
             FEATURE_FACTOR x TOL: the feature matters, so the logits check
             cannot pass with the feature missing or wrong.
    MoE families (mixtral, qwen2_moe, qwen2_moe-norm): the reference also
    writes its routing (hf_reference.py --routing-out, WORK/routing.json) and
    an info line gives the number of routing choices and the smallest top-k
    margin of the router logits over every position of the teacher-forced
    sequences (make_tiny.py makes the token choose the experts, so that the
    margin is ~2, and above 0.85 at every position selftest.py tests over
    seeds 0-9: an engine that routes differently has a bug, not a near tie). The features: topk_renorm (mixtral,
    qwen2_moe-norm; and qwen2_moe edited with --set norm_topk_prob=true,
    then informative), shared_expert and qkv_bias (qwen2_moe, qwen2_moe-norm).
    llmsim has no MoE engine yet: it refuses these configs (exit 2), which is
    a FAIL ("llmsim run refused the config"), never a pass or a skip.

The tolerance, TOL = 2e-2 (absolute; the tiny models' logits stay below ~15):
  * the engine computes in fp32 and the reference in fp64: ~1e-6 relative,
    ~1e-5 on the logits;
  * the reference rounds exactly where the engine stores fp16 (KV rows,
    hidden states between layers), but a value that the two compute 1e-6
    apart now and then rounds to the other fp16 neighbour: one element moves
    by 2^-10 of itself, and the logits by up to a few 1e-3;
  * measured, engine vs reference: llama over seeds 0-9, at most 4.0e-3
    (float32), 3.4e-3 (float16), 1.2e-3 (bfloat16); every family, dtype and
    shard count at seed 0 and every family in bfloat16 at seeds 1-4: at most
    4.7e-3. The reference against itself with every stored value jittered by
    3e-7 relative (a stand-in for another fp32 implementation), over all
    families: at most 6e-3. (Without --engine-rounding, the pure fp64
    reference is up to 2.5e-2 from the engine: the rounding mirror matters.)
  * so TOL is ~3-4x the worst of those, and ~1e-3 of the logits' range. A
    missing or wrong feature moves the logits by 0.39 to 0.87 (gemma's GELU
    variant, the subtlest, over seeds 0-12) to ~15: FEATURE_FACTOR = 10
    (i.e. > 0.2) keeps them apart.
"""
import argparse
import json
import os
import random
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOL = 2e-2
FEATURE_FACTOR = 10.0
PROMPT_LEN = 12
NSEQ = 2

# the features of each family that the reference can switch off
FAMILY_FEATURES = {
    "llama": [],
    "llama3": ["rope_scaling"],
    "llama-linear": ["rope_scaling"],
    "qwen2": ["qkv_bias"],
    "qwen3": ["qk_norm"],
    "mistral": ["sliding_window"],
    "gemma": ["embed_scale", "norm_plus_one", "gelu_tanh"],
    "phi3": ["fused_split", "sliding_window"],
    "mixtral": ["topk_renorm"],
    "qwen2_moe": ["qkv_bias", "shared_expert"],
    "qwen2_moe-norm": ["qkv_bias", "topk_renorm", "shared_expert"],
}
# the mixture-of-experts families: the reference also writes its routing
MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen2_moe-norm")


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, text):
        print("%s %s" % ("ok  " if ok else "FAIL", text), flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    @staticmethod
    def info(text):
        print("info %s" % text, flush=True)


def run_reference(ckpt, tokens, out, *extra):
    """hf_reference.py on ckpt; its logits [seq][pos][V]."""
    cmd = [sys.executable, os.path.join(HERE, "hf_reference.py"), ckpt, "--tokens", tokens, "--out", out]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("hf_reference.py %s failed (exit %d): %s" % (" ".join(extra), p.returncode,
                                                                        p.stderr.strip()))
    with open(out) as f:
        return json.load(f)["logits"]


def max_diff(engine, ref, gen):
    """max |engine[g][s] - ref[s][PROMPT_LEN-1+g]| and where (g, s, v)."""
    best, at = -1.0, None
    for g in range(gen):
        for s in range(NSEQ):
            row = ref[s][PROMPT_LEN - 1 + g]
            for v, (a, b) in enumerate(zip(engine[g][s], row)):
                d = abs(a - b)
                if d > best:
                    best, at = d, (g, s, v)
    return best, at


def argmax(row):
    return max(range(len(row)), key=row.__getitem__)


def top2_margin(row):
    a, b = sorted(row, reverse=True)[:2]
    return a - b


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check llmsim's CPU engine against the fp64 HF reference.")
    ap.add_argument("--llmsim", default=os.environ.get("LLMSIM"), metavar="BIN")
    ap.add_argument("--family", required=True, choices=sorted(FAMILY_FEATURES))
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="the checkpoint's seed (default 0)")
    ap.add_argument("--gen-len", type=int, default=16, metavar="G")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="set a config.json key after make_tiny.py (repeatable)")
    ap.add_argument("--unset", action="append", default=[], metavar="KEY",
                    help="remove a config.json key after make_tiny.py (repeatable)")
    ap.add_argument("--llmsim-args", default="", metavar="ARGS",
                    help="more options for llmsim run, e.g. a policy (one string)")
    ap.add_argument("--hardware", default="cpu-only", metavar="H",
                    help="llmsim's hardware profile (default cpu-only: the CPU engine; one with a GPU runs "
                    "the GPU engine)")
    ap.add_argument("--emulate-gpu", action="store_true",
                    help="pass --emulate-gpu to llmsim run (the GPU engine on the host emulation)")
    ap.add_argument("--tol", type=float, default=TOL, metavar="T",
                    help="the logits tolerance (default %.0e)" % TOL)
    ap.add_argument("--work", metavar="DIR", help="keep everything in DIR (default: a temporary directory, "
                    "removed after a pass)")
    a = ap.parse_args(argv)
    name = "%s %s shards=%d" % (a.family, a.dtype, a.shards)
    if a.hardware != "cpu-only" or a.emulate_gpu:
        name += " on %s%s" % (a.hardware, " (emulated GPU)" if a.emulate_gpu else "")
    if not a.tol > 0:
        ap.error("--tol must be > 0")
    if not a.llmsim:
        print("SKIP %s: no llmsim binary given (--llmsim BIN or $LLMSIM)" % name)
        return 77
    if not (os.path.isfile(a.llmsim) and os.access(a.llmsim, os.X_OK)):
        print("SKIP %s: %s is not an executable file" % (name, a.llmsim))
        return 77
    if a.gen_len < 2:
        ap.error("--gen-len must be >= 2")

    t0 = time.time()
    work = a.work or tempfile.mkdtemp(prefix="llmsim-ref-")
    os.makedirs(work, exist_ok=True)
    rep = Report()
    try:
        ok = run_checks(a, work, rep)
    except RuntimeError as ex:
        rep.check(False, str(ex))
        ok = False
    dt = time.time() - t0
    if rep.failed == 0 and ok:
        print("PASS %s: %d/%d checks (%.1f s)" % (name, rep.passed, rep.passed, dt))
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    print("FAIL %s: %d of %d checks failed (%.1f s; files in %s)" % (name, rep.failed, rep.passed + rep.failed,
                                                                   dt, work))
    return 1


def run_checks(a, work, rep):
    G = a.gen_len
    TOL = a.tol
    ckpt = os.path.join(work, "ckpt")
    print("compare: family %s, dtype %s, shards %d, seed %d, %d prompts x %d tokens, %d generated; hardware %s%s; "
          "tol %.1e" % (a.family, a.dtype, a.shards, a.seed, NSEQ, PROMPT_LEN, G, a.hardware,
                        " (emulated GPU)" if a.emulate_gpu else "", TOL), flush=True)

    # 1. the checkpoint
    if os.path.isdir(ckpt):
        shutil.rmtree(ckpt)
    p = subprocess.run([sys.executable, os.path.join(HERE, "make_tiny.py"), "--family", a.family, "--out", ckpt,
                        "--seed", str(a.seed), "--dtype", a.dtype, "--shards", str(a.shards)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("make_tiny.py failed (exit %d): %s" % (p.returncode, p.stderr.strip()))
    cpath = os.path.join(ckpt, "config.json")
    with open(cpath) as f:
        cfg = json.load(f)
    if a.set or a.unset:
        for kv in a.set:
            key, eq, val = kv.partition("=")
            if not eq:
                raise RuntimeError("--set %s: want KEY=JSON" % kv)
            try:
                cfg[key] = json.loads(val)
            except ValueError:
                cfg[key] = val
        for key in a.unset:
            cfg.pop(key, None)
        with open(cpath, "w") as f:
            json.dump(cfg, f, indent=2)
        rep.info("config.json edited: %s" % " ".join(["%s=%s" % (k, json.dumps(cfg.get(k))) for k in
                                                       (kv.partition("=")[0] for kv in a.set)] +
                                                      ["-%s" % k for k in a.unset]))
    V = cfg["vocab_size"]

    # 2. the engine
    rng = random.Random(1234)
    prompts = [[rng.randrange(V) for _ in range(PROMPT_LEN)] for _ in range(NSEQ)]
    ppath = os.path.join(work, "prompts.txt")
    with open(ppath, "w") as f:
        for pr in prompts:
            f.write(" ".join(map(str, pr)) + "\n")
    tok, log = os.path.join(work, "tokens.txt"), os.path.join(work, "logits.f32")
    for path in (tok, log):
        if os.path.exists(path):
            os.remove(path)
    cmd = [a.llmsim, "run", "--model", os.path.join(ckpt, "config.json"), "--weights", ckpt,
           "--hardware", a.hardware, "--prompt-tokens", ppath, "--gen-len", str(G),
           "--gpu-batch-size", str(NSEQ), "--num-gpu-batches", "1", "--tokens-out", tok, "--logits-out", log,
           "--db", os.path.join(work, "store.db"), "--offload-dir", work, "--threads", "2"]
    if a.emulate_gpu:
        cmd.append("--emulate-gpu")
    cmd += shlex.split(a.llmsim_args)
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
        what = "refused the config" if p.returncode == 2 else "failed"
        rep.check(False, "llmsim run %s (exit %d): %s" % (what, p.returncode, " | ".join(msg[-4:]) or "(no message)"))
        rep.info("command: %s" % " ".join(cmd))
        return False
    rep.check(True, "llmsim run (%.2f s)" % (time.time() - t))
    with open(tok) as f:
        gen = [[int(x) for x in line.split()] for line in f if line.strip()]
    with open(log, "rb") as f:
        raw = f.read()
    if len(gen) != NSEQ or any(len(g) != G for g in gen):
        rep.check(False, "tokens file: want %d lines of %d ids, got %s" % (NSEQ, G, [len(g) for g in gen]))
        return False
    if len(raw) != G * NSEQ * V * 4:
        rep.check(False, "logits file: want %d bytes (%d x %d x %d float32), got %d"
                  % (G * NSEQ * V * 4, G, NSEQ, V, len(raw)))
        return False
    flat = struct.unpack("<%df" % (G * NSEQ * V), raw)
    engine = [[list(flat[(g * NSEQ + s) * V:(g * NSEQ + s + 1) * V]) for s in range(NSEQ)] for g in range(G)]

    # 3. the reference, teacher-forced on prompt + the engine's tokens
    tf = os.path.join(work, "teacher.txt")
    with open(tf, "w") as f:
        for pr, g in zip(prompts, gen):
            f.write(" ".join(map(str, pr + g[:-1])) + "\n")
    moe = a.family in MOE_FAMILIES
    rpath = os.path.join(work, "routing.json")
    ref = run_reference(ckpt, tf, os.path.join(work, "ref.json"), "--engine-rounding",
                        *(["--routing-out", rpath] if moe else []))
    if moe:
        with open(rpath) as f:
            rt = json.load(f)
        best, at = None, None
        for s, seq in enumerate(rt["margin"]):
            for p, pos in enumerate(seq):
                for i, mg in enumerate(pos):
                    if mg is not None and (best is None or mg < best):
                        best, at = mg, (s, p, rt["sparse_layers"][i])
        n = sum(len(pos) for seq in rt["experts"] for pos in seq)
        rep.info("routing (reference): %d choices of top-%d of %d experts (sparse layers %s)%s; not compared: "
                 "llmsim writes no routing" % (n, rt["top_k"], rt["num_experts"], rt["sparse_layers"],
                                               "" if best is None else
                                               ", smallest top-k router-logit margin %.3g (sequence %d, position %d, "
                                               "layer %d)" % ((best,) + at)))

    # 4. the checks
    d, (g, s, v) = max_diff(engine, ref, G)
    rep.check(d <= TOL, "logits: max |engine - reference| = %.3e %s tol %.1e (%d steps x %d sequences x %d; "
              "largest at step %d, sequence %d, token %d)" % (d, "<=" if d <= TOL else ">", TOL, G, NSEQ, V, g, s, v))
    bad, ties = [], 0
    for g in range(G):
        for s in range(NSEQ):
            row = ref[s][PROMPT_LEN - 1 + g]
            if gen[s][g] != argmax(row):
                if top2_margin(row) < TOL:
                    ties += 1
                else:
                    bad.append((g, s, gen[s][g], argmax(row), top2_margin(row)))
    rep.check(not bad, "tokens: %d/%d engine tokens are the reference's argmax (%d near ties allowed)%s"
              % (G * NSEQ - len(bad) - ties, G * NSEQ, ties,
                 "".join("; step %d seq %d: engine %d, reference %d (margin %.3g)" % b for b in bad[:3])))
    greedy_bad = [(g, s) for g in range(G) for s in range(NSEQ) if gen[s][g] != argmax(engine[g][s])]
    rep.check(not greedy_bad, "greedy: every engine token is the argmax of the engine's own logits%s"
              % ("".join("; not at step %d seq %d" % b for b in greedy_bad[:3])))
    plain = run_reference(ckpt, tf, os.path.join(work, "ref_plain.json"))
    rep.info("the reference without --engine-rounding (pure fp64) differs from the engine by %.3e"
             % max_diff(engine, plain, G)[0])
    feats = list(FAMILY_FEATURES[a.family])
    if cfg.get("model_type") == "qwen2_moe" and cfg.get("norm_topk_prob") and "topk_renorm" not in feats:
        feats.append("topk_renorm")  # qwen2_moe edited with --set norm_topk_prob=true
    if not feats:
        rep.info("plain %s has no family feature to switch off" % a.family)
    for ft in feats:
        try:
            off = run_reference(ckpt, tf, os.path.join(work, "ref_no_%s.json" % ft), "--engine-rounding",
                                "--disable", ft)
        except RuntimeError as ex:
            if (a.set or a.unset) and "does not have that feature" in str(ex):
                rep.info("feature %s: absent from the edited config, not checked" % ft)
                continue
            raise
        d = max_diff(engine, off, G)[0]
        text = "feature %s matters: the reference with --disable %s differs from the engine by %.3g (%.0f x tol, " \
               "need > %.0f x)" % (ft, ft, d, d / TOL, FEATURE_FACTOR)
        if a.set or a.unset:  # an edit may neutralize the feature: informative only
            rep.info(text.replace("matters:", "(edited config, not a check):"))
        else:
            rep.check(d > FEATURE_FACTOR * TOL, text)
    return True


if __name__ == "__main__":
    sys.exit(main())
