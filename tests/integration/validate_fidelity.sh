#!/usr/bin/env bash
# What validate says about its own trustworthiness (issue 24): a profile made
# noisy on purpose (LLMSIM_FAULT=noise:3 doubles every third sample the
# profiler times) is FLAGGED, predict warns about the figures it reads,
# validate refuses it (exit 2, nothing measured) unless --allow-noisy; with
# it, every run has an interval and the report its coverage, the tasks'
# median error and the ranking, and --search adds the search's candidates;
# calibrate keeps what it fitted on, and validate with the calibrated
# profile marks those runs and leaves them out of the MAPE.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
T=${LLMSIM_TEST_DATA:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=$tmp/store.db
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
M=$T/models/tiny-llama.yaml

LLMSIM_FAULT=noise:3 "$L" profile --quick -o "$tmp/noisy.yaml" --disk-dir "$tmp" --db "$db" >"$tmp/prof.txt" 2>&1; rc=$?
check "the noisy profile is written" '[ $rc -eq 0 ] && [ -s "$tmp/noisy.yaml" ]'
check "its figures are FLAGGED" 'grep -q FLAGGED "$tmp/prof.txt"'
check "the spreads are kept in the profile" 'grep -q "memory_bandwidth_spread" "$tmp/noisy.yaml"'

"$L" predict --model "$M" --hardware "$tmp/noisy.yaml" --percent 0 100 0 100 0 100 --prompt-len 8 --gen-len 4 \
  --db "$db" >/dev/null 2>"$tmp/err"; rc=$?
check "predict runs on it" '[ $rc -eq 0 ]'
check "and warns, naming a figure" 'grep -q "warning: .* spread over 10%" "$tmp/err" && grep -q "CPU memory bandwidth: spread" "$tmp/err"'

common=(--model "$M" --prompt-len 8 --gen-len 4 --db "$db" --offload-dir "$tmp" --threads 2 --remeasure 0
        --keep-disturbed)
"$L" validate "${common[@]}" --hardware "$tmp/noisy.yaml" --grid >/dev/null 2>"$tmp/err"; rc=$?
check "validate refuses it: exit 2" '[ $rc -eq 2 ]'
check "the message names the figures and --allow-noisy" 'grep -q FLAGGED "$tmp/err" && grep -q -- "--allow-noisy" "$tmp/err"'
check "nothing was measured" \
  '[ "$("$L" runs --kind measure --db "$db" --format json | json "len(d[\"runs\"])")" = 0 ]'

out=$("$L" validate "${common[@]}" --hardware "$tmp/noisy.yaml" --grid --allow-noisy --search 2 --format json \
  2>"$tmp/err"); rc=$?
check "with --allow-noisy it runs" '[ $rc -eq 0 ]'
check "and still warns" 'grep -q "warning" "$tmp/err"'
check "the search's candidates are validated beside the grid" \
  '[ "$(echo "$out" | json "sum(r[\"name\"].startswith(\"search-\") for r in d[\"runs\"])")" -ge 1 ]'
check "every run has an interval around its simulated total" \
  '[ "$(echo "$out" | json "all(r[\"interval\"][\"simulated_s_p10\"] <= r[\"simulated_s\"] <= r[\"interval\"][\"simulated_s_p90\"] for r in d[\"runs\"])")" = True ]'
check "the coverage counts the runs inside it" \
  '[ "$(echo "$out" | json "d[\"coverage\"][\"inside\"] == sum(bool(r[\"interval\"][\"inside\"]) for r in d[\"runs\"]) and d[\"coverage\"][\"runs\"] == len(d[\"runs\"]) and d[\"coverage\"][\"source\"]")" = spreads ]'
check "the tasks' median error is a percentage" \
  '[ "$(echo "$out" | json "0 <= d[\"task_median_error\"] < 1000")" = True ]'
check "the ranking names the measured best and a rho in [-1, 1]" \
  '[ "$(echo "$out" | json "-1 <= d[\"ranking\"][\"rho\"] <= 1 and d[\"ranking\"][\"best_measured\"] in [r[\"name\"] for r in d[\"runs\"]]")" = True ]'
vid=$(echo "$out" | json 'd["run_id"]')
"$L" validate "${common[@]}" --hardware "$tmp/noisy.yaml" --grid --allow-noisy --search 0 >/dev/null 2>"$tmp/err"; rc=$?
check "--search 0: exit 2, naming the option" '[ $rc -eq 2 ] && grep -q -- "--search" "$tmp/err"'

"$L" calibrate --hardware "$tmp/noisy.yaml" --runs "$vid" --holdout-every 2 -o "$tmp/cal.yaml" --db "$db" \
  >/dev/null 2>&1; rc=$?
check "calibrate writes a profile with its calibration section" \
  '[ $rc -eq 0 ] && grep -q "^calibration:" "$tmp/cal.yaml" && grep -q "held_out_error_p90" "$tmp/cal.yaml"'
nfit=$(grep -c '^    - "' "$tmp/cal.yaml")
out=$("$L" validate "${common[@]}" --hardware "$tmp/cal.yaml" --grid --allow-noisy --format json 2>/dev/null); rc=$?
check "validate with the calibrated profile runs" '[ $rc -eq 0 ]'
check "it marks the runs the fit saw ($nfit inputs) and counts only the others" \
  '[ "$(echo "$out" | json "d[\"fit_seen\"] == sum(r[\"fit_seen\"] for r in d[\"runs\"]) >= 1 and d[\"counted\"] == len(d[\"runs\"]) - d[\"fit_seen\"]")" = True ]'
check "its intervals come from the calibration" \
  '[ "$(echo "$out" | json "d[\"coverage\"][\"source\"]")" = calibration ]'
"$L" predict --model "$M" --hardware "$tmp/cal.yaml" --percent 0 100 0 100 0 100 --prompt-len 8 --gen-len 4 \
  --db "$db" --format json 2>/dev/null >"$tmp/p.json"
check "predict's interval is the calibration's" \
  '[ "$(json "d[\"interval\"][\"source\"]" <"$tmp/p.json")" = calibration ]'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
