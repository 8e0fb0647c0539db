#!/usr/bin/env bash
# Installs exactly the Debian packages mlatrain needs to build, test and run.
# Idempotent: when every package is already installed it only checks and exits.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  libxxhash-dev
  libabsl-dev
  libdnnl-dev
  libsentencepiece-dev
  libgoogle-glog-dev
  libgtest-dev libgmock-dev
  python3 python3-torch python3-h5py python3-xxhash python3-numpy python3-matplotlib
  # The mlatrain Python package (tools/python): its tokenizer, and the venv +
  # build backend its pip-install test uses offline.
  python3-sentencepiece python3-venv python3-setuptools python3-wheel
  # Debian's torch and numpy call BLAS through libblas.so.3, which is the
  # unoptimised reference BLAS unless an optimised one is installed.
  libopenblas0-pthread
  # Fuzzing (tests/fuzz/run.sh): clang with libFuzzer/ASan runtimes, its OpenMP.
  clang libclang-rt-14-dev libomp-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
