#!/usr/bin/env bash
# llmsim serve as a user runs it, on the CPU engine with the tiny test models:
# a small trace served under swap, recompute and adaptive preemption in a pool
# small enough to preempt (and under swap with the weights streamed from
# disk), every request's generated tokens equal, exactly, to those of llmsim
# run on its prompt alone; bad prompt files and pools that exit 2 naming the
# file, line and request; the run and its rows in the store; and ^C exiting
# 130 with the run recorded as interrupted and no swap or offload files left.
#
# Env: LLMSIM (the binary), LLMSIM_TEST_DATA (tests/data), LLMSIM_DATA_DIR
# (repo root). Prints `ok   CHECK` / `FAIL CHECK: why` and `N passed, M
# failed`; exits 1 if any failed.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
T=${LLMSIM_TEST_DATA:?set LLMSIM_TEST_DATA to tests/data}
export LLMSIM_DATA_DIR="${LLMSIM_DATA_DIR:-$(cd "$T/../.." && pwd)}"
unset LLMSIM_DB
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmsim-serve-cli.XXXXXX")
bgpid=
trap '[ -n "$bgpid" ] && kill "$bgpid" 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }

# jv FILE KEY.PATH — a value of a JSON file (jq where installed, else python3);
# prints nothing when the key is missing or the file is not JSON.
if command -v jq >/dev/null 2>&1; then
    jv() { jq -r ".$2 // empty" "$1" 2>/dev/null; }
else
    jv() {
        python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    for k in sys.argv[2].split("."):
        d = d[k]
    print(json.dumps(d) if isinstance(d, (dict, list)) else d)
except Exception:
    pass' "$1" "$2"
    }
fi
# gt A B / ge A B — numeric comparisons that fail on an empty or non-numeric A
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a ~ /^[-+0-9.eE]+$/ && a + 0 > b + 0) }'; }
have_sqlite=1
command -v sqlite3 >/dev/null 2>&1 || have_sqlite=0
[ $have_sqlite -eq 1 ] || echo "note: sqlite3 is not installed; the store row checks are skipped"

# ---- the trace: 6 requests, three arriving at once (their blocks, 6 + 6 + 7,
# do not fit a pool of 8, so preemption happens whatever the machine's speed)
trace=$tmp/trace.csv
cat >"$trace" <<'EOF'
arrival_s,prompt_len,output_len,weight
0,12,10,1
0,7,14,1
0,20,6,1
0.01,5,16,1
0.02,15,9,1
0.02,9,12,1
EOF
nreq=6
plens=(12 7 20 5 15 9)
olens=(10 14 6 16 9 12)
out_total=0
for o in "${olens[@]}"; do out_total=$((out_total + o)); done
# prompts: one line of token ids per request, its prompt length each (ids
# below 283, inside both tiny vocabularies), every prompt different
prompts=$tmp/prompts.txt
: >"$prompts"
for r in $(seq 0 $((nreq - 1))); do
    line=
    for j in $(seq 0 $((plens[r] - 1))); do line+="$(( (r * 97 + j * 31 + j * j * 7 + 5) % 283 )) "; done
    echo "${line% }" >>"$prompts"
done

# a 1 MiB swap space: the default 4 GiB would be allocated on disk for every run
SV=(--hardware cpu-only --trace-in "$trace" --block-size 4 --max-batch 4 --token-budget 16 --threads 2
    --swap-space "1 MiB" --format json)

serve_model() { # serve_model NAME MODEL_YAML
    local name=$1 M=$2 dir=$tmp/$1 i p want got bb
    mkdir -p "$dir/off"
    local db=$dir/store.db

    # the reference: llmsim run on each prompt alone, everything in RAM
    : >"$dir/expected.txt"
    local runs_ok=1
    for i in $(seq 1 $nreq); do
        sed -n "${i}p" "$prompts" >"$dir/p$i.txt"
        if ! "$L" run --model "$M" --hardware cpu-only --percent 0 100 0 100 0 100 \
            --prompt-tokens "$dir/p$i.txt" --gen-len "${olens[i - 1]}" --tokens-out "$dir/r$i.txt" \
            --threads 2 --db "$dir/ref.db" --offload-dir "$dir/off" >/dev/null 2>"$dir/err"; then
            runs_ok=0
            bad "$name: llmsim run on prompt $i alone" "$(head -c 300 "$dir/err")"
            continue
        fi
        echo "$i: $(cat "$dir/r$i.txt")" >>"$dir/expected.txt"
    done
    [ $runs_ok -eq 1 ] && ok "$name: llmsim run wrote the reference tokens of each of the $nreq prompts alone"
    local counts=
    for i in $(seq 1 $nreq); do counts+="$(($(sed -n "${i}p" "$dir/expected.txt" | wc -w) - 1)) "; done
    check "$name: each reference has its request's output_len tokens (${counts% })" \
        '[ "${counts% }" = "${olens[*]}" ]' "want ${olens[*]}"

    # a first run with room to spare gives the block size in bytes
    "$L" serve --model "$M" "${SV[@]}" --kv-memory "256 KiB" --db "$dir/first.db" --offload-dir "$dir/off" \
        >"$dir/first.json" 2>"$dir/err"; rc=$?
    bb=$(jv "$dir/first.json" serving.block_bytes)
    check "$name: a first serve exits 0 and reports serving.block_bytes ($bb)" '[ $rc -eq 0 ] && gt "$bb" 0' \
        "exit status $rc: $(head -c 300 "$dir/err")"
    [ -n "$bb" ] || bb=3072
    pool="$((8 * bb)) B"

    # swap, recompute and adaptive in a pool of 8 blocks; swap again with the
    # weights on disk, streamed layer by layer
    for p in swap recompute adaptive swap-disk; do
        local extra=(--preemption "${p%-disk}")
        [ "$p" = swap-disk ] && extra+=(--percent 0 0 0 100 0 100)
        local j=$dir/$p.json
        "$L" serve --model "$M" "${SV[@]}" --kv-memory "$pool" "${extra[@]}" --prompts "$prompts" \
            --tokens-out "$dir/$p.txt" --db "$db" --offload-dir "$dir/off" >"$j" 2>"$dir/err"; rc=$?
        check "$name --preemption $p: exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$dir/err")"
        local nr tp ot sw rc_ kb so si
        nr=$(jv "$j" requests); tp=$(jv "$j" throughput_tok_s); ot=$(jv "$j" output_tokens)
        kb=$(jv "$j" serving.kv_blocks)
        check "$name --preemption $p: requests = $nreq, output_tokens = $out_total, throughput_tok_s > 0 ($tp), kv_blocks = 8" \
            '[ "$nr" = $nreq ] && [ "$ot" = $out_total ] && gt "$tp" 0 && [ "$kb" = 8 ]' \
            "requests '$nr', output_tokens '$ot', throughput_tok_s '$tp', kv_blocks '$kb'"
        sw=$(jv "$j" preemptions.swap); rc_=$(jv "$j" preemptions.recompute)
        so=$(jv "$j" swapped_out_bytes); si=$(jv "$j" swapped_in_bytes)
        case $p in
        swap | swap-disk)
            check "$name --preemption $p: preemptions.swap > 0 ($sw), swapped out = in > 0 ($so), none recomputed" \
                'gt "$sw" 0 && [ "$rc_" = 0 ] && gt "$so" 0 && [ "$so" = "$si" ]' \
                "swap '$sw', recompute '$rc_', swapped out '$so', in '$si'"
            local sws srs
            sws=$(jv "$j" measured.swap_write_s); srs=$(jv "$j" measured.swap_read_s)
            check "$name --preemption $p: the swap file was written and read (measured.swap_write_s $sws, swap_read_s $srs)" \
                'gt "$sws" 0 && gt "$srs" 0'
            ;;
        recompute)
            check "$name --preemption recompute: preemptions.recompute > 0 ($rc_), no swaps" \
                'gt "$rc_" 0 && [ "$sw" = 0 ] && [ "$so" = 0 ]' "swap '$sw', recompute '$rc_', swapped out '$so'"
            ;;
        adaptive)
            check "$name --preemption adaptive: preempts (swap $sw + recompute $rc_ > 0)" \
                'gt "$(( ${sw:-0} + ${rc_:-0} ))" 0' "swap '$sw', recompute '$rc_'"
            ;;
        esac
        local eng ws
        eng=$(jv "$j" measured.engine); ws=$(jv "$j" measured.weights)
        check "$name --preemption $p: measured.engine cpu, weights synthetic, time_scale 1" \
            '[ "$eng" = cpu ] && [ "$ws" = synthetic ] && [ "$(jv "$j" time_scale)" = 1 ]' \
            "engine '$eng', weights '$ws', time_scale '$(jv "$j" time_scale)'"
        # every request's tokens, exactly
        local mism=
        for i in $(seq 1 $nreq); do
            want=$(sed -n "${i}p" "$dir/expected.txt")
            got=$(grep -m1 "^$i:" "$dir/$p.txt" 2>/dev/null)
            [ "$got" = "$want" ] || mism+=" request $i: serve '$got', run alone '$want';"
        done
        check "$name --preemption $p: every request's tokens equal llmsim run on its prompt alone" \
            '[ -z "$mism" ] && cmp -s "$dir/$p.txt" "$dir/expected.txt"' \
            "${mism:-the --tokens-out file has other lines: $(head -c 300 "$dir/$p.txt")}"
    done
    check "$name: the offload directory is empty after the runs" '[ -z "$(ls -A "$dir/off")" ]' \
        "left: $(ls -A "$dir/off")"

    # the store: a serve-measure run, its iterations and its requests
    local listed
    listed=$("$L" runs --db "$db" 2>&1); rc=$?
    check "$name: llmsim runs --db DB lists serve-measure runs with status ok" \
        '[ $rc -eq 0 ] && grep -Eq "^ *[0-9]+ +serve-measure +ok +$name " <<<"$listed"' \
        "exit status $rc: ${listed:0:400}"
    listed=$("$L" runs --db "$db" --kind serve-measure --format json 2>&1); rc=$?
    check "$name: llmsim runs --kind serve-measure lists the 4 serve runs" \
        '[ $rc -eq 0 ] && [ "$(grep -Eo "\"kind\":[[:space:]]*\"serve-measure\"" <<<"$listed" | wc -l)" -eq 4 ]' \
        "exit status $rc: ${listed:0:400}"
    if [ $have_sqlite -eq 1 ]; then
        local id ni nq it
        id=$(sqlite3 "$db" "select max(id) from runs where kind = 'serve-measure'")
        ni=$(sqlite3 "$db" "select count(*) from serve_iterations where run_id = ${id:-0}")
        nq=$(sqlite3 "$db" "select count(*) from serve_requests where run_id = ${id:-0}")
        it=$(jv "$dir/swap-disk.json" iterations)
        check "$name: the store has the last run's serve_iterations rows ($ni, the JSON's iterations $it)" \
            'gt "$ni" 0 && [ "$ni" = "$it" ]' "run '$id': $ni rows, JSON iterations '$it'"
        check "$name: the store has one serve_requests row per request ($nq of $nreq)" '[ "$nq" = $nreq ]' \
            "run '$id': $nq rows"
        nq=$(sqlite3 "$db" "select count(*) from serve_requests")
        check "$name: serve_requests has $nreq rows for each of the 4 runs ($nq)" '[ "$nq" = $((4 * nreq)) ]'
    fi
}

serve_model tiny-opt "$T/models/tiny-opt.yaml"
serve_model tiny-llama "$T/models/tiny-llama.yaml"

# ---- the prefix cache: the same trace with two system prompts declared
# (requests 1, 3, 5 start with the same 8 tokens, 2, 4, 6 with the same 5),
# the prompts sharing them; served with --prefix-cache under recompute in a
# pool of 8 blocks, every request's tokens still those of llmsim run alone
ptrace=$tmp/prefix-trace.csv
{
    echo "arrival_s,prompt_len,output_len,weight,prefix_group,prefix_len"
    tail -n +2 "$trace" | awk -F, '{ g = NR % 2 ? 1 : 2; printf "%s,%s,%s,%s,%d,%d\n", $1, $2, $3, $4, g, g == 1 ? 8 : 5 }'
} >"$ptrace"
pprompts=$tmp/prefix-prompts.txt
: >"$pprompts"
for r in $(seq 0 $((nreq - 1))); do
    g=$(( r % 2 ? 2 : 1 )); plen=$(( g == 1 ? 8 : 5 )); line=
    for j in $(seq 0 $((plens[r] - 1))); do
        if [ $j -lt $plen ]; then line+="$(( (g * 53 + j * 17 + 3) % 283 )) "
        else line+="$(( (r * 97 + j * 31 + j * j * 7 + 5) % 283 )) "; fi
    done
    echo "${line% }" >>"$pprompts"
done
pdir=$tmp/prefix
mkdir -p "$pdir/off"
M=$T/models/tiny-opt.yaml
: >"$pdir/expected.txt"
for i in $(seq 1 $nreq); do
    sed -n "${i}p" "$pprompts" >"$pdir/p$i.txt"
    "$L" run --model "$M" --hardware cpu-only --percent 0 100 0 100 0 100 --prompt-tokens "$pdir/p$i.txt" \
        --gen-len "${olens[i - 1]}" --tokens-out "$pdir/r$i.txt" --threads 2 --db "$pdir/ref.db" \
        --offload-dir "$pdir/off" >/dev/null 2>&1 && echo "$i: $(cat "$pdir/r$i.txt")" >>"$pdir/expected.txt"
done
bb=$(jv "$tmp/tiny-opt/first.json" serving.block_bytes)
"$L" serve --model "$M" --hardware cpu-only --trace-in "$ptrace" --block-size 4 --max-batch 4 --token-budget 16 \
    --threads 2 --kv-memory "$((8 * ${bb:-3072})) B" --preemption recompute --prefix-cache --prompts "$pprompts" \
    --tokens-out "$pdir/served.txt" --format json --db "$pdir/store.db" --offload-dir "$pdir/off" \
    >"$pdir/out.json" 2>"$pdir/err"; rc=$?
hr=$(jv "$pdir/out.json" prefix_cache.hit_rate); ht=$(jv "$pdir/out.json" prefix_cache.hit_tokens)
check "--prefix-cache: serve exits 0, serving.prefix_cache true, hit_rate > 0 ($hr, $ht tokens)" \
    '[ $rc -eq 0 ] && [ "$(jv "$pdir/out.json" serving.prefix_cache)" = true ] && gt "$hr" 0 && gt "$ht" 0' \
    "exit status $rc: $(head -c 300 "$pdir/err")"
check "--prefix-cache: every request's tokens equal llmsim run on its prompt alone" \
    '[ "$(wc -l <"$pdir/expected.txt")" -eq $nreq ] && cmp -s "$pdir/served.txt" "$pdir/expected.txt"' \
    "served: $(head -c 300 "$pdir/served.txt"); alone: $(head -c 300 "$pdir/expected.txt")"
shown=$("$L" show --db "$pdir/store.db" 1 2>&1)
check "--prefix-cache: llmsim show lists the tokens found cached ($ht)" \
    'grep -q "prefix cache   $ht prompt tokens found cached" <<<"$shown"' "${shown:0:400}"
if [ $have_sqlite -eq 1 ]; then
    hs=$(sqlite3 "$pdir/store.db" "select sum(hit_tokens) from serve_iterations")
    cs=$(sqlite3 "$pdir/store.db" "select sum(cached_tokens) from serve_requests")
    check "--prefix-cache: the store's rows hold the hits (iterations $hs, requests $cs, JSON $ht)" \
        '[ "$hs" = "$ht" ] && [ "$cs" = "$ht" ]'
fi

# ---- the GPU serving backend on the host emulation of the device: a GPU
# profile, the weights in GPU memory, then in CPU memory (streamed every
# iteration), swap through pinned memory in a pool of 8 blocks; every
# request's tokens those of llmsim run --emulate-gpu on its prompt alone
gdir=$tmp/gpu
mkdir -p "$gdir/off"
: >"$gdir/expected.txt"
for i in $(seq 1 $nreq); do
    sed -n "${i}p" "$prompts" >"$gdir/p$i.txt"
    "$L" run --model "$M" --hardware t4-flexgen --emulate-gpu --percent 100 0 100 0 100 0 \
        --prompt-tokens "$gdir/p$i.txt" --gen-len "${olens[i - 1]}" --tokens-out "$gdir/r$i.txt" --threads 2 \
        --db "$gdir/ref.db" --offload-dir "$gdir/off" >/dev/null 2>&1 && echo "$i: $(cat "$gdir/r$i.txt")" >>"$gdir/expected.txt"
done
for w in gpu cpu; do
    pct=(100 0 100 0 100 0)
    [ $w = cpu ] && pct=(0 100 100 0 100 0)
    "$L" serve --model "$M" --hardware t4-flexgen --emulate-gpu --trace-in "$trace" --block-size 4 --max-batch 4 \
        --token-budget 16 --threads 2 --kv-memory "$((8 * ${bb:-3072})) B" --swap-space "1 MiB" --preemption swap \
        --percent "${pct[@]}" --prompts "$prompts" --tokens-out "$gdir/served-$w.txt" --format json \
        --db "$gdir/store.db" --offload-dir "$gdir/off" >"$gdir/$w.json" 2>"$gdir/err"; rc=$?
    eng=$(jv "$gdir/$w.json" measured.engine); sw=$(jv "$gdir/$w.json" preemptions.swap)
    check "--emulate-gpu, weights in $w memory: serve exits 0 on the gpu engine, swaps ($sw)" \
        '[ $rc -eq 0 ] && [ "$eng" = gpu ] && gt "$sw" 0' "exit status $rc, engine '$eng': $(head -c 300 "$gdir/err")"
    check "--emulate-gpu, weights in $w memory: every request's tokens equal llmsim run --emulate-gpu alone" \
        '[ "$(wc -l <"$gdir/expected.txt")" -eq $nreq ] && cmp -s "$gdir/served-$w.txt" "$gdir/expected.txt"' \
        "served: $(head -c 300 "$gdir/served-$w.txt"); alone: $(head -c 300 "$gdir/expected.txt")"
done

# ---- bad input: exit 2, the file and line (or request) named on stderr,
# nothing on stdout and no store
M=$T/models/tiny-opt.yaml
bb=$(jv "$tmp/tiny-opt/first.json" serving.block_bytes)
bb=${bb:-3072}
# bad_case NAME WANT ARGS... — WANT: the texts stderr must contain, separated by '|'.
bad_case() {
    local name=$1 want=$2 dir=$tmp/bad-$1 w
    shift 2
    mkdir -p "$dir/off"
    "$L" serve --model "$M" --hardware cpu-only --threads 2 "$@" --db "$dir/store.db" \
        --offload-dir "$dir/off" --tokens-out "$dir/tokens.txt" >"$dir/out" 2>"$dir/err"
    rc=$?
    local err
    err=$(cat "$dir/err")
    if [ $rc -ne 2 ]; then
        bad "bad input $name" "exit status $rc, want 2; stderr: ${err:0:300}"
        return
    fi
    if [ -s "$dir/out" ]; then
        bad "bad input $name" "stdout is not empty: $(head -c 200 "$dir/out")"
        return
    fi
    local IFS='|'
    for w in $want; do
        if [[ $err != *"$w"* ]]; then
            bad "bad input $name" "stderr lacks \"$w\"; got: ${err:0:400}"
            return
        fi
    done
    if [ -e "$dir/store.db" ] || [ -e "$dir/tokens.txt" ] || [ -n "$(ls -A "$dir/off")" ]; then
        bad "bad input $name" "files were written: $(ls -A "$dir" "$dir/off" | tr '\n' ' ')"
        return
    fi
    ok "bad input $name exits 2: ${err:0:160}"
}
B=(--trace-in "$trace" --block-size 4 --max-batch 4 --token-budget 16 --swap-space "1 MiB")
# the 2nd prompt one token short
sed '2s/ [0-9]*$//' "$prompts" >"$tmp/short-line.txt"
bad_case prompt-line-wrong-length "$tmp/short-line.txt:2:|request 2|7 tokens" \
    "${B[@]}" --kv-memory "$((8 * bb)) B" --prompts "$tmp/short-line.txt"
head -n 4 "$prompts" >"$tmp/four-prompts.txt"
bad_case prompts-fewer-than-requests "$tmp/four-prompts.txt|4 prompts for 6 requests" \
    "${B[@]}" --kv-memory "$((8 * bb)) B" --prompts "$tmp/four-prompts.txt"
sed '3s/^[0-9]*/999/' "$prompts" >"$tmp/oov.txt"
bad_case prompt-token-beyond-vocabulary "$tmp/oov.txt:3:1:|vocabulary" \
    "${B[@]}" --kv-memory "$((8 * bb)) B" --prompts "$tmp/oov.txt"
bad_case prompts-missing "$tmp/no-such.txt|cannot open" \
    "${B[@]}" --kv-memory "$((8 * bb)) B" --prompts "$tmp/no-such.txt"
# one block: the first request (line 2) does not fit
bad_case pool-of-one-block "$trace:2:|request 1|6 KV blocks|holds 1" \
    "${B[@]}" --kv-memory "$bb B" --prompts "$prompts"
# six blocks: only the longest request, 3 (20 + 6 tokens, line 4), does not fit
bad_case pool-below-the-longest-request "$trace:4:|request 3|7 KV blocks|holds 6" \
    "${B[@]}" --kv-memory "$((6 * bb)) B" --prompts "$prompts"
# request 3's prompt does not start with its group's 8 tokens
sed '3s/^[0-9]*/7/' "$pprompts" >"$tmp/prefix-mismatch.txt"
bad_case prompts-against-declared-prefix "$tmp/prefix-mismatch.txt:3:|request 3|prefix group 1" \
    --trace-in "$ptrace" --block-size 4 --max-batch 4 --token-budget 16 --kv-memory "$((8 * bb)) B" \
    --prefix-cache --prompts "$tmp/prefix-mismatch.txt"
# an output that cannot be written: refused before serving, nothing recorded
"$L" serve --model "$M" --hardware cpu-only --threads 2 "${B[@]}" --kv-memory "$((8 * bb)) B" \
    --prompts "$prompts" --tokens-out "$tmp/no-such-dir/t.txt" --db "$tmp/unwritable.db" \
    >"$tmp/uw.out" 2>"$tmp/uw.err"; rc=$?
check "an unwritable --tokens-out exits 2 before serving, naming it, with no store" \
    '[ $rc -eq 2 ] && grep -q "no-such-dir/t.txt" "$tmp/uw.err" && [ ! -e "$tmp/unwritable.db" ] && [ ! -s "$tmp/uw.out" ]' \
    "exit $rc: $(head -c 300 "$tmp/uw.err")"
bad_case gpu-weights-on-disk "on disk|give the disk fraction to cpu" \
    "${B[@]}" --kv-memory "$((8 * bb)) B" --hardware t4-flexgen --emulate-gpu --percent 0 0 100 0 100 0
# a profile with a GPU on a machine without one (or a build without CUDA)
[ -e /dev/nvidia0 ] || bad_case gpu-profile-without-a-gpu "--emulate-gpu" \
    "${B[@]}" --kv-memory "$((8 * bb)) B" --hardware t4-flexgen

# ---- ^C: requests arriving over 10 s, interrupted after 1.5 s
idb=$tmp/int.db
D=$tmp/int-offload
mkdir -p "$D"
"$L" serve --model "$M" --hardware cpu-only --num-requests 50 --rate 5 --prompt-len uniform:8,32 \
    --output-len uniform:4,16 --kv-memory "64 KiB" --preemption swap --swap-space "1 MiB" --threads 2 \
    --offload-dir "$D" --db "$idb" >"$tmp/int.out" 2>"$tmp/int.err" &
bgpid=$!
for i in $(seq 50); do [ -n "$(ls -A "$D" 2>/dev/null)" ] && break; sleep 0.05; done
seen=$(ls -A "$D" 2>/dev/null)
sleep 1.5
kill -INT "$bgpid"
wait "$bgpid"; rc=$?
bgpid=
check "^C: the serve made its directory under --offload-dir while running ($seen)" '[ -n "$seen" ]'
check "^C: the serve exits 130" '[ $rc -eq 130 ]' "exit status $rc: $(head -c 300 "$tmp/int.err")"
check "^C: stderr says the run was interrupted" 'grep -q interrupted "$tmp/int.err"' "$(head -c 300 "$tmp/int.err")"
check "^C: --offload-dir is empty afterwards (swap file and subdirectory removed)" '[ -z "$(ls -A "$D")" ]' \
    "left: $(ls -AR "$D")"
if [ $have_sqlite -eq 1 ]; then
    st=$(sqlite3 "$idb" 'select kind || " " || status from runs order by id desc limit 1' 2>&1)
    check "^C: the store's last run is serve-measure, interrupted ($st)" '[ "$st" = "serve-measure interrupted" ]'
    ni=$(sqlite3 "$idb" 'select count(*) from serve_iterations where run_id = (select max(id) from runs)' 2>&1)
    check "^C: the iterations run so far are in the store ($ni)" 'gt "$ni" 0'
else
    listed=$("$L" runs --db "$idb" 2>&1)
    check "^C: llmsim runs lists the serve-measure run as interrupted" \
        'grep -Eq "serve-measure +interrupted" <<<"$listed"' "${listed:0:300}"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
