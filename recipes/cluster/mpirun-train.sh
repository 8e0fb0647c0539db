# Sourced by the launchers in recipes/cluster (not run on its own): the
# mla-train command they share and its dry run.
#
# mpirun_train MPI_EXTRA... -- TRAIN_FLAGS...
#   Runs mpirun "${MPI_FLAGS[@]}" over $WORLD ranks of $BIN with $RECIPE, the
#   shards and tokenizer of $DATA_DIR, out_dir $RUN_DIR (created), resumed with
#   --resume=auto, --micro_batch=$MICRO_BATCH and --threads=$THREADS (also
#   OMP_NUM_THREADS of every rank). MPI_EXTRA go to mpirun before the program,
#   TRAIN_FLAGS to mla-train last (so they win). With DRY_RUN set it prints
#   "world=N" and "command: ..." instead and runs nothing.
mpirun_train() {
  local mpi_extra=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    mpi_extra+=("$1")
    shift
  done
  shift
  local cmd=(mpirun "${MPI_FLAGS[@]}" -np "$WORLD" -x OMP_NUM_THREADS="$THREADS" "${mpi_extra[@]}"
             "$BIN" "--flagfile=$RECIPE" "--train_data=$DATA_DIR/train.bin"
             "--val_data=$DATA_DIR/val.bin" "--tokenizer=$DATA_DIR/tokenizer.model"
             "--out_dir=$RUN_DIR" "--resume=auto" "$@")
  if [ -n "${DRY_RUN:-}" ]; then
    echo "world=$WORLD"
    echo "command: ${cmd[*]@Q}"
    exit 0
  fi
  mkdir -p "$RUN_DIR"
  exec "${cmd[@]}"
}
