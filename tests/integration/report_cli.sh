#!/usr/bin/env bash
# llmsim report as a user runs it: a simulate and a measure run of one job
# plotted side by side, index.html that shows every plot and links only its
# own files, scripts that redraw in place, the refusals (unknown run, a
# non-empty -o, no gnuplot, gnuplot failing) that leave no directory behind,
# a validate run whose result lacks keys (inserted with the sqlite3 shell
# where it is installed), and serving runs: a validate --serving run drawn per
# preemption mode (latency CDFs, KV blocks, preemptions; the row counts
# checked against the store where sqlite3 is) and serve runs given directly.
# Skips (77) where gnuplot is not installed.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
if ! command -v gnuplot >/dev/null; then
  echo "skip: gnuplot is not installed (apt-get install gnuplot-nox)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db=$tmp/store.db
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
run_id() { sed -n 's/.*"run_id":[[:space:]]*\([0-9]*\).*/\1/p' | head -1; }
png_sig() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
no_leftovers() { [ -z "$(ls -d "$1".tmp* "$1".old* 2>/dev/null)" ]; }

# Every PNG and SVG is referenced by the page, is what its name says, and
# every link of the page is a file of the report (relative, no scripts).
check_report() {
  local dir=$1 what=$2 f name ref
  check "$what: index.html exists" '[ -s "$dir/index.html" ]'
  local npng=0 nsvg=0 unref=0 badpng=0 badsvg=0 missing=0 external=0
  for f in "$dir"/*.png; do
    [ -e "$f" ] || continue
    npng=$((npng + 1)); name=${f##*/}
    grep -qF "\"$name\"" "$dir/index.html" || unref=$((unref + 1))
    png_sig "$f" || badpng=$((badpng + 1))
  done
  for f in "$dir"/*.svg; do
    [ -e "$f" ] || continue
    nsvg=$((nsvg + 1)); name=${f##*/}
    grep -qF "\"$name\"" "$dir/index.html" || unref=$((unref + 1))
    { head -1 "$f" | grep -q '^<?xml' && grep -q '<svg' "$f"; } || badsvg=$((badsvg + 1))
  done
  for ref in $(grep -o '\(src\|href\)="[^"]*"' "$dir/index.html" | sed 's/^[a-z]*="\(.*\)"$/\1/'); do
    case $ref in */*|*:*) external=$((external + 1)) ;; esac
    [ -e "$dir/$ref" ] || missing=$((missing + 1))
  done
  check "$what: PNG and SVG of every plot ($npng, $nsvg)" '[ $npng -gt 0 ] && [ $npng -eq $nsvg ]'
  check "$what: index.html references every PNG and SVG" '[ $unref -eq 0 ]'
  check "$what: every PNG starts with the PNG signature" '[ $badpng -eq 0 ]'
  check "$what: every SVG is XML with <svg" '[ $badsvg -eq 0 ]'
  check "$what: every link of the page is a file of the report" '[ $missing -eq 0 ] && [ $external -eq 0 ]'
  check "$what: the page has no scripts" '! grep -qi "<script" "$dir/index.html"'
  check "$what: a .dat and a .gp beside every plot" \
        'for f in "$dir"/*.png; do b=${f%.png}; [ -s "$b.dat" ] && [ -s "$b.gp" ] || exit 1; done'
}

job=(--model opt-125m --hardware cpu-only --prompt-len 8 --gen-len 4 --db "$db")
sim=$("$L" simulate "${job[@]}" --format json | run_id)
meas=$("$L" run "${job[@]}" --synthetic 1 --format json | run_id)
check "simulate and run record runs ($sim, $meas)" '[ -n "$sim" ] && [ -n "$meas" ]'

"$L" report --help | grep -q -- "--force"; rc=$?
check "report --help documents --force" '[ $rc -eq 0 ]'

out=$("$L" report "$sim" "$meas" -o "$tmp/rep" --db "$db" 2>"$tmp/err"); rc=$?
check "report of a simulate and a measure run exits 0" '[ $rc -eq 0 ]'
check "report prints the page it wrote" '[ "$out" = "$tmp/rep/index.html" ]'
check_report "$tmp/rep" "sim+meas"
check "the two runs of one job are one stage figure" '[ -s "$tmp/rep/stages_1.png" ] && [ ! -e "$tmp/rep/stages_2.png" ]'
check "both runs are panels of it" 'grep -q "simulated (run $sim)" "$tmp/rep/stages_1.gp" && grep -q "measured (run $meas)" "$tmp/rep/stages_1.gp"'
check "the stage table has the decode steps 1..3" \
      '[ "$(grep -v "^#" "$tmp/rep/stages_1.dat" | awk "{print \$1}" | tr "\n" " ")" = "1 2 3 " ]'
check "the stage table shows compute of both runs" 'grep -q "simulated compute" "$tmp/rep/index.html" && grep -q "measured compute" "$tmp/rep/index.html"'
check "memory over time is drawn or said to be missing" \
      '[ -s "$tmp/rep/memory_1.png" ] || grep -q "no memory timeline recorded" "$tmp/rep/index.html"'
check "no temporary directory is left" 'no_leftovers "$tmp/rep"'
rm -f "$tmp/rep/stages_1.png"
(cd "$tmp/rep" && gnuplot stages_1.gp 2>/dev/null); rc=$?
check "a script redraws its plot when run in the report directory" '[ $rc -eq 0 ] && png_sig "$tmp/rep/stages_1.png"'

# refusals
"$L" report 999999 -o "$tmp/bad" --db "$db" 2>"$tmp/err"; rc=$?
check "an unknown RUN exits 2 naming it" '[ $rc -eq 2 ] && grep -q 999999 "$tmp/err"'
check "an unknown RUN leaves no directory" '[ ! -e "$tmp/bad" ] && no_leftovers "$tmp/bad"'
"$L" report "$sim" nope -o "$tmp/bad" --db "$db" 2>"$tmp/err"; rc=$?
check "a RUN that is not a number exits 2" '[ $rc -eq 2 ] && grep -q nope "$tmp/err" && [ ! -e "$tmp/bad" ]'
"$L" report -o "$tmp/bad" --db "$db" 2>"$tmp/err"; rc=$?
check "no RUN and no validate run exits 2" '[ $rc -eq 2 ] && grep -q "no validate run" "$tmp/err"'
"$L" report "$sim" -o "$tmp/bad" --db "$tmp/none.db" 2>"$tmp/err"; rc=$?
check "a missing store exits 2 and is not created" '[ $rc -eq 2 ] && [ ! -e "$tmp/none.db" ]'

mkdir "$tmp/full" && echo mine > "$tmp/full/notes.txt"
"$L" report "$sim" -o "$tmp/full" --db "$db" 2>"$tmp/err"; rc=$?
check "a non-empty -o exits 2" '[ $rc -eq 2 ] && grep -q "not empty" "$tmp/err"'
"$L" report "$sim" -o "$tmp/full" --force --db "$db" 2>"$tmp/err"; rc=$?
check "--force does not replace a directory that is not a report" '[ $rc -eq 2 ]'
check "the non-empty directory is untouched" \
      '[ "$(ls "$tmp/full")" = notes.txt ] && [ "$(cat "$tmp/full/notes.txt")" = mine ] && no_leftovers "$tmp/full"'
echo marker > "$tmp/rep/marker"
"$L" report "$sim" -o "$tmp/rep" --db "$db" 2>"$tmp/err"; rc=$?
check "an earlier report is kept without --force" '[ $rc -eq 2 ] && [ -e "$tmp/rep/marker" ]'
"$L" report "$sim" -o "$tmp/rep/" --force --db "$db" >/dev/null 2>"$tmp/err"; rc=$?
check "--force replaces an earlier report" '[ $rc -eq 0 ] && [ ! -e "$tmp/rep/marker" ] && [ -s "$tmp/rep/index.html" ]'
check "--force leaves nothing beside it" 'no_leftovers "$tmp/rep"'
mkdir "$tmp/empty"
"$L" report "$meas" -o "$tmp/empty" --db "$db" >/dev/null 2>&1; rc=$?
check "an empty -o directory is filled" '[ $rc -eq 0 ] && [ -s "$tmp/empty/index.html" ]'

mkdir "$tmp/nobin"
PATH=$tmp/nobin "$L" report "$sim" -o "$tmp/nognuplot" --db "$db" 2>"$tmp/err"; rc=$?
check "without gnuplot: exit 1 naming the package" '[ $rc -eq 1 ] && grep -q gnuplot-nox "$tmp/err"'
check "without gnuplot: no directory" '[ ! -e "$tmp/nognuplot" ] && no_leftovers "$tmp/nognuplot"'
mkdir "$tmp/badbin"
printf '#!/bin/sh\necho "broken gnuplot" >&2\nexit 3\n' > "$tmp/badbin/gnuplot"
chmod +x "$tmp/badbin/gnuplot"
PATH=$tmp/badbin:$PATH "$L" report "$sim" -o "$tmp/failed" --db "$db" 2>"$tmp/err"; rc=$?
check "gnuplot failing: exit 1 with its message" '[ $rc -eq 1 ] && grep -q "broken gnuplot" "$tmp/err"'
check "gnuplot failing: no directory, no half page" '[ ! -e "$tmp/failed" ] && no_leftovers "$tmp/failed"'
mkdir "$tmp/slowbin"
printf '#!/bin/sh\ntouch "%s/started"\nsleep 1\nexec "%s" "$@"\n' "$tmp" "$(command -v gnuplot)" \
  > "$tmp/slowbin/gnuplot"
chmod +x "$tmp/slowbin/gnuplot"
for sig in INT TERM; do
  want=$([ $sig = INT ] && echo 130 || echo 143)
  rm -f "$tmp/started"
  PATH=$tmp/slowbin:$PATH "$L" report "$sim" -o "$tmp/intr" --db "$db" >/dev/null 2>"$tmp/err" &
  pid=$!
  for i in $(seq 100); do [ -e "$tmp/started" ] && break; sleep 0.1; done
  kill -$sig $pid
  wait $pid; rc=$?
  check "SIG$sig while drawing: exit $want" '[ $rc -eq $want ]'
  check "SIG$sig while drawing: no directory, no temporary one" '[ ! -e "$tmp/intr" ] && no_leftovers "$tmp/intr"'
done

# A real validate run, where llmsim has the command: every policy of the grid
# has its totals, and its simulate and measure runs their stage figure.
if "$L" validate --help >/dev/null 2>&1; then
  T=${LLMSIM_TEST_DATA:?}
  "$L" validate --model "$T/models/tiny-llama.yaml" --hardware cpu-only --grid --prompt-len 8 \
       --gen-len 4 --threads 2 --offload-dir "$tmp" --db "$tmp/val.db" --remeasure 0 \
       >/dev/null 2>"$tmp/err"; rc=$?
  check "llmsim validate records a validate run" '[ $rc -eq 0 ]'
  "$L" report -o "$tmp/real" --db "$tmp/val.db" >/dev/null 2>"$tmp/err"; rc=$?
  check "real validate: report exits 0" '[ $rc -eq 0 ]'
  check_report "$tmp/real" "real validate"
  npol=$(grep -vc '^#' "$tmp/real"/totals_*.dat)
  nstages=$(find "$tmp/real" -name 'stages_*.png' | wc -l)
  check "real validate: a stage figure per policy ($nstages of $npol)" '[ "$npol" -gt 0 ] && [ "$nstages" -eq "$npol" ]'
  check "real validate: no warnings" '[ ! -s "$tmp/err" ]'
else
  echo "skip: this llmsim has no validate command"
fi

# An offline report is what it was before serving runs were drawn: one stage
# and one memory figure per job, none of the serving ones.
check "offline: no serving figure in a report of simulate and measure runs" \
      '[ "$(cd "$tmp/empty" && ls *.dat | tr "\n" " ")" = "memory_1.dat stages_1.dat " ] ||
       [ "$(cd "$tmp/empty" && ls *.dat | tr "\n" " ")" = "stages_1.dat " ]'

# Serving: a validate --serving run (a serve and a serve-measure run per
# preemption mode), drawn per mode; and its serve runs given directly.
dat_rows() { grep -v '^#' "$1" | grep -c .; }          # data rows of a .dat
dat_blocks() { awk '/^#/ {next} NF {if (!inb) n++; inb = 1; next} {inb = 0} END {print n + 0}' "$1"; }
dat_cols() { grep -v '^#' "$1" | grep . | sed 's/^"[^"]*" //' | awk '{print NF}' | sort -u | tr '\n' ' '; }
sq() { sqlite3 "$sdb" "$1"; }
sdb=$tmp/serve.db
"$L" validate --serving --model opt-125m --hardware cpu-only --num-requests 8 --rate 50 \
     --prompt-len uniform:8,40 --output-len uniform:4,16 --kv-memory "4 MiB" --swap-space "16 MiB" \
     --preemption all --max-batch 4 --token-budget 64 --db "$sdb" --format json > "$tmp/vs.json" \
     2>"$tmp/err"; rc=$?
check "validate --serving records its runs" '[ $rc -eq 0 ]'
simr=($(sed -n 's/.*"simulated_run":[[:space:]]*\([0-9]*\).*/\1/p' "$tmp/vs.json"))
measr=($(sed -n 's/.*"measured_run":[[:space:]]*\([0-9]*\).*/\1/p' "$tmp/vs.json"))
check "validate --serving names a serve and a serve-measure run per mode" \
      '[ ${#simr[@]} -eq 3 ] && [ ${#measr[@]} -eq 3 ]'
"$L" report -o "$tmp/srv" --db "$sdb" >/dev/null 2>"$tmp/err"; rc=$?
check "serving validate: the newest validate run is the default, exit 0" '[ $rc -eq 0 ]'
check "serving validate: no warnings" '[ ! -s "$tmp/err" ]'
check_report "$tmp/srv" "serving validate"
check "serving validate: a section per mode" \
      'for m in swap recompute adaptive; do grep -q "<h2>preemption $m (validate run" "$tmp/srv/index.html" || exit 1; done'
check "serving validate: each mode's errors are listed" 'grep -q "preemption swap: throughput .*errors (%): throughput" "$tmp/srv/index.html"'
check "serving validate: no offline figure" '! ls "$tmp/srv"/totals_* "$tmp/srv"/stages_* >/dev/null 2>&1'
for k in 1 2 3; do
  s=${simr[$((k - 1))]} m=${measr[$((k - 1))]} d=$tmp/srv
  for f in ttft tpot e2e kv; do
    check "mode $k: ${f}_$k.dat, .gp and .svg, referenced by the page" \
          '[ -s "$d/${f}_$k.dat" ] && [ -s "$d/${f}_$k.gp" ] && [ -s "$d/${f}_$k.svg" ] &&
           grep -qF "href=\"${f}_$k.dat\"" "$d/index.html" && grep -qF "src=\"${f}_$k.svg\"" "$d/index.html"'
  done
  for f in ttft tpot e2e; do
    check "mode $k: $f CDF: series, latency, fraction, request; two curves" \
          '[ "$(dat_cols "$d/${f}_$k.dat")" = "3 " ] && [ "$(dat_blocks "$d/${f}_$k.dat")" -eq 2 ] &&
           grep -q "fraction of requests" "$d/${f}_$k.dat" &&
           grep -q "predicted (run $s)" "$d/${f}_$k.gp" && grep -q "measured (run $m)" "$d/${f}_$k.gp"'
    check "mode $k: $f CDF ends at 1 for each run" \
          '[ "$(grep -v "^#" "$d/${f}_$k.dat" | grep . | sed "s/^\"[^\"]*\" //" | awk "\$2 == 1" | wc -l)" -eq 2 ]'
  done
  check "mode $k: kv: series, start, end, device and swap blocks" \
        '[ "$(dat_cols "$d/kv_$k.dat")" = "4 " ] && grep -q "\"device blocks\" \"swap blocks\"" "$d/kv_$k.dat"'
  if command -v sqlite3 >/dev/null; then
    nreq=$(sq "SELECT count(*) FROM serve_requests WHERE run_id IN ($s, $m)")
    ntpot=$(sq "SELECT count(*) FROM serve_requests WHERE run_id IN ($s, $m) AND output_tokens >= 2")
    nit=$(sq "SELECT count(*) FROM serve_iterations WHERE run_id IN ($s, $m)")
    npre=$(sq "SELECT count(*) FROM serve_iterations WHERE run_id IN ($s, $m) AND
               (preempt_swap > 0 OR preempt_recompute > 0)")
    check "mode $k: a CDF row per request ($nreq, $ntpot with 2+ tokens)" \
          '[ "$(dat_rows "$d/ttft_$k.dat")" -eq "$nreq" ] && [ "$(dat_rows "$d/e2e_$k.dat")" -eq "$nreq" ] &&
           [ "$(dat_rows "$d/tpot_$k.dat")" -eq "$ntpot" ]'
    check "mode $k: a kv row per iteration of both runs ($nit)" '[ "$(dat_rows "$d/kv_$k.dat")" -eq "$nit" ]'
    if [ "$npre" -gt 0 ]; then
      check "mode $k: a preemption row per iteration that preempted ($npre)" \
            '[ "$(dat_rows "$d/preempt_$k.dat")" -eq "$npre" ] && [ "$(dat_cols "$d/preempt_$k.dat")" = "3 " ] &&
             grep -qF "src=\"preempt_$k.svg\"" "$d/index.html"'
    else
      check "mode $k: no preemption: no timeline, a note" '[ ! -e "$d/preempt_$k.dat" ] && grep -q "no preemptions" "$d/index.html"'
    fi
  fi
done
s=${simr[0]} m=${measr[0]}
"$L" report "$m" "$s" -o "$tmp/srvd" --db "$sdb" >/dev/null 2>"$tmp/err"; rc=$?
check "serve and serve-measure runs given directly: exit 0" '[ $rc -eq 0 ]'
check_report "$tmp/srvd" "serve runs"
check "serve runs of one job are one group, predicted first" \
      '[ -s "$tmp/srvd/ttft_1.dat" ] && [ ! -e "$tmp/srvd/ttft_2.dat" ] &&
       [ "$(grep -o "title .[a-z]* (run [0-9]*)" "$tmp/srvd/ttft_1.gp" | tr "\n" " ")" = "title '"'"'predicted (run $s) title '"'"'measured (run $m) " ]'
"$L" report "$s" -o "$tmp/srv1" --db "$sdb" >/dev/null 2>"$tmp/err"; rc=$?
check "a serve run alone: exit 0, one curve per CDF" \
      '[ $rc -eq 0 ] && [ "$(dat_blocks "$tmp/srv1/ttft_1.dat")" -eq 1 ] && [ -s "$tmp/srv1/kv_1.dat" ]'
if command -v sqlite3 >/dev/null; then
  sqlite3 "$sdb" "INSERT INTO runs (kind, status, tool_version, started_at, result_json) VALUES
    ('validate', 'ok', 'test', '2030-01-01T00:00:00Z', '{\"modes\": [
      {\"preemption\": \"swap\", \"simulated_run\": $s, \"measured_run\": 999999,
       \"errors\": {\"throughput\": 12.5, \"swap_overhead\": null}}, {\"simulated_run\": 1}]}');
    INSERT INTO runs (kind, status, tool_version, started_at, result_json) VALUES
    ('validate', 'ok', 'test', '2030-01-02T00:00:00Z', '{\"modes\": []}')"
  last=$(sqlite3 "$sdb" "SELECT max(id) FROM runs")
  "$L" report $((last - 1)) -o "$tmp/srvm" --db "$sdb" >/dev/null 2>"$tmp/err"; rc=$?
  check "serving validate: a missing run is a warning, the other is drawn" \
        '[ $rc -eq 0 ] && grep -q "serve-measure run 999999 is not in the store" "$tmp/err" &&
         [ "$(dat_blocks "$tmp/srvm/ttft_1.dat")" -eq 1 ]'
  check "serving validate: a mode without a preemption is skipped" 'grep -q "mode 2 has no preemption" "$tmp/err"'
  check "serving validate: errors that are null are left out" \
        'grep -q "errors (%): throughput +12.5</p>" "$tmp/srvm/index.html"'
  "$L" report "$last" -o "$tmp/srve" --db "$sdb" 2>"$tmp/err"; rc=$?
  check "serving validate: no modes exits 2" '[ $rc -eq 2 ] && [ ! -e "$tmp/srve" ] && grep -q "no preemption modes" "$tmp/err"'
fi

# A validate run, written as `llmsim validate` writes it (result_json), with
# policies that lack keys and names that need escaping.
if command -v sqlite3 >/dev/null; then
  sqlite3 "$db" "INSERT INTO runs (kind, status, model_name, hw_name, tool_version, started_at,
    result_json) VALUES ('validate', 'ok', 'opt-125m', 'cpu-only', 'test', '2030-01-01T00:00:00Z',
    '{\"model\": \"opt-125m\", \"hardware\": \"cpu-only\", \"runs\": [
      {\"name\": \"<all & ram>\", \"policy\": {}, \"predicted_s\": 0.002, \"simulated_s\": 0.003,
       \"measured_s\": 0.09, \"error\": -96.7, \"predicted_error\": -97.8,
       \"run_ids\": {\"predict\": 1, \"simulate\": $sim, \"measure\": $meas}},
      {\"name\": \"half\", \"predicted_s\": 0.002, \"simulated_s\": null, \"measured_s\": 0.1},
      {\"name\": \"gone\", \"predicted_s\": 0.01, \"simulated_s\": 0.02, \"measured_s\": 0.03,
       \"run_ids\": {\"simulate\": 999999}},
      \"not a policy\"], \"mape\": 3.1, \"mape_predicted\": 5.2}')"
  "$L" report -o "$tmp/val" --db "$db" >/dev/null 2>"$tmp/err"; rc=$?
  check "validate: the newest validate run is the default, exit 0" '[ $rc -eq 0 ]'
  check_report "$tmp/val" "validate"
  check "validate: predicted, simulated and measured bars" \
        'ls "$tmp/val"/totals_*.png >/dev/null 2>&1 && grep -q "title .measured." "$tmp/val"/totals_*.gp'
  check "validate: simulated against measured with y = x" 'grep -q "y = x" "$tmp/val"/accuracy_*.gp'
  check "validate: the policy with its runs has its stage figure" 'grep -q "measured (run $meas)" "$tmp/val"/stages_*.gp'
  check "validate: a policy without simulated_s is skipped with a warning" \
        'grep -q "half.*simulated_s" "$tmp/err" && ! grep -q "\"half\"" "$tmp/val"/totals_*.dat'
  check "validate: a missing run is a warning" 'grep -q "999999" "$tmp/err"'
  check "validate: a policy that is not an object is skipped" 'grep -q "policy 4 has no name" "$tmp/err"'
  check "validate: names are escaped in the page" \
        'grep -q "&lt;all &amp; ram&gt;" "$tmp/val/index.html" && ! grep -q "<all & ram>" "$tmp/val/index.html"'
  check "validate: the MAPE is shown" 'grep -q "3.10 %" "$tmp/val/index.html"'
  sqlite3 "$db" "INSERT INTO runs (kind, status, tool_version, started_at, result_json) VALUES
    ('validate', 'ok', 'test', '2030-01-02T00:00:00Z', '{\"runs\": [{\"name\": \"x\"}]}');
    INSERT INTO runs (kind, status, tool_version, started_at, result_json) VALUES
    ('validate', 'ok', 'test', '2030-01-03T00:00:00Z', 'not json')"
  last=$(sqlite3 "$db" "SELECT max(id) FROM runs")
  "$L" report $((last - 1)) -o "$tmp/v2" --db "$db" 2>"$tmp/err"; rc=$?
  check "validate: no usable policy exits 2" '[ $rc -eq 2 ] && [ ! -e "$tmp/v2" ] && grep -q "run $((last - 1))" "$tmp/err"'
  "$L" report "$last" -o "$tmp/v3" --db "$db" 2>"$tmp/err"; rc=$?
  check "validate: a result that is not JSON exits 2" '[ $rc -eq 2 ] && [ ! -e "$tmp/v3" ]'
else
  echo "skip: the validate checks need the sqlite3 shell"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
