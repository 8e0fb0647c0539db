#pragma once
// Warp and block reductions shared by the .cu kernel files (device code,
// C++17, no Abseil). Block reductions need blockDim.x a multiple of 32 and
// at most 1024; every thread gets the result; `shared` holds 32 floats and
// may be reused by the next call (the leading barrier protects it).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

namespace mla::cuda::launch {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Grid size covering n items with `threads` per block.
inline int Blocks(int64_t n, int threads) {
  return static_cast<int>((n + threads - 1) / threads);
}

__device__ inline float WarpSum(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ inline float WarpMax(float v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

__device__ inline float BlockSum(float v, float* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = WarpSum(v);
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  v = lane < warps ? shared[lane] : 0.0f;
  return WarpSum(v);
}

__device__ inline float BlockMax(float v, float* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / kWarp;
  v = lane < warps ? shared[lane] : -INFINITY;
  return WarpMax(v);
}

}  // namespace mla::cuda::launch
