#!/usr/bin/env bash
# A CPU cluster without a scheduler: mpirun over the hosts of a hostfile, one
# rank per CPU socket (slots= in the hostfile), OpenMP threads per rank = the
# cores of a socket. Every host must see the repository, the build and DATA_DIR
# at the same paths, and RUN_DIR on shared storage (parallel HDF5 checkpoints
# are written by all ranks into one file).
#
#   HOSTFILE=recipes/cluster/hostfile.example recipes/cluster/cpu-cluster.sh [extra flags]
#   DRY_RUN=1 recipes/cluster/cpu-cluster.sh   (prints world size and command, runs nothing)
#
# Environment: HOSTFILE, RECIPE, SHARED, DATA_DIR, RUN_DIR, BIN, THREADS,
# RANKS, MICRO_BATCH (below); BIND_TO (core, or none when "hosts" share cores,
# as in the namespace cluster of tests/cluster); MPI_ARGS (extra mpirun flags,
# split on spaces, e.g. the transport selection). MLA_CLUSTER_HOSTFILE and
# MLA_CLUSTER_MPI_ARGS, set by tests/cluster/netns_cluster.py, stand in for
# HOSTFILE and MPI_ARGS when those are unset.
#
# To stop with a checkpoint, send SIGTERM to the mla-train processes on every
# host (e.g. `pdsh -w node0[1-4] pkill -TERM -x mla-train`), not to mpirun:
# Open MPI 4.1's mpirun does not pass SIGTERM on. Every rank checkpoints and
# exits 0; run the same command again to continue (--resume=auto), at any
# number of ranks.
set -euo pipefail
cd "$(dirname "$0")/../.."

HOSTFILE="${HOSTFILE:-${MLA_CLUSTER_HOSTFILE:-recipes/cluster/hostfile.example}}"
MPI_ARGS="${MPI_ARGS:-${MLA_CLUSTER_MPI_ARGS:-}}"
BIND_TO="${BIND_TO:-core}"
RECIPE="${RECIPE:-recipes/paper/mla_rope_r256.flags}"
SHARED="${SHARED:-/shared/${USER:-mla}/mlatrain}"
DATA_DIR="${DATA_DIR:-$SHARED/data}"
RUN_DIR="${RUN_DIR:-$SHARED/runs/$(basename "$RECIPE" .flags)}"
BIN="${BIN:-$PWD/build/launch/mla-train}"
THREADS="${THREADS:-16}"                      # cores per socket
# World size: the slots of the hostfile ("host slots=N" lines), or RANKS.
SLOTS=$(awk '!/^[[:space:]]*(#|$)/ { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, a, "="); n = a[2] } s += n } END { print s + 0 }' "$HOSTFILE")
WORLD="${RANKS:-$SLOTS}"
# 65536 tokens / 512 = 128 sequences per step; 16 per rank on 8 ranks, in
# micro-batches of 4 (accumulation 4) to keep activations in a socket's cache budget.
MICRO_BATCH="${MICRO_BATCH:-4}"

MPI_FLAGS=(--hostfile "$HOSTFILE" --mca odls_base_sigkill_timeout 110)
if [ "$BIND_TO" = none ]; then
  MPI_FLAGS+=(--bind-to none)
else
  MPI_FLAGS+=(--map-by ppr:1:socket:PE="$THREADS" --bind-to "$BIND_TO")
fi
# shellcheck disable=SC2206  # MPI_ARGS is a list of words by design
MPI_FLAGS+=($MPI_ARGS)
if [ "$(id -u)" -eq 0 ] && [[ " ${MPI_FLAGS[*]} " != *" --allow-run-as-root "* ]]; then
  MPI_FLAGS+=(--allow-run-as-root)
fi
# shellcheck source=recipes/cluster/mpirun-train.sh
. recipes/cluster/mpirun-train.sh
mpirun_train -x OMP_PROC_BIND=close -- \
  "--device=cpu" "--micro_batch=$MICRO_BATCH" "--threads=$THREADS" "$@"
