#pragma once
// Launchers of the float → bfloat16 cast kernels (compiled by nvcc, in
// layers/cuda/bf16_cast.cu) behind the bf16 GEMM path of CudaKernels: the
// weight shadow refreshed once per optimizer step and the activation operands
// cast per GEMM. Every element is rounded by math::FloatToBf16Bits
// (layers/math/bf16_math.h, round to nearest even), the function the CPU
// references of the tests use. bfloat16 values travel as their uint16_t bit
// patterns so host code needs no CUDA header.
//
// Pointers are device memory; every launch is asynchronous on `stream` and
// returns its cudaError_t as an int (as in kernels_launch.h).
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace mla::cuda::launch {

// y[i] = bf16(x[i]) for i < n.
int CastToBf16(const float* x, uint16_t* y, int64_t n, cudaStream_t stream);
// y[r·cols + c] = bf16(x[r·ld + c]) for r < rows, c < cols: a strided view
// (one head group of packed q|k|v rows, say) into a packed matrix.
int CastRowsToBf16(const float* x, int64_t ld, int64_t rows, int64_t cols, uint16_t* y,
                   cudaStream_t stream);

}  // namespace mla::cuda::launch
