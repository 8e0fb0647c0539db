// float → bfloat16 cast kernels (launchers in layers/cuda/bf16_cast_launch.h).
// Grid-stride loops with a capped grid, so a parameter buffer of any size is
// one launch.
#include <cuda_runtime.h>

#include "layers/cuda/bf16_cast_launch.h"
#include "layers/math/bf16_math.h"

namespace mla::cuda::launch {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;

int Blocks(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < kMaxBlocks ? b : kMaxBlocks);
}

__global__ void CastToBf16Kernel(const float* x, uint16_t* y, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    y[i] = math::FloatToBf16Bits(x[i]);
}

__global__ void CastRowsToBf16Kernel(const float* x, int64_t ld, int64_t rows, int64_t cols,
                                     uint16_t* y) {
  const int64_t n = rows * cols;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += step) {
    const int64_t r = i / cols, c = i - r * cols;
    y[i] = math::FloatToBf16Bits(x[r * ld + c]);
  }
}

}  // namespace

int CastToBf16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  CastToBf16Kernel<<<Blocks(n), kThreads, 0, stream>>>(x, y, n);
  return cudaGetLastError();
}

int CastRowsToBf16(const float* x, int64_t ld, int64_t rows, int64_t cols, uint16_t* y,
                   cudaStream_t stream) {
  if (rows == 0 || cols == 0) return cudaSuccess;
  CastRowsToBf16Kernel<<<Blocks(rows * cols), kThreads, 0, stream>>>(x, ld, rows, cols, y);
  return cudaGetLastError();
}

}  // namespace mla::cuda::launch
