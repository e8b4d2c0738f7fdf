#!/usr/bin/env bash
# scripts/tsan.sh [unit|integration|all]: the ThreadSanitizer run (`make tsan`, and
# `ctest -L soak` as soak:tsan; docs/threads.md).
#
# It builds, in build-tsan/ (clang-14, -fsanitize=thread, -O1; made here when missing), the
# unit-test binaries and simarrayd, then runs
#   unit:        every unit test of build-tsan (the ctest labels base, cache, disk,
#                mirror, nbd, remote), and
#   integration: the integration cases that drive a pair hardest (INTEGRATION_SPEC below:
#                the pair, link, in-place, link-teardown and async files), run by the
#                normal build's integration_test ($BUILD, made by `make build`) with
#                SIMARRAYD pointing at build-tsan's simarrayd, so every daemon is the TSan
#                one.
# Every TSan report, of a test binary or of a daemon, goes to build-tsan/tsan-reports/;
# the run fails if there is any, and prints them. tests/tsan/tsan.supp holds the
# suppressions (each one says why). JOBS (default 2) bounds the build and the unit tests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TSAN_BUILD=${BUILD_TSAN:-$ROOT/build-tsan}
JOBS=${JOBS:-2}
WHAT=${1:-all}
# The integration test files whose cases run under TSan (their soak cases excepted).
INTEGRATION_FILES=${INTEGRATION_FILES:-pair_test link_test in_place_test link_teardown_test async_test}
UNIT_TARGETS=(base_test cache_test disk_test mirror_test nbd_test remote_test)

"$ROOT/scripts/install-deps.sh" clang-14 libclang-rt-14-dev
if [ ! -f "$TSAN_BUILD/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$TSAN_BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DSIMARRAY_TSAN=ON -DSIMARRAY_ONLY_INTEGRATION=OFF >/dev/null
fi
targets=(simarrayd)
[ "$WHAT" != integration ] && targets+=("${UNIT_TARGETS[@]}")
ninja -C "$TSAN_BUILD" -j "$JOBS" "${targets[@]}"

reports=$TSAN_BUILD/tsan-reports
rm -rf "$reports"
mkdir -p "$reports"
# halt_on_error=0: a daemon goes on after a report, so one run finds every race it meets.
export TSAN_OPTIONS="suppressions=$ROOT/tests/tsan/tsan.supp log_path=$reports/tsan second_deadlock_stack=1 history_size=4 halt_on_error=0 exitcode=66"

status=0
if [ "$WHAT" != integration ]; then
  echo "tsan: unit tests"
  ctest --test-dir "$TSAN_BUILD" -j "$JOBS" -L '^(base|cache|disk|mirror|nbd|remote)$' \
    --output-on-failure || status=1
fi
if [ "$WHAT" != unit ]; then
  integration=$BUILD/tests/integration/integration_test
  if [ ! -x "$integration" ]; then
    echo "tsan: $integration is missing: make build first" >&2
    exit 1
  fi
  # A Catch2 spec over file tags (-#): "[#pair_test]~[soak],[#link_test]~[soak],...".
  spec=$(printf '[#%s]~[soak],' $INTEGRATION_FILES)
  spec=${spec%,}
  echo "tsan: integration cases of $INTEGRATION_FILES with $TSAN_BUILD/daemon/simarrayd"
  # The cases wait for the daemons with their own deadlines; TSan makes the daemons several
  # times slower, so a case that fails on time alone is reported as such, not as a race.
  (cd "$BUILD/tests/integration" &&
    SIMARRAYD=$TSAN_BUILD/daemon/simarrayd "$integration" -# "$spec" --warn NoTests \
      --durations yes) || status=1
fi

shopt -s nullglob
found=("$reports"/tsan.*)
if [ ${#found[@]} -gt 0 ]; then
  for f in "${found[@]}"; do
    echo "=== $f"
    cat "$f"
  done
  echo "tsan: FAILED: ${#found[@]} process(es) reported races (above; $reports)"
  exit 1
fi
[ $status = 0 ] || { echo "tsan: FAILED: a test failed (above) with no TSan report"; exit 1; }
echo "tsan: no race reported"
