#pragma once
// SmallBatchLinear: y[M,N] (= or +=) x[M,K]·w[N,K]ᵀ (+ bias[N]) (→ GELU) for
// the few rows of a decoding step (M ≤ kSmallBatchMaxRows), reading the
// row-major weight once: each block of weight rows is multiplied with every
// x row while it is in registers. Batch-1 decoding is bound by this read, and
// a GEMM library tuned for large M streams the weight no better while paying
// per-call dispatch and threading costs.
//
// SmallBatchLinearBf16 is the same product with the weight stored as bf16
// bits (half the bytes to read): each weight is widened to float in registers
// (its 16 bits shifted into the high half, exact) and the products accumulate
// in fp32 against the fp32 x. (AVX512_BF16's dot-product instruction would
// also round x to bf16; this path rounds only the weight.)
//
// The inner products run as AVX-512 or AVX2 FMA where the CPU has them
// (chosen at run time from cpuid, so a binary built for an older -march
// still runs), else as a portable scalar loop.
//
// Threads: output rows are split across the OpenMP threads only when the
// weight holds at least kSmallBatchThreadMinBytes. Below that a parallel
// region's fork and join cost more than the read it would share (a 256 KiB
// weight is read in ~10 µs at 25 GB/s; waking and joining a second thread
// costs a few µs, more when it was descheduled on a busy machine).
#include <cstdint>

#include "layers/kernels.h"

namespace mla {

inline constexpr int64_t kSmallBatchMaxRows = 4;
// More rows than kSmallBatchMaxRows run in groups of that many over panels of
// weight rows of about this many bytes (kept in L2 between the groups).
inline constexpr int64_t kSmallBatchPanelBytes = int64_t{128} << 10;
inline constexpr int64_t kSmallBatchThreadMinBytes = int64_t{256} << 10;

enum class SimdIsa { kScalar, kAvx2, kAvx512 };

// Whether this CPU can run `isa`'s kernels (kScalar always).
bool SimdIsaAvailable(SimdIsa isa);
// The widest available ISA.
SimdIsa BestSimdIsa();
const char* SimdIsaName(SimdIsa isa);

// M ≥ 1 (fastest for M ≤ kSmallBatchMaxRows; more rows are done in groups of
// kSmallBatchMaxRows over L2-sized panels of the weight, which is how the bf16
// weights of a prefill or a large decoding batch are multiplied), K ≥ 1; bias is required unless epilogue is
// kNone; GELU is not combined with accumulate. `isa` must be available.
void SmallBatchLinear(const float* x, const float* w, const float* bias, float* y, int64_t M,
                      int64_t N, int64_t K, Epilogue epilogue, bool accumulate, SimdIsa isa);
inline void SmallBatchLinear(const float* x, const float* w, const float* bias, float* y,
                             int64_t M, int64_t N, int64_t K, Epilogue epilogue,
                             bool accumulate) {
  SmallBatchLinear(x, w, bias, y, M, N, K, epilogue, accumulate, BestSimdIsa());
}

// w: N·K bf16 bits (layers/math/bf16_math.h); otherwise as SmallBatchLinear.
void SmallBatchLinearBf16(const float* x, const uint16_t* w, const float* bias, float* y,
                          int64_t M, int64_t N, int64_t K, Epilogue epilogue, bool accumulate,
                          SimdIsa isa);
inline void SmallBatchLinearBf16(const float* x, const uint16_t* w, const float* bias, float* y,
                                 int64_t M, int64_t N, int64_t K, Epilogue epilogue,
                                 bool accumulate) {
  SmallBatchLinearBf16(x, w, bias, y, M, N, K, epilogue, accumulate, BestSimdIsa());
}

}  // namespace mla
