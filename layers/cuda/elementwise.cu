#include <cuda_runtime.h>

#include "layers/cuda/elementwise_launch.h"
#include "layers/cuda/reduce.cuh"
#include "layers/math/activation_math.h"

namespace mla::cuda::launch {
namespace {

__global__ void GeluForwardKernel(const float* u, float* h, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) h[i] = math::GeluTanh(u[i]);
}

__global__ void GeluBackwardKernel(const float* u, const float* dh, float* du, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) du[i] = dh[i] * math::GeluTanhGrad(u[i]);
}

__global__ void AdamWKernel(float* p, float* m, float* v, const float* g, const uint8_t* decay,
                            int64_t n, AdamWStepScalars s) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) AdamWUpdateElement(p[i], m[i], v[i], g[i], decay[i] ? s.decay_factor : 1.0f, s);
}

}  // namespace

int GeluForward(const float* u, float* h, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  GeluForwardKernel<<<Blocks(n, 256), 256, 0, stream>>>(u, h, n);
  return cudaGetLastError();
}

int GeluBackward(const float* u, const float* dh, float* du, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  GeluBackwardKernel<<<Blocks(n, 256), 256, 0, stream>>>(u, dh, du, n);
  return cudaGetLastError();
}

int AdamWStep(float* params, float* m, float* v, const float* grads, const uint8_t* decay,
              int64_t n, const AdamWStepScalars& scalars, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  AdamWKernel<<<Blocks(n, 256), 256, 0, stream>>>(params, m, v, grads, decay, n, scalars);
  return cudaGetLastError();
}

int DeviceCount(int* count) { return cudaGetDeviceCount(count); }

const char* ErrorString(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace mla::cuda::launch
