#!/usr/bin/env bash
# Download (here, where apt works) the Debian packages the build needs, into
# .device/debs, for the GPU machine of the workplace's device tool, which has
# CUDA, CMake and a compiler but no package registry. Carry .device to it and
# run scripts/device-run.sh there (see bench/RESULTS.md, "The GPU engine").
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/debs
cd .device/debs
apt-get download \
  libyaml-0-2 libyaml-dev libglpk40 libglpk-dev libamd2 libcolamd2 libsuitesparseconfig5 libltdl7 \
  libsqlite3-0 libsqlite3-dev libcjson1 libcjson-dev pkgconf pkgconf-bin libpkgconf3
ls -1 | wc -l | xargs echo "packages in .device/debs:"
