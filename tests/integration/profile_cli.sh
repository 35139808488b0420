#!/usr/bin/env bash
# profile_cli — `llmsim profile`: a quick profile of this machine is a valid
# hardware profile (it loads, it round-trips through save/load unchanged, and
# predict accepts it); a bad --disk-dir (missing, not a directory, read-only,
# full) is rejected with exit 2 and leaves nothing behind; --compare works.
#
# Env: LLMSIM (the binary), LLMSIM_DATA_DIR (repo root).
set -u
: "${LLMSIM:?set LLMSIM to the llmsim binary}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/llmsim-profile.XXXXXX")
cleanup() {
    if [ -n "${MNT:-}" ]; then umount "$MNT" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
export LLMSIM_DB="$TMP/store.db"

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok  %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }

# ---- a quick profile
mkdir "$TMP/disk"
if "$LLMSIM" profile --quick --disk-dir "$TMP/disk" --name test-machine -o "$TMP/p.yaml" \
    >"$TMP/out" 2>"$TMP/err"; then
    ok "quick profile runs"
else
    fail "quick profile runs" "exit $?: $(cat "$TMP/err")"
fi
if [ -z "$(ls -A "$TMP/disk")" ]; then ok "disk test file removed"; else fail "disk test file removed" "$(ls -A "$TMP/disk")"; fi
grep -q '^name: "\?test-machine' "$TMP/p.yaml" && ok "profile named" || fail "profile named" "$(head -5 "$TMP/p.yaml")"
for key in memory_bandwidth gemm disk read write; do
    grep -q "$key" "$TMP/p.yaml" && ok "profile has $key" || fail "profile has $key" "missing"
done
grep -q 'recorded  run' "$TMP/out" && ok "recorded in the store" || fail "recorded in the store" "$(cat "$TMP/out")"

# round trip: load the written profile and write it again: unchanged
if "$LLMSIM" profile --compare "$TMP/p.yaml" "$TMP/p.yaml" >"$TMP/cmp" 2>"$TMP/err"; then
    ok "compare runs"
    grep -q '1.00x' "$TMP/cmp" && ok "compare with itself gives 1.00x" || fail "compare ratios" "$(cat "$TMP/cmp")"
else
    fail "compare runs" "$(cat "$TMP/err")"
fi
"$LLMSIM" profile --compare "$TMP/p.yaml" t4-flexgen >"$TMP/cmp2" 2>"$TMP/err" \
    && ok "compare with a shipped profile" || fail "compare with a shipped profile" "$(cat "$TMP/err")"

# predict accepts it (CPU-only machine: all-CPU policy; with a GPU the default)
if "$LLMSIM" predict --model opt-125m --hardware "$TMP/p.yaml" --prompt-len 32 --gen-len 8 \
    --format json >"$TMP/pred" 2>"$TMP/err"; then
    ok "predict with the measured profile"
    grep -qP '"feasible":\s*true' "$TMP/pred" && ok "prediction feasible" || fail "prediction feasible" "$(head -c 600 "$TMP/pred")"
else
    fail "predict with the measured profile" "exit $?: $(cat "$TMP/err")"
fi

# ---- bad --disk-dir: exit 2, a message naming the directory, no -o file
bad_dir() {
    local what=$1 dir=$2
    rm -f "$TMP/bad.yaml"
    "$LLMSIM" profile --quick --disk-dir "$dir" -o "$TMP/bad.yaml" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -ne 2 ]; then fail "$what" "exit $rc, want 2: $(cat "$TMP/err")"; return; fi
    if ! grep -qF "$dir" "$TMP/err"; then fail "$what" "message does not name $dir: $(cat "$TMP/err")"; return; fi
    if [ -e "$TMP/bad.yaml" ]; then fail "$what" "profile written anyway"; return; fi
    ok "$what"
}
bad_dir "missing --disk-dir" "$TMP/no/such/dir"
touch "$TMP/afile"
bad_dir "--disk-dir is a file" "$TMP/afile"
# an -o that cannot be written is refused before the measuring starts
t0=$(date +%s)
"$LLMSIM" profile --quick --disk-dir "$TMP" -o "$TMP/no-such-dir/p.yaml" >"$TMP/out" 2>"$TMP/err"; rc=$?
t1=$(date +%s)
if [ $rc -eq 2 ] && grep -qF "$TMP/no-such-dir/p.yaml" "$TMP/err" && [ $((t1 - t0)) -le 2 ]; then
    ok "an unwritable -o is refused before measuring (exit 2 in $((t1 - t0)) s)"
else
    fail "an unwritable -o is refused before measuring" "exit $rc after $((t1 - t0)) s: $(cat "$TMP/err")"
fi
if [ "$(id -u)" != 0 ]; then
    mkdir "$TMP/ro" && chmod 555 "$TMP/ro"
    bad_dir "read-only --disk-dir" "$TMP/ro"
else
    bad_dir "read-only --disk-dir" /proc/self
fi
# full: a tiny tmpfs, where we may mount one (root); otherwise skipped
MNT=""
if mkdir "$TMP/full" && mount -t tmpfs -o size=1m tmpfs "$TMP/full" 2>/dev/null; then
    MNT="$TMP/full"
    bad_dir "full --disk-dir" "$MNT"
    [ -z "$(ls -A "$MNT")" ] && ok "full disk left empty" || fail "full disk left empty" "$(ls -A "$MNT")"
    umount "$MNT"; MNT=""
else
    printf 'skip full --disk-dir: cannot mount a tmpfs here\n'
fi

# ---- bad command lines
"$LLMSIM" profile --compare "$TMP/p.yaml" >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok "--compare with one profile" || fail "--compare with one profile" "exit $rc"
"$LLMSIM" profile --bogus >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] && ok "unknown option" || fail "unknown option" "exit $rc"
"$LLMSIM" profile --compare "$TMP/p.yaml" "$TMP/nothing.yaml" >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 2 ] && ok "--compare a missing file" || fail "--compare a missing file" "exit $rc: $(cat "$TMP/err")"

"$LLMSIM" profile --quick --format xml >/dev/null 2>"$TMP/err"; rc=$?
[ $rc -eq 2 ] && grep -q 'table or json' "$TMP/err" && ok "bad --format" || fail "bad --format" "exit $rc: $(cat "$TMP/err")"
sed 's/^cpu:/cpux:/' "$TMP/p.yaml" >"$TMP/broken.yaml"
"$LLMSIM" profile --compare "$TMP/p.yaml" "$TMP/broken.yaml" >"$TMP/out" 2>"$TMP/err"; rc=$?
if [ $rc -eq 2 ] && grep -q "broken.yaml:[0-9]*:" "$TMP/err" && [ ! -s "$TMP/out" ]; then
    ok "--compare a malformed profile names file and line"
else
    fail "--compare a malformed profile" "exit $rc: $(cat "$TMP/err")"
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
