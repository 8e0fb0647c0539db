#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: dependencies, build, ctest;
# then the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer
# (build-asan), then a bounded libFuzzer run of each fuzz target (build-fuzz).
# Environment:
#   MLA_SANITIZE_STAGE=0   skip the sanitizer stage
#   MLA_FUZZ_SECONDS=N     seconds per fuzz target (default 20; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh -DMLA_BUILD_TESTS=ON -DMLA_CUDA=AUTO
build_dir="${BUILD_DIR:-build}"
(cd "$build_dir" && ctest --output-on-failure --timeout 900 -j1) | tee "$build_dir/ctest.log"
# ctest lists a skipped test (a GPU test on a machine without a GPU) under
# "did not run" but passes the run; say how many there were.
echo "ctest: $(grep -c '(Skipped)$' "$build_dir/ctest.log" || true) tests skipped"

if [ "${MLA_SANITIZE_STAGE:-1}" != 0 ]; then
  echo "== unit tests under ASan + UBSan (build-asan)"
  BUILD_DIR=build-asan ./scripts/build.sh -DMLA_SANITIZE=ON -DMLA_CUDA=OFF
  # The end-to-end, fault, bad-input, multi-node and Python-package tests
  # drive the programs from python, the parity tests run PyTorch, and the
  # bundle test packs the main build's programs (this build has no CUDA
  # parts): they stay in the stage above. OpenMPI and HDF5 keep allocations
  # until exit that LeakSanitizer would report, so leak checking is off; every
  # other ASan/UBSan finding fails the test. MlaDataCli.HelpExplainsSubcommandsAndFlags
  # is left to the stage above: in this build (only) Abseil prints mla-data's
  # --help in its XML form; the cause is not found yet (docs/reliability.md).
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     GTEST_FILTER='-MlaDataCli.HelpExplainsSubcommandsAndFlags' \
     ctest --output-on-failure --timeout 900 -j1 \
       -LE 'train|fault|badinput|reference|cluster|python|bundle' -E 'parity')
fi

if [ "${MLA_FUZZ_SECONDS:-20}" != 0 ]; then
  echo "== fuzzing, ${MLA_FUZZ_SECONDS:-20} s per target (build-fuzz)"
  FUZZ_SECONDS="${MLA_FUZZ_SECONDS:-20}" tests/fuzz/run.sh
fi
