#!/usr/bin/env bash
# llmsim validate and calibrate as a user runs them: a grid of policies on a
# tiny model, predicted, simulated and measured; the §11 keys; the store
# reused on a second run and not with --rerun; a directory of policies;
# --check-disk (the disk's rate around a run, and the predictions with it); bad
# input with exit 2; calibrate from the validate run writes a profile that
# every command accepts, with provenance, and reports held-out errors.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
T=${LLMSIM_TEST_DATA:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=$tmp/store.db
off=$tmp/offload
mkdir -p "$off"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
M=$T/models/tiny-llama.yaml
# every run counted, none measured again: the suite's other tests load the machine
# (validate_contention.sh tests what a disturbed run does)
common=(--model "$M" --hardware cpu-only --prompt-len 8 --gen-len 4 --db "$db" --offload-dir "$off"
        --threads 2 --remeasure 0 --keep-disturbed)

out=$("$L" validate "${common[@]}" --grid --format json); rc=$?
check "validate --grid exits 0" '[ $rc -eq 0 ]'
check "json has runs and mape" '[ "$(json "\"runs\" in d and \"mape\" in d" <<<"$out")" = True ]'
n=$(json 'len(d["runs"])' <<<"$out")
check "the grid has at least 8 policies ($n)" '[ "$n" -ge 8 ]'
check "every run has policy, predicted_s, simulated_s, measured_s, error" \
  '[ "$(json "all(all(k in r for k in (\"policy\",\"predicted_s\",\"simulated_s\",\"measured_s\",\"error\")) for r in d[\"runs\"])" <<<"$out")" = True ]'
check "measured times are positive" '[ "$(json "all(r[\"measured_s\"] > 0 for r in d[\"runs\"])" <<<"$out")" = True ]'
check "the grid covers disk weights, disk cache, 4- and 8-bit weights and cache" \
  '[ "$(json "set(r[\"name\"] for r in d[\"runs\"]) >= {\"weights-disk\",\"kv-disk\",\"w4\",\"w8\",\"kv4\",\"kv8\"}" <<<"$out")" = True ]'
check "error is the simulation's signed percentage" \
  '[ "$(json "all(abs(r[\"error\"] - 100*(r[\"simulated_s\"]-r[\"measured_s\"])/r[\"measured_s\"]) < 1e-6 for r in d[\"runs\"])" <<<"$out")" = True ]'
check "mape is the mean of the absolute errors" \
  '[ "$(json "abs(d[\"mape\"] - sum(abs(r[\"error\"]) for r in d[\"runs\"])/len(d[\"runs\"])) < 1e-6" <<<"$out")" = True ]'
check "stage errors and the worst primitives are reported" \
  '[ "$(json "\"stage_error\" in d[\"runs\"][0] and len(d[\"primitives\"]) > 0" <<<"$out")" = True ]'
check "nothing was reused the first time" '[ "$(json "any(r[\"reused\"] for r in d[\"runs\"])" <<<"$out")" = False ]'
measures=$(sqlite3 "$db" "select count(*) from runs where kind='measure'" 2>/dev/null || echo "$n")
vid=$(json 'd["run_id"]' <<<"$out")

out2=$("$L" validate "${common[@]}" --grid --format json); rc=$?
check "a second validate exits 0" '[ $rc -eq 0 ]'
check "the second reuses every measurement" '[ "$(json "all(r[\"reused\"] for r in d[\"runs\"])" <<<"$out2")" = True ]'
check "the same measure runs" \
  '[ "$(json "[r[\"run_ids\"][\"measure\"] for r in d[\"runs\"]]" <<<"$out")" = "$(json "[r[\"run_ids\"][\"measure\"] for r in d[\"runs\"]]" <<<"$out2")" ]'
if command -v sqlite3 >/dev/null; then
  check "no new measure run" '[ "$(sqlite3 "$db" "select count(*) from runs where kind='"'"'measure'"'"'")" = "$measures" ]'
fi
out4=$("$L" validate "${common[@]}" --threads 1 --grid --format json 2>/dev/null); rc=$?
check "other engine threads: measured again, not reused" \
  '[ $rc -eq 0 ] && [ "$(json "any(r[\"reused\"] for r in d[\"runs\"])" <<<"$out4")" = False ]'
out3=$("$L" validate "${common[@]}" --grid --rerun --format json 2>/dev/null); rc=$?
check "--rerun measures again" '[ $rc -eq 0 ] && [ "$(json "any(r[\"reused\"] for r in d[\"runs\"])" <<<"$out3")" = False ]'

# a directory of policies, table output
mkdir "$tmp/pol"
printf 'llmsim: policy/1\nweights: {cpu: 0.5, disk: 0.5}\nkv_cache: {cpu: 1}\nactivations: {cpu: 1}\ngpu_batch_size: 2\nnum_gpu_batches: 1\n' >"$tmp/pol/b-half-disk.yaml"
printf 'llmsim: policy/1\nweights: {cpu: 1}\nkv_cache: {cpu: 1}\nactivations: {cpu: 1}\ngpu_batch_size: 1\nnum_gpu_batches: 2\nweight_quant: {bits: 8, group_size: 32}\n' >"$tmp/pol/a-w8.yaml"
table=$("$L" validate "${common[@]}" --policies "$tmp/pol"); rc=$?
check "--policies DIR exits 0" '[ $rc -eq 0 ]'
check "the table lists the policies by file name, in order" \
  '[ "$(grep -E "^(a-w8|b-half-disk) " <<<"$table" | head -2 | cut -d" " -f1 | tr "\n" " ")" = "a-w8 b-half-disk " ]'
check "the table has the MAPE and the primitives" 'grep -q "^MAPE" <<<"$table" && grep -q "^primitives" <<<"$table"'

# --check-disk: the disk measured around the run that uses it, predicted again
cd_out=$("$L" validate "${common[@]}" --policies "$tmp/pol" --check-disk --rerun --format json 2>/dev/null); rc=$?
check "--check-disk exits 0" '[ $rc -eq 0 ]'
check "the disk policy has its disk rates and predictions with them; the in-RAM one has none" \
  '[ "$(json "[(\"disk_now\" in r) for r in d[\"runs\"]]" <<<"$cd_out")" = "[False, True]" ]'
check "the rates are ratios to the profile's, positive" \
  '[ "$(json "all(r[\"disk_now\"][k] > 0 for r in d[\"runs\"][1:] for k in (\"read_ratio\",\"write_ratio\"))" <<<"$cd_out")" = True ]'
check "a slower disk predicts a longer run, a faster one a shorter" \
  '[ "$(json "all((r[\"disk_now\"][\"predicted_s\"] - r[\"predicted_s\"]) * (1 - r[\"disk_now\"][\"read_ratio\"]) >= 0 for r in d[\"runs\"][1:])" <<<"$cd_out")" = True ]'
check "mape_disk_now is the mean over every policy, the disk one with its new error" \
  '[ "$(json "abs(d[\"mape_disk_now\"] - sum(abs(r[\"disk_now\"][\"error\"] if \"disk_now\" in r else r[\"error\"]) for r in d[\"runs\"])/len(d[\"runs\"])) < 1e-6" <<<"$cd_out")" = True ]'
check "the check leaves nothing in the offload directory" '[ -z "$(ls -A "$off")" ]'
cd_table=$("$L" validate "${common[@]}" --policies "$tmp/pol" --check-disk 2>/dev/null); rc=$?
check "reused from the store, the table shows the disk check" \
  '[ $rc -eq 0 ] && grep -q "^b-half-disk .*x .*x" <<<"$cd_table" && grep -q "(--check-disk)" <<<"$cd_table"'

# bad input
"$L" validate "${common[@]}" >/dev/null 2>"$tmp/err"; rc=$?
check "neither --grid nor --policies: exit 2" '[ $rc -eq 2 ] && grep -q -- "--grid" "$tmp/err"'
"$L" validate "${common[@]}" --grid --policies "$tmp/pol" >/dev/null 2>&1; rc=$?
check "both: exit 2" '[ $rc -eq 2 ]'
"$L" validate "${common[@]}" --policies "$tmp/nope" >/dev/null 2>"$tmp/err"; rc=$?
check "missing policy directory: exit 2, named" '[ $rc -eq 2 ] && grep -q "nope" "$tmp/err"'
mkdir "$tmp/badpol"
printf 'llmsim: policy/1\nweights: {cpu: 0.5, disk: 0.7}\n' >"$tmp/badpol/x.yaml"
"$L" validate "${common[@]}" --policies "$tmp/badpol" >/dev/null 2>"$tmp/err"; rc=$?
check "a bad policy file: exit 2 with file and line" '[ $rc -eq 2 ] && grep -q "x.yaml:[0-9]" "$tmp/err"'
"$L" validate "${common[@]}" --grid --top zero >/dev/null 2>&1; rc=$?
check "bad --top: exit 2" '[ $rc -eq 2 ]'

# calibrate from the first validate run
cal=$("$L" calibrate --hardware cpu-only --runs "$vid" -o "$tmp/cal.yaml" --db "$db" --format json); rc=$?
check "calibrate exits 0" '[ $rc -eq 0 ]'
check "the profile is written" '[ -s "$tmp/cal.yaml" ]'
check "it reports held-out errors before and after" \
  '[ "$(json "d[\"mape_holdout_before\"] is not None and d[\"mape_holdout_after\"] is not None" <<<"$cal")" = True ]'
check "held-out runs are marked" '[ "$(json "sum(r[\"held_out\"] for r in d[\"runs\"])" <<<"$cal")" -ge 2 ]'
check "the fit does not make the task errors of the fit worse" \
  '[ "$(json "d[\"sse_after\"] <= d[\"sse_before\"]" <<<"$cal")" = True ]'
check "provenance names calibrate and the base profile" \
  'grep -q "calibrated by llmsim calibrate from '"'"'cpu-only'"'"'" "$tmp/cal.yaml"'
check "the calibrated profile is accepted by predict" \
  '"$L" predict --model "$M" --hardware "$tmp/cal.yaml" --prompt-len 8 --gen-len 4 --db "$db" >/dev/null'
check "and by simulate" \
  '"$L" simulate --model "$M" --hardware "$tmp/cal.yaml" --prompt-len 8 --gen-len 4 --db "$db" >/dev/null'
"$L" calibrate --hardware cpu-only --db "$db" -o "$tmp/cal2.yaml" >/dev/null; rc=$?
check "calibrate without --runs takes the newest validate run of the profile" '[ $rc -eq 0 ] && [ -s "$tmp/cal2.yaml" ]'
"$L" calibrate --hardware cpu-only --runs 999999 -o "$tmp/x.yaml" --db "$db" >/dev/null 2>&1; rc=$?
check "unknown run: exit 2, no file" '[ $rc -eq 2 ] && [ ! -e "$tmp/x.yaml" ]'
first=$(json 'd["runs"][0]["run_ids"]["predict"]' <<<"$out")
"$L" calibrate --hardware cpu-only --runs "$first" -o "$tmp/x.yaml" --db "$db" >/dev/null 2>&1; rc=$?
check "a predict run: exit 2" '[ $rc -eq 2 ] && [ ! -e "$tmp/x.yaml" ]'
"$L" calibrate --hardware cpu-only --runs "$vid" --holdout 999999 -o "$tmp/x.yaml" --db "$db" >/dev/null 2>&1; rc=$?
check "a holdout that is not among the runs: exit 2" '[ $rc -eq 2 ] && [ ! -e "$tmp/x.yaml" ]'
"$L" calibrate --hardware cpu-only --runs 12x -o "$tmp/x.yaml" --db "$db" >/dev/null 2>"$tmp/err"; rc=$?
check "a malformed --runs: exit 2, named, no file" '[ $rc -eq 2 ] && grep -q -- "--runs" "$tmp/err" && [ ! -e "$tmp/x.yaml" ]'
"$L" calibrate --hardware cpu-only --runs "$vid" --holdout-every 1 -o "$tmp/x.yaml" --db "$db" >/dev/null 2>&1; rc=$?
check "--holdout-every 1 (all held out): exit 2, no file" '[ $rc -eq 2 ] && [ ! -e "$tmp/x.yaml" ]'
"$L" calibrate --hardware "$tmp/nope.yaml" --runs "$vid" -o "$tmp/x.yaml" --db "$db" >/dev/null 2>&1; rc=$?
check "a missing profile: exit 2, no file" '[ $rc -eq 2 ] && [ ! -e "$tmp/x.yaml" ]'
"$L" calibrate --hardware cpu-only --runs "$vid" --db "$db" >/dev/null 2>&1; rc=$?
check "no -o: exit 2" '[ $rc -eq 2 ]'
"$L" calibrate --hardware cpu-only --runs "$vid" -o "$tmp/x.yaml" --db "$tmp/none.db" >/dev/null 2>&1; rc=$?
check "no store: exit 2, none created" '[ $rc -eq 2 ] && [ ! -e "$tmp/none.db" ]'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
