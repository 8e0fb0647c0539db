#pragma once
// Element-wise CUDA kernels built from the shared math in layers/math/ (the
// same inline functions the CPU kernels run, so the CPU tests check this math):
// tanh-GELU forward/backward and the AdamW update, callable on their own
// (CudaKernels, layers/cuda/cuda_kernels.h, uses the same launchers).
//
// Pointers are device memory; calls are asynchronous on `stream` (0: the
// default stream). Launch failures come back as a status naming the call.
#include <cstdint>

#include "absl/status/status.h"
#include "base/adamw_math.h"

typedef struct CUstream_st* cudaStream_t;

namespace mla::cuda {

// True when a CUDA device is visible to this process.
bool DeviceAvailable();

absl::Status GeluForward(const float* u, float* h, int64_t n, cudaStream_t stream);
absl::Status GeluBackward(const float* u, const float* dh, float* du, int64_t n,
                          cudaStream_t stream);
// One AdamW step over n elements; decay[i] != 0 marks decayed elements.
absl::Status AdamWStep(float* params, float* m, float* v, const float* grads,
                       const uint8_t* decay, int64_t n, const AdamWStepScalars& scalars,
                       cudaStream_t stream);

}  // namespace mla::cuda
