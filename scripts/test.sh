#!/usr/bin/env bash
# The test command of the README: build warning-free (-Werror) and run every
# ctest test, then build with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the suite again. GPU tests skip (exit 77) where no GPU is present.
#   scripts/test.sh            both passes
#   scripts/test.sh --quick    the plain pass only
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
run() {
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMSIM_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs"
}
echo "== build and test (-Werror)"
run build
if [ "${1:-}" != "--quick" ]; then
  echo "== build and test under AddressSanitizer + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run build-asan -DLLMSIM_SANITIZE=ON
fi
