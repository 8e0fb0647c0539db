#pragma once
// The reference peak for MFU on the CPU: the fastest fp32 GEMM rate the
// oneDNN matmul path the model uses reaches on the calling process's OpenMP
// threads, measured in the same run as the work it rates.
//
// No single size gives the best rate: operands that fit a core's L2 run
// fastest, large ones pay for the shared cache and memory, and a leading
// dimension that is a multiple of 2 KiB makes the walk down the rows hit the
// same cache sets (a 1536² sgemm with ld = 1536 ran at under half the rate of
// the same GEMM with padded rows). So the peak is the best over a ladder of
// square sizes with padded leading dimensions (kSgemmPeakSizes), each the
// fastest of `repeats` timed runs after a warm-up; callers that know their
// own GEMM shapes take the maximum with those as well
// (runtime/training_device.h).
#include <cstdint>

namespace mla {

// Square sizes of the peak ladder (the model's GEMMs sit in this range).
inline constexpr int kSgemmPeakSizes[] = {256, 384, 512, 768, 1024, 1536};

// GFLOP/s of the fastest of `repeats` runs (after one warm-up) of an n³
// sgemm whose operands have rows of n + 16 floats.
double MeasureSgemmGflops(int n, int repeats);

// The maximum of MeasureSgemmGflops over kSgemmPeakSizes.
double MeasureSgemmPeakGflops(int repeats);

}  // namespace mla
