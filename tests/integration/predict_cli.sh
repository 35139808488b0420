#!/usr/bin/env bash
# The predict / runs / show commands as a user runs them: exit codes, the JSON
# keys of ARCHITECTURE §11, recording in the store, --help everywhere.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
D=${LLMSIM_DATA_DIR:?}
T=${LLMSIM_TEST_DATA:?}
tmp=$(mktemp -d)
MNT=
trap '[ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$tmp"' EXIT
db=$tmp/store.db
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

flexgen30=(--model opt-30b --hardware t4-flexgen --policy "$D/policies/examples/flexgen-opt30b-t4.yaml"
           --prompt-len 512 --gen-len 32 --db "$db")

out=$("$L" predict "${flexgen30[@]}" --format json 2>"$tmp/err"); rc=$?
check "predict json exits 0" '[ $rc -eq 0 ]'
check "predict json prints nothing on stderr" '[ ! -s "$tmp/err" ]'
for key in feasible throughput_tok_s total_s prefill_s decode_s peak_bytes gpu cpu disk stages \
           load_weight_s load_cache_s store_cache_s compute_s policy run_id realized steps; do
  check "json has \"$key\"" 'grep -q "\"$key\":" <<<"$out"'
done
check "flexgen opt-30b is feasible" 'grep -q "\"feasible\":[[:space:]]*true" <<<"$out"'

table=$("$L" predict "${flexgen30[@]}"); rc=$?
check "predict table exits 0" '[ $rc -eq 0 ]'
check "table shows throughput" 'grep -q "^throughput " <<<"$table"'
check "table shows the realized placement" 'grep -q "asked 20/80/0" <<<"$table"'
check "table names the run" 'grep -q "recorded as run 2" <<<"$table"'

runs=$("$L" runs --db "$db"); rc=$?
check "runs exits 0" '[ $rc -eq 0 ]'
check "runs lists both predictions" '[ $(grep -c "predict" <<<"$runs") -ge 2 ]'
check "runs --kind filters" '"$L" runs --db "$db" --kind simulate | grep -vq "opt-30b"'
show=$("$L" show 1 --db "$db" --format json); rc=$?
check "show exits 0" '[ $rc -eq 0 ]'
check "show carries the stored result" 'grep -q "\"throughput_tok_s\"" <<<"$show"'

inf=$("$L" predict --model opt-175b --hardware t4-flexgen --percent 100 0 100 0 100 0 \
      --prompt-len 512 --gen-len 32 --db "$db" --format json); rc=$?
check "an infeasible policy is a result (exit 0)" '[ $rc -eq 0 ]'
check "infeasible names the tier" 'grep -q "\"tier\":[[:space:]]*\"gpu\"" <<<"$inf"'
check "infeasible gives the overflow" 'grep -q "\"overflow_bytes\":" <<<"$inf"'
inft=$("$L" predict --model opt-175b --hardware t4-flexgen --percent 100 0 100 0 100 0 \
      --prompt-len 512 --gen-len 32 --db "$db"); rc=$?
check "an infeasible policy's table says so and gives no throughput" \
    '[ $rc -eq 0 ] && grep -q "^INFEASIBLE" <<<"$inft" && grep -q "^throughput  none: the policy does not fit" <<<"$inft" && ! grep -q "tok/s" <<<"$(grep "^throughput" <<<"$inft")"' "${inft:0:400}"
check "an infeasible prediction is recorded as infeasible" \
    '"$L" runs --db "$db" | grep -Eq "^ *[0-9]+ +predict +infeasible "' "$("$L" runs --db "$db" | tail -3)"
sinf=$("$L" simulate --model opt-175b --hardware t4-flexgen --percent 100 0 100 0 100 0 \
      --prompt-len 64 --gen-len 2 --db "$db"); rc=$?
check "an infeasible simulation says so, gives no throughput, is recorded as infeasible" \
    '[ $rc -eq 0 ] && grep -q "^DOES NOT FIT" <<<"$sinf" && grep -q "^throughput  none" <<<"$sinf" && "$L" runs --db "$db" | grep -Eq "^ *[0-9]+ +simulate +infeasible "' "${sinf:0:400}"

# a store on a full disk (a tiny tmpfs, where we may mount one): the result
# is printed all the same, the warning says what to do, exit 1
if mkdir "$tmp/full" && mount -t tmpfs -o size=64k tmpfs "$tmp/full" 2>/dev/null; then
    MNT=$tmp/full
    dd if=/dev/zero of="$MNT/fill" bs=1k count=60 2>/dev/null
    full=$("$L" predict "${flexgen30[@]:0:${#flexgen30[@]}-2}" --db "$MNT/store.db" --format json 2>"$tmp/err"); rc=$?
    check "a full disk under the store: exit 1, the result printed, a warning that names no source file" \
        '[ $rc -eq 1 ] && grep -q "\"throughput_tok_s\"" <<<"$full" && grep -q "not recorded in the store" "$tmp/err" && grep -Eq "disk is full|disk may be full" "$tmp/err" && ! grep -q "store\.c" "$tmp/err"'
    umount "$MNT"; MNT=
else
    echo "skip the full-disk store: cannot mount a tmpfs here"
fi

# a store on a read-only filesystem can be read (runs, show), where we may mount one
if mkdir "$tmp/ro" && mount -t tmpfs -o size=4m tmpfs "$tmp/ro" 2>/dev/null; then
    MNT=$tmp/ro
    "$L" predict "${flexgen30[@]:0:${#flexgen30[@]}-2}" --db "$MNT/store.db" >/dev/null 2>&1
    mount -o remount,ro "$MNT"
    ro=$("$L" runs --db "$MNT/store.db" 2>&1); rc=$?
    rs=$("$L" show 1 --db "$MNT/store.db" 2>&1); rc2=$?
    check "a store on a read-only filesystem: runs and show read it" \
        '[ $rc -eq 0 ] && grep -q "predict" <<<"$ro" && [ $rc2 -eq 0 ] && grep -q "kind *predict" <<<"$rs"'
    umount "$MNT"; MNT=
else
    echo "skip the read-only store: cannot mount a tmpfs here"
fi

hf=$("$L" predict --model "$T/hf/llama-2-7b/config.json" --hardware a100-80gb-sxm \
     --prompt-len 128 --gen-len 8 --db "$db" --format json); rc=$?
check "a Hugging Face config.json works as --model" '[ $rc -eq 0 ] && grep -q "\"feasible\"" <<<"$hf"'

cpu=$("$L" predict --model opt-125m --hardware cpu-only --prompt-len 64 --gen-len 8 \
      --db "$db" --format json); rc=$?
check "a CPU-only profile defaults to RAM and works" '[ $rc -eq 0 ] && grep -q "\"feasible\":[[:space:]]*true" <<<"$cpu"'

for cmd in predict runs show; do
  "$L" $cmd --help >"$tmp/help" 2>&1; rc=$?
  check "$cmd --help exits 0 with usage" '[ $rc -eq 0 ] && grep -q "usage" "$tmp/help"'
done
"$L" --help >/dev/null; rc=$?
check "llmsim --help exits 0" '[ $rc -eq 0 ]'
"$L" frobnicate >/dev/null 2>&1; rc=$?
check "an unknown command exits 2" '[ $rc -eq 2 ]'
"$L" models | grep -q "llama-3.1-70b"; rc=$?
check "models lists the shipped models" '[ $rc -eq 0 ]'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
