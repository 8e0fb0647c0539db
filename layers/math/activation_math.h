#pragma once
// Element-wise math shared by the CPU and CUDA kernels: tanh-GELU and its
// derivative, RoPE pair rotation, and the numerically stable pieces of a
// softmax row. Pure inline functions of their arguments.
#include <cmath>

#include "layers/math/host_device.h"

namespace mla::math {

inline constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2/pi)
inline constexpr float kGeluCubic = 0.044715f;

// tanh written through exp so compilers vectorise it (libmvec / __expf).
MLA_HOST_DEVICE inline float FastTanh(float z) {
  // tanh(z) = 1 - 2/(exp(2z)+1); exact at the limits: exp overflow gives 1.
  return 1.0f - 2.0f / (expf(2.0f * z) + 1.0f);
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
