#pragma once
// MLA_HOST_DEVICE marks element-wise math shared by the CPU and CUDA kernels:
// `__host__ __device__` under nvcc, nothing for the host compiler. Every header
// in layers/math/ and base/adamw_math.h uses it so the CPU tests check the same code the GPU runs.
#ifndef MLA_HOST_DEVICE
#ifdef __CUDACC__
#define MLA_HOST_DEVICE __host__ __device__
#else
#define MLA_HOST_DEVICE
#endif
#endif
