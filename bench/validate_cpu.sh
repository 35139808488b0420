#!/usr/bin/env bash
# The closed loop on this machine's CPU engine, as issue 7 checks it:
#   1. measure the machine (llmsim profile, full run) into a profile;
#   2. validate a grid of policies (all in RAM, weights on disk, KV cache on
#      disk, activations on disk, mixed, 4- and 8-bit weights and KV cache, no
#      overlap, a wider batch) on synthetic OPT-1.3B and TinyLlama-1.1B with
#      that profile: predicted, simulated and measured, MAPE;
#      (--check-disk: the disk is measured again around each run that uses
#      it, and those runs are also predicted with the disk as it was then);
#   3. calibrate the profile on two thirds of those runs and report the error
#      on the third held out.
# Usage: bench/validate_cpu.sh BUILD_DIR OUT_DIR [DISK_DIR] [extra validate flags]
# Everything (profile, store, tables, JSON) lands in OUT_DIR.
set -euo pipefail
B=${1:?usage: validate_cpu.sh BUILD_DIR OUT_DIR [DISK_DIR] [validate flags...]}
OUT=${2:?usage: validate_cpu.sh BUILD_DIR OUT_DIR [DISK_DIR] [validate flags...]}
DISK=${3:-${TMPDIR:-/tmp}}
shift $(($# >= 3 ? 3 : $#))
L=$B/llmsim
mkdir -p "$OUT"
export LLMSIM_DB=$OUT/store.db
echo "== machine: $(uname -n), $(nproc) cores, $(date -u +%FT%TZ)" | tee "$OUT/summary.txt"
start=$(date +%s)
"$L" profile -o "$OUT/profile.yaml" --disk-dir "$DISK" >"$OUT/profile.txt"
echo "profile: $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
ids=()
for m in opt-1.3b tinyllama-1.1b; do
  t0=$(date +%s)
  "$L" validate --model "$m" --hardware "$OUT/profile.yaml" --grid --offload-dir "$DISK" --check-disk "$@" \
    >"$OUT/validate-$m.txt"
  "$L" validate --model "$m" --hardware "$OUT/profile.yaml" --grid --offload-dir "$DISK" "$@" \
    --format json >"$OUT/validate-$m.json" # from the store: nothing is measured again
  ids+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$OUT/validate-$m.json")")
  echo "validate $m: $(( $(date +%s) - t0 )) s, MAPE $(grep -m1 '^MAPE' "$OUT/validate-$m.txt" | awk '{print "cost model", $2, "simulator", $3}'), with the disk as measured $(grep '^MAPE' "$OUT/validate-$m.txt" | sed -n 2p | awk '{print "cost model", $2, "simulator", $3}')" \
    | tee -a "$OUT/summary.txt"
done
"$L" calibrate --hardware "$OUT/profile.yaml" --runs "$(IFS=,; echo "${ids[*]}")" \
  -o "$OUT/profile-calibrated.yaml" >"$OUT/calibrate.txt"
grep '^MAPE' "$OUT/calibrate.txt" | sed 's/^/calibrate: /' | tee -a "$OUT/summary.txt"
echo "total: $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
