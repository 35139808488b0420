#!/usr/bin/env bash
# The test command of the README: build warning-free (-Werror) and run every
# ctest test, then build with AddressSanitizer + UndefinedBehaviorSanitizer
# and run the suite again, then run each parser's libFuzzer target for
# LLMSIM_FUZZ_SECONDS (10) on its corpus where clang is installed. GPU tests
# skip (exit 77) where no GPU is present.
#   scripts/test.sh            all three passes
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
  # every parser's libFuzzer target, briefly, on its corpus (Clang only)
  if command -v clang >/dev/null 2>&1; then
    echo "== fuzz each parser for a few seconds (libFuzzer, ASan + UBSan)"
    CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLMSIM_FUZZ=ON \
      -DLLMSIM_CUDA=OFF >/dev/null
    cmake --build build-fuzz -j "$jobs" --target fuzz_model fuzz_hwprofile fuzz_policy \
      fuzz_workload fuzz_trace fuzz_config fuzz_tokens fuzz_safetensors fuzz_pack
    ctest --test-dir build-fuzz -L fuzz --output-on-failure -j "$jobs"
  else
    echo "== no clang: the libFuzzer runs are skipped (the corpus replays ran above)"
  fi
fi
