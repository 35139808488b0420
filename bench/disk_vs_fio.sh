#!/usr/bin/env bash
# disk_vs_fio — each disk figure of `llmsim profile`, measured by the
# profiler's own code (bench_disk: profile_disk_figure), right beside fio's
# run of the same figure: same directory, block size, queue depth as that
# many jobs each on its own contiguous part of a 1 GiB file, O_DIRECT,
# psync (writes without fio's buffer scrambling: see fio_run). The pairs are what make the comparison hold on a virtual disk whose
# rate moves by 2x between minutes: over a whole profile (8 minutes of
# rounds, profile_vs_reference.sh) the two tools see different minutes.
# Every figure is measured PAIRS times, the order alternating (llmsim first
# in odd pairs); each side is the median of 3 passes (fio: 3 runs); the
# check takes the median of the pairs' ratios (a paired comparison: each
# ratio is taken within one minute of disk weather).
#   bench/disk_vs_fio.sh BUILD_DIR DISK_DIR [PAIRS (3)]
# Prints one row per figure with llmsim / fio; exits 1 when one differs by
# more than 15%. Needs fio (apt-get install fio) and python3.
set -euo pipefail
usage="usage: disk_vs_fio.sh BUILD_DIR DISK_DIR [PAIRS]"
build=${1:?$usage}
dir=${2:?$usage}
pairs=${3:-3}
command -v fio >/dev/null || { echo "fio is missing: apt-get install fio" >&2; exit 2; }
[ -d "$dir" ] && [ -w "$dir" ] || { echo "$dir: not a writable directory" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$dir/llmsim-fio.dat"' EXIT

# fio's writes: --scramble_buffers=0. By default fio rewrites part of every
# buffer before each write, in the job's thread, between transfers: 3.5-3.9 ms
# per 64 MiB on the development VM (fio's lat minus clat, gone with the
# option), 10% of a 64 MiB queue-depth-1 write there. The profiler (and the
# engine) does not pay that; it stamps 8 bytes in every 4 KiB sector, which
# defeats a deduplicating disk as the scrambling does.
fio_run() { # rw bs_kib qd -> MB/s of one run
    local per=$((1024 / $3)) scramble=()
    [ "$1" = write ] && scramble=(--scramble_buffers=0)
    fio --name=ref --filename="$dir/llmsim-fio.dat" --rw="$1" --direct=1 --ioengine=psync "${scramble[@]}" \
        --bs="$2k" --size="${per}M" --numjobs="$3" --offset_increment="${per}M" \
        --group_reporting --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(j[sys.argv[1]]["bw_bytes"]/1e6)' "$1"
}
fio_bw() { # rw bs_kib qd -> MB/s, the median of 3 runs
    for _ in 1 2 3; do fio_run "$@"; done | sort -g | sed -n 2p
}
llmsim_bw() { # rw bs_kib qd -> MB/s
    "$build/bench/bench_disk" "$dir" "$2" "$3" "$1" 1024 3 | awk '{print $1}'
}

echo "== fio lays out its file (untimed)"
fio_run write 65536 1 >/dev/null
start=$(date +%s)
for rw in write read; do
    for kib in 256 1024 4096 16384 65536; do
        for qd in 1 2 4; do
            for p in $(seq 1 "$pairs"); do
                if [ $((p % 2)) = 1 ]; then
                    a=$(llmsim_bw $rw $kib $qd)
                    b=$(fio_bw $rw $kib $qd)
                else
                    b=$(fio_bw $rw $kib $qd)
                    a=$(llmsim_bw $rw $kib $qd)
                fi
                echo "disk_${rw}_${kib}KiB_QD$qd $a $b" | tee -a "$tmp/pairs"
            done
        done
    done
done
echo "== $(($(date +%s) - start)) s"

python3 - "$tmp/pairs" "$pairs" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    k, a, b = line.split()
    rows.setdefault(k, []).append((float(a), float(b)))
print(f"== comparison over {sys.argv[2]} pairs (MB/s): the medians of each side, their ratio, and the "
      "median of the pairs' ratios, which the check uses; in brackets the pairs' ratios")
print(f"{'figure':26} {'llmsim':>8} {'fio':>8} {'ratio':>7} {'paired':>7}")
off = 0
for k, v in rows.items():
    x = statistics.median(a for a, _ in v)
    y = statistics.median(b for _, b in v)
    r = statistics.median(a / b for a, b in v)
    bad = abs(r - 1) > 0.15
    off += bad
    each = " ".join(f"{a / b:.2f}" for a, b in v)
    print(f"{k:26} {x:8.1f} {y:8.1f} {x / y:7.3f} {r:7.3f}  [{each}]{'  OFF BY >15%' if bad else ''}")
print(f"{len(rows) - off} of {len(rows)} within 15% (median of the pairs' ratios)")
sys.exit(1 if off else 0)
PY
