#pragma once
// Launchers of the element-wise kernels (compiled by nvcc). Each returns the
// cudaError_t of its launch as an int, so this header needs neither CUDA nor
// Abseil; layers/cuda/elementwise.h turns the codes into statuses.
#include <cstdint>

#include "base/adamw_math.h"

typedef struct CUstream_st* cudaStream_t;

namespace mla::cuda::launch {

int GeluForward(const float* u, float* h, int64_t n, cudaStream_t stream);
int GeluBackward(const float* u, const float* dh, float* du, int64_t n, cudaStream_t stream);
int AdamWStep(float* params, float* m, float* v, const float* grads, const uint8_t* decay,
              int64_t n, const AdamWStepScalars& scalars, cudaStream_t stream);
int DeviceCount(int* count);
const char* ErrorString(int code);

}  // namespace mla::cuda::launch
