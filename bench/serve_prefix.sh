#!/usr/bin/env bash
# The prefix cache served for real against serve-sim (issue 22, item 6):
# `llmsim validate --serving --prefix-cache` on requests that share system
# prompts (the generator's --shared-prefix), for synthetic OPT-125M and
# OPT-1.3B with the weights in RAM, on a profile of this machine. Each case
# serves and simulates the requests with the cache and without it, so the
# table gives the hit rate and the mean TTFT gained, predicted and measured,
# beside throughput and the latency errors.
#
# Usage: bench/serve_prefix.sh BUILD_DIR OUT_DIR [PROFILE]
#   PROFILE: a profile of this machine (default: measured now with
#   `llmsim profile --quick`, on a quiet machine). Writes OUT_DIR/prefix.md
#   and OUT_DIR/*.json.
set -euo pipefail
B=${1:?usage: serve_prefix.sh BUILD_DIR OUT_DIR [PROFILE]}
OUT=${2:?usage: serve_prefix.sh BUILD_DIR OUT_DIR [PROFILE]}
L=$B/llmsim
mkdir -p "$OUT"
export LLMSIM_DB=$OUT/store.db
HW=${3:-$OUT/hw.yaml}
if [ ! -f "$HW" ]; then
  "$L" profile --quick -o "$HW" >"$OUT/profile.log" 2>&1
fi
run() { # name model kv_memory preemption gen...
  local name=$1 model=$2 kv=$3 pre=$4
  shift 4
  "$L" validate --serving --model "$model" --hardware "$HW" --percent 0 100 0 100 0 100 \
    --kv-memory "$kv" --swap-space "256 MiB" --block-size 16 --preemption "$pre" --prefix-cache \
    "$@" --format json >"$OUT/$name.json"
}
# OPT-125M: 4 system prompts of 256 tokens before prompts of 16..128; a pool
# that holds the prefixes and the bursts' growth only in part
G125=(--num-requests 32 --rate 6 --arrival gamma --cv 3 --prompt-len uniform:16,128
      --output-len uniform:8,32 --shared-prefix 4:256 --seed 1 --max-batch 8 --token-budget 256)
G13=(--num-requests 12 --rate 0.8 --arrival gamma --cv 3 --prompt-len uniform:16,64
     --output-len uniform:4,16 --shared-prefix 2:192 --seed 1 --max-batch 4 --token-budget 128)
run opt125m-recompute opt-125m "24 MiB" recompute "${G125[@]}"
run opt125m-swap opt-125m "20 MiB" swap "${G125[@]}"
run opt13b-recompute opt-1.3b "96 MiB" recompute "${G13[@]}"
python3 - "$OUT" <<'PY' | tee "$OUT/prefix.md"
import json, os, sys
out = sys.argv[1]
keys = ["throughput", "ttft_p50", "ttft_p90", "e2e_p50", "e2e_request_p50", "prefix_hit_rate",
        "ttft_gain"]
fmt = lambda v: "-" if v is None else f"{v:+.1f}"
print("| case | tok/s pred / meas | hit rate % pred / meas | TTFT gained ms pred / meas | "
      + " | ".join(keys) + " |")
print("|---|---|---|---|" + "---|" * len(keys))
for name in ["opt125m-recompute", "opt125m-swap", "opt13b-recompute"]:
    d = json.load(open(os.path.join(out, name + ".json")))
    for m in d["modes"]:
        pc = m["prefix_cache"]
        print(f"| {name} | {m['predicted_throughput_tok_s']:.1f} / "
              f"{m['measured_throughput_tok_s']:.1f} | {100 * pc['predicted_hit_rate']:.1f} / "
              f"{100 * pc['measured_hit_rate']:.1f} | {1e3 * pc['predicted_ttft_gain_s']:.1f} / "
              f"{1e3 * pc['measured_ttft_gain_s']:.1f} | "
              + " | ".join(fmt(m["errors"][k]) for k in keys) + " |")
PY
