#!/usr/bin/env bash
# llmsim search as a user runs it: the written policy is accepted by predict
# unchanged and predicts what search reported; JSON keys of §11; impossible
# setups and bad options exit 2.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=$tmp/store.db
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
num() { sed -n "s/.*\"$1\":[[:space:]]*\([-0-9.e+]*\).*/\1/p" | head -1; }

out=$("$L" search --model opt-30b --hardware t4-flexgen --prompt-len 512 --gen-len 32 --no-quant \
      -o "$tmp/best.yaml" --format json --db "$db" 2>"$tmp/err"); rc=$?
check "search exits 0" '[ $rc -eq 0 ]'
for key in policy throughput_tok_s candidates_evaluated search_s top run_id; do
  check "search json has \"$key\"" 'grep -q "\"$key\":" <<<"$out"'
done
check "the policy file is written" '[ -s "$tmp/best.yaml" ] && grep -q "^llmsim: policy/1" "$tmp/best.yaml"'
tput=$(num throughput_tok_s <<<"$out")
pred=$("$L" predict --model opt-30b --hardware t4-flexgen --policy "$tmp/best.yaml" --prompt-len 512 \
       --gen-len 32 --format json --db "$db"); rc=$?
check "predict accepts the searched policy unchanged" '[ $rc -eq 0 ]'
ptput=$(num throughput_tok_s <<<"$pred")
check "predict gives the throughput search reported ($tput)" '[ "$tput" = "$ptput" ]'
check "the searched policy fits" 'grep -q "\"feasible\":[[:space:]]*true" <<<"$pred"'
flexgen=$("$L" predict --model opt-30b --hardware t4-flexgen --percent 20 80 0 100 0 100 \
          --gpu-batch-size 48 --num-gpu-batches 3 --cpu-attention --prompt-len 512 --gen-len 32 \
          --format json --db "$db" | num throughput_tok_s)
check "search beats FlexGen's published policy ($tput vs $flexgen)" \
      'awk -v a="$tput" -v b="$flexgen" "BEGIN{exit !(a >= b)}"'
check "search is recorded" '"$L" runs --db "$db" --kind search | grep -q opt-30b'

table=$("$L" search --model opt-1.3b --hardware l4 --prompt-len 256 --gen-len 16 --top 3 --db "$db"); rc=$?
check "search table exits 0" '[ $rc -eq 0 ]'
check "table lists the top 3" '[ $(grep -cE "^ +[0-9]+  [0-9]+x[0-9]+" <<<"$table") -eq 3 ]'

"$L" search --model opt-175b --hardware rtx4090 --prompt-len 512 --gen-len 32 --no-disk --no-quant \
     --db "$db" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "a model larger than all tiers exits 2" '[ $rc -eq 2 ]'
check "and says so" 'grep -q "no policy fits" "$tmp/err"'
check "and prints nothing on stdout" '[ ! -s "$tmp/out" ]'

for args in "--headroom 1.5" "--max-latency -1" "--top 0" "--bogus" "--format xml"; do
  "$L" search --model opt-1.3b --hardware l4 --prompt-len 64 --gen-len 8 $args --db "$db" \
       >/dev/null 2>"$tmp/err"; rc=$?
  check "search $args exits 2 with a message" '[ $rc -eq 2 ] && [ -s "$tmp/err" ]'
done
"$L" search --help | grep -q "usage"; rc=$?
check "search --help" '[ $rc -eq 0 ]'

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
