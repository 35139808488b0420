#!/usr/bin/env bash
# llmsim run as a user runs it: the keys of simulate plus the measurement,
# generated tokens out, the same tokens for every placement, prompt files,
# bad input with exit 2, and ^C leaving no offload files and an interrupted
# run in the store.
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
M=$T/models/tiny-llama.yaml
common=(--model "$M" --hardware cpu-only --gpu-batch-size 2 --num-gpu-batches 2 --prompt-len 12
        --gen-len 6 --db "$db" --offload-dir "$off" --threads 2)

out=$("$L" run "${common[@]}" --percent 0 100 0 100 0 100 --format json --tokens-out "$tmp/ram.txt"); rc=$?
check "run exits 0" '[ $rc -eq 0 ]'
for key in feasible throughput_tok_s total_s prefill_s decode_s peak_bytes stages steps utilization \
           measurement run_id policy; do
  check "json has \"$key\"" 'grep -q "\"$key\":" <<<"$out"'
done
check "tokens written, one line per prompt" '[ $(wc -l < "$tmp/ram.txt") -eq 4 ]'
check "6 tokens per line" '[ $(head -1 "$tmp/ram.txt" | wc -w) -eq 6 ]'
# --logits-out: float32 [gen][sequences][vocab] of the first block, whose argmax is each token
"$L" run "${common[@]}" --logits-out "$tmp/lg.bin" --tokens-out "$tmp/lt.txt" >/dev/null; rc=$?
check "--logits-out writes 6 x 4 x 288 float32" '[ $rc -eq 0 ] && [ $(stat -c %s "$tmp/lg.bin") -eq $((6 * 4 * 288 * 4)) ]'
check "the argmax of each step's logits is the token generated" '[ "$(python3 -c "
import struct, sys
b = open(sys.argv[1], \"rb\").read(); v = struct.unpack(\"<%df\" % (len(b) // 4), b)
toks = [list(map(int, l.split())) for l in open(sys.argv[2])]
print(all(max(range(288), key=lambda i: v[(g * 4 + s) * 288 + i]) == toks[s][g] for g in range(6) for s in range(4)))
" "$tmp/lg.bin" "$tmp/lt.txt")" = True ]'
"$L" run "${common[@]}" --logits-out "$tmp/no/such/dir/lg.bin" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "--logits-out into a missing directory: exit 2 before the run, nothing on stdout" \
  '[ $rc -eq 2 ] && grep -q -- "--logits-out" "$tmp/err" && [ ! -s "$tmp/out" ]'
"$L" run "${common[@]}" --percent 0 0 0 0 0 0 --tokens-out "$tmp/disk.txt" >/dev/null; rc=$?
check "everything on disk runs" '[ $rc -eq 0 ]'
check "the same tokens with everything on disk" 'cmp -s "$tmp/ram.txt" "$tmp/disk.txt"'
check "the offload directory is removed after a run" '[ -z "$(ls -A "$off")" ]'
check "the run is recorded as a measure run" '"$L" runs --db "$db" --kind measure | grep -q tiny-llama'

printf '1 2 3 4 5\n6 7 8 9 10\n11 12 13 14 15\n' > "$tmp/prompts.txt"
"$L" run --model "$M" --hardware cpu-only --gen-len 4 --prompt-tokens "$tmp/prompts.txt" \
     --db "$db" --offload-dir "$off" --tokens-out "$tmp/p.txt" >/dev/null; rc=$?
check "prompts from a file: one output line per prompt" '[ $rc -eq 0 ] && [ $(wc -l < "$tmp/p.txt") -eq 3 ]'
printf '1 2 3\n4 5\n' > "$tmp/ragged.txt"
"$L" run --model "$M" --hardware cpu-only --gen-len 4 --prompt-tokens "$tmp/ragged.txt" --db "$db" \
     >/dev/null 2>"$tmp/err"; rc=$?
check "ragged prompts exit 2 naming the line" '[ $rc -eq 2 ] && grep -q "ragged.txt:2" "$tmp/err"'
printf '1 2 99999\n' > "$tmp/oov.txt"
"$L" run --model "$M" --hardware cpu-only --gen-len 4 --prompt-tokens "$tmp/oov.txt" --db "$db" \
     >/dev/null 2>"$tmp/err"; rc=$?
check "a token beyond the vocabulary exits 2 with line and column" '[ $rc -eq 2 ] && grep -q "oov.txt:1:5" "$tmp/err"'
"$L" run "${common[@]}" --max-ram 1KB >/dev/null 2>"$tmp/err"; rc=$?
check "--max-ram too small refuses with exit 2" '[ $rc -eq 2 ] && grep -q "max-ram" "$tmp/err"'
# a GPU profile goes to the GPU engine: where there is no GPU it says so and how to emulate one
gpu=(--model "$M" --hardware t4-flexgen --gpu-batch-size 2 --num-gpu-batches 2 --prompt-len 12 --gen-len 6
     --db "$db" --offload-dir "$off" --threads 2)
"$L" run "${gpu[@]}" >/dev/null 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ]; then # (where a GPU is, the run simply succeeds)
  check "a GPU profile without a GPU exits 2 naming --emulate-gpu" '[ $rc -eq 2 ] && grep -q -- "--emulate-gpu" "$tmp/err"'
fi
out=$("$L" run "${gpu[@]}" --emulate-gpu --percent 0 100 0 0 100 0 --cpu-attention --format json \
      --tokens-out "$tmp/gpu.txt" 2>"$tmp/err"); rc=$?
check "the GPU engine on the emulated device runs weights in RAM, the cache on disk, CPU attention" \
  '[ $rc -eq 0 ] && grep -q "\"engine\":[[:space:]]*\"gpu\"" <<<"$out" && grep -q "\"gpu_peak_bytes\":" <<<"$out"'
check "the GPU engine writes 6 tokens for each of 4 prompts" \
  '[ $(wc -l < "$tmp/gpu.txt") -eq 4 ] && [ $(head -1 "$tmp/gpu.txt" | wc -w) -eq 6 ]'
"$L" run "${common[@]}" --offload-dir "$tmp/made/here" >/dev/null 2>"$tmp/err"; rc=$?
check "a missing --offload-dir is made as mkdir -p would, and removed again" \
  '[ $rc -eq 0 ] && [ ! -e "$tmp/made" ]' "exit $rc: $(head -c 300 "$tmp/err")"
: >"$tmp/afile"
"$L" run "${common[@]}" --offload-dir "$tmp/afile/sub" >/dev/null 2>"$tmp/err"; rc=$?
check "an --offload-dir under a file exits 2 naming it" '[ $rc -eq 2 ] && grep -q "afile is not a directory" "$tmp/err"'
"$L" run "${common[@]}" --temperature 0.8 --top-p 0.9 --seed 3 --tokens-out "$tmp/s1.txt" >/dev/null
"$L" run "${common[@]}" --temperature 0.8 --top-p 0.9 --seed 3 --percent 0 0 0 0 0 0 --tokens-out "$tmp/s2.txt" >/dev/null
check "sampling is deterministic for a seed, whatever the placement" 'cmp -s "$tmp/s1.txt" "$tmp/s2.txt"'

for i in $(seq 200); do printf '%d ' $(( (i * 37) % 250 )); done > "$tmp/ppl.txt"
p1=$("$L" run --model "$M" --hardware cpu-only --prompt-len 32 --eval-ppl "$tmp/ppl.txt" --db "$db" \
     --offload-dir "$off" --format json | sed -n 's/.*"perplexity":[[:space:]]*\([0-9.e+]*\).*/\1/p')
p2=$("$L" run --model "$M" --hardware cpu-only --prompt-len 32 --eval-ppl "$tmp/ppl.txt" --db "$db" \
     --offload-dir "$off" --percent 0 0 0 0 0 0 --format json | sed -n 's/.*"perplexity":[[:space:]]*\([0-9.e+]*\).*/\1/p')
check "--eval-ppl gives a perplexity ($p1)" '[ -n "$p1" ] && awk -v p="$p1" "BEGIN{exit !(p > 1)}"'
check "the same perplexity with everything on disk" '[ "$p1" = "$p2" ]'
"$L" run --model "$M" --hardware t4-flexgen --emulate-gpu --prompt-len 32 --eval-ppl "$tmp/ppl.txt" --db "$db" \
     --offload-dir "$off" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "--eval-ppl on the GPU engine exits 2 naming the CPU engine, nothing on stdout" \
  '[ $rc -eq 2 ] && grep -q "CPU engine" "$tmp/err" && [ ! -s "$tmp/out" ]'
printf '1 2 x 4\n' > "$tmp/badppl.txt"
"$L" run --model "$M" --hardware cpu-only --prompt-len 2 --eval-ppl "$tmp/badppl.txt" --db "$db" \
     >/dev/null 2>"$tmp/err"; rc=$?
check "a bad token file exits 2 with line and column" '[ $rc -eq 2 ] && grep -q "badppl.txt:1:5" "$tmp/err"'

# ^C: a long run with everything on disk, interrupted
"$L" run --model "$M" --hardware cpu-only --percent 0 0 0 0 0 0 --gpu-batch-size 1 --num-gpu-batches 1 \
     --prompt-len 64 --gen-len 180 --num-prompts 64 --db "$db" --offload-dir "$off" >/dev/null 2>"$tmp/err" &
pid=$!
for i in $(seq 50); do [ -n "$(ls -A "$off" 2>/dev/null)" ] && break; sleep 0.1; done
sleep 0.5
kill -INT $pid
wait $pid; rc=$?
check "^C stops the run with exit 130" '[ $rc -eq 130 ]'
check "^C leaves no offload files" '[ -z "$(ls -A "$off")" ]'
check "^C marks the run interrupted in the store" '"$L" runs --db "$db" --kind measure | grep -q interrupted'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
