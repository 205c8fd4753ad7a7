#!/usr/bin/env bash
# Installs the Debian packages the project needs (only those missing) and
# builds it. Used by the demo and by the test command; safe to run again.
#   usage: tests/setup.sh [BUILD_DIR] [extra cmake options...]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

packages=(build-essential cmake pkg-config
  libpaho-mqtt-dev mosquitto libcbor-dev libsqlite3-dev sqlite3
  libinih-dev libcjson-dev libcurl4-openssl-dev libmicrohttpd-dev libssl-dev
  python3 python3-paho-mqtt python3-cbor2 python3-pytest openssl
  python3-yaml python3-jsonschema  # the API's contract test (docs/openapi.yaml)
  postgresql libpq-dev  # the hub's second store, and its tests' private clusters
  clang libclang-rt-14-dev # the fuzz targets: clang's libFuzzer (tests/fuzz/)
  chromium chromium-driver python3-selenium) # the console's browser test (ctest -L browser)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

build=${1:-$repo/build}
shift || true
cmake -S "$repo" -B "$build" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
