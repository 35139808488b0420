#!/usr/bin/env bash
# llmsim simulate as a user runs it: the keys of §11 plus steps and
# utilization, a Chrome trace with every task, task rows in the store, and
# errors that exit 2.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
D=${LLMSIM_DATA_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=$tmp/store.db
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
num() { sed -n "s/.*\"$1\":[[:space:]]*\([-0-9.e+]*\).*/\1/p" | head -1; }

args=(--model opt-1.3b --hardware t4-flexgen --percent 50 50 0 100 0 100 --gpu-batch-size 8
      --num-gpu-batches 2 --prompt-len 128 --gen-len 8 --db "$db")
out=$("$L" simulate "${args[@]}" --format json --trace "$tmp/trace.json" 2>"$tmp/err"); rc=$?
check "simulate exits 0" '[ $rc -eq 0 ]'
for key in feasible throughput_tok_s total_s prefill_s decode_s peak_bytes stages load_weight_s \
           load_cache_s store_cache_s compute_s policy steps utilization simulation run_id; do
  check "json has \"$key\"" 'grep -q "\"$key\":" <<<"$out"'
done
tasks=$(num tasks <<<"$out")
check "the plan has tasks ($tasks)" '[ "${tasks:-0}" -gt 0 ]'
check "steps lists prefill and every decode step" '[ $(grep -c "\"step\":" <<<"$out") -eq 8 ]'
check "the trace is written" '[ -s "$tmp/trace.json" ] && head -c 40 "$tmp/trace.json" | grep -q traceEvents'
check "the trace has one complete event per task" \
      '[ $(grep -o "\"ph\":\"X\"" "$tmp/trace.json" | wc -l) -eq "$tasks" ]'
check "the trace has memory counters" 'grep -q "\"name\":\"memory gpu\",\"ph\":\"C\"" "$tmp/trace.json"'
run=$(num run_id <<<"$out")
show=$("$L" show "$run" --db "$db" --format json)
check "the run is stored with its task count" '[ "$(num tasks <<<"$show")" = "$tasks" ]'
check "the run is a simulate run" 'grep -q "\"kind\":[[:space:]]*\"simulate\"" <<<"$show"'
# the packed task timings and memory samples read back, as the trace has them
csv=$("$L" show "$run" --tasks --db "$db"); rc=$?
check "show --tasks: a header and one row per task" \
      '[ $rc -eq 0 ] && [ "$(head -1 <<<"$csv")" = "task_id,resource,start_s,end_s,bytes,flops" ] &&
       [ $(($(wc -l <<<"$csv") - 1)) -eq "$tasks" ]'
check "show --tasks: every task id once" '[ $(tail -n +2 <<<"$csv" | cut -d, -f1 | sort -u | wc -l) -eq "$tasks" ]'
check "show --tasks: each task as long as in the trace (one id checked)" \
      'id=$(sed -n 2p <<<"$csv" | cut -d, -f1);
       d=$(grep "^$id," <<<"$csv" | awk -F, "{printf \"%.3f\", (\$4 - \$3) * 1e6}");
       t=$(grep -o "\"dur\":[0-9.e+-]*,[^}]*\"id\":\"$id\"" "$tmp/trace.json" | head -1 |
           sed "s/\"dur\":\([0-9.e+-]*\),.*/\1/");
       awk -v a="$d" -v b="$t" "BEGIN{exit !(b > 0 && (a - b) < 0.01 && (b - a) < 0.01)}"'
mem=$("$L" show "$run" --memory --db "$db" --format json); rc=$?
check "show --memory --format json: valid, every tier named" \
      '[ $rc -eq 0 ] && grep -q "\"tier\": \"gpu\"" <<<"$mem" && grep -q "\"tier\": \"cpu\"" <<<"$mem" &&
       python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(not d[\"memory\"])" <<<"$mem"'
"$L" show 999999 --tasks --db "$db" >/dev/null 2>"$tmp/err"; rc=$?
check "show --tasks of no such run exits 2" '[ $rc -eq 2 ] && grep -q "no run 999999" "$tmp/err"'
"$L" show "$run" --tasks --memory --db "$db" >/dev/null 2>&1; rc=$?
check "show --tasks --memory exits 2" '[ $rc -eq 2 ]'

pred=$("$L" predict "${args[@]}" --format json)
ps=$(num total_s <<<"$pred"); ss=$(num total_s <<<"$out")
check "simulate and predict agree within 10% here ($ss vs $ps)" \
      'awk -v a="$ss" -v b="$ps" "BEGIN{d=a/b-1; if (d<0) d=-d; exit !(d < 0.10)}"'

table=$("$L" simulate "${args[@]}"); rc=$?
check "table output exits 0" '[ $rc -eq 0 ] && grep -q "^utilization" <<<"$table"'

inf=$("$L" simulate --model opt-175b --hardware t4-flexgen --percent 100 0 100 0 100 0 \
      --prompt-len 64 --gen-len 2 --db "$db" --format json); rc=$?
check "a plan that does not fit is a result (exit 0)" '[ $rc -eq 0 ]'
check "and names the tier and the task" \
      'grep -q "\"tier\":[[:space:]]*\"gpu\"" <<<"$inf" && grep -q "\"task\":" <<<"$inf"'

"$L" simulate "${args[@]}" --trace /nonexistent-dir/t.json >/dev/null 2>"$tmp/err"; rc=$?
check "an unwritable --trace exits 2" '[ $rc -eq 2 ] && grep -q "nonexistent" "$tmp/err"'
"$L" simulate "${args[@]}" --trace >/dev/null 2>"$tmp/err"; rc=$?
check "--trace without a file exits 2" '[ $rc -eq 2 ]'
"$L" simulate --help | grep -q -- "--trace"; rc=$?
check "simulate --help documents --trace" '[ $rc -eq 0 ]'

# a plan too big to hold, every flag in its range: refused before it is built
t0=$(date +%s)
"$L" simulate --model opt-1.3b --hardware t4-flexgen --gpu-batch-size 1 --num-gpu-batches 1048576 \
    --percent 0 0 0 0 0 0 --prompt-len 16 --gen-len 8 --db "$tmp/big.db" >/dev/null 2>"$tmp/err"; rc=$?
t1=$(date +%s)
check "a plan of 2e9 tasks is refused at once (exit 2, the estimate and what to change), nothing recorded" \
    '[ $rc -eq 2 ] && grep -q "tasks" "$tmp/err" && grep -q "fewer GPU batches" "$tmp/err" && [ $((t1 - t0)) -le 5 ] && [ ! -e "$tmp/big.db" ]'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
