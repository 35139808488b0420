#!/usr/bin/env bash
# The GPU engine against its bounds and against llmsim's prediction (issue 8).
#
#   bench/gpu_engine.sh BUILD OUT
#
# On a machine with a GPU (scripts/device-run.sh runs it on the device tool's
# H100): measure the machine (llmsim profile), then for synthetic OPT-6.7B,
# OPT-30B and LLaMA-2-7B run five policies for real with llmsim run —
# everything on the GPU, weights in pinned CPU memory, the KV cache in CPU
# memory without and with CPU attention, 4-bit weights — and simulate each
# with the measured profile. OUT/gpu_engine.md gets the table: measured decode
# throughput, the bound (all on the GPU: the bytes a decode step must read —
# weights and KV cache — over the measured HBM bandwidth; weights offloaded:
# the weights over the measured pinned host-to-device bandwidth), the
# fraction of the bound reached, and the prediction's error.
# Environment: MODELS, PROMPT (512), GEN (32), EMULATE=1 (check the script on
# the host emulation: no meaningful timings), PROFILE (an existing profile).
set -euo pipefail
B=${1:?build dir}; OUT=${2:?output dir}
L=$B/llmsim
mkdir -p "$OUT"
db=$OUT/gpu_engine.db
MODELS=${MODELS:-opt-6.7b opt-30b llama-2-7b}
PROMPT=${PROMPT:-512}; GEN=${GEN:-32}
emu=(); [ "${EMULATE:-0}" = 1 ] && emu=(--emulate-gpu)
prof=${PROFILE:-$OUT/gpu-measured.yaml}
if [ ! -f "$prof" ]; then
  echo "== llmsim profile -> $prof"
  "$L" profile -o "$prof" --db "$db" > "$OUT/profile.txt"
fi
policies=(
  "all-gpu|--percent 100 0 100 0 100 0 --gpu-batch-size 16 --num-gpu-batches 1|hbm"
  "weights-cpu|--percent 0 100 100 0 100 0 --gpu-batch-size 32 --num-gpu-batches 4|pcie"
  "kv-cpu|--percent 100 0 0 100 100 0 --gpu-batch-size 16 --num-gpu-batches 2|-"
  "kv-cpu-cpu-attention|--percent 100 0 0 100 100 0 --gpu-batch-size 16 --num-gpu-batches 2 --cpu-attention|-"
  "weights-4bit|--percent 100 0 100 0 100 0 --gpu-batch-size 16 --num-gpu-batches 1 --compress-weight|hbm"
)
rows=$OUT/rows.tsv
: > "$rows"
for m in $MODELS; do
  mn=$(basename "$m" .yaml)
  for p in "${policies[@]}"; do
    IFS='|' read -r name flags bound <<<"$p"
    echo "== $m $name"
    # shellcheck disable=SC2086
    if ! "$L" run --model "$m" --hardware "$prof" $flags --prompt-len "$PROMPT" --gen-len "$GEN" \
         --db "$db" --format json "${emu[@]}" > "$OUT/run-$mn-$name.json" 2> "$OUT/run-$mn-$name.err"; then
      printf '%s\t%s\tfailed: %s\n' "$mn" "$name" "$(tail -1 "$OUT/run-$mn-$name.err")" >> "$rows"
      continue
    fi
    # shellcheck disable=SC2086
    "$L" simulate --model "$m" --hardware "$prof" $flags --prompt-len "$PROMPT" --gen-len "$GEN" \
         --db "$db" --format json > "$OUT/sim-$mn-$name.json"
    printf '%s\t%s\t%s\t%s\t%s\n' "$mn" "$name" "$bound" "$flags" "$m" >> "$rows"
  done
done
python3 - "$OUT" "$prof" "$rows" "$B" <<'PY'
import json, os, subprocess, sys
import yaml
out, prof, rows, build = sys.argv[1:5]
hw = yaml.safe_load(open(prof))
def rate(s):  # "3.35 TB/s" -> bytes/s
    v, u = s.split()
    return float(v) * {"GB/s": 1e9, "TB/s": 1e12, "MB/s": 1e6, "GiB/s": 2**30}[u]
hbm = rate(hw["gpu"]["memory_bandwidth"])
h2d = rate(hw["links"]["h2d_pinned"]["bandwidth"])
lines = ["| model | policy | measured decode tok/s | bound tok/s | of bound | predicted total s | measured total s | error |",
         "|---|---|---|---|---|---|---|---|"]
for r in open(rows):
    f = r.rstrip("\n").split("\t")
    if len(f) < 4:
        lines.append(f"| {f[0]} | {f[1]} | {f[2]} | | | | | |"); continue
    m, name, bound, flags, mpath = f
    run = json.load(open(f"{out}/run-{m}-{name}.json")); sim = json.load(open(f"{out}/sim-{m}-{name}.json"))
    pol, wl = run["policy"], run["workload"]
    bls = pol["gpu_batch_size"] * pol["num_gpu_batches"]
    dec_tok = bls * (wl["gen_len"] - 1) / run["decode_s"]
    # the bytes a decode step must move: the weights it reads (every layer's
    # matrices and vectors, the LM head), as stored, and the KV cache read
    cfgp = mpath if os.path.exists(mpath) else os.path.join(os.path.dirname(os.path.abspath(build)), "models", "configs", m + ".yaml")
    if not os.path.exists(cfgp):
        cfgp = os.path.join("models", "configs", m + ".yaml")
    c = yaml.safe_load(open(cfgp))
    h, f, L, V = c["hidden_size"], c["ffn_size"], c["layers"], c["vocab_size"]
    hd = h // c["heads"]; kvd = c.get("kv_heads", c["heads"]) * hd
    nmat = 3 if c.get("ffn_kind") == "swiglu" else 2
    layer_mat = 2 * h * h + 2 * h * kvd + nmat * h * f
    layer_vec = (4 * h + 2 * kvd + f + h) * (1 if c.get("linear_bias", c["family"] == "opt") else 0) + 4 * h
    bpp = 0.5 + 4 / 64 if "--compress-weight" in flags else 2
    wbytes = L * (layer_mat * bpp + layer_vec * 2) + V * h * bpp
    ctx_avg = wl["prompt_len"] + wl["gen_len"] / 2
    kvbytes = 2 * L * kvd * ctx_avg * bls * 2
    b = ""
    if bound == "hbm":
        b = bls / ((wbytes + kvbytes) / hbm)
    elif bound == "pcie":
        b = bls / (wbytes / h2d)
    of = f"{dec_tok / b:.0%}" if b else ""
    err = (sim["total_s"] - run["total_s"]) / run["total_s"]
    lines.append(f"| {m} | {name} | {dec_tok:.1f} | {b and f'{b:.1f}'} | {of} | {sim['total_s']:.3g} | {run['total_s']:.3g} | {err:+.1%} |")
open(f"{out}/gpu_engine.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
