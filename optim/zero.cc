#include "optim/zero.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "glog/logging.h"

namespace mla {

GradientReducer::GradientReducer(Communicator* comm, absl::Span<float> grads, GradientSync mode,
                                 double bucket_mb)
    : comm_(comm), grads_(grads), mode_(mode) {
  CHECK(comm != nullptr);
  CHECK_GT(bucket_mb, 0.0);
  // Whole cache lines per bucket; at least one line.
  const int64_t floats = static_cast<int64_t>(bucket_mb * 1024.0 * 1024.0 / sizeof(float));
  bucket_floats_ = std::max<int64_t>(kShardAlignment, floats / kShardAlignment * kShardAlignment);
  // Enough slots for every bucket of a step plus one split per merge break,
  // so no step after the first reallocates.
  const int64_t total = static_cast<int64_t>(grads.size());
  in_flight_.reserve(static_cast<size_t>(2 * (total / bucket_floats_ + 1)));
}

absl::Status GradientReducer::Launch(int64_t begin, int64_t end) {
  for (int64_t a = begin; a < end; a += bucket_floats_) {
    const int64_t b = std::min(end, a + bucket_floats_);
    MLA_ASSIGN_OR_RETURN(CommRequest request,
                         comm_->StartAllReduce(grads_.subspan(a, b - a), ReduceOp::kAverage));
    in_flight_.push_back(std::move(request));
    ++buckets_started_;
  }
  return absl::OkStatus();
}

absl::Status GradientReducer::Poll() {
  for (CommRequest& request : in_flight_) {
    if (!request.pending()) continue;
    MLA_ASSIGN_OR_RETURN(bool done, request.Test());
    (void)done;
  }
  return absl::OkStatus();
}

absl::Status GradientReducer::MarkReady(int64_t begin, int64_t end) {
  const int64_t total = static_cast<int64_t>(grads_.size());
  if (begin < 0 || end < begin || end > total)
    return absl::InvalidArgumentError(absl::StrCat("GradientReducer::MarkReady: range [", begin,
                                                   ", ", end, ") outside [0, ", total, ")"));
  if (marked_ == 0) buckets_started_ = 0;
  marked_ += end - begin;
  if (mode_ == GradientSync::kReduceScatter || begin == end) return absl::OkStatus();

  if (pending_begin_ == pending_end_) {
    pending_begin_ = begin;
    pending_end_ = end;
    growing_down_ = true;  // backward usually walks the buffer from the end
  } else if (end == pending_begin_) {
    pending_begin_ = begin;
    growing_down_ = true;
  } else if (begin == pending_end_) {
    pending_end_ = end;
    growing_down_ = false;
  } else {
    MLA_RETURN_IF_ERROR(Launch(pending_begin_, pending_end_));
    pending_begin_ = begin;
    pending_end_ = end;
    growing_down_ = true;
  }
  // Start whole buckets from the end away from the growth, so the remainder
  // stays adjacent to where the next ready range will arrive.
  const int64_t full = (pending_end_ - pending_begin_) / bucket_floats_ * bucket_floats_;
  if (full > 0) {
    if (growing_down_) {
      MLA_RETURN_IF_ERROR(Launch(pending_end_ - full, pending_end_));
      pending_end_ -= full;
    } else {
      MLA_RETURN_IF_ERROR(Launch(pending_begin_, pending_begin_ + full));
      pending_begin_ += full;
    }
  }
  return Poll();
}

absl::Status GradientReducer::Finish() {
  const int64_t total = static_cast<int64_t>(grads_.size());
  const int64_t marked = marked_;
  if (marked_ == 0) buckets_started_ = 0;
  marked_ = 0;
  absl::Status status;
  if (mode_ == GradientSync::kAllReduce) {
    if (pending_end_ > pending_begin_) status = Launch(pending_begin_, pending_end_);
    pending_begin_ = pending_end_ = 0;
    // Wait for every request even after a failure, so none is left writing.
    for (CommRequest& request : in_flight_) {
      absl::Status s = request.Wait();
      if (status.ok()) status = s;
    }
    in_flight_.clear();
  } else if (marked == total) {
    status = comm_->ReduceScatter(grads_, ReduceOp::kAverage);
    buckets_started_ = 1;
  }
  MLA_RETURN_IF_ERROR(status);
  if (marked != total)
    return absl::FailedPreconditionError(
        absl::StrCat("GradientReducer::Finish: ", marked, " gradient elements marked ready, the "
                     "buffer holds ", total, " (a range was missed or marked twice)"));
  return absl::OkStatus();
}

Zero1Sharding::Zero1Sharding(Communicator* comm, int64_t total)
    : comm_(comm), total_(total), shard_(ShardRange(total, comm->rank(), comm->size())) {}

absl::Status Zero1Sharding::ReduceScatterGradients(absl::Span<float> grads) {
  CHECK_EQ(static_cast<int64_t>(grads.size()), total_);
  return comm_->ReduceScatter(grads, ReduceOp::kAverage);
}

absl::Status Zero1Sharding::AllGatherParameters(absl::Span<float> params) {
  CHECK_EQ(static_cast<int64_t>(params.size()), total_);
  return comm_->AllGather(params);
}

}  // namespace mla
