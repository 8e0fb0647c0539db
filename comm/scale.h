#pragma once
// Multiplies a float buffer by a scalar in place: how an average is finished
// after a sum-reduction (MPI has no average operator). OpenMP-parallel for
// large buffers; deterministic (each element is one rounding of x * s).
#include <cstdint>

#include "absl/types/span.h"

namespace mla {

inline void ScaleInPlace(absl::Span<float> data, float s) {
  if (s == 1.0f) return;
  float* p = data.data();
  const int64_t n = static_cast<int64_t>(data.size());
  // Below this the fork/join costs more than the multiply.
  constexpr int64_t kParallelThreshold = 1 << 16;
#pragma omp parallel for simd schedule(static) if (n >= kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) p[i] *= s;
}

}  // namespace mla
