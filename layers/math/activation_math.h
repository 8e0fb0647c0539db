#pragma once
// Element-wise math shared by the CPU and CUDA kernels: tanh-GELU and its
// derivative, RoPE pair rotation, and the numerically stable pieces of a
// softmax row. Pure inline functions of their arguments.
#include <cmath>
#include <cstdint>
#include <cstring>
#ifndef __CUDACC__
#include <bit>
#endif

#include "base/host_device.h"

namespace mla::math {

inline constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
inline constexpr float kGeluCubic = 0.044715f;

// exp(x) for float. On the GPU the hardware expf; on the host a branch-free
// Cephes-style range reduction (x = n·ln2 + r, |r| ≤ ln2/2, degree-6
// polynomial for e^r, 2^n through the exponent bits), accurate to about
// 2 ulp, which compilers vectorise inside `omp simd` loops (glibc's vector
// expf is only offered under -ffast-math). Inputs are clamped to
// [-87.3, 88.7], so e^x never overflows and tiny results flush to ~1e-38.
MLA_HOST_DEVICE inline float Exp(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);  // ternaries vectorise; fminf does not
  // Round x/ln2 to nearest by adding and removing 1.5·2^23 (vectorises,
  // unlike floorf without -fno-trapping-math).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
#ifdef __CUDACC__
  float scale;  // nvcc's host pass is C++17: no std::bit_cast
  std::memcpy(&scale, &bits, sizeof(scale));
#else
  const float scale = std::bit_cast<float>(bits);  // memcpy would block vectorisation
#endif
  return p * scale;
#endif
}

// tanh through exp: 1 − 2/(e^{2z}+1); saturates cleanly at ±1.
MLA_HOST_DEVICE inline float FastTanh(float z) {
  return 1.0f - 2.0f / (Exp(2.0f * z) + 1.0f);
}

// GELU(u) = 0.5·u·(1 + tanh(√(2/π)(u + 0.044715·u³))).
MLA_HOST_DEVICE inline float GeluTanh(float u) {
  const float z = kGeluScale * (u + kGeluCubic * u * u * u);
  return 0.5f * u * (1.0f + FastTanh(z));
}

// dGELU/du for the tanh form.
MLA_HOST_DEVICE inline float GeluTanhGrad(float u) {
  const float z = kGeluScale * (u + kGeluCubic * u * u * u);
  const float t = FastTanh(z);
  const float dz = kGeluScale * (1.0f + 3.0f * kGeluCubic * u * u);
  return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * dz;
}

// Rotates the pair (x0, x1) by the angle whose cosine and sine are c and s.
// The backward pass rotates gradients by the opposite angle (pass -s).
MLA_HOST_DEVICE inline void RopeRotatePair(float& x0, float& x1, float c, float s) {
  const float a = x0 * c - x1 * s;
  const float b = x0 * s + x1 * c;
  x0 = a;
  x1 = b;
}

// Frequency of pair i for n rotary dims: theta^(-2i/n).
MLA_HOST_DEVICE inline float RopeFrequency(int pair, int dims, float theta) {
  return powf(theta, -2.0f * static_cast<float>(pair) / static_cast<float>(dims));
}

// Softmax-backward for one row: dS = P ∘ (dP − Σ_j dP_j·P_j).
MLA_HOST_DEVICE inline float SoftmaxGrad(float p, float dp, float row_dot) {
  return p * (dp - row_dot);
}

}  // namespace mla::math
