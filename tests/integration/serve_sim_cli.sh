#!/usr/bin/env bash
# llmsim serve-sim as a user runs it: --help; a generated run's JSON keys and
# the relations between them (percentiles ordered, swap bytes balanced, output
# tokens and throughput matching the per-request CSV); determinism by seed; a
# trace file run whose requests all come back once with ordered timings;
# preemption by swap, by recompute and by swap falling back when the swap
# space is full; the Chrome trace; the run in the store; bad traces and bad
# command lines that exit 2, name the file and line, and write nothing; and
# the policy's serving section, overridden by flags.
#
# Fixtures: tests/data/serve/trace-small.csv (60 requests, with comments, a
# blank line, ties in arrival and spaces around fields) and
# tests/data/serve/bad-*.csv (each error on a known line, listed below).
#
# Env: LLMSIM (the binary), LLMSIM_TEST_DATA (tests/data), LLMSIM_DATA_DIR
# (repo root). Prints `ok   CHECK` / `FAIL CHECK: why` and `N passed, M
# failed`; exits 1 if any failed.
set -u
L=${LLMSIM:?set LLMSIM to the llmsim binary}
T=${LLMSIM_TEST_DATA:?set LLMSIM_TEST_DATA to tests/data}
export LLMSIM_DATA_DIR="${LLMSIM_DATA_DIR:-$(cd "$T/../.." && pwd)}"
unset LLMSIM_DB
S=$T/serve
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmsim-serve.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
db=$tmp/store.db
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
check() { if eval "$2"; then ok "$1"; else bad "$1" "${3:-}"; fi; }

# pycheck NAME CODE [ARGS...] — runs CODE in python3 with A = ARGS and the
# helpers J(path) (a JSON file), C(path) (a CSV file as a list of dicts) and
# close(a, b, rel) at hand; CODE fails the check with `assert COND, "why"`.
PYPRE='
import csv, json, math, sys
A = sys.argv[1:]
def J(p):
    with open(p) as f:
        return json.load(f)
def C(p):
    with open(p, newline="") as f:
        return list(csv.DictReader(f))
def close(a, b, rel=1e-9, abs_=0.0):
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)
'
pycheck() {
    local name=$1 code=$2 why
    shift 2
    if why=$(python3 -c "$PYPRE$code" "$@" 2>&1); then
        ok "$name"
    else
        bad "$name" "$(tail -n 1 <<<"$why")"
    fi
}

# ---- 1. help
help=$("$L" serve-sim --help); rc=$?
check "serve-sim --help exits 0" '[ $rc -eq 0 ]' "exit status $rc"
for opt in --trace-in --preemption --scheduler; do
    check "serve-sim --help mentions $opt" 'grep -q -- "$opt" <<<"$help"' "not in: ${help:0:200}"
done
top=$("$L" --help); rc=$?
check "llmsim --help exits 0 and lists serve-sim" '[ $rc -eq 0 ] && grep -q "serve-sim" <<<"$top"' \
      "exit status $rc; output: ${top:0:300}"

# ---- 2. a generated run
G=(serve-sim --model opt-125m --hardware a100-80gb-sxm --num-requests 300 --rate 40
   --prompt-len uniform:32,512 --output-len uniform:8,128 --seed 11
   --format json --db "$db" --requests-out "$tmp/gen.csv")
"$L" "${G[@]}" >"$tmp/gen.json" 2>"$tmp/err"; rc=$?
check "a generated run exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
cp "$tmp/gen.csv" "$tmp/gen1.csv" 2>/dev/null
pycheck "the JSON is one object with every key" '
d = J(A[0])
assert isinstance(d, dict), "stdout is not one JSON object"
need = {"throughput_tok_s": None, "ttft_s": ("mean", "p50", "p90", "p99"),
        "tpot_s": ("mean", "p50", "p90", "p99"), "e2e_s": ("mean", "p50", "p90", "p99"),
        "weighted_turnaround_s": None, "preemptions": ("swap", "recompute"),
        "swapped_out_bytes": None, "swapped_in_bytes": None, "recomputed_tokens": None,
        "kv_utilization": ("mean", "peak", "series"), "iterations": None, "events": None,
        "serving": ("preemption", "scheduler", "kv_block_size", "max_batch", "token_budget",
                    "kv_blocks"),
        "policy": None}
missing = [k for k in need if k not in d]
missing += [k + "." + s for k, subs in need.items() if k in d and subs for s in subs
            if not isinstance(d[k], dict) or s not in d[k]]
assert not missing, "missing keys: %s" % missing
assert isinstance(d["kv_utilization"]["series"], list) and d["kv_utilization"]["series"], \
    "kv_utilization.series is not a non-empty list"
' "$tmp/gen.json"
pycheck "p50 <= p90 <= p99 <= max and 0 <= mean <= max for ttft, tpot and e2e" '
d = J(A[0])
for k in ("ttft_s", "tpot_s", "e2e_s"):
    s = d[k]
    assert 0 <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"], "%s out of order: %s" % (k, s)
    assert 0 <= s["mean"] <= s["max"], "%s mean outside [0, max]: %s" % (k, s)
assert d["ttft_s"]["max"] <= d["e2e_s"]["max"], "ttft max above e2e max"
' "$tmp/gen.json"
pycheck "swapped_out_bytes == swapped_in_bytes" '
d = J(A[0])
assert d["swapped_out_bytes"] == d["swapped_in_bytes"], \
    "out %r, in %r" % (d["swapped_out_bytes"], d["swapped_in_bytes"])
' "$tmp/gen.json"
pycheck "requests, output_tokens and prompt_tokens match the --requests-out CSV" '
d, rows = J(A[0]), C(A[1])
assert len(rows) == 300 and d["requests"] == 300, \
    "%d CSV rows, JSON requests %r, want 300" % (len(rows), d["requests"])
out = sum(int(r["output_len"]) for r in rows)
assert d["output_tokens"] == out, "output_tokens %r, CSV output_len sums to %d" % (d["output_tokens"], out)
pr = sum(int(r["prompt_len"]) for r in rows)
assert d["prompt_tokens"] == pr, "prompt_tokens %r, CSV prompt_len sums to %d" % (d["prompt_tokens"], pr)
' "$tmp/gen.json" "$tmp/gen.csv"
pycheck "throughput_tok_s == output_tokens / makespan_s (1e-9 relative)" '
d = J(A[0])
want = d["output_tokens"] / d["makespan_s"]
assert close(d["throughput_tok_s"], want, 1e-9), "throughput %r, output_tokens / makespan_s = %r" % (d["throughput_tok_s"], want)
' "$tmp/gen.json"
pycheck "makespan is first arrival to last finish; e2e max matches the CSV" '
d, rows = J(A[0]), C(A[1])
first = min(float(r["arrival_s"]) for r in rows)
last = max(float(r["finish_s"]) for r in rows)
assert close(d["makespan_s"], last - first, 1e-7, 1e-8), "makespan %r, CSV says %r" % (d["makespan_s"], last - first)
e2e = max(float(r["e2e_s"]) for r in rows)
assert close(d["e2e_s"]["max"], e2e, 1e-7), "e2e max %r, CSV max %r" % (d["e2e_s"]["max"], e2e)
' "$tmp/gen.json" "$tmp/gen.csv"
pycheck "kv_utilization: 0 < mean <= peak <= 1, and iterations, events > 0" '
d = J(A[0])
k = d["kv_utilization"]
assert 0 < k["mean"] <= k["peak"] <= 1, "kv_utilization mean %r peak %r" % (k["mean"], k["peak"])
assert d["iterations"] > 0 and d["events"] > 0, "iterations %r events %r" % (d["iterations"], d["events"])
assert d["serving"]["kv_blocks"] > 0, "serving.kv_blocks %r" % d["serving"]["kv_blocks"]
' "$tmp/gen.json"

table=$("$L" "${G[@]:0:${#G[@]}-6}" --db "$db" 2>"$tmp/err"); rc=$?
check "the table output exits 0 and says where the run is recorded" \
      '[ $rc -eq 0 ] && grep -q "^throughput" <<<"$table" && grep -q "recorded as run" <<<"$table"' \
      "exit status $rc: ${table:0:300} $(head -c 300 "$tmp/err")"

# ---- 3. determinism
"$L" "${G[@]}" >"$tmp/gen2.json" 2>"$tmp/err"; rc=$?
check "the same command again exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "the same command gives the same JSON (apart from sim_wall_s, events_per_s)" '
a, b = J(A[0]), J(A[1])
for d in (a, b):
    d.pop("sim_wall_s", None); d.pop("events_per_s", None)
diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
assert not diff, "these keys differ: %s" % diff
' "$tmp/gen.json" "$tmp/gen2.json"
check "the same command writes the same --requests-out CSV" 'cmp -s "$tmp/gen1.csv" "$tmp/gen.csv"'
G3=("${G[@]}")
G3[14]=12 # --seed
"$L" "${G3[@]}" >"$tmp/gen3.json" 2>"$tmp/err"; rc=$?
check "a run with --seed 12 exits 0" '[ $rc -eq 0 ] && [ "${G[13]}" = --seed ]' "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "a different --seed gives different results" '
a, b = J(A[0]), J(A[1])
diff = [k for k in ("output_tokens", "prompt_tokens", "makespan_s", "e2e_s", "ttft_s") if a[k] != b[k]]
assert diff, "seeds 11 and 12 agree on output_tokens, prompt_tokens, makespan_s, e2e_s and ttft_s"
' "$tmp/gen.json" "$tmp/gen3.json"

# ---- 4. a trace file
"$L" serve-sim --model opt-125m --hardware t4-flexgen --trace-in "$S/trace-small.csv" --format json \
    --db "$db" --requests-out "$tmp/trace.csv" --trace "$tmp/small-trace.json" >"$tmp/trace.json" \
    2>"$tmp/err"; rc=$?
check "a --trace-in run exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "every trace request appears once in --requests-out, as written" '
d, rows = J(A[0]), C(A[1])
want = []
for line in open(A[2]):
    s = line.strip()
    if not s or s.startswith("#") or s.startswith("arrival_s"):
        continue
    a, p, o, w = (x.strip() for x in s.split(","))
    want.append((float(a), int(p), int(o), float(w)))
assert len(want) == 60, "the fixture has %d requests, not 60" % len(want)
ids = [int(r["id"]) for r in rows]
assert sorted(ids) == list(range(1, 61)), "ids are not 1..60 once each: %s" % ids
assert d["requests"] == 60, "JSON requests %r, want 60" % d["requests"]
for r, (a, p, o, w) in zip(sorted(rows, key=lambda r: int(r["id"])), want):
    got = (float(r["arrival_s"]), int(r["prompt_len"]), int(r["output_len"]), float(r["weight"]))
    assert close(got[0], a, 1e-9, 1e-12) and got[1:] == (p, o, w), \
        "request %s is %s, the trace says %s" % (r["id"], got, (a, p, o, w))
assert d["output_tokens"] == sum(x[2] for x in want), "output_tokens %r" % d["output_tokens"]
' "$tmp/trace.json" "$tmp/trace.csv" "$S/trace-small.csv"
pycheck "finish_s >= first_token_s >= arrival_s; e2e_s = finish_s - arrival_s; ttft_s = first_token_s - arrival_s" '
for r in C(A[0]):
    a, f, t = float(r["arrival_s"]), float(r["finish_s"]), float(r["first_token_s"])
    assert f >= t >= a, "request %s: arrival %r, first token %r, finish %r" % (r["id"], a, t, f)
    assert close(float(r["e2e_s"]), f - a, 1e-7, 1e-8), "request %s: e2e_s %s, finish - arrival %r" % (r["id"], r["e2e_s"], f - a)
    assert close(float(r["ttft_s"]), t - a, 1e-7, 1e-8), "request %s: ttft_s %s, first_token - arrival %r" % (r["id"], r["ttft_s"], t - a)
    if int(r["output_len"]) == 1:
        assert close(f, t, 1e-9, 1e-12), "request %s has one output token but finishes after its first" % r["id"]
' "$tmp/trace.csv"
pycheck "weighted_turnaround_s is the weighted mean of the CSV e2e_s; source names the trace" '
d, rows = J(A[0]), C(A[1])
w = sum(float(r["weight"]) for r in rows)
want = sum(float(r["weight"]) * float(r["e2e_s"]) for r in rows) / w
assert close(d["weighted_turnaround_s"], want, 1e-6), "weighted_turnaround_s %r, CSV gives %r" % (d["weighted_turnaround_s"], want)
mean = sum(float(r["e2e_s"]) for r in rows) / len(rows)
assert close(d["e2e_s"]["mean"], mean, 1e-6), "e2e_s.mean %r, CSV gives %r" % (d["e2e_s"]["mean"], mean)
assert d["source"].get("trace") == A[2], "source %r does not name %s" % (d["source"], A[2])
' "$tmp/trace.json" "$tmp/trace.csv" "$S/trace-small.csv"

# ---- 5. memory pressure: llama-2-7b with a 1 GiB KV cache (128 blocks) and
# requests of up to 1536 tokens arriving faster than they finish
P=(serve-sim --model llama-2-7b --hardware a100-80gb-sxm --num-requests 120 --rate 50
   --prompt-len uniform:512,1024 --output-len uniform:256,512 --kv-memory 1GiB --format json
   --db "$db")
"$L" "${P[@]}" --preemption swap --requests-out "$tmp/swap.csv" --trace "$tmp/swap-trace.json" \
    >"$tmp/swap.json" 2>"$tmp/err"; rc=$?
check "a run under memory pressure with --preemption swap exits 0" '[ $rc -eq 0 ]' \
      "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "--preemption swap: preemptions.swap > 0, bytes out == bytes in > 0, nothing recomputed" '
d = J(A[0])
p = d["preemptions"]
assert p["swap"] > 0, "no swap preemptions: %s" % p
assert d["swapped_out_bytes"] == d["swapped_in_bytes"] > 0, \
    "swapped out %r, in %r" % (d["swapped_out_bytes"], d["swapped_in_bytes"])
assert p["recompute"] == 0 and d["recomputed_tokens"] == 0, \
    "recomputed with 4 GiB of swap space: %s, %r tokens" % (p, d["recomputed_tokens"])
assert d["serving"]["preemption"] == "swap", "serving.preemption %r" % d["serving"]["preemption"]
assert d["kv_utilization"]["peak"] > 0.9, "peak KV use %r under pressure" % d["kv_utilization"]["peak"]
' "$tmp/swap.json"
pycheck "the CSV swaps and recomputes columns add up to the preemption counts" '
d, rows = J(A[0]), C(A[1])
s = sum(int(r["swaps"]) for r in rows); c = sum(int(r["recomputes"]) for r in rows)
p = d["preemptions"]
assert (s, c) == (p["swap"], p["recompute"]), "CSV sums swaps %d, recomputes %d; JSON %s" % (s, c, p)
' "$tmp/swap.json" "$tmp/swap.csv"

"$L" "${P[@]}" --preemption recompute >"$tmp/recompute.json" 2>"$tmp/err"; rc=$?
check "--preemption recompute under memory pressure exits 0" '[ $rc -eq 0 ]' \
      "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "--preemption recompute: preemptions.recompute > 0, recomputed_tokens > 0, no swaps" '
d = J(A[0])
p = d["preemptions"]
assert p["recompute"] > 0 and d["recomputed_tokens"] > 0, "%s, recomputed_tokens %r" % (p, d["recomputed_tokens"])
assert p["swap"] == 0 and d["swapped_out_bytes"] == 0, "swapped under recompute: %s, %r bytes" % (p, d["swapped_out_bytes"])
' "$tmp/recompute.json"

"$L" "${P[@]}" --preemption adaptive >"$tmp/adaptive.json" 2>"$tmp/err"; rc=$?
check "--preemption adaptive under memory pressure exits 0" '[ $rc -eq 0 ]' \
      "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "--preemption adaptive: preempts, and its swap bytes balance" '
d = J(A[0])
p = d["preemptions"]
assert p["swap"] + p["recompute"] > 0, "no preemptions: %s" % p
assert d["swapped_out_bytes"] == d["swapped_in_bytes"], "out %r in %r" % (d["swapped_out_bytes"], d["swapped_in_bytes"])
' "$tmp/adaptive.json"

# no swap space: every swap falls back to recompute. "0" is what the
# simulator's own message tells the user to write; "0 GiB" has a unit.
for sp in 0 "0 GiB"; do
    "$L" "${P[@]}" --preemption swap --swap-space "$sp" >"$tmp/noswap.json" 2>"$tmp/err"; rc=$?
    check "--swap-space '$sp' is accepted" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
    [ $rc -eq 0 ] || continue
    pycheck "--swap-space '$sp' under swap: every preemption falls back (swap_full > 0, swap == 0)" '
d = J(A[0])
p = d["preemptions"]
assert p["swap"] == 0 and d["swapped_out_bytes"] == 0, "swapped with no swap space: %s" % p
assert p["swap_full"] > 0, "no fallbacks: %s" % p
assert p["recompute"] == p["swap_full"], "recompute %r != swap_full %r" % (p["recompute"], p["swap_full"])
assert d["recomputed_tokens"] > 0, "recomputed_tokens %r" % d["recomputed_tokens"]
' "$tmp/noswap.json"
done

# ---- 6. the Chrome trace
pycheck "--trace writes JSON with waiting/running X events and \"kv blocks\" C counters" '
t = J(A[0])
ev = t.get("traceEvents")
assert isinstance(ev, list) and ev, "no traceEvents list"
x = {e.get("name") for e in ev if e.get("ph") == "X"}
assert {"waiting", "running"} <= x, "X event names: %s" % sorted(map(str, x))
c = [e for e in ev if e.get("ph") == "C" and e.get("name") == "kv blocks"]
assert c, "no C events named \"kv blocks\""
bad = [e for e in ev if e.get("ph") == "X" and not (e.get("dur", -1) >= 0 and "ts" in e)]
assert not bad, "X events without ts or with a negative dur: %s" % bad[:2]
' "$tmp/small-trace.json"
pycheck "every request of the trace run has a running span on its own track" '
ev = J(A[0])["traceEvents"]
tids = {e["tid"] for e in ev if e.get("ph") == "X" and e.get("name") == "running"}
assert len(tids) == 60, "%d requests have a running span, want 60" % len(tids)
' "$tmp/small-trace.json"
pycheck "the swap run trace has one swapped span per swap preemption" '
ev, d = J(A[0])["traceEvents"], J(A[1])
n = sum(1 for e in ev if e.get("ph") == "X" and e.get("name") == "swapped")
assert n == d["preemptions"]["swap"], "%d swapped spans, %r swap preemptions" % (n, d["preemptions"]["swap"])
' "$tmp/swap-trace.json" "$tmp/swap.json"
"$L" "${G[@]}" --trace /nonexistent-dir/t.json >/dev/null 2>"$tmp/err"; rc=$?
check "an unwritable --trace exits 2 and names it" '[ $rc -eq 2 ] && grep -q nonexistent-dir "$tmp/err"' \
      "exit status $rc: $(head -c 300 "$tmp/err")"

# ---- 7. the store
runs=$("$L" runs --db "$db" 2>&1); rc=$?
check "llmsim runs lists serve runs" '[ $rc -eq 0 ] && grep -Eq "^ *[0-9]+ +serve " <<<"$runs"' \
      "exit status $rc: ${runs:0:300}"
"$L" runs --db "$db" --format json >"$tmp/runs.json" 2>"$tmp/err"; rc=$?
check "llmsim runs --format json exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "every run recorded here is of kind serve (runs --format json)" '
r = J(A[0])["runs"]
assert r and all(x["kind"] == "serve" for x in r), "kinds: %s" % [x["kind"] for x in r]
' "$tmp/runs.json"
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["id"])' <"$tmp/runs.json" 2>/dev/null)
shown=$("$L" show "${id:-1}" --db "$db" 2>&1); rc=$?
check "llmsim show works on a serve run" '[ $rc -eq 0 ] && grep -q serve <<<"$shown"' \
      "llmsim show ${id:-?} --db DB: exit status $rc: ${shown:0:300}"
"$L" show "${id:-1}" --db "$db" --format json >"$tmp/show.json" 2>"$tmp/err"; rc=$?
pycheck "llmsim show --format json has the run, its metrics and its result" '
d = J(A[0])
assert d["run"]["kind"] == "serve", "kind %r" % d["run"]["kind"]
assert d["metrics"]["throughput_tok_s"] > 0, "metrics: %s" % d["metrics"]
assert d["result"]["throughput_tok_s"] == d["metrics"]["throughput_tok_s"], "result and metrics disagree"
assert "ttft_s" in d["result"] and "serving" in d["result"], "result keys: %s" % sorted(d["result"])
' "$tmp/show.json"
kind=$("$L" runs --db "$db" --kind serve 2>&1); rc=$?
check "llmsim runs --kind serve filters serve runs" '[ $rc -eq 0 ] && grep -Eq "^ *[0-9]+ +serve " <<<"$kind"' \
      "llmsim runs --db DB --kind serve: exit status $rc: ${kind:0:300}"

# ---- 8. bad input: exit 2, a message on stderr, nothing on stdout, no
# --requests-out or --trace file and no store.
# bad_case NAME WANT ARGS... — WANT: the texts stderr must contain, separated by '|'.
bad_case() {
    local name=$1 want=$2 dir=$tmp/bad-$1 out err w
    shift 2
    mkdir -p "$dir"
    "$L" serve-sim "$@" --db "$dir/store.db" --requests-out "$dir/requests.csv" \
        --trace "$dir/trace.json" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    out=$(cat "$tmp/out")
    err=$(cat "$tmp/err")
    if [[ $rc -ne 2 ]]; then
        bad "bad input $name" "exit status $rc, want 2; stderr: ${err:0:300}"
        return
    fi
    if [[ -n $out ]]; then
        bad "bad input $name" "stdout is not empty: ${out:0:200}"
        return
    fi
    local IFS='|'
    for w in $want; do
        if [[ $err != *"$w"* ]]; then
            bad "bad input $name" "stderr lacks \"$w\"; got: ${err:0:400}"
            return
        fi
    done
    if [[ -n $(ls -A "$dir") ]]; then
        bad "bad input $name" "files were written: $(ls -A "$dir" | tr '\n' ' ')"
        return
    fi
    ok "bad input $name"
}
M=(--model opt-125m --hardware a100-80gb-sxm)
# trace files: FILE:LINE: and what is wrong
bad_case trace-bad-header "$S/bad-header.csv:1:|arrival_s,prompt_len,output_len,weight" \
    "${M[@]}" --trace-in "$S/bad-header.csv"
bad_case trace-negative-prompt "$S/bad-negative-prompt.csv:3:|prompt_len -5" \
    "${M[@]}" --trace-in "$S/bad-negative-prompt.csv"
bad_case trace-not-a-number "$S/bad-not-a-number.csv:4:|'ten' is not a number" \
    "${M[@]}" --trace-in "$S/bad-not-a-number.csv"
bad_case trace-unsorted "$S/bad-unsorted.csv:4:|before the previous request" \
    "${M[@]}" --trace-in "$S/bad-unsorted.csv"
bad_case trace-zero-weight "$S/bad-zero-weight.csv:3:|weight 0" \
    "${M[@]}" --trace-in "$S/bad-zero-weight.csv"
bad_case trace-missing "$tmp/no-such.csv|cannot open" "${M[@]}" --trace-in "$tmp/no-such.csv"
# request 3 (line 4) asks for 2100 tokens of opt-125m's 2048
bad_case trace-longer-than-context "$S/bad-too-long.csv:4:|request 3|context" \
    "${M[@]}" --trace-in "$S/bad-too-long.csv"
# the same request after comment and blank lines: it is on line 7
bad_case trace-longer-than-context-after-comments "$S/bad-too-long-after-comments.csv:7:|request 3|context" \
    "${M[@]}" --trace-in "$S/bad-too-long-after-comments.csv"
# command lines
bad_case preemption-unknown "--preemption 'lru'|swap, recompute or adaptive" \
    "${M[@]}" --num-requests 50 --preemption lru
bad_case scheduler-unknown "--scheduler 'lifo'|fcfs or fair" "${M[@]}" --num-requests 50 --scheduler lifo
bad_case trace-in-with-rate "--trace-in|--rate" "${M[@]}" --trace-in "$S/trace-small.csv" --rate 5
bad_case offline-gen-len "--gen-len is an offline option" "${M[@]}" --num-requests 50 --gen-len 32
bad_case prompt-len-uniform-one-number "--prompt-len 'uniform:5'|uniform:A,B" \
    "${M[@]}" --num-requests 50 --prompt-len uniform:5
bad_case token-budget-below-max-batch "token budget (32)|maximum batch (64)" \
    "${M[@]}" --num-requests 50 --max-batch 64 --token-budget 32
bad_case cv-without-gamma "--cv applies to --arrival gamma" "${M[@]}" --num-requests 50 --cv 3
bad_case kv-memory-too-small "needs|KV blocks|give the KV cache more memory" \
    --model llama-2-7b --hardware a100-80gb-sxm --num-requests 50 --kv-memory 64MiB
bad_case swap-space-no-unit "--swap-space 'abc'|a size such as '4 GiB'" \
    "${M[@]}" --num-requests 50 --swap-space abc
bad_case mem-util-above-one "--mem-util '1.5'|(0, 1]" "${M[@]}" --num-requests 50 --mem-util 1.5
bad_case cv-out-of-range "--cv '1000'|from 0.01 to 100" \
    "${M[@]}" --num-requests 50 --arrival gamma --cv 1000
bad_case block-longer-than-context "block of 4096 tokens|context (2048 tokens)" \
    "${M[@]}" --num-requests 50 --block-size 4096
bad_case kv-memory-not-fitting "does not fit|GiB of weights" \
    "${M[@]}" --num-requests 50 --kv-memory 200GiB

# ---- 9. the policy's serving section, and flags over it
cat >"$tmp/policy.yaml" <<'EOF'
llmsim: policy/1
weights: {gpu: 1}
kv_cache: {gpu: 1}
activations: {gpu: 1}
gpu_batch_size: 1
num_gpu_batches: 1
weight_quant: none
kv_quant: none
cpu_attention: false
overlap: true
serving:
  preemption: recompute
  scheduler: fair
  kv_block_size: 32
EOF
"$L" "${P[@]}" --policy "$tmp/policy.yaml" >"$tmp/pol.json" 2>"$tmp/err"; rc=$?
check "a run with a policy's serving section exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "the policy's serving section is used (recompute, fair, 32-token blocks)" '
d = J(A[0])
s = d["serving"]
got = (s["preemption"], s["scheduler"], s["kv_block_size"])
assert got == ("recompute", "fair", 32), "serving is %s" % (got,)
p = d["preemptions"]
assert p["recompute"] > 0 and p["swap"] == 0, "the simulation did not preempt by recompute: %s" % p
' "$tmp/pol.json"
"$L" "${P[@]}" --policy "$tmp/policy.yaml" --preemption swap --block-size 16 >"$tmp/pol2.json" \
    2>"$tmp/err"; rc=$?
check "a run with a policy and serving flags exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "flags override the policy's serving section (and only what they name)" '
d = J(A[0])
s = d["serving"]
got = (s["preemption"], s["scheduler"], s["kv_block_size"])
assert got == ("swap", "fair", 16), "serving is %s, want (swap, fair, 16)" % (got,)
assert d["preemptions"]["swap"] > 0, "no swaps: %s" % d["preemptions"]
' "$tmp/pol2.json"

# ---- the prefix cache: four system prompts of 384 tokens before each prompt
PC=(serve-sim --model opt-125m --hardware a100-80gb-sxm --num-requests 200 --rate 30
    --prompt-len uniform:16,128 --output-len uniform:8,64 --shared-prefix 4:384 --seed 5
    --format json --db "$db")
"$L" "${PC[@]}" --requests-out "$tmp/pc-off.csv" >"$tmp/pc-off.json" 2>"$tmp/err"; rc=$?
check "--shared-prefix without --prefix-cache exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
"$L" "${PC[@]}" --prefix-cache --requests-out "$tmp/pc.csv" >"$tmp/pc.json" 2>"$tmp/err"; rc=$?
check "--prefix-cache exits 0" '[ $rc -eq 0 ]' "exit status $rc: $(head -c 300 "$tmp/err")"
pycheck "--shared-prefix 4:384 adds 384 tokens to each prompt; no prefix_cache object without --prefix-cache" '
d, rows = J(A[0]), C(A[1])
assert all(384 + 16 <= int(r["prompt_len"]) <= 384 + 128 for r in rows), "prompt lengths outside 400..512"
assert "prefix_cache" not in d and d["serving"]["prefix_cache"] is False, "a prefix_cache without --prefix-cache"
' "$tmp/pc-off.json" "$tmp/pc-off.csv"
pycheck "--prefix-cache: hits from the four prefixes, the CSV cached_tokens adding up, TTFT gained as against the run without it" '
d, off, rows = J(A[0]), J(A[1]), C(A[2])
pc = d["prefix_cache"]
assert d["serving"]["prefix_cache"] is True, "serving.prefix_cache not true"
# at most the first of each group misses its 24 blocks of 16 tokens
assert pc["hit_tokens"] >= (200 - 4) * 384, "hit_tokens %r below (200 - 4) * 384" % pc["hit_tokens"]
assert close(pc["hit_rate"], pc["hit_tokens"] / pc["query_tokens"]), "hit_rate %r" % pc["hit_rate"]
assert sum(int(r["cached_tokens"]) for r in rows) == pc["hit_tokens"], "CSV cached_tokens do not add up"
g = pc["ttft_gain_s"]
assert close(g["mean"], off["ttft_s"]["mean"] - d["ttft_s"]["mean"], 1e-9, 1e-12), \
    "ttft_gain_s.mean %r, off minus on %r" % (g["mean"], off["ttft_s"]["mean"] - d["ttft_s"]["mean"])
assert g["mean"] > 0 and close(pc["without"]["ttft_mean_s"], off["ttft_s"]["mean"]), "no TTFT gained: %s" % g
' "$tmp/pc.json" "$tmp/pc-off.json" "$tmp/pc.csv"
"$L" "${PC[@]}" --shared-prefix 4 >/dev/null 2>"$tmp/err"; rc=$?
check "--shared-prefix 4 (no length) exits 2 and says GROUPS:LEN" \
    '[ $rc -eq 2 ] && grep -q "GROUPS:LEN" "$tmp/err"' "exit status $rc: $(head -c 300 "$tmp/err")"

# ---- ^C and SIGTERM: the simulation stops, the run is recorded as
# interrupted with its rows so far, nothing on stdout
for sig in INT TERM; do
    idb=$tmp/int-$sig.db
    "$L" serve-sim --model opt-1.3b --hardware a100-40gb-pcie --num-requests 2000000 --rate 200 \
        --db "$idb" --requests-out "$tmp/int-$sig.csv" >"$tmp/int.out" 2>"$tmp/int.err" &
    pid=$!
    sleep 1
    kill -$sig $pid
    wait $pid; rc=$?
    want=$([ $sig = INT ] && echo 130 || echo 143)
    st=$(python3 -c 'import sqlite3, sys; d = sqlite3.connect(sys.argv[1]); print(*d.execute("select kind, status, (select count(*) from serve_iterations where run_id = runs.id) > 0 from runs").fetchone())' "$idb" 2>&1)
    check "SIG$sig during serve-sim: exit $want, the run recorded as interrupted with its iterations, nothing on stdout, no --requests-out ($st)" \
        '[ $rc -eq $want ] && [ "$st" = "serve interrupted 1" ] && [ ! -s "$tmp/int.out" ] && [ ! -e "$tmp/int-$sig.csv" ] && grep -q interrupted "$tmp/int.err"' \
        "exit $rc: $(head -c 300 "$tmp/int.err")"
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
