#!/usr/bin/env bash
# Runs the fuzz targets (tests/fuzz/fuzz_*.c, built by tests/CMakeLists.txt
# into <build>/fuzz when clang is present) for a bounded time each.
#   usage: tests/fuzz/run.sh [--build DIR] [SECONDS] [TARGET...]
#   DIR      the fuzz build (default build/fuzz); SECONDS per target (default 30)
#   TARGET   codec_decode codec_roundtrip config http_body http_query ctl_request
#            (default: all)
# Each target first replays its checked-in regression inputs
# (tests/fuzz/regressions/TARGET/, every one a crash found once), then fuzzes
# from the checked-in corpus (tests/fuzz/corpus/TARGET/), the protocol's test
# vectors (schemas/vectors, for the codec) and what earlier runs kept
# (DIR/work/TARGET). It prints one line per target: executions, and whether
# anything was found. A crash, leak, undefined behaviour or timeout makes the
# script fail; the input that did it is in DIR/artifacts/TARGET/, to be checked
# in under tests/fuzz/regressions/TARGET/ once the bug is fixed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$repo/build/fuzz
if [ "${1:-}" = "--build" ]; then
  build=$2
  shift 2
fi
seconds=30
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
((${#targets[@]})) || targets=(codec_decode codec_roundtrip config http_body http_query ctl_request)

# Longest input per target: the codec's cap is 8192 bytes (more, to try the
# cap); a control request line 1024; configs and bodies a few KB.
max_len() {
  case $1 in
  codec_*) echo 9000 ;;
  ctl_request) echo 2048 ;;
  http_query) echo 1024 ;;
  *) echo 4096 ;;
  esac
}

# schemas/vectors/**/*.hex as binary seeds for the codec targets.
seed_vectors() {
  local dir=$1
  mkdir -p "$dir"
  /usr/bin/python3 - "$repo/schemas/vectors" "$dir" <<'PY'
import pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(src.rglob("*.hex")):
    name = str(f.relative_to(src)).replace("/", "_")[:-4]
    (dst / name).write_bytes(bytes.fromhex(f.read_text().strip()))
PY
}

# libFuzzer reports leaks and, with these options, stops at the first
# finding of ASan or UBSan.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:abort_on_error=0:symbolize=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

failed=0
for t in "${targets[@]}"; do
  bin=$build/fuzz_$t
  if [ ! -x "$bin" ]; then
    echo "fuzz $t: FAILED: $bin is not built (bash tests/setup.sh builds it when clang is present)"
    failed=1
    continue
  fi
  log=$build/logs/$t.log
  work=$build/work/$t
  artifacts=$build/artifacts/$t
  mkdir -p "$build/logs" "$work" "$artifacts"
  : > "$log"

  # 1. every input that once crashed, replayed
  regressions=()
  if [ -d "$here/regressions/$t" ]; then
    while IFS= read -r -d '' f; do regressions+=("$f"); done \
      < <(find "$here/regressions/$t" -type f ! -name '*.md' -print0 | sort -z)
  fi
  if ((${#regressions[@]})) && ! "$bin" "${regressions[@]}" >> "$log" 2>&1; then
    echo "fuzz $t: FAILED: a regression input crashes again (log: $log)"
    tail -n 40 "$log"
    failed=1
    continue
  fi

  # 2. fuzzing for the time given
  corpora=("$work")
  [ -d "$here/corpus/$t" ] && corpora+=("$here/corpus/$t")
  if [[ $t == codec_* ]]; then
    seed_vectors "$build/seeds/codec"
    corpora+=("$build/seeds/codec")
  fi
  rc=0
  "$bin" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "${corpora[@]}" >> "$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
  if [ $rc -ne 0 ]; then
    echo "fuzz $t: FAILED after ${execs:-?} executions: libFuzzer exit $rc; input in $artifacts/ (log: $log)"
    tail -n 40 "$log"
    failed=1
  else
    echo "fuzz $t: ${execs:-?} executions in ${seconds} s, ${cov:-cov: ?}, ${#regressions[@]} regression inputs replayed, nothing found"
  fi
done
exit $failed
