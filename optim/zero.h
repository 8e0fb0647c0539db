#pragma once
// Gradient synchronisation across data-parallel ranks, and ZeRO-1 sharding of
// the optimizer state.
//
// Plain data parallelism (GradientSync::kAllReduce): every rank holds the
// whole gradient buffer; GradientReducer averages it with non-blocking
// all-reduces over buckets that start while backward still runs.
//
// ZeRO-1 (GradientSync::kReduceScatter): each rank owns the optimizer state
// (AdamW m, v) of one shard, ShardRange(total, rank, size), only. The
// gradient buffer is reduce-scattered (average) so each rank holds its
// shard's averaged gradient, AdamW updates that shard of the parameters, and
// Zero1Sharding::AllGatherParameters gives every rank the whole updated
// buffer. The reduce-scatter runs once, in GradientReducer::Finish, over the
// whole buffer (see docs/communication.md for why: one collective moving
// (N−1)/N of the bytes instead of bucketed all-reduces moving twice that).
//
// Thread safety: none; every call is collective except MarkReady in
// kReduceScatter mode. The communicator and buffers must outlive the objects.
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "comm/communicator.h"

namespace mla {

enum class GradientSync {
  kAllReduce,      // every rank gets the whole averaged gradient
  kReduceScatter,  // ZeRO-1: every rank gets its shard of the averaged gradient
};

// Averages the gradient buffer across ranks during backward.
//
// Per step the training loop calls MarkReady(a, b) as backward finishes the
// gradients of [a, b) (usually whole tensors, from the last to the first),
// then Finish() before clipping and the optimizer. Adjacent ready ranges are
// merged; once a merged region holds bucket_mb of floats it is cut into
// bucket-sized all-reduces, started at once. Every rank must mark the same
// ranges in the same order (backward's order is the same on every rank).
// Each call also polls the requests in flight so MPI progresses them while
// backward computes.
class GradientReducer {
 public:
  GradientReducer(Communicator* comm, absl::Span<float> grads, GradientSync mode,
                  double bucket_mb);
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  absl::Status MarkReady(int64_t begin, int64_t end);
  // Starts what is still pending, waits for everything, and checks that every
  // element was marked exactly once this step; then the reducer is ready for
  // the next step. After OK: kAllReduce: the whole buffer is the average over
  // ranks; kReduceScatter: this rank's shard is.
  absl::Status Finish();

  GradientSync mode() const { return mode_; }
  int64_t bucket_floats() const { return bucket_floats_; }
  // Buckets started in the current (or, after Finish, the last) step.
  int64_t buckets_started() const { return buckets_started_; }

 private:
  // Starts all-reduces over [begin, end) in pieces of at most bucket_floats_.
  absl::Status Launch(int64_t begin, int64_t end);
  absl::Status Poll();

  Communicator* comm_;
  absl::Span<float> grads_;
  GradientSync mode_;
  int64_t bucket_floats_;
  // Ready but not yet started: [pending_begin_, pending_end_).
  int64_t pending_begin_ = 0;
  int64_t pending_end_ = 0;
  bool growing_down_ = true;
  int64_t marked_ = 0;
  int64_t buckets_started_ = 0;
  std::vector<CommRequest> in_flight_;
};

// The ZeRO-1 view of a `total`-element flat buffer for this rank.
class Zero1Sharding {
 public:
  Zero1Sharding(Communicator* comm, int64_t total);

  // The elements whose optimizer state this rank owns and updates.
  ElementRange shard() const { return shard_; }
  // Collective: grads (whole buffer) → this rank's shard holds the average.
  absl::Status ReduceScatterGradients(absl::Span<float> grads);
  // Collective: params (whole buffer) with this rank's shard updated → every
  // rank holds every updated shard.
  absl::Status AllGatherParameters(absl::Span<float> params);

 private:
  Communicator* comm_;
  int64_t total_;
  ElementRange shard_;
};

}  // namespace mla
