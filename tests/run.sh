#!/usr/bin/env bash
# Runs every test: builds the project twice, plain (warnings as errors) and
# with AddressSanitizer + UndefinedBehaviorSanitizer, and runs the whole ctest
# suite on each. Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bash "$repo/tests/setup.sh" "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLEET_SANITIZE=OFF
echo "== ctest (plain build)"
ctest --test-dir "$repo/build" --output-on-failure "$@"

bash "$repo/tests/setup.sh" "$repo/build-asan" -DCMAKE_BUILD_TYPE=Debug -DFLEET_SANITIZE=ON
echo "== ctest (AddressSanitizer + UndefinedBehaviorSanitizer build)"
ctest --test-dir "$repo/build-asan" --output-on-failure "$@"
