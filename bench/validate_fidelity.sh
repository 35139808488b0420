#!/usr/bin/env bash
# Issue 24's fidelity check on this machine's CPU engine:
#   1. measure the machine (llmsim profile, full run) into a profile;
#   2. validate the grid on synthetic OPT-1.3B and TinyLlama-1.1B (LLaMA-shaped:
#      GQA, SwiGLU) at two workloads each -- 2 x 2 sequences of 128 prompt
#      tokens generating 8, and 1 sequence of 512 generating 32 -- and, at the
#      first, the search's best candidates beside the grid (validate --search):
#      MAPE, interval coverage, rank correlation, the primitives' errors;
#   3. calibrate the profile on every other run of all of them and report the
#      error on the runs held out.
# Usage: bench/validate_fidelity.sh BUILD_DIR OUT_DIR [DISK_DIR] [extra validate flags]
# Everything (profile, store, tables, JSON) lands in OUT_DIR; summary.txt has the figures.
set -euo pipefail
B=${1:?usage: validate_fidelity.sh BUILD_DIR OUT_DIR [DISK_DIR] [validate flags...]}
OUT=${2:?usage: validate_fidelity.sh BUILD_DIR OUT_DIR [DISK_DIR] [validate flags...]}
DISK=${3:-${TMPDIR:-/tmp}}
shift $(($# >= 3 ? 3 : $#))
flags=("$@")
L=$B/llmsim
mkdir -p "$OUT"
export LLMSIM_DB=$OUT/store.db
echo "== machine: $(uname -n), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), llmsim $(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || echo '?')" | tee "$OUT/summary.txt"
start=$(date +%s)
"$L" profile -o "$OUT/profile.yaml" --disk-dir "$DISK" >"$OUT/profile.txt"
if grep -q FLAGGED "$OUT/profile.txt"; then # once more, as a user would, before --allow-noisy
  echo "profile: $(grep -c FLAGGED "$OUT/profile.txt") lines FLAGGED; measuring again" | tee -a "$OUT/summary.txt"
  "$L" profile -o "$OUT/profile.yaml" --disk-dir "$DISK" >"$OUT/profile.txt"
fi
echo "profile: $(( $(date +%s) - start )) s, $(grep -c FLAGGED "$OUT/profile.txt" || true) lines FLAGGED" | tee -a "$OUT/summary.txt"
summarize() { # JSON file -> one line
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def f(v, fmt="%.1f%%"): return "n/a" if v is None else fmt % v
cov = d.get("coverage") or {}
rk = d.get("ranking") or {}
print("MAPE simulated %s, cost model %s, per-task median %s, interval coverage %s of %s, disturbed left out %s%s" % (
    f(d.get("mape")), f(d.get("mape_predicted")), f(d.get("task_median_error")),
    cov.get("inside", "n/a"), cov.get("runs", "n/a"), d.get("disturbed_excluded", 0),
    "" if not rk else ", rank rho %s, predicted best %s%s of the measured best" % (
        f(rk.get("rho"), "%.3f"), f(rk.get("shortfall_pct")), "" if rk.get("best_within") else " (not within 5%)")))
PY
}
ids=()
for m in opt-1.3b tinyllama-1.1b; do
  for wl in "128 8 2 2" "512 32 1 1"; do
    set -- $wl
    t0=$(date +%s)
    name=$m-p$1-g$2-b$3x$4
    extra=()
    [ "$1" = 128 ] && extra=(--search 5)
    "$L" validate --model "$m" --hardware "$OUT/profile.yaml" --grid "${extra[@]}" --prompt-len "$1" --gen-len "$2" \
      --gpu-batch-size "$3" --num-gpu-batches "$4" --offload-dir "$DISK" "${flags[@]}" >"$OUT/validate-$name.txt"
    "$L" validate --model "$m" --hardware "$OUT/profile.yaml" --grid "${extra[@]}" --prompt-len "$1" --gen-len "$2" \
      --gpu-batch-size "$3" --num-gpu-batches "$4" --offload-dir "$DISK" "${flags[@]}" --format json >"$OUT/validate-$name.json"
    ids+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/validate-$name.json")")
    echo "validate $name: $(( $(date +%s) - t0 )) s; $(summarize "$OUT/validate-$name.json")" | tee -a "$OUT/summary.txt"
  done
done
"$L" calibrate --hardware "$OUT/profile.yaml" --runs "$(IFS=,; echo "${ids[*]}")" --holdout-every 2 \
  -o "$OUT/profile-calibrated.yaml" >"$OUT/calibrate.txt"
grep '^MAPE' "$OUT/calibrate.txt" | sed 's/^/calibrate: /' | tee -a "$OUT/summary.txt"
echo "total: $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
