#!/usr/bin/env bash
# On the GPU machine (device tool): unpack the carried Debian packages
# (scripts/device-debs.sh) into a prefix, build llmsim with CUDA against
# them, run the GPU tests, then the GPU benchmark (bench/gpu_engine.sh) with
# the arguments given. Results go to $OUT (or ./device-out).
#   scripts/device-run.sh [tests|bench|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
out=${OUT:-$PWD/device-out}
mkdir -p "$out"
P=$PWD/.device/root
if [ ! -d "$P/usr" ]; then
  mkdir -p "$P"
  for d in .device/debs/*.deb; do dpkg -x "$d" "$P"; done
fi
arch=x86_64-linux-gnu
export PATH=$P/usr/bin:$PATH
export PKG_CONFIG_SYSROOT_DIR=$P
export PKG_CONFIG_LIBDIR=$P/usr/lib/$arch/pkgconfig:$P/usr/share/pkgconfig
export LD_LIBRARY_PATH=$P/usr/lib/$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# the unpacked .so links point at the real files by absolute path: relink them in the prefix
for l in $(find "$P/usr/lib" -type l); do
  t=$(readlink "$l"); case $t in /*) ln -sf "$P$t" "$l";; esac
done
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLMSIM_CUDA=ON -DLLMSIM_WERROR=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$P/usr" \
  -DGLPK_INCLUDE_DIR="$P/usr/include" -DGLPK_LIBRARY="$P/usr/lib/$arch/libglpk.so" > "$out/configure.log" 2>&1 \
  || { tail -40 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" > "$out/build.log" 2>&1 || { tail -60 "$out/build.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1 || true
if [ "$what" != bench ]; then
  ctest --test-dir build-gpu -L gpu --output-on-failure > "$out/gpu-tests.log" 2>&1 || true
  ctest --test-dir build-gpu -LE gpu -j 8 > "$out/tests.log" 2>&1 || true
  grep -E "tests passed|FAIL|Failed" "$out/gpu-tests.log" "$out/tests.log" | head -40
fi
if [ "$what" != tests ]; then
  bash bench/gpu_engine.sh build-gpu "$out"
fi
