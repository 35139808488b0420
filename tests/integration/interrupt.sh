#!/usr/bin/env bash
# SIGINT and SIGTERM during every long command: each stops promptly (the test
# allows 3 s for a loaded CI machine; measured alone: 2–500 ms),
# exits 128 + the signal (130, 143), leaves no temporary or offload file and
# no half-written output, leaves a store that passes its integrity check, and
# records the run as interrupted with its whole command line (quoted, the
# options the command lifts before parsing included).
#
# Signals come two ways: from outside at a random moment (kill, timed: the
# latency is what a user at ^C sees), and, where the work is too short on a
# fast machine to be hit reliably, from inside at a known step
# (LLMSIM_FAULT=interrupt:N or terminate:N, common/fault.h).
#
# serve-sim, serve and report's drawing have theirs in their own scripts
# (serve_sim_cli.sh, serve_cli.sh, report_cli.sh); run's ^C in run_cli.sh.
#
# Env: LLMSIM (the binary), LLMSIM_TEST_DATA (tests/data).
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
T=${LLMSIM_TEST_DATA:?set LLMSIM_TEST_DATA to tests/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
M=$T/models/tiny-llama.yaml
code() { [ "$1" = INT ] && echo 130 || echo 143; }
integrity() { [ "$(sqlite3 "$1" 'PRAGMA integrity_check' 2>/dev/null)" = ok ]; }
# the newest run's kind|status|command
last_run() { sqlite3 "$1" "SELECT kind || '|' || status || '|' || command FROM runs ORDER BY id DESC LIMIT 1"; }
have_sqlite3=0
command -v sqlite3 >/dev/null && have_sqlite3=1
recorded() { # db kind fragment-of-the-command
  [ $have_sqlite3 -eq 0 ] && return 0
  local r
  r=$(last_run "$1")
  [[ "$r" == "$2|interrupted|"* ]] && [[ "$r" == *"$3"* ]]
}
sound() { [ $have_sqlite3 -eq 0 ] || integrity "$1"; }

# Start "$@" in the background, wait until the condition $ready holds (or
# 10 s), then $settle s more, send the signal, and give the exit status ($rc)
# and the milliseconds from the signal to the exit ($ms).
interrupt() {
  local sig=$1 ready=$2 settle=$3
  shift 3
  "$@" >/dev/null 2>"$tmp/err" &
  local pid=$! i
  for i in $(seq 100); do eval "$ready" && break; sleep 0.1; done
  sleep "$settle"
  local t0
  t0=$(now_ms)
  kill -"$sig" $pid
  wait $pid
  rc=$?
  ms=$(($(now_ms) - t0))
}

for sig in INT TERM; do
  want=$(code $sig)

  # ---- run, everything on disk, under a directory with a space in its name
  db=$tmp/run-$sig.db
  off="$tmp/off dir $sig"
  mkdir -p "$off"
  interrupt $sig '[ -n "$(ls -A "$off")" ]' 0.3 "$L" run --model "$M" --hardware cpu-only --percent 0 0 0 0 0 0 \
    --gpu-batch-size 1 --num-gpu-batches 1 --prompt-len 64 --gen-len 180 --num-prompts 64 \
    --db "$db" --offload-dir "$off" --threads 1
  check "run, SIG$sig: exit $want promptly ($rc, $ms ms; under 3 s on a loaded machine)" '[ $rc -eq $want ] && [ $ms -lt 3000 ]'
  check "run, SIG$sig: no offload file left" '[ -z "$(ls -A "$off")" ]'
  check "run, SIG$sig: the store is sound, the run interrupted with --offload-dir quoted" \
    'sound "$db" && recorded "$db" measure "--offload-dir '"'"'$off'"'"'"'

  # ---- validate: a grid of policies on the disk tier
  db=$tmp/val-$sig.db
  off=$tmp/voff-$sig
  mkdir -p "$off"
  interrupt $sig '[ -e "$db" ]' 1 "$L" validate --model "$M" --hardware cpu-only --grid --prompt-len 64 \
    --gen-len 64 --threads 1 --db "$db" --offload-dir "$off"
  check "validate, SIG$sig: exit $want promptly ($rc, $ms ms; under 3 s on a loaded machine)" '[ $rc -eq $want ] && [ $ms -lt 3000 ]'
  check "validate, SIG$sig: no offload file left" '[ -z "$(ls -A "$off")" ]'
  check "validate, SIG$sig: the store is sound, the validate run interrupted with its command" \
    'sound "$db" && recorded "$db" validate "validate --model $M --hardware cpu-only --grid"'
  # the same at a known step: before the second policy
  LLMSIM_FAULT=$([ $sig = INT ] && echo interrupt || echo terminate):2 "$L" validate --model "$M" \
    --hardware cpu-only --grid --prompt-len 8 --gen-len 2 --threads 1 --db "$db" \
    --offload-dir "$off" --rerun >/dev/null 2>"$tmp/err"; rc=$?
  check "validate, SIG$sig before its second policy: exit $want, said so" \
    '[ $rc -eq $want ] && grep -q "interrupted" "$tmp/err" && recorded "$db" validate "--rerun"'

  # ---- calibrate, from that store's measure runs, at a known step of each phase (every
  # run counted: a loaded machine's runs are not left out of what calibrate fits)
  "$L" validate --model "$M" --hardware cpu-only --grid --prompt-len 8 --gen-len 2 --threads 1 \
    --db "$db" --offload-dir "$off" --remeasure 0 --keep-disturbed >/dev/null 2>&1
  for step in 1 20; do
    LLMSIM_FAULT=$([ $sig = INT ] && echo interrupt || echo terminate):$step "$L" calibrate \
      --hardware cpu-only --db "$db" -o "$tmp/cal-$sig.yaml" >/dev/null 2>"$tmp/err"; rc=$?
    check "calibrate, SIG$sig at step $step: exit $want, no profile written, nothing left" \
      '[ $rc -eq $want ] && [ ! -e "$tmp/cal-$sig.yaml" ] && [ -z "$(ls "$tmp" | grep "cal-$sig.yaml.")" ]'
    check "calibrate, SIG$sig at step $step: the store is sound, the run interrupted" \
      'sound "$db" && recorded "$db" calibrate "calibrate --hardware cpu-only"'
  done
  "$L" calibrate --hardware cpu-only --db "$db" -o "$tmp/cal-$sig.yaml" >/dev/null 2>&1; rc=$?
  check "calibrate, not interrupted: exit 0 and the profile" '[ $rc -eq 0 ] && [ -s "$tmp/cal-$sig.yaml" ]'

  # ---- profile, measuring the disk in a directory of its own
  db=$tmp/prof-$sig.db
  pd=$tmp/pdir-$sig
  mkdir -p "$pd"
  interrupt $sig true 1.5 "$L" profile --quick -o "$tmp/hw-$sig.yaml" --db "$db" --disk-dir "$pd"
  check "profile, SIG$sig: exit $want promptly ($rc, $ms ms; under 3 s on a loaded machine)" '[ $rc -eq $want ] && [ $ms -lt 3000 ]'
  check "profile, SIG$sig: no test file, no profile" '[ -z "$(ls -A "$pd")" ] && [ ! -e "$tmp/hw-$sig.yaml" ]'
  check "profile, SIG$sig: the run interrupted with its command" \
    'sound "$db" && recorded "$db" profile "profile --quick -o $tmp/hw-$sig.yaml"'
done

echo "# $pass passed, $fail failed"
[ $fail -eq 0 ]
