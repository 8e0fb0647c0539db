#pragma once
// The reference peak for MFU on the CPU: GFLOP/s of a large square sgemm run
// through the same oneDNN matmul path the model uses, best of `repeats` after
// one warm-up, on the calling process's OpenMP threads.
namespace mla {

double MeasureSgemmPeakGflops(int size, int repeats);

}  // namespace mla
