#!/usr/bin/env bash
# Runs every test: builds the project twice, plain (warnings as errors) and
# with AddressSanitizer + UndefinedBehaviorSanitizer, and runs the whole ctest
# suite on the first and all but the repeats on PostgreSQL on the second (the
# fuzz targets carry their own sanitizers and run in the first). Extra
# arguments go to ctest, on both builds (e.g. -L unit).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# A test that fails is run once more before it counts as failed: the suites
# kill processes and brokers for real on a 2-core machine, and a timing margin
# missed once under load should not hide the rest of the run. Both attempts'
# output stays in the log (--output-on-failure), so a flake is seen and fixed.
retry=(--repeat until-pass:2)

bash "$repo/tests/setup.sh" "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLEET_SANITIZE=OFF
echo "== ctest (plain build)"
status=0
ctest --test-dir "$repo/build" --output-on-failure "${retry[@]}" "$@" || status=$?

bash "$repo/tests/setup.sh" "$repo/build-asan" -DCMAKE_BUILD_TYPE=Debug -DFLEET_SANITIZE=ON
echo "== ctest (AddressSanitizer + UndefinedBehaviorSanitizer build)"
if [ $# -eq 0 ]; then
  # The suites on PostgreSQL run the same hub code as on SQLite but for the
  # store: under the sanitizers, the PostgreSQL store's own tests (start-up,
  # a server killed mid-run, a saga, the read models) stand for them, which
  # keeps the whole run well inside CI's hour (README, "Tests").
  ctest --test-dir "$repo/build-asan" --output-on-failure "${retry[@]}" -LE postgresql || status=$?
  ctest --test-dir "$repo/build-asan" --output-on-failure "${retry[@]}" \
    -R '^(pg_startup_pg|pg_outage_pg|kiosk_rental_pg|read_models_pg|notify_outbox_pg)$' || status=$?
else
  ctest --test-dir "$repo/build-asan" --output-on-failure "${retry[@]}" "$@" || status=$?
fi
exit $status
