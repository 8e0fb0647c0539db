#include "optim/clip.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "base/status_macros.h"
#include "comm/scale.h"

namespace mla {
namespace {

// Block of the deterministic sum: large enough to amortise scheduling,
// small enough to balance two to a few dozen threads.
constexpr int64_t kBlock = 1 << 16;

// Blocks summed per parallel pass; their partial sums live on the stack so
// the training step allocates nothing.
constexpr int64_t kBlocksPerPass = 256;

double SumOfSquares(absl::Span<const float> x) {
  const int64_t n = static_cast<int64_t>(x.size());
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  const float* data = x.data();
  double total = 0.0;
  for (int64_t first = 0; first < blocks; first += kBlocksPerPass) {
    const int64_t count = std::min(kBlocksPerPass, blocks - first);
    double partial[kBlocksPerPass];
#pragma omp parallel for schedule(static) if (count > 1)
    for (int64_t j = 0; j < count; ++j) {
      const int64_t b = first + j;
      const int64_t end = std::min(n, (b + 1) * kBlock);
      // Eight independent accumulators: a fixed order that still vectorises.
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = b * kBlock;
      for (; i + 8 <= end; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(data[i + k]) * data[i + k];
      for (; i < end; ++i) acc[0] += static_cast<double>(data[i]) * data[i];
      partial[j] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    for (int64_t j = 0; j < count; ++j) total += partial[j];
  }
  return total;
}

}  // namespace

absl::StatusOr<double> GlobalGradNorm(absl::Span<const float> grads, Communicator* shard_comm) {
  double sum = SumOfSquares(grads);
  if (shard_comm != nullptr)
    MLA_RETURN_IF_ERROR(shard_comm->AllReduce(absl::MakeSpan(&sum, 1), ReduceOp::kSum));
  return std::sqrt(sum);
}

absl::StatusOr<ClipResult> ClipGradNorm(absl::Span<float> grads, double max_norm,
                                        Communicator* shard_comm) {
  ClipResult result;
  MLA_ASSIGN_OR_RETURN(result.norm, GlobalGradNorm(grads, shard_comm));
  result.finite = std::isfinite(result.norm);
  if (!result.finite || max_norm <= 0.0) return result;
  const double scale = max_norm / (result.norm + 1e-6);
  if (scale < 1.0) {
    result.scale = static_cast<float>(scale);
    ScaleInPlace(grads, result.scale);
  }
  return result;
}

}  // namespace mla
