#include "runtime/data/data_loader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "runtime/data/random.h"

namespace mla {
namespace {

// Checks that the shard holds at least one window of T+1 tokens; returns W.
absl::StatusOr<int64_t> CountWindows(const TokenShard& shard, int seq_len) {
  if (seq_len <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("sequence length must be > 0, got ", seq_len));
  }
  uint64_t n = shard.size();
  if (n < static_cast<uint64_t>(seq_len) + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        shard.path(), ": context longer than the data: the shard holds ", n,
        " tokens, fewer than one window of T+1 = ", seq_len + 1, " tokens"));
  }
  uint64_t w = (n - 1) / static_cast<uint64_t>(seq_len);
  if (w > UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat(shard.path(), ": ", w, " windows exceed the loader's 2^32 limit"));
  }
  return static_cast<int64_t>(w);
}

void CopyWindow(const uint16_t* tokens, int64_t window, int seq_len, int32_t* inputs,
                int32_t* targets) {
  const uint16_t* src = tokens + window * seq_len;
  for (int t = 0; t < seq_len; ++t) inputs[t] = src[t];
  for (int t = 0; t < seq_len; ++t) targets[t] = src[t + 1];
}

absl::Status CheckRank(int rank, int world_size) {
  if (world_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("world size must be > 0, got ", world_size));
  }
  if (rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " outside 0..", world_size - 1));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LoaderState> LoaderState::FromInts(std::span<const int64_t> v) {
  if (v.size() != kNumInts) {
    return absl::InvalidArgumentError(absl::StrCat("data loader state needs ", kNumInts,
                                                   " integers (epoch, step, seed), got ",
                                                   v.size()));
  }
  return LoaderState{v[0], v[1], v[2]};
}

absl::StatusOr<DataLoader> DataLoader::Create(const std::string& shard_path,
                                              const DataLoaderOptions& options) {
  MLA_RETURN_IF_ERROR(CheckRank(options.rank, options.world_size));
  if (options.global_batch <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("global batch must be > 0 sequences, got ", options.global_batch));
  }
  if (options.global_batch % options.world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "global batch of ", options.global_batch, " sequences does not split over ",
        options.world_size, " ranks (G % N = ", options.global_batch % options.world_size,
        "; choose G a multiple of N)"));
  }
  MLA_ASSIGN_OR_RETURN(TokenShard shard, TokenShard::Open(shard_path));
  MLA_ASSIGN_OR_RETURN(int64_t windows, CountWindows(shard, options.seq_len));
  if (windows < options.global_batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        shard_path, ": the shard holds ", windows, " windows of T+1 = ", options.seq_len + 1,
        " tokens, fewer than one global batch of ", options.global_batch, " sequences"));
  }
  return DataLoader(std::move(shard), options, windows);
}

DataLoader::DataLoader(TokenShard shard, const DataLoaderOptions& options, int64_t windows)
    : shard_(std::move(shard)), seq_len_(options.seq_len), global_batch_(options.global_batch),
      rank_(options.rank), rows_(options.global_batch / options.world_size), seed_(options.seed),
      num_windows_(windows) {
  BuildPermutation(0);
}

void DataLoader::BuildPermutation(int64_t epoch) {
  permutation_.resize(static_cast<size_t>(num_windows_));
  for (size_t i = 0; i < permutation_.size(); ++i) permutation_[i] = static_cast<uint32_t>(i);
  SplitMix64 rng(MixSeed(seed_, static_cast<uint64_t>(epoch)));
  Shuffle(std::span<uint32_t>(permutation_), rng);
  permutation_epoch_ = epoch;
}

void DataLoader::NextBatch(int32_t* inputs, int32_t* targets) {
  if (permutation_epoch_ != epoch_) BuildPermutation(epoch_);
  const uint16_t* tokens = shard_.tokens().data();
  size_t first = static_cast<size_t>(step_ * global_batch_ + rank_ * rows_);
  for (int r = 0; r < rows_; ++r) {
    CopyWindow(tokens, permutation_[first + r], seq_len_,
               inputs + static_cast<size_t>(r) * seq_len_,
               targets + static_cast<size_t>(r) * seq_len_);
  }
  if (++step_ == steps_per_epoch()) {
    step_ = 0;
    ++epoch_;
  }
}

absl::Status DataLoader::Restore(const LoaderState& state) {
  if (state.epoch < 0 || state.step < 0 || state.step >= steps_per_epoch()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data loader state (epoch ", state.epoch, ", step ", state.step,
        ") does not fit this shard: an epoch has ", steps_per_epoch(), " steps of ",
        global_batch_, " sequences of T = ", seq_len_, " (",  shard_.path(), ")"));
  }
  if (static_cast<uint64_t>(state.seed) != seed_) {
    LOG(INFO) << "data loader: resuming with the saved seed " << state.seed << " (was " << seed_
              << ")";
    seed_ = static_cast<uint64_t>(state.seed);
    permutation_epoch_ = -1;
  }
  epoch_ = state.epoch;
  step_ = state.step;
  return absl::OkStatus();
}

std::vector<int64_t> DataLoader::GlobalBatchWindows(int64_t epoch, int64_t step) const {
  CHECK_GE(step, 0);
  CHECK_LT(step, steps_per_epoch());
  std::vector<uint32_t> perm(static_cast<size_t>(num_windows_));
  const std::vector<uint32_t>* p = &permutation_;
  if (permutation_epoch_ != epoch) {
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<uint32_t>(i);
    SplitMix64 rng(MixSeed(seed_, static_cast<uint64_t>(epoch)));
    Shuffle(std::span<uint32_t>(perm), rng);
    p = &perm;
  }
  std::vector<int64_t> out(static_cast<size_t>(global_batch_));
  for (int i = 0; i < global_batch_; ++i) out[i] = (*p)[step * global_batch_ + i];
  return out;
}

absl::StatusOr<ValidationIterator> ValidationIterator::Create(const std::string& shard_path,
                                                              int seq_len, int batch_rows,
                                                              int rank, int world_size) {
  MLA_RETURN_IF_ERROR(CheckRank(rank, world_size));
  if (batch_rows <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation batch must be > 0 rows, got ", batch_rows));
  }
  MLA_ASSIGN_OR_RETURN(TokenShard shard, TokenShard::Open(shard_path));
  MLA_ASSIGN_OR_RETURN(int64_t windows, CountWindows(shard, seq_len));
  int64_t begin = windows * rank / world_size;
  int64_t end = windows * (rank + 1) / world_size;
  return ValidationIterator(std::move(shard), seq_len, batch_rows, windows, begin, end);
}

int ValidationIterator::NextBatch(int32_t* inputs, int32_t* targets) {
  int rows = static_cast<int>(std::min<int64_t>(batch_rows_, end_ - next_));
  const uint16_t* tokens = shard_.tokens().data();
  for (int r = 0; r < rows; ++r) {
    CopyWindow(tokens, next_ + r, seq_len_, inputs + static_cast<size_t>(r) * seq_len_,
               targets + static_cast<size_t>(r) * seq_len_);
  }
  next_ += rows;
  return rows;
}

int64_t ValidationIterator::uncovered_targets() const {
  // N tokens give N-1 (input, target) pairs; W windows cover W*T of them.
  return static_cast<int64_t>(shard_.size()) - 1 - total_windows_ * seq_len_;
}

}  // namespace mla
