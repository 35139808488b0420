#!/usr/bin/env bash
# Serving under bursts: swap, recompute and adaptive preemption, fcfs against
# fair scheduling, as issue 9 asks. Two machines that differ in the one ratio
# that decides swap against recompute (compute speed over link speed):
#   A  LLaMA-2-13B on a100-40gb-pcie: 26 GB of weights leave ~14k tokens of
#      KV cache; fast tensor cores, PCIe 4.0.
#   B  LLaMA-2-7B on l4: 13.5 GB of weights leave ~14k tokens on the 24 GB
#      L4; a quarter of the A100's compute, the same PCIe 4.0 link.
# each with 16-token blocks (vLLM's default: a swap is a copy per block per
# layer for K and for V, latency-bound) and 128-token blocks.
# Trace: 2000 generated requests, gamma arrivals with cv 4 (bursts of many
# requests, then quiet), at about the machine's mean capacity so that the
# bursts overload it; prompts uniform:64,1024, outputs uniform:16,512,
# weights 1 (70%) or 4 (30%), seed 1. Everything else at vLLM's defaults:
# max batch 256, 2048 tokens per iteration, 4 GiB of swap, 90% of memory.
# Usage: bench/serve_study.sh BUILD_DIR OUT_DIR   (writes OUT_DIR/study.md)
set -euo pipefail
B=${1:?usage: serve_study.sh BUILD_DIR OUT_DIR}
OUT=${2:?usage: serve_study.sh BUILD_DIR OUT_DIR}
L=$B/llmsim
mkdir -p "$OUT"
export LLMSIM_DB=$OUT/store.db
GEN=(--num-requests 2000 --arrival gamma --cv 4 --prompt-len uniform:64,1024
     --output-len uniform:16,512 --weight hist:1=0.7,4=0.3 --seed 1)
for cfg in "A llama-2-13b a100-40gb-pcie 1.5" "B llama-2-7b l4 0.8"; do
  read -r name model hw rate <<<"$cfg"
  for bs in 16 128; do
    for pre in swap recompute adaptive; do
      for sched in fcfs fair; do
        "$L" serve-sim --model "$model" --hardware "$hw" --rate "$rate" "${GEN[@]}" \
          --block-size "$bs" --preemption "$pre" --scheduler "$sched" --format json \
          >"$OUT/$name-$bs-$pre-$sched.json"
      done
    done
  done
done
python3 - "$OUT" <<'PY' | tee "$OUT/study.md"
import glob, json, os, sys
out = sys.argv[1]
print("| machine | block | preemption | scheduler | throughput tok/s | weighted turnaround s |"
      " mean e2e s | p99 TTFT s | swaps | recomputes | swapped GiB | recomputed tokens |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
order = {"swap": 0, "recompute": 1, "adaptive": 2, "fcfs": 0, "fair": 1}
rows = []
for f in glob.glob(os.path.join(out, "*.json")):
    name, bs, pre, sched = os.path.basename(f)[:-5].split("-")
    d = json.load(open(f))
    rows.append(((name, int(bs), order[sched], order[pre]), name, d))
for key, name, d in sorted(rows):
    s, p = d["serving"], d["preemptions"]
    print(f"| {name}: {d['model']} on {d['hardware']} | {s['kv_block_size']} | {s['preemption']} |"
          f" {s['scheduler']} | {d['throughput_tok_s']:.1f} | {d['weighted_turnaround_s']:.2f} |"
          f" {d['e2e_s']['mean']:.2f} | {d['ttft_s']['p99']:.2f} | {p['swap']:.0f} |"
          f" {p['recompute']:.0f} | {d['swapped_out_bytes'] / 2**30:.1f} |"
          f" {d['recomputed_tokens']:.0f} |")
PY
