#pragma once
// Global gradient-norm clipping over the flat gradient buffer.
//
// The norm is sqrt(Σ g²) with the sum of squares accumulated in double in a
// fixed order (fixed blocks summed in parallel, block sums added in index
// order), so it does not depend on the thread count. When the buffer is
// sharded (ZeRO-1: each rank holds only its averaged shard) the per-rank sums
// are all-reduced; otherwise no communication happens. Gradients are scaled
// by min(1, max_norm / (norm + 1e-6)) as torch.nn.utils.clip_grad_norm_ does.
// A non-finite norm (an inf/NaN gradient) is reported, not clipped: the caller
// decides (skip the step, abort). Thread safety: none; collective when sharded.
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "comm/communicator.h"

namespace mla {

// `grads` is the whole gradient buffer (shard_comm == nullptr) or this rank's
// shard of it (shard_comm: the communicator whose ranks hold the other shards).
absl::StatusOr<double> GlobalGradNorm(absl::Span<const float> grads, Communicator* shard_comm);

struct ClipResult {
  double norm = 0.0;   // before clipping
  float scale = 1.0f;  // applied to the gradients (1: untouched)
  bool finite = true;  // false: norm is inf/NaN and nothing was scaled
};

// Computes the global norm and, when max_norm > 0 and the norm exceeds it,
// scales `grads` in place. max_norm <= 0 disables clipping (norm only).
absl::StatusOr<ClipResult> ClipGradNorm(absl::Span<float> grads, double max_norm,
                                        Communicator* shard_comm);

}  // namespace mla
