#!/usr/bin/env bash
# The main job, end to end on a CPU machine: dependencies, build, synthetic
# stories, tokenizer, token shards, `mpirun -np 2 mla-train` (MLA+RoPE),
# checkpoints, and evaluation of the final checkpoint.
# Environment: RANKS (2), STORIES (100000), RECIPE (recipes/cpu/quickstart.flags),
# OUT (runs/main).
set -euo pipefail
cd "$(dirname "$0")/.."
RANKS="${RANKS:-2}"
STORIES="${STORIES:-100000}"
RECIPE="${RECIPE:-recipes/cpu/quickstart.flags}"
OUT="${OUT:-runs/main}"
BIN="${BUILD_DIR:-build}"

./scripts/install-deps.sh
./scripts/build.sh

if [ ! -f data/train.bin ] || [ ! -f data/val.bin ] || [ ! -f data/tokenizer.model ]; then
  echo "== mla-data: $STORIES stories -> tokenizer -> shards"
  "$BIN/tools/mla-data/mla-data" all --count "$STORIES" --seed 1 --out data
else
  echo "== data/ already holds train.bin, val.bin and tokenizer.model (delete data/ to rebuild)"
fi

MPI_FLAGS=(--oversubscribe)
if [ "$(id -u)" -eq 0 ]; then MPI_FLAGS+=(--allow-run-as-root); fi
THREADS=$(( $(nproc) / RANKS )); if [ "$THREADS" -lt 1 ]; then THREADS=1; fi

echo "== mpirun -np $RANKS mla-train --flagfile=$RECIPE"
mpirun "${MPI_FLAGS[@]}" -np "$RANKS" -x OMP_NUM_THREADS="$THREADS" \
  "$BIN/launch/mla-train" --flagfile="$RECIPE" --out_dir="$OUT" --threads="$THREADS"

echo "== checkpoint"
"$BIN/tools/mla-ckpt/mla-ckpt" verify "$OUT/checkpoints"
"$BIN/tools/mla-ckpt/mla-ckpt" show "$OUT/checkpoints"

if [ -x "$BIN/launch/mla-eval" ]; then
  echo "== mla-eval"
  mpirun "${MPI_FLAGS[@]}" -np "$RANKS" -x OMP_NUM_THREADS=1 "$BIN/launch/mla-eval" \
    --checkpoint="$OUT/checkpoints" --task=loss --val_shard=data/val.bin --threads=1 \
    --out="$OUT/eval_loss.json"
  "$BIN/launch/mla-eval" --checkpoint="$OUT/checkpoints" --task=generate \
    --prompts=recipes/prompts/stories.jsonl --max_new_tokens=200 --threads=1 \
    --out="$OUT/generations.jsonl"
  "$BIN/launch/mla-eval" --checkpoint="$OUT/checkpoints" --task=report --threads=1 --out="$OUT/report.json"
fi
echo "== done: metrics in $OUT/metrics.jsonl, checkpoints in $OUT/checkpoints"
