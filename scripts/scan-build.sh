#!/usr/bin/env bash
# clang's static analyzer over the whole tree (issue 23, item 8): a Debug
# build with CUDA off, in a scratch directory, under scan-build (Debian's
# clang-tools). Exits nonzero when the analyzer reports anything; the
# reports stay in the output directory it prints. Too slow for CI: not part
# of scripts/test.sh. A false positive is made visible to the analyzer
# (an assert, a zeroed buffer) or explained where it is told more
# (`#if defined(__clang_analyzer__)`, as in common/diag.h).
#   scripts/scan-build.sh            reports under a new temporary directory
#   scripts/scan-build.sh OUTDIR     reports under OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
sb=$(command -v scan-build || true)
if [ -z "$sb" ]; then
  for v in 19 18 17 16 15 14 13; do
    if command -v "scan-build-$v" >/dev/null 2>&1; then
      sb=scan-build-$v
      break
    fi
  done
fi
if [ -z "$sb" ]; then
  echo "scan-build.sh: no scan-build; install clang-tools (apt-get install clang-tools)" >&2
  exit 2
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/llmsim-scan-build.XXXXXX")
out=${1:-$work/reports}
mkdir -p "$out"
jobs=$(nproc 2>/dev/null || echo 2)
echo "== $sb: build in $work/build, reports under $out"
"$sb" -o "$out" cmake -S . -B "$work/build" -DLLMSIM_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
rc=0
"$sb" -o "$out" --status-bugs cmake --build "$work/build" -j "$jobs" || rc=$?
rm -rf "$work/build"
if [ "$rc" -ne 0 ]; then
  echo "== scan-build.sh: reports remain (or the build failed). View them with:" >&2
  echo "   scan-view $out/<date>/   (or open $out/<date>/index.html in a browser)" >&2
  ls -d "$out"/*/ 2>/dev/null | sed 's/^/   /' >&2
  exit 1
fi
[ -n "${1:-}" ] || rm -rf "$work"
echo "== scan-build.sh: no reports"
