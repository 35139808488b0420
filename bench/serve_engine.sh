#!/usr/bin/env bash
# Serving for real against serve-sim (issue 22): `llmsim validate --serving
# --preemption all` on a bursty trace that forces preemption, for synthetic
# OPT-125M and OPT-1.3B, weights in RAM and weights on disk (streamed layer
# by layer every iteration), on a profile of this machine. Each case serves
# the same requests with swap, recompute and adaptive, predicted (serve-sim)
# and measured (serve); the table gives both and the errors.
#
# The trace: gamma arrivals with cv 3 (bursts), prompts and outputs small
# enough for a 2-core machine, a KV pool of a few dozen blocks so that the
# bursts preempt, swap space on disk (the CPU-only machine's swap tier).
#
# Usage: bench/serve_engine.sh BUILD_DIR OUT_DIR [PROFILE]
#   PROFILE: a profile of this machine (default: measured now with
#   `llmsim profile --quick`, on a quiet machine). Writes OUT_DIR/serve.md
#   and OUT_DIR/*.json.
set -euo pipefail
B=${1:?usage: serve_engine.sh BUILD_DIR OUT_DIR [PROFILE]}
OUT=${2:?usage: serve_engine.sh BUILD_DIR OUT_DIR [PROFILE]}
L=$B/llmsim
mkdir -p "$OUT"
export LLMSIM_DB=$OUT/store.db
HW=${3:-$OUT/hw.yaml}
if [ ! -f "$HW" ]; then
  "$L" profile --quick -o "$HW" >"$OUT/profile.log" 2>&1
fi
run() { # name model placement kv_memory gen...
  local name=$1 model=$2 pct=$3 kv=$4
  shift 4
  # shellcheck disable=SC2086
  "$L" validate --serving --model "$model" --hardware "$HW" --percent $pct \
    --kv-memory "$kv" --swap-space "256 MiB" --block-size 16 --preemption all \
    "$@" --format json >"$OUT/$name.json"
}
RAM="0 100 0 100 0 100"
DISK="0 0 0 100 0 100"
G125=(--num-requests 24 --rate 8 --arrival gamma --cv 3 --prompt-len uniform:16,128
      --output-len uniform:8,48 --seed 1 --max-batch 8 --token-budget 256)
G13=(--num-requests 10 --rate 1 --arrival gamma --cv 3 --prompt-len uniform:16,64
     --output-len uniform:8,24 --seed 1 --max-batch 4 --token-budget 128)
run opt125m-ram opt-125m "$RAM" "12 MiB" "${G125[@]}"
run opt125m-disk opt-125m "$DISK" "12 MiB" "${G125[@]}"
run opt13b-ram opt-1.3b "$RAM" "40 MiB" "${G13[@]}"
run opt13b-disk opt-1.3b "$DISK" "40 MiB" "${G13[@]}"
python3 - "$OUT" <<'PY' | tee "$OUT/serve.md"
import json, os, sqlite3, sys
out = sys.argv[1]
db = sqlite3.connect(os.path.join(out, "store.db"))
def run(i):
    return json.loads(db.execute("select result_json from runs where id = ?", (i,)).fetchone()[0])
def sched_frac(i):
    r = db.execute("select sum(sched_s), sum(end_s - start_s) from serve_iterations where run_id = ?",
                   (i,)).fetchone()
    return 100 * r[0] / r[1] if r[1] else float("nan")
keys = ["throughput", "ttft_p50", "ttft_p90", "tpot_p50", "e2e_p50", "e2e_p90",
        "weighted_turnaround", "e2e_request_p50", "e2e_request_p90", "swap_overhead",
        "recompute_overhead"]
fmt = lambda v: "-" if v is None else f"{v:+.1f}"
print("| case | preemption | tok/s pred / meas | preemptions swap+recompute | "
      + " | ".join(keys) + " | scheduler % of iteration |")
print("|---|---|---|---|" + "---|" * len(keys) + "---|")
for name in ["opt125m-ram", "opt125m-disk", "opt13b-ram", "opt13b-disk"]:
    d = json.load(open(os.path.join(out, name + ".json")))
    for m in d["modes"]:
        meas = run(m["measured_run"])
        p = meas["preemptions"]
        print(f"| {name} | {m['preemption']} | {m['predicted_throughput_tok_s']:.1f} / "
              f"{m['measured_throughput_tok_s']:.1f} | {p['swap']:.0f}+{p['recompute']:.0f} | "
              + " | ".join(fmt(m["errors"][k]) for k in keys)
              + f" | {sched_frac(m['measured_run']):.3f} |")
PY
