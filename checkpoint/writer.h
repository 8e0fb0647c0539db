#pragma once
// Saving a checkpoint: every rank of an MPI communicator writes its own slices
// of the flat parameter, AdamW m and AdamW v buffers into ONE HDF5 file with
// parallel HDF5, the ranks hash the closed file together and rank 0 writes its
// integrity header (checkpoint/integrity.h), then rank 0 commits it atomically
// (`<dir>/ckpt-<step>.h5.tmp` → fsync on every rank → rename → fsync dir →
// `latest` pointer → retention). Nothing is gathered on one rank.
//
// Collective: every rank of `comm` must call SaveCheckpoint with the same
// metadata, layout, state arrays and tokenizer bytes (checked by hashing) and
// slices whose ranges tile [0, total) of each buffer. Any failure on any rank
// (a bad argument, an HDF5 or file-system error) is agreed after each phase and
// returned on every rank, so no rank hangs waiting for another. Not
// thread-safe; call from one thread per rank. The buffers are only read.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "checkpoint/format.h"

namespace mla::ckpt {

// Elements [lo, lo + values.size()) of a flat buffer, held by this rank.
struct FlatSlice {
  int64_t lo = 0;
  absl::Span<const float> values;
  FlatRange range() const { return {lo, lo + static_cast<int64_t>(values.size())}; }
};

// Everything one checkpoint holds. `layout` is the parameter buffer's layout
// (same order as runtime's ParameterLayout; offsets contiguous from 0); the m
// and v buffers share it. Without ZeRO a rank typically passes
// EvenShard(total, rank, world) of each buffer; under ZeRO-1 its own shard.
struct CheckpointState {
  CheckpointHeader header;  // world_size and the provenance fields are filled by the writer
  std::vector<ConfigEntry> config;
  std::vector<TensorSpec> layout;
  FlatSlice params;
  FlatSlice adam_m;
  FlatSlice adam_v;
  AdamWScalars adamw;
  std::vector<StateArray> state;  // e.g. "schedule", "rng", "data_loader"
  std::string tokenizer_model;    // sentencepiece model bytes
};

// How the ranks agree on the outcome of each phase: every rank passes its
// local status and gets back the same verdict (OK, or the lowest failing
// rank's error). checkpoint/ does not depend on comm/, so a program that has
// a communicator passes its agreement here (mla-train: comm/'s AgreeOnStatus,
// which ends the job when a peer stops answering for --collective_timeout).
using AgreeFn = std::function<absl::Status(const absl::Status&)>;

struct SaveOptions {
  std::string dir;          // created when missing
  int keep_last = 3;        // retention: the newest K checkpoints (>= 1) ...
  int keep_every = 0;       // ... plus every step divisible by M (0 = none)
  AgreeFn agree;            // empty: the writer agrees over `comm` with plain MPI
};

// Writes and commits `state`; returns the committed path `<dir>/ckpt-<step>.h5`
// on every rank.
absl::StatusOr<std::string> SaveCheckpoint(MPI_Comm comm, const CheckpointState& state,
                                           const SaveOptions& options);

// True after a save whose file could not be closed (e.g. the disk filled up
// during its final flush). HDF5 1.10 then crashes during its own shutdown at
// MPI_Finalize/exit, so a program that sees this should report its error and
// end with std::_Exit(status) instead of returning from main.
bool SaveLeftHdf5Damaged();

}  // namespace mla::ckpt
