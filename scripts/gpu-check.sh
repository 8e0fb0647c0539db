#!/usr/bin/env bash
# The device check, run from the bundle (scripts/gpu-bundle.sh) on the GPU
# machine: gpu-bundle/gpu-check.sh --out "$OUT" [--dry-run] [--only STEPS]
# [--deadline S] [--work DIR]. Sets the bundle's environment (env.sh), then runs
# gpu_check.py with a Python that has torch (for the PyTorch peer), which
# writes OUT/gpu-check.json and OUT/gpu-check.log. docs/cuda.md says how to
# call it through the device tool and how to read the summary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# Python (and torch, for the peer) keeps the machine's own libraries; the
# bundle's programs get the bundle's (gpu_check.py passes them on).
host_ld="${LD_LIBRARY_PATH-}"
# shellcheck source=/dev/null
. "$here/env.sh"
export MLA_BUNDLE_LD_LIBRARY_PATH="$LD_LIBRARY_PATH"
export LD_LIBRARY_PATH="$host_ld"
py=python3
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then
    py="$candidate"
    break
  fi
done
exec "$py" "$here/gpu_check.py" "$@"
