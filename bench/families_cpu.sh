#!/usr/bin/env bash
# The CPU engine's prefill and decode speed on one model of each family
# (synthetic weights, everything in RAM, one sequence), next to the decode's
# memory-bandwidth bound: a decode step reads every weight once, so it cannot
# run faster than the profile's memory bandwidth over the weights' bytes.
# Rounds alternate the models (the machine is shared: repeat, alternate,
# report the spread); each run's conditions say whether it was disturbed.
#   bench/families_cpu.sh BUILD_DIR OUT_DIR PROFILE [ROUNDS] [MODELS...]
# PROFILE: a measured profile (llmsim profile -o FILE), for the bandwidth.
# Medians (and min-max) are over the runs that were not disturbed (their
# conditions), over all of them where every run was. SUMMARY_ONLY=1: the
# table of the runs already in OUT_DIR.
set -euo pipefail
B=${1:?usage: families_cpu.sh BUILD_DIR OUT_DIR PROFILE [ROUNDS] [MODELS...]}
OUT=${2:?usage}
HW=${3:?usage}
ROUNDS=${4:-3}
shift $(($# >= 4 ? 4 : $#))
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(llama-3.2-1b qwen2.5-1.5b qwen3-1.7b gemma-2b phi-3-mini-4k mistral-7b)
L=$B/llmsim
mkdir -p "$OUT"
export LLMSIM_DB=$OUT/store.db
PROMPT=128 GEN=16
echo "== $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), llmsim $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo '?'), profile $HW" | tee "$OUT/summary.txt"
for r in $(seq "$ROUNDS"); do
  [ -n "${SUMMARY_ONLY:-}" ] && break # the runs are in OUT_DIR already
  for m in "${models[@]}"; do
    "$L" run --model "$m" --hardware "$HW" --prompt-len $PROMPT --gen-len $GEN --gpu-batch-size 1 \
      --num-gpu-batches 1 --offload-dir "$OUT" --format json >"$OUT/$m.$r.json" 2>"$OUT/$m.$r.err"
    echo "round $r $m done" >&2
  done
done
LLMSIM_ROOT=$(cd "$(dirname "$0")/.." && pwd) LLMSIM_BIN=$L python3 - "$OUT" "$HW" "$PROMPT" "$GEN" "$ROUNDS" "${models[@]}" <<'PY' | tee -a "$OUT/summary.txt"
import json, os, re, statistics, subprocess, sys
out, hw, prompt, gen, rounds, models = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6:]
units = {"GiB/s": 2**30, "GB/s": 1e9, "MiB/s": 2**20, "MB/s": 1e6}
root = os.environ["LLMSIM_ROOT"]
params_of = {}  # llmsim models: NAME FAMILY COUNT M|B SOURCE
for line in subprocess.run([os.environ["LLMSIM_BIN"], "models"], capture_output=True,
                           text=True).stdout.splitlines():
    f = line.split()
    if len(f) >= 4 and f[3] in ("M", "B"):
        params_of[f[0]] = float(f[2]) * (1e6 if f[3] == "M" else 1e9)
bw = None
for line in open(hw):
    m = re.match(r"\s*memory_bandwidth:\s*([0-9.e+-]+)\s*(\S+)", line)
    if m:
        bw = float(m.group(1)) * units[m.group(2)]
        break
print(f"prompt {prompt}, {gen} generated, batch 1, weights in RAM (synthetic), {rounds} rounds; "
      f"memory bandwidth {bw / 1e9:.1f} GB/s (profile)")
print()
print("| model | family | weights | prefill tok/s | decode tok/s | bound tok/s | decode / bound | disturbed (left out) |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in models:
    runs, fam = [], "?"
    for r in range(1, rounds + 1):
        d = json.load(open(f"{out}/{m}.{r}.json"))
        runs.append((prompt / d["prefill_s"], (gen - 1) / d["decode_s"],
                     bool(d["conditions"] and d["conditions"].get("disturbed"))))
    dist = sum(r[2] for r in runs)
    kept = [r for r in runs if not r[2]] or runs
    pre, dec = [r[0] for r in kept], [r[1] for r in kept]
    # the weights a decode step reads: all of them as stored, but for the
    # input embedding table of an untied model (one row of it is read)
    cfg = dict(re.findall(r"^(\w+):\s*(\S+)", open(f"{root}/models/configs/{m}.yaml").read(), re.M))
    fam = cfg.get("family", fam)
    params = params_of[m]
    if cfg.get("tied_embeddings") == "false":
        params -= int(cfg["vocab_size"]) * int(cfg["hidden_size"])
    wbytes = params * (4 if cfg.get("dtype") == "fp32" else 2)
    bound = bw / wbytes
    fmt = lambda xs: f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})"
    print(f"| {m} | {fam} | {wbytes / 1e9:.2f} GB | {fmt(pre)} | {fmt(dec)} | {bound:.2f} | "
          f"{statistics.median(dec) / bound:.2f} | {dist}/{rounds} |")
PY
