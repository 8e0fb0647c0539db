#!/usr/bin/env bash
# One machine, 8 GPUs: mpirun -np 8 mla-train, one rank per GPU (rank i
# uses local GPU i), checkpoints in RUN_DIR, restartable with --resume=auto.
#
#   recipes/cluster/node-8gpu.sh [extra mla-train flags]      (from anywhere)
#   RECIPE=recipes/paper/mha.flags GPUS=4 recipes/cluster/node-8gpu.sh --steps=500
#   DRY_RUN=1 recipes/cluster/node-8gpu.sh     (prints world size and command, runs nothing)
#
# Ctrl-C reaches every rank (the terminal signals the whole foreground process
# group); they finish the step, write a checkpoint and exit 0. To stop a
# background run, send SIGTERM to the mla-train processes, not to mpirun:
# Open MPI 4.1's mpirun does not pass SIGTERM on. Run the same command again
# to continue.
# `--device=cuda` needs a CUDA build (docs/cuda.md, "Training on the GPU");
# DEVICE=cpu runs the same job on the CPU.
set -euo pipefail
cd "$(dirname "$0")/../.."

RECIPE="${RECIPE:-recipes/paper/mla_rope_r256.flags}"
DATA_DIR="${DATA_DIR:-data}"
RUN_DIR="${RUN_DIR:-runs/$(basename "$RECIPE" .flags)}"
BIN="${BIN:-build/launch/mla-train}"
DEVICE="${DEVICE:-cuda}"
GPUS="${GPUS:-8}"
WORLD="$GPUS"
# 65536 tokens / 512 = 128 sequences per step: 16 per rank on 8 GPUs.
MICRO_BATCH="${MICRO_BATCH:-16}"
THREADS="${THREADS:-$(( $(nproc) / GPUS > 0 ? $(nproc) / GPUS : 1 ))}"

# NCCL (read by the CUDA communicator; the CPU path averages over MPI): on one
# node NCCL uses NVLink/P2P by itself; NCCL_DEBUG=INFO shows what it chose,
# NCCL_P2P_DISABLE=1 is the workaround for machines whose P2P is broken.
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"

MPI_FLAGS=(--bind-to none --mca odls_base_sigkill_timeout 110)
if [ "$(id -u)" -eq 0 ]; then MPI_FLAGS+=(--allow-run-as-root); fi
# shellcheck source=recipes/cluster/mpirun-train.sh
. recipes/cluster/mpirun-train.sh
mpirun_train -x NCCL_DEBUG -- \
  "--device=$DEVICE" "--micro_batch=$MICRO_BATCH" "--threads=$THREADS" "$@"
