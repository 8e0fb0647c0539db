#!/usr/bin/env bash
# Builds mlatrain with CUDA (sm_80, sm_90) and writes a self-contained folder
# that runs on a bare CUDA machine (docs/cuda.md, "The GPU bundle and the
# device check"):
#
#   bin/       mla-train, mla-eval, mla-ckpt, mla-calc, mla-data, mla-gemm-peak
#   tests/     the GPU test binaries (each run on its own by gpu-check.sh)
#   payload.tar.xz  (unpacked by env.sh on first use, into the bundle)
#     lib/     every shared library they need that a CUDA image lacks (MPI,
#              HDF5 and what it links, Abseil, glog, oneDNN, sentencepiece,
#              xxhash, gtest, OpenMP, ...); not glibc, libstdc++/libgcc_s or
#              the CUDA driver, and not cuBLASLt/cudart/NCCL, which come from
#              the machine's CUDA 13
#     ompi/    Open MPI's plugins and help files, found through OPAL_PREFIX,
#              so one process can MPI_Init as a singleton without mpirun
#   data/      a small story corpus: train.bin, val.bin, tokenizer.model
#   recipes/   the quickstart and paper-shape flagfiles, prompts
#   env.sh     sets LD_LIBRARY_PATH, OPAL_PREFIX and PATH for the bundle,
#              adding the machine's CUDA 13 libraries where it finds them
#   gpu-check.sh, gpu_check.py, gpu_peer.py, MANIFEST
#
# Usage: scripts/gpu-bundle.sh [--from-build DIR] [--out DIR] [--stories N]
#   --from-build DIR  take the programs from an existing build (no configure,
#                     no build; the tests use their own build this way)
#   --out DIR         the bundle folder (default gpu-bundle, ignored by git)
#   --stories N       stories in the data set (default 10000)
#   --vocab N         tokenizer vocabulary (default 4096, the quickstart's)
# Environment: BUILD_DIR (default build-gpu), MAX_MIB (default 56: the device
# tool carries at most 64 MiB with the working tree).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build-gpu}"
OUT="$ROOT/gpu-bundle"
STORIES=10000
VOCAB=4096
FROM_BUILD=""
MAX_MIB="${MAX_MIB:-56}"
while [ $# -gt 0 ]; do
  case "$1" in
    --from-build) FROM_BUILD="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --stories) STORIES="$2"; shift 2 ;;
    --vocab) VOCAB="$2"; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "gpu-bundle.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

PROGRAMS=(launch/mla-train launch/mla-eval tools/mla-ckpt/mla-ckpt tools/mla-calc/mla-calc
          tools/mla-data/mla-data tests/layers/mla-gemm-peak)
GPU_TESTS=(tests/layers/cuda_elementwise_test tests/layers/cuda_kernels_test
           tests/layers/cuda_bf16_test tests/layers/cuda_decode_test
           tests/runtime/cuda_training_test)

if [ -z "$FROM_BUILD" ]; then
  # x86-64-v3 (AVX2): the device machine's processor is not this one.
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DMLA_CUDA=ON \
    -DMLA_BUILD_TESTS=ON -DMLA_MARCH=x86-64-v3 >/dev/null
  targets=()
  for p in "${PROGRAMS[@]}"; do targets+=("$(basename "$p")"); done
  for t in "${GPU_TESTS[@]}"; do targets+=("$(basename "$t")"); done
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]}"
  FROM_BUILD="$BUILD_DIR"
fi
FROM_BUILD="$(cd "$FROM_BUILD" && pwd)"

rm -rf "$OUT"
mkdir -p "$OUT"/{bin,tests,lib,data,recipes}
OUT="$(cd "$OUT" && pwd)"
manifest="$OUT/MANIFEST"
{
  echo "mlatrain GPU bundle"
  echo "revision: $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  echo "built from: $FROM_BUILD"
  echo "host -march: $(grep -s '^MLA_MARCH' "$FROM_BUILD/CMakeCache.txt" | cut -d= -f2 || true)"
} >"$manifest"

take() {  # take PATH_IN_BUILD DEST: copy a built binary, or note that this build lacks it
  if [ -x "$FROM_BUILD/$1" ]; then
    cp "$FROM_BUILD/$1" "$2/"
  else
    echo "missing (not built here): $1" | tee -a "$manifest"
  fi
}
for p in "${PROGRAMS[@]}"; do take "$p" "$OUT/bin"; done
for t in "${GPU_TESTS[@]}"; do take "$t" "$OUT/tests"; done
strip --strip-unneeded "$OUT"/bin/* "$OUT"/tests/* 2>/dev/null || true

# Libraries the machine provides itself: glibc, the C++ runtime every image
# has, the CUDA driver and CUDA 13's own libraries.
SYSTEM_LIBS='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnccl|libnvidia)[.-]'
copy_deps() {  # copy_deps FILE...: the non-system libraries FILE needs, recursively (ldd)
  ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
    while read -r name path; do
      if [[ "$name" =~ $SYSTEM_LIBS ]]; then continue; fi
      if [ ! -e "$OUT/lib/$name" ]; then cp -L "$path" "$OUT/lib/$name"; fi
    done
}
copy_deps "$OUT"/bin/* "$OUT"/tests/*

# Open MPI: mla-train calls MPI_Init even as one process; a singleton needs
# the component plugins and help files at the paths OPAL_PREFIX implies, and
# (ess_singleton_isolated, set by env.sh) no orted.
ompi_pkglib="$(ompi_info --path pkglibdir --parsable 2>/dev/null | sed -n 's/^path:pkglibdir://p')"
ompi_pkgdata="$(ompi_info --path pkgdatadir --parsable 2>/dev/null | sed -n 's/^path:pkgdatadir://p')"
ompi_prefix="$(ompi_info --path prefix --parsable 2>/dev/null | sed -n 's/^path:prefix://p')"
if [ -n "$ompi_pkglib" ] && [ -d "$ompi_pkglib" ]; then
  rel_pkglib="${ompi_pkglib#"$ompi_prefix"/}"
  rel_pkgdata="${ompi_pkgdata#"$ompi_prefix"/}"
  mkdir -p "$OUT/ompi/$rel_pkglib" "$OUT/ompi/$rel_pkgdata"
  cp "$ompi_pkglib"/*.so "$OUT/ompi/$rel_pkglib/"
  cp -r "$ompi_pkgdata"/. "$OUT/ompi/$rel_pkgdata/"
  rm -f "$OUT/ompi/$rel_pkgdata"/*wrapper-data.txt
  copy_deps "$OUT/ompi/$rel_pkglib"/*.so
  echo "open mpi: $(ompi_info --version 2>/dev/null | head -1); plugins in ompi/$rel_pkglib" >>"$manifest"
else
  echo "open mpi: ompi_info not found; no plugins bundled" | tee -a "$manifest"
fi
strip --strip-unneeded "$OUT"/lib/*.so* 2>/dev/null || true
# oneDNN alone is 40 MB: libraries and plugins travel xz-compressed (about a
# quarter of the size); env.sh unpacks them with Python's tarfile, which every
# machine that runs the check has.
echo "libraries: $(ls "$OUT/lib" | wc -l), $(du -sm "$OUT/lib" | cut -f1) MiB unpacked" >>"$manifest"
tar -C "$OUT" -cf - lib $( [ -d "$OUT/ompi" ] && echo ompi ) | xz -1 -T0 >"$OUT/payload.tar.xz"
rm -rf "$OUT/lib" "$OUT/ompi"

# Data: a small synthetic corpus and its BPE tokenizer, as the quickstart makes them.
"$FROM_BUILD/tools/mla-data/mla-data" all --count "$STORIES" --vocab_size "$VOCAB" --seed 1 \
  --out "$OUT/data" >/dev/null
rm -f "$OUT/data"/*.jsonl "$OUT/data"/*.txt

cp "$ROOT/recipes/cpu/quickstart.flags" "$ROOT/recipes/paper/mla_rope_r256.flags" \
  "$ROOT/recipes/paper/mha.flags" "$ROOT/recipes/prompts/stories.jsonl" "$OUT/recipes/"
cp "$ROOT/scripts/gpu-check.sh" "$ROOT/scripts/gpu_check.py" "$ROOT/scripts/gpu_peer.py" "$OUT/"

cat >"$OUT/env.sh" <<'EOF'
# Source this file: the bundle's programs on PATH, its libraries first on
# LD_LIBRARY_PATH, Open MPI relocated to ompi/ (singleton, no orted). The
# machine's CUDA 13 libraries (cuBLASLt, cudart, NCCL) are looked up in the
# loader cache, then in the usual toolkit and Python-wheel folders.
MLA_BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export MLA_BUNDLE
if [ ! -d "$MLA_BUNDLE/lib" ]; then
  python3 -c 'import sys, tarfile
kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)' \
    "$MLA_BUNDLE/payload.tar.xz" "$MLA_BUNDLE"
fi
export PATH="$MLA_BUNDLE/bin:$PATH"
_mla_ld="$MLA_BUNDLE/lib"
for _mla_lib in libcublasLt.so.13 libcudart.so.13 libnccl.so.2; do
  if /sbin/ldconfig -p 2>/dev/null | grep -q "$_mla_lib"; then continue; fi
  for _mla_dir in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
      /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/lib \
      /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib \
      /usr/local/lib/python3*/dist-packages/nvidia/*/lib /usr/lib/python3/dist-packages/nvidia/*/lib; do
    if [ -e "$_mla_dir/$_mla_lib" ]; then
      case ":$_mla_ld:" in *":$_mla_dir:"*) ;; *) _mla_ld="$_mla_ld:$_mla_dir" ;; esac
      break
    fi
  done
done
export LD_LIBRARY_PATH="$_mla_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPAL_PREFIX="$MLA_BUNDLE/ompi"
export OMPI_MCA_ess_singleton_isolated=1
export OMPI_MCA_mca_base_component_show_load_errors=0
# hwloc (under Open MPI) would dlopen its GL/OpenCL/PCI/XML plugins from the
# build machine's path; a single rank needs none of them.
export HWLOC_PLUGINS_PATH="$MLA_BUNDLE/lib/hwloc-none"
unset _mla_ld _mla_lib _mla_dir
EOF

size_mib=$(du -sm "$OUT" | cut -f1)
echo "size: ${size_mib} MiB (du -sm), limit ${MAX_MIB} MiB" >>"$manifest"
du -sm "$OUT"/* | sort -rn >>"$manifest"
echo "gpu-bundle.sh: wrote $OUT (${size_mib} MiB)"
if [ "$size_mib" -gt "$MAX_MIB" ]; then
  echo "gpu-bundle.sh: the bundle is ${size_mib} MiB, over the ${MAX_MIB} MiB limit" >&2
  exit 1
fi
