#!/usr/bin/env bash
# profile_vs_reference — check `llmsim profile` against independent tools on
# the same machine and directory: its disk figures against fio (same block
# size, same queue depth as that many threads each reading or writing its own
# contiguous quarter of a 1 GiB file, O_DIRECT, psync), and its memory
# bandwidth against bench_stream (a STREAM-style Copy). Medians of 3 fio runs
# against the profiler's medians. Needs fio (apt-get install fio) and python3.
#   bench/profile_vs_reference.sh BUILD_DIR DISK_DIR [--quick]
# Prints one row per figure with llmsim / reference; exits 1 when one differs
# by more than 15%.
set -euo pipefail
build=${1:?usage: profile_vs_reference.sh BUILD_DIR DISK_DIR [--quick]}
dir=${2:?usage: profile_vs_reference.sh BUILD_DIR DISK_DIR [--quick]}
quick=${3:-}
command -v fio >/dev/null || { echo "fio is missing: apt-get install fio" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$dir/llmsim-fio.dat"' EXIT

echo "== llmsim profile $quick --disk-dir $dir"
start=$(date +%s.%N)
"$build/llmsim" profile $quick --disk-dir "$dir" --db "$tmp/db" -o "$tmp/p.yaml" | tee "$tmp/summary"
end=$(date +%s.%N)
printf 'llmsim profile took %.1f s\n' "$(echo "$end - $start" | bc)"

echo "== bench_stream"
"$build/bench/bench_stream" 512 | tee "$tmp/stream"

fio_bw() { # rw bs_kib qd -> median MB/s of 3 runs
    local rw=$1 bs=$2 qd=$3 per=$((1024 / $3)) r out=()
    for r in 1 2 3; do
        out+=("$(fio --name=ref --filename="$dir/llmsim-fio.dat" --rw="$rw" --direct=1 --ioengine=psync \
            --bs="${bs}k" --size="${per}M" --numjobs="$qd" --offset_increment="${per}M" \
            --group_reporting --output-format=json 2>/dev/null |
            python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; k=sys.argv[1]; print(j[k]["bw_bytes"]/1e6)' \
                "$([ "$rw" = read ] && echo read || echo write)")")
    done
    printf '%s\n' "${out[@]}" | sort -g | sed -n 2p
}

echo "== comparison (llmsim median / reference median)"
fail=0
printf '%-28s %12s %12s %8s\n' figure llmsim reference ratio
row() {
    local what=$1 a=$2 b=$3
    local ratio; ratio=$(echo "scale=3; $a / $b" | bc)
    local off; off=$(echo "$ratio < 0.85 || $ratio > 1.15" | bc)
    printf '%-28s %12.1f %12.1f %8.3f%s\n' "$what" "$a" "$b" "$ratio" "$([ "$off" = 1 ] && echo '  OFF BY >15%')"
    [ "$off" = 1 ] && fail=1 || true
}
# memory: the profiler's best thread count against the same count in bench_stream (medians)
read -r t mem < <(awk '/^memory copy/ {gsub(",","",$0); if ($5 > best) {best=$5; t=$3}} END {print t, best*1000}' "$tmp/summary")
ref=$(awk -v t="$t" '$1 == "threads" && $2 == t {print $7 * 1000}' "$tmp/stream")
row "memory copy, $t thread(s) MB/s" "$mem" "$ref"
# disk: every block size and queue depth the profiler measured
while read -r rw kib qd mbs; do
    row "disk $rw ${kib} KiB QD$qd MB/s" "$mbs" "$(fio_bw "$rw" "$kib" "$qd")"
done < <(awk '/^disk (read|write)/ {q=$5; sub("QD","",q); print $2, $3, q, $6}' "$tmp/summary")
exit $fail
