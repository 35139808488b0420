#!/usr/bin/env bash
# Install what llmsim needs to build and test, from Debian/Ubuntu packages.
# The CUDA Toolkit is optional and not installed here: when nvcc is found,
# the CUDA backend is built too. gnuplot-nox draws the plots of `llmsim
# report`. Chromium and clang are optional, test tools only: tests/integration/
# report_render.sh loads the report page in Chromium and skips where it is
# absent, scripts/test.sh fuzzes the parsers with clang's libFuzzer where it is,
# so a failure to install either (Ubuntu ships Chromium as a snap) is not an error.
set -euo pipefail
pkgs=(cmake make gcc pkg-config
      libyaml-dev libglpk-dev libsqlite3-dev libcjson-dev zlib1g-dev
      gnuplot-nox)
optional=(chromium clang)
missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t need < <(missing "${pkgs[@]}")
mapfile -t want < <(missing "${optional[@]}")
if [ ${#need[@]} -eq 0 ] && [ ${#want[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  echo "install-deps: installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ ${#want[@]} -gt 0 ]; then
  echo "install-deps: installing ${want[*]} (optional)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${want[@]}" ||
    echo "install-deps: ${want[*]} not installed; the tests that need it skip"
fi
