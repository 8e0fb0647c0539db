#!/usr/bin/env bash
# The main job, end to end on a CPU machine: dependencies, build, synthetic
# stories, tokenizer, token shards, `mpirun -np 2 mla-train` (MLA+RoPE),
# checkpoints, evaluation of the final checkpoint (validation loss, generations,
# KV-cache/speed report) and PNG plots of the run (tools/plot-metrics).
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
# The main job needs only the programs: no tests, no CUDA parts.
./scripts/build.sh -DMLA_BUILD_TESTS=OFF -DMLA_CUDA=OFF

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
  echo "== mla-eval: validation loss over the whole val shard ($RANKS ranks)"
  mpirun "${MPI_FLAGS[@]}" -np "$RANKS" -x OMP_NUM_THREADS="$THREADS" \
    "$BIN/launch/mla-eval" --task=loss --checkpoint="$OUT/checkpoints" --val_shard=data/val.bin \
    --out="$OUT/eval_loss.json" --threads="$THREADS"
  echo "== mla-eval: generations"
  "$BIN/launch/mla-eval" --task=generate --checkpoint="$OUT/checkpoints" \
    --prompts=recipes/prompts/stories.jsonl --max_new_tokens=96 --threads=1 --out="$OUT/generations.jsonl"
  head -c 600 "$OUT/generations.jsonl"; echo
  echo "== mla-eval: KV cache, decode speed, text metrics"
  "$BIN/launch/mla-eval" --task=report --checkpoint="$OUT/checkpoints" --bench_batches=1,8 \
    --max_new_tokens=96 --threads=1 --out="$OUT/eval_report.json"
fi

echo "== plots"
PLOTS=""
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  /usr/bin/python3 tools/plot-metrics "$OUT" --out "$OUT/plots"
  PLOTS=", plots in $OUT/plots/ (loss.png, lr.png, tokens_per_s.png)"
else
  echo "matplotlib missing (python3-matplotlib): no plots"
fi
echo "== done: metrics in $OUT/metrics.jsonl, checkpoints in $OUT/checkpoints$PLOTS"
