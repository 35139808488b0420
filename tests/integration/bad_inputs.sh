#!/usr/bin/env bash
# bad_inputs — every malformed input is rejected with exit status 2, a message
# on stderr that names the file (and file:LINE:COL: where a position makes
# sense) and says what is wrong, nothing on stdout, and nothing in the store.
#
# Inputs: tests/data/bad/*.yaml. The name prefix picks the slot (policy-*,
# model-*, hw-*, workload-*); the other slots get valid inputs. Each file
# starts with comment lines:
#   # expect: TEXT            the message must contain TEXT (required)
#   # expect-line: N          the position must name line N
#   # expect-noposition: WHY  no file:LINE:COL: is required (file name is)
# Binary and empty files cannot carry comments: they are made at run time in
# a temporary directory, with their expectations below. Bad command lines
# follow the files.
#
# Env: LLMSIM (the binary), LLMSIM_TEST_DATA (tests/data), LLMSIM_DATA_DIR
# (repo root). LLMSIM_WRAPPER, when set, is put in front of every llmsim run
# (e.g. "valgrind -q --leak-check=full --errors-for-leak-kinds=definite
# --error-exitcode=99"). Prints `ok  CASE` / `FAIL CASE: why` per case and
# `N passed, M failed`; exits 1 if any failed.
set -u

: "${LLMSIM:?set LLMSIM to the llmsim binary}"
: "${LLMSIM_TEST_DATA:?set LLMSIM_TEST_DATA to tests/data}"
export LLMSIM_DATA_DIR="${LLMSIM_DATA_DIR:-$(cd "$LLMSIM_TEST_DATA/../.." && pwd)}"
unset LLMSIM_DB

BAD="$LLMSIM_TEST_DATA/bad"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/llmsim-bad.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
read -r -a WRAP <<<"${LLMSIM_WRAPPER:-}"

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok  %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s: %s\n' "$1" "$2"; }

# ---- valid inputs for the slots that are not under test
cat >"$TMP/policy.yaml" <<'EOF'
llmsim: policy/1
weights: {gpu: 0.2, cpu: 0.8, disk: 0}
kv_cache: {gpu: 0, cpu: 1, disk: 0}
activations: {gpu: 0, cpu: 1, disk: 0}
gpu_batch_size: 48
num_gpu_batches: 3
weight_quant: none
kv_quant: none
cpu_attention: true
overlap: true
EOF
printf 'llmsim: workload/1\nkind: offline\nprompt_len: 512\ngen_len: 32\n' >"$TMP/workload.yaml"
MODEL=opt-1.3b
HW=t4-flexgen

# run NAME ARGS... — runs llmsim predict with a fresh --db in its own
# directory; sets rc, out, err, dbdir.
run() {
    local name=$1
    shift
    dbdir="$TMP/db-$name"
    mkdir -p "$dbdir"
    "${WRAP[@]}" "$LLMSIM" predict --db "$dbdir/store.db" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
    out=$(cat "$TMP/out")
    err=$(cat "$TMP/err")
}

# common_checks NAME EXPECT — exit 2, empty stdout, EXPECT on stderr, no
# sanitizer or valgrind report, nothing in the store directory. Prints the
# first problem and returns 1, or returns 0.
common_checks() {
    local name=$1 expect=$2
    if [[ $rc -ne 2 ]]; then
        fail "$name" "exit status $rc, want 2; stderr: ${err:0:300}"
        return 1
    fi
    if [[ -n $out ]]; then
        fail "$name" "stdout is not empty: ${out:0:200}"
        return 1
    fi
    if [[ $err != *"$expect"* ]]; then
        fail "$name" "stderr lacks \"$expect\"; got: ${err:0:400}"
        return 1
    fi
    if [[ $err == *Sanitizer* || $err == *"runtime error"* || $err =~ ==[0-9]+== ]]; then
        fail "$name" "memory error report: ${err:0:400}"
        return 1
    fi
    if [[ -n $(ls -A "$dbdir") ]]; then
        local runs
        runs=$("$LLMSIM" runs --db "$dbdir/store.db" --format json 2>&1)
        fail "$name" "rejected input left files in the store directory: $(ls -A "$dbdir" | tr '\n' ' ')runs: ${runs:0:200}"
        return 1
    fi
    return 0
}

# file_case NAME PATH EXPECT EXPECT_LINE NOPOSITION — PATH goes in the slot
# its base name's prefix names.
file_case() {
    local name=$1 path=$2 expect=$3 want_line=$4 nopos=$5
    local base slot
    base=$(basename "$path")
    local -a args
    case $base in
    policy-*) slot=policy ;;
    model-*) slot=model ;;
    hw-*) slot=hardware ;;
    workload-*) slot=workload ;;
    *) fail "$name" "cannot tell the slot from the name '$base'"; return ;;
    esac
    args=(--model "$MODEL" --hardware "$HW" --policy "$TMP/policy.yaml" --workload "$TMP/workload.yaml")
    case $slot in
    policy) args[5]=$path ;;
    model) args[1]=$path ;;
    hardware) args[3]=$path ;;
    workload) args[7]=$path ;;
    esac
    run "$name" "${args[@]}"
    common_checks "$name" "$expect" || return
    if [[ -n $nopos ]]; then
        if [[ $err != *"$path"* ]]; then
            fail "$name" "stderr does not name the file $path: ${err:0:300}"
            return
        fi
    else
        if ! [[ $err =~ "$path":([0-9]+):([0-9]+):\  ]]; then
            fail "$name" "stderr does not name $path:LINE:COL: ${err:0:300}"
            return
        fi
        local line=${BASH_REMATCH[1]}
        if [[ -n $want_line && $line != "$want_line" ]]; then
            fail "$name" "position names line $line, want line $want_line: ${err:0:300}"
            return
        fi
    fi
    ok "$name"
}

# ---- the files under tests/data/bad
shopt -s nullglob
nfiles=0
for f in "$BAD"/*.yaml; do
    nfiles=$((nfiles + 1))
    name=$(basename "$f" .yaml)
    expect=$(sed -n '1s/^# expect: //p' "$f")
    if [[ -z $expect ]]; then
        fail "$name" "first line is not '# expect: TEXT'"
        continue
    fi
    want_line=$(sed -n 's/^# expect-line: *\([0-9][0-9]*\) *$/\1/p' "$f" | head -n 1)
    nopos=$(grep -c '^# expect-noposition' "$f")
    [[ $nopos -gt 0 ]] || nopos=
    file_case "$name" "$f" "$expect" "$want_line" "$nopos"
done
if [[ $nfiles -lt 30 ]]; then
    fail "bad-files" "only $nfiles files under $BAD, want at least 30"
fi

# ---- inputs made at run time (no binary or empty file is committed)
G="$TMP/gen"
mkdir -p "$G"
# binary garbage: a fixed pseudo-random byte stream (LCG), NULs included
LC_ALL=C awk 'BEGIN { s = 12345; for (i = 0; i < 512; i++) { s = (s * 1103515245 + 12345) % 2147483648;
       printf "%c", int(s / 65536) % 256 } }' </dev/null >"$G/policy-binary.yaml"
head -c 64 /dev/zero >>"$G/policy-binary.yaml"
# noposition: a file with NUL bytes is not text; its name is enough
file_case policy-binary-garbage "$G/policy-binary.yaml" "contains NUL bytes" "" yes
cp "$G/policy-binary.yaml" "$G/model-binary.yaml"
file_case model-binary-garbage "$G/model-binary.yaml" "contains NUL bytes" "" yes
cp "$G/policy-binary.yaml" "$G/hw-binary.yaml"
file_case hw-binary-garbage "$G/hw-binary.yaml" "contains NUL bytes" "" yes

: >"$G/policy-empty.yaml"
file_case policy-empty "$G/policy-empty.yaml" "the file is empty" 1 ""
: >"$G/workload-empty.yaml"
file_case workload-empty "$G/workload-empty.yaml" "the file is empty" 1 ""
: >"$G/hw-empty.yaml"
file_case hw-empty "$G/hw-empty.yaml" "the file is empty" 1 ""

# invalid UTF-8 (no NUL) on line 3: libyaml's reader rejects it
printf 'llmsim: workload/1\nkind: offline\nprompt_len: \xff\xfe512\ngen_len: 32\n' >"$G/workload-bad-utf8.yaml"
file_case workload-invalid-utf8 "$G/workload-bad-utf8.yaml" "invalid YAML" 3 ""

# larger than the 16 MiB limit: refused before parsing; noposition (no line
# to point at)
truncate -s 17M "$G/model-huge.yaml"
file_case model-too-large "$G/model-huge.yaml" "larger than 16 MiB" "" yes

# a directory where a file is expected; noposition
mkdir -p "$G/policy-dir.yaml"
file_case policy-is-directory "$G/policy-dir.yaml" "cannot read" "" yes

# ---- bad command lines: exit 2, a message that says what to fix, no store
P=(--policy "$TMP/policy.yaml")
W=(--workload "$TMP/workload.yaml")
cli_case() {
    local name=$1 expect=$2
    shift 2
    run "$name" "$@"
    common_checks "cli-$name" "$expect" && ok "cli-$name"
}
cli_case unknown-option "unknown option '--frobnicate'" \
    --model $MODEL --hardware $HW "${P[@]}" "${W[@]}" --frobnicate
cli_case percent-five-numbers-last "--percent takes six numbers" \
    --model $MODEL --hardware $HW "${W[@]}" --percent 20 80 0 100 0
cli_case percent-five-numbers-middle "--percent takes six numbers" \
    --model $MODEL --hardware $HW --percent 20 80 0 100 0 --gpu-batch-size 48 "${W[@]}"
cli_case percent-120 "weights GPU% = '120' must be a number from 0 to 100" \
    --model $MODEL --hardware $HW --percent 120 0 0 100 0 100 "${W[@]}"
cli_case percent-sum-over-100 "exceeds 100" \
    --model $MODEL --hardware $HW --percent 60 60 0 100 0 100 "${W[@]}"
cli_case percent-word "must be a number from 0 to 100" \
    --model $MODEL --hardware $HW --percent 20 80 0 100 0 lots "${W[@]}"
cli_case gpu-batch-size-0 "--gpu-batch-size '0' must be a whole number" \
    --model $MODEL --hardware $HW "${P[@]}" --gpu-batch-size 0 "${W[@]}"
cli_case gpu-batch-size-abc "--gpu-batch-size 'abc' must be a whole number" \
    --model $MODEL --hardware $HW "${P[@]}" --gpu-batch-size abc "${W[@]}"
cli_case gpu-batch-size-overflow "--gpu-batch-size '99999999999999999999' must be a whole number" \
    --model $MODEL --hardware $HW "${P[@]}" --gpu-batch-size 99999999999999999999 "${W[@]}"
cli_case num-gpu-batches-negative "--num-gpu-batches '-1' must be a whole number" \
    --model $MODEL --hardware $HW "${P[@]}" --num-gpu-batches -1 "${W[@]}"
cli_case weight-quant-3-bits "--weight-quant '3/64' must be BITS/GROUP" \
    --model $MODEL --hardware $HW "${P[@]}" --weight-quant 3/64 "${W[@]}"
cli_case prompt-len-0 "--prompt-len '0' must be a positive whole number" \
    --model $MODEL --hardware $HW "${P[@]}" --prompt-len 0 --gen-len 32
cli_case format-xml "--format must be table or json, not 'xml'" \
    --model $MODEL --hardware $HW "${P[@]}" "${W[@]}" --format xml
cli_case missing-model "--model and --hardware are required" \
    --hardware $HW "${P[@]}" "${W[@]}"
cli_case missing-workload "give --prompt-len and --gen-len, or --workload FILE" \
    --model $MODEL --hardware $HW "${P[@]}"
cli_case policy-and-percent "give --policy FILE or --percent, not both" \
    --model $MODEL --hardware $HW "${P[@]}" --percent 20 80 0 100 0 100 "${W[@]}"
cli_case option-needs-value "--db needs a value" \
    --model $MODEL --hardware $HW "${P[@]}" "${W[@]}" --db
cli_case stray-argument "unexpected argument 'opt-1.3b'" \
    --hardware $HW opt-1.3b "${P[@]}" "${W[@]}" --model $MODEL
# inputs that load but do not fit together: rejected before the store opens
cli_case gpu-fractions-on-cpu-only "has no GPU: the policy's gpu fractions must all be 0" \
    --model $MODEL --hardware cpu-only --percent 100 0 100 0 100 0 --prompt-len 512 --gen-len 32
cli_case context-too-long "exceed" \
    --model $MODEL --hardware $HW "${P[@]}" --prompt-len 2000 --gen-len 100
cli_case unknown-model "--model 'gpt-5': not a shipped model" \
    --model gpt-5 --hardware $HW "${P[@]}" "${W[@]}"
cli_case unknown-hardware "--hardware 'tpu-v9': not a shipped profile" \
    --model $MODEL --hardware tpu-v9 "${P[@]}" "${W[@]}"
cli_case missing-policy-file "$TMP/no-such-dir/policy.yaml: cannot open" \
    --model $MODEL --hardware $HW --policy "$TMP/no-such-dir/policy.yaml" "${W[@]}"
cli_case missing-model-file "$TMP/nope/model.yaml: cannot open" \
    --model "$TMP/nope/model.yaml" --hardware $HW "${P[@]}" "${W[@]}"
cli_case missing-hf-config "$TMP/nope/config.json: cannot open" \
    --model "$TMP/nope/config.json" --hardware $HW "${P[@]}" "${W[@]}"
HF="$LLMSIM_TEST_DATA/hf"
cli_case hf-bad-model-type "$HF/bad-model-type.json: model_type \"gpt2\" is not supported" \
    --model "$HF/bad-model-type.json" --hardware $HW "${P[@]}" "${W[@]}"
cli_case hf-bad-json "$HF/bad-json.json:4:" \
    --model "$HF/bad-json.json" --hardware $HW "${P[@]}" "${W[@]}"
cli_case hf-bad-float "\"hidden_size\" must be a positive whole number" \
    --model "$HF/bad-float.json" --hardware $HW "${P[@]}" "${W[@]}"
cli_case hf-duplicate-key "bad-duplicate.json:7:3: \"hidden_size\" is given twice" \
    --model "$HF/bad-duplicate.json" --hardware $HW "${P[@]}" "${W[@]}"
cli_case hf-bad-negative "\"num_hidden_layers\" must be a positive whole number" \
    --model "$HF/bad-negative.json" --hardware $HW "${P[@]}" "${W[@]}"
cli_case hf-bad-no-hidden "missing required key \"hidden_size\"" \
    --model "$HF/bad-no-hidden.json" --hardware $HW "${P[@]}" "${W[@]}"
cli_case hf-bad-kv-heads "must be a multiple of kv_heads" \
    --model "$HF/bad-kv-heads.json" --hardware $HW "${P[@]}" "${W[@]}"
cli_case yaml-model-bad-kv-heads "must be a multiple of kv_heads" \
    --model "$LLMSIM_TEST_DATA/models/bad-kv-heads.yaml" --hardware $HW "${P[@]}" "${W[@]}"

printf '%d passed, %d failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]] || exit 1
exit 0
