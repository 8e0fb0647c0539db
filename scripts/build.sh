#!/usr/bin/env bash
# Configures and builds mlatrain into BUILD_DIR (default: build). Extra
# arguments go to cmake's configure step (e.g. -DMLA_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
