#pragma once
// The distributed training data loader and the validation iterator, both over
// memory-mapped token shards (token_shard.h).
//
// Windows: a shard of N tokens holds W = floor((N - 1) / T) windows; window w
// is tokens [w*T, w*T + T], T+1 tokens, whose first T are the inputs and last T
// the next-token targets. Consecutive windows share one token.
//
// Training order: epoch e uses the permutation P_e of the W windows drawn by a
// Fisher-Yates shuffle seeded with (seed, e) (random.h, identical on every
// platform). Global batch s of epoch e is windows P_e[s*G .. s*G + G); an
// epoch has floor(W / G) steps (the W mod G left-over windows of an epoch are
// not used in that epoch; they are in other epochs, being shuffled). Rank k of
// N fills rows [k*G/N, (k+1)*G/N) of that global batch, so the global batch is
// the same whatever N is.
//
// Thread safety: a DataLoader / ValidationIterator is used by one thread.
// Failure: Create returns an error naming the shard when it is invalid
// (TokenShard::Open), shorter than one window or one global batch, or when
// G % N != 0 or rank/world are out of range.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/data/token_shard.h"

namespace mla {

// Where the loader is: the next batch it returns is step `step` of epoch
// `epoch` under `seed`. Plain integers, so a checkpoint stores it as int64s.
struct LoaderState {
  int64_t epoch = 0;
  int64_t step = 0;  // within the epoch
  int64_t seed = 0;

  static constexpr size_t kNumInts = 3;
  std::array<int64_t, kNumInts> ToInts() const { return {epoch, step, seed}; }
  // Error unless `v` holds exactly kNumInts values.
  static absl::StatusOr<LoaderState> FromInts(std::span<const int64_t> v);
  bool operator==(const LoaderState&) const = default;
};

struct DataLoaderOptions {
  int seq_len = 0;       // T
  int global_batch = 0;  // G, sequences per global batch (all ranks together)
  int rank = 0;          // k
  int world_size = 1;    // N
  uint64_t seed = 1;
};

class DataLoader {
 public:
  static absl::StatusOr<DataLoader> Create(const std::string& shard_path,
                                           const DataLoaderOptions& options);

  DataLoader(DataLoader&&) = default;
  DataLoader& operator=(DataLoader&&) = default;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Fills this rank's rows: inputs and targets are each [G/N, T] row-major.
  // Advances to the next step (and to the next epoch after the last step).
  void NextBatch(int32_t* inputs, int32_t* targets);

  LoaderState state() const { return {epoch_, step_, static_cast<int64_t>(seed_)}; }
  // Resumes so the next NextBatch returns batch (state.epoch, state.step) under
  // state.seed. Error when step is outside [0, steps_per_epoch()) or epoch < 0.
  absl::Status Restore(const LoaderState& state);

  int64_t windows() const { return num_windows_; }  // W
  int64_t steps_per_epoch() const { return num_windows_ / global_batch_; }
  int rows_per_rank() const { return rows_; }  // G/N
  int seq_len() const { return seq_len_; }
  const ShardHeader& shard_header() const { return shard_.header(); }
  // The windows of global batch (epoch, step) in row order: the whole batch,
  // all ranks' rows. Exposed so callers and tests can reason about coverage.
  std::vector<int64_t> GlobalBatchWindows(int64_t epoch, int64_t step) const;

 private:
  DataLoader(TokenShard shard, const DataLoaderOptions& options, int64_t windows);
  void BuildPermutation(int64_t epoch);

  TokenShard shard_;
  int seq_len_;
  int global_batch_;
  int rank_;
  int rows_;
  uint64_t seed_;
  int64_t num_windows_;
  int64_t epoch_ = 0;
  int64_t step_ = 0;
  int64_t permutation_epoch_ = -1;
  std::vector<uint32_t> permutation_;
};

// Walks the validation shard's W windows in order. Rank k of N owns the
// contiguous windows [floor(k*W/N), floor((k+1)*W/N)): together the ranks
// cover every window exactly once. Batches hold up to `batch_rows` windows;
// the last batch of a rank may be partial, and ranks may own different
// numbers of windows (by at most one) and batches, so callers weight each
// rank's mean by windows_for_rank() and must not run per-batch collectives.
// The at most T-1 tokens after the last full window are not evaluated; they
// are reported by uncovered_targets().
class ValidationIterator {
 public:
  static absl::StatusOr<ValidationIterator> Create(const std::string& shard_path, int seq_len,
                                                   int batch_rows, int rank, int world_size);

  ValidationIterator(ValidationIterator&&) = default;
  ValidationIterator& operator=(ValidationIterator&&) = default;
  ValidationIterator(const ValidationIterator&) = delete;
  ValidationIterator& operator=(const ValidationIterator&) = delete;

  // Fills up to batch_rows rows of [batch_rows, T] inputs/targets and returns
  // how many rows it filled; 0 when this rank's windows are exhausted. Rows
  // past the returned count are left untouched.
  int NextBatch(int32_t* inputs, int32_t* targets);
  // Starts the walk over (for the next evaluation).
  void Reset() { next_ = begin_; }

  int64_t total_windows() const { return total_windows_; }
  int64_t first_window() const { return begin_; }
  int64_t windows_for_rank() const { return end_ - begin_; }
  int64_t batches_for_rank() const { return (windows_for_rank() + batch_rows_ - 1) / batch_rows_; }
  int64_t uncovered_targets() const;
  const ShardHeader& shard_header() const { return shard_.header(); }

 private:
  ValidationIterator(TokenShard shard, int seq_len, int batch_rows, int64_t total, int64_t begin,
                     int64_t end)
      : shard_(std::move(shard)), seq_len_(seq_len), batch_rows_(batch_rows),
        total_windows_(total), begin_(begin), end_(end), next_(begin) {}

  TokenShard shard_;
  int seq_len_;
  int batch_rows_;
  int64_t total_windows_;
  int64_t begin_;
  int64_t end_;
  int64_t next_;
};

}  // namespace mla
