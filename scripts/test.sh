#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: dependencies, build, ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 -j1
