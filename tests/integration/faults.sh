#!/usr/bin/env bash
# I/O errors injected where a failing disk would cause them (common/fault.h:
# LLMSIM_FAULT=SITE:N fails the Nth call at SITE with EIO): the store's
# writes, the offload tier's reads and writes, an output file's commit. Each
# gives a clear message and exit 1, leaves no half-written or temporary file
# and no offload directory, and the store passes its integrity check; a run
# that was being recorded is marked failed; a result already computed is
# printed all the same.
#
# Env: LLMSIM (the binary), LLMSIM_TEST_DATA (tests/data), LLMSIM_DATA_DIR.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
T=${LLMSIM_TEST_DATA:?set LLMSIM_TEST_DATA to tests/data}
export LLMSIM_DATA_DIR="${LLMSIM_DATA_DIR:-$(cd "$T/../.." && pwd)}"
unset LLMSIM_DB LLMSIM_FAULT
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmsim-faults.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }
integrity() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("pragma integrity_check").fetchone()[0])' "$1" 2>&1; }
statuses() { python3 -c 'import sqlite3, sys; print(",".join(r[0] for r in sqlite3.connect(sys.argv[1]).execute("select status from runs order by id")))' "$1" 2>&1; }
M=$T/models/tiny-opt.yaml
P=(--model opt-1.3b --hardware a100-80gb-sxm --prompt-len 16 --gen-len 8)

# ---- the store: a write fails at its first write, at its tenth, at its twentieth
db=$tmp/store.db
"$L" predict "${P[@]}" --db "$db" >/dev/null 2>&1
for n in 1 10 20; do
    LLMSIM_FAULT=store_write:$n "$L" predict "${P[@]}" --db "$db" --format json >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "store write $n fails: exit 1, the result printed, the warning says what to do, the store sound ($(integrity "$db"))" \
        '[ $rc -eq 1 ] && grep -q "\"throughput_tok_s\"" "$tmp/out" && grep -q "not recorded" "$tmp/err" && grep -q "free space or check it" "$tmp/err" && [ "$(integrity "$db")" = ok ]' \
        "exit $rc: $(head -c 300 "$tmp/err")"
done
st=$(statuses "$db")
check "no run left running, the one cut mid-write marked failed ($st)" \
    '[[ $st != *running* ]] && [[ $st == *failed* ]]'
LLMSIM_FAULT=store_write:1 "$L" predict "${P[@]}" --db "$tmp/new.db" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "a new store whose first write fails: exit 1, the result printed, no empty store file left" \
    '[ $rc -eq 1 ] && grep -q "throughput" "$tmp/out" && [ -z "$(ls "$tmp" | grep new.db)" ]'

# ---- the offload tier: weights on disk, a write and a read fail
for f in offload_write:1 offload_read:3; do
    mkdir -p "$tmp/off"
    LLMSIM_FAULT=$f "$L" run --model "$M" --hardware cpu-only --percent 0 0 0 100 0 100 --prompt-len 8 \
        --gen-len 4 --threads 2 --offload-dir "$tmp/off" --tokens-out "$tmp/tok.txt" --db "$tmp/run.db" \
        >"$tmp/out" 2>"$tmp/err"; rc=$?
    check "$f during run: exit 1, 'Input/output error' named with the file, no offload files, no --tokens-out" \
        '[ $rc -eq 1 ] && grep -q "Input/output error" "$tmp/err" && grep -q "weights.bin" "$tmp/err" && [ -z "$(ls -A "$tmp/off")" ] && [ ! -e "$tmp/tok.txt" ]' \
        "exit $rc: $(head -c 300 "$tmp/err"); left: $(ls -A "$tmp/off")"
done
st=$(statuses "$tmp/run.db")
check "both failed runs are recorded as failed ($st)" '[ "$st" = "failed,failed" ]'

# ---- serve under swap: the swap file's first write fails; the run is recorded as failed
trace=$tmp/trace.csv
printf 'arrival_s,prompt_len,output_len,weight\n0,12,10,1\n0,7,14,1\n0,20,6,1\n' >"$trace"
first=$("$L" serve --model "$M" --hardware cpu-only --trace-in "$trace" --block-size 4 --max-batch 4 \
    --token-budget 16 --threads 2 --kv-memory "256 KiB" --swap-space "1 MiB" --format json \
    --offload-dir "$tmp/off" --db "$tmp/first.db" 2>/dev/null)
bb=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["serving"]["block_bytes"])' "$first" 2>/dev/null)
LLMSIM_FAULT=offload_write:1 "$L" serve --model "$M" --hardware cpu-only --trace-in "$trace" --block-size 4 \
    --max-batch 4 --token-budget 16 --threads 2 --kv-memory "$((8 * ${bb:-3072})) B" --preemption swap \
    --swap-space "1 MiB" --offload-dir "$tmp/off" --db "$tmp/serve.db" --tokens-out "$tmp/st.txt" \
    >"$tmp/out" 2>"$tmp/err"; rc=$?
st=$(statuses "$tmp/serve.db")
check "a swap write fails during serve: exit 1, the run recorded as failed ($st), no swap file, no --tokens-out" \
    '[ $rc -eq 1 ] && grep -q "Input/output error" "$tmp/err" && [ "$st" = failed ] && [ -z "$(ls -A "$tmp/off")" ] && [ ! -e "$tmp/st.txt" ]' \
    "exit $rc: $(head -c 300 "$tmp/err")"

# ---- an output file: its commit fails
LLMSIM_FAULT=file_write:1 "$L" serve-sim --model opt-1.3b --hardware a100-80gb-sxm --num-requests 20 \
    --requests-out "$tmp/req.csv" --db "$tmp/ss.db" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "an output file's commit fails: exit 1 naming it, neither the file nor a temporary one left" \
    '[ $rc -eq 1 ] && grep -q "req.csv" "$tmp/err" && grep -q "Input/output error" "$tmp/err" && [ -z "$(ls -A "$tmp" | grep req)" ]' \
    "exit $rc: $(head -c 300 "$tmp/err"); $(ls -A "$tmp")"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
