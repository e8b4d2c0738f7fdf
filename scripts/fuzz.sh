#!/usr/bin/env bash
# scripts/fuzz.sh TARGET|all [SECONDS]: an exploratory libFuzzer run of fuzz/TARGET.cc
# (fuzz_config, fuzz_nbd, fuzz_requests) for SECONDS (default 60) each, in the clang-14
# build build-fuzz/ (ASan + UBSan + libFuzzer; made here when missing). It starts from the
# seed corpus fuzz/corpus/TARGET and grows a working corpus in build-fuzz/corpus/TARGET;
# a crashing input is kept in build-fuzz/artifacts/ and the run fails. Copy a crash (after
# fixing it) into fuzz/corpus/TARGET/ so that `make test` replays it for good.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_FUZZ:-$ROOT/build-fuzz}
SECONDS_EACH=${2:-60}
TARGETS=(fuzz_config fuzz_nbd fuzz_requests)
[ "${1:-all}" != all ] && TARGETS=("$1")

"$ROOT/scripts/install-deps.sh" clang-14 libclang-rt-14-dev
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMARRAY_FUZZ=ON >/dev/null
fi
ninja -C "$BUILD" "${TARGETS[@]}"

export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$BUILD/artifacts"
for target in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz: $target for ${SECONDS_EACH}s"
  "$BUILD/fuzz/$target" "$corpus" "$ROOT/fuzz/corpus/$target" \
    -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$BUILD/artifacts/$target-"
done
