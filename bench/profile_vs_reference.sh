#!/usr/bin/env bash
# profile_vs_reference — check `llmsim profile` against independent tools on
# the same machine and directory: its disk figures against fio (same block
# size; queue depth QD as QD jobs, each on its own contiguous part of a file
# as large as the profiler's, 1 GiB or 256 MiB with --quick, like the
# profiler's QD threads; O_DIRECT; psync), its memory bandwidth against
# bench_stream (a STREAM-style Copy, median of 10). The machine is
# shared and noisy (and its virtual disk slows down under sustained I/O), so
# the two sides are interleaved over ROUNDS rounds, the order alternating
# (odd rounds: the profiler first; even rounds: fio and bench_stream first,
# at the block sizes and queue depths of the previous round), and the
# medians over rounds are compared (bench/disk_vs_fio.sh pairs each disk
# figure with fio's in time instead). Each fio figure is the median of FIO_REPS
# (3) runs, as each profiler figure is the median of at least 3 passes.
# Needs fio (apt-get install fio), bc and python3.
#   bench/profile_vs_reference.sh BUILD_DIR DISK_DIR [ROUNDS (4)] [--quick]
# Prints one row per figure with llmsim / reference; exits 1 when one differs
# by more than 15%.
set -euo pipefail
usage="usage: profile_vs_reference.sh BUILD_DIR DISK_DIR [ROUNDS] [--quick]"
build=${1:?$usage}
dir=${2:?$usage}
rounds=${3:-4}
quick=${4:-}
fio_reps=${FIO_REPS:-3}
file_mib=1024 # the profiler's test file: 1 GiB, 256 MiB with --quick
[ "$quick" = --quick ] && file_mib=256
command -v fio >/dev/null || { echo "fio is missing: apt-get install fio" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$dir/llmsim-fio.dat"' EXIT

fio_bw() { # rw bs_kib qd -> MB/s, the median of FIO_REPS runs (the profiler's
    # figure is the median of at least 3 passes too)
    # writes without fio's buffer scrambling, as bench/disk_vs_fio.sh explains
    local rw=$1 bs=$2 qd=$3 per=$((file_mib / $3)) i scramble=()
    [ "$rw" = write ] && scramble=(--scramble_buffers=0)
    for i in $(seq 1 "$fio_reps"); do
        fio --name=ref --filename="$dir/llmsim-fio.dat" --rw="$rw" --direct=1 --ioengine=psync "${scramble[@]}" \
            --bs="${bs}k" --size="${per}M" --numjobs="$qd" --offset_increment="${per}M" \
            --group_reporting --output-format=json 2>/dev/null |
            python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(j[sys.argv[1]]["bw_bytes"]/1e6)' "$rw"
    done | sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

reference() { # round: fio and bench_stream at the figures of summary$1
    local r=$1 t
    echo "== round $r of $rounds: fio and bench_stream"
    t=$(awk '/^memory copy/ {gsub(",","",$0); if ($5 > best) {best=$5; t=$3}} END {print t}' "$tmp/summary$r")
    "$build/bench/bench_stream" 512 "$t" |
        awk -v t="$t" '$1 == "threads" && $2 == t {print "memory_copy_" t "_threads", $7 * 1000}' >>"$tmp/ref"
    while read -r rw kib qd; do
        echo "disk_${rw}_${kib}KiB_QD$qd $(fio_bw "$rw" "$kib" "$qd")" >>"$tmp/ref"
    done < <(awk '/^disk (read|write) +[0-9]+ KiB QD/ {q=$5; sub("QD","",q); print $2, $3, q}' "$tmp/summary$r")
}
profiler() { # round
    local r=$1 start
    echo "== round $r of $rounds: llmsim profile $quick --disk-dir $dir"
    start=$(date +%s.%N)
    "$build/llmsim" profile $quick --disk-dir "$dir" --db "$tmp/db" -o "$tmp/p$r.yaml" >"$tmp/summary$r"
    printf 'llmsim profile took %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
    awk '/^memory copy/ {gsub(",","",$0); if ($5 > best) {best=$5; t=$3}} END {print "memory_copy_" t "_threads", best*1000}' \
        "$tmp/summary$r" >>"$tmp/llmsim"
    awk '/^disk (read|write) +[0-9]+ KiB QD/ {q=$5; sub("QD","",q); print "disk_" $2 "_" $3 "KiB_QD" q, $6}' "$tmp/summary$r" >>"$tmp/llmsim"
}
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) = 1 ]; then
        profiler "$r"
        reference "$r"
    else # fio first, at the previous round's figures
        cp "$tmp/summary$((r - 1))" "$tmp/summary$r"
        reference "$r"
        profiler "$r"
    fi
done
cat "$tmp/summary1"

python3 - "$tmp/llmsim" "$tmp/ref" "$rounds" <<'PY'
import statistics, sys
def load(p):
    d = {}
    for line in open(p):
        k, v = line.split()
        d.setdefault(k, []).append(float(v))
    return d
a, b, rounds = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
print(f"== comparison: median over {rounds} rounds, llmsim / reference (MB/s)")
print(f"{'figure':30} {'llmsim':>10} {'reference':>10} {'ratio':>7}")
off = 0
for k in a:
    if k not in b:
        print(f"{k:30} (no reference: the best thread count differed between rounds)")
        continue
    x, y = statistics.median(a[k]), statistics.median(b[k])
    r = x / y
    bad = abs(r - 1) > 0.15
    off += bad
    print(f"{k:30} {x:10.1f} {y:10.1f} {r:7.3f}{'  OFF BY >15%' if bad else ''}")
print(f"{len(a) - off} of {len(a)} within 15%")
sys.exit(1 if off else 0)
PY
