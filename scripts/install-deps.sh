#!/usr/bin/env bash
# Install what llmsim needs to build and test, from Debian/Ubuntu packages.
# The CUDA Toolkit is optional and not installed here: when nvcc is found,
# the CUDA backend is built too.
set -euo pipefail
pkgs=(cmake make gcc pkg-config
      libyaml-dev libglpk-dev libsqlite3-dev libopenblas-dev libcjson-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
