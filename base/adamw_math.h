#pragma once
// The AdamW update of one parameter element, shared by the CPU optimizer
// (optim/adamw.cc) and the CUDA update kernel, so the CPU tests check the
// arithmetic the GPU runs. Semantics are torch.optim.AdamW's (docs/model.md,
// "AdamW"), with the same operation order, so float32 results agree with
// PyTorch to a few roundings:
//
//   p ← p · (1 − lr·wd)                     (decayed tensors; factor 1 otherwise)
//   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / (1−β1ᵗ)) · m / (sqrt(v) / sqrt(1−β2ᵗ) + eps)
//
// The per-step scalars (bias corrections, step size) are computed once per
// step in double, as PyTorch does in Python, by AdamWStepScalars::Make.
// Pure functions; no state, no allocation.
#include <cmath>
#include <cstdint>

#include "base/host_device.h"

namespace mla {

// Everything the element update needs that is the same for every element of
// one step (decay_factor applies to decayed elements only).
struct AdamWStepScalars {
  float beta1;
  float one_minus_beta1;
  float beta2;
  float one_minus_beta2;
  float eps;
  float decay_factor;           // 1 − lr·wd
  float step_size;              // lr / (1 − β1ᵗ)
  float bias_correction2_sqrt;  // sqrt(1 − β2ᵗ)

  // `step` is t, counted from 1 (the update being made).
  static AdamWStepScalars Make(float beta1, float beta2, float eps, float weight_decay, float lr,
                               int64_t step) {
    const double t = static_cast<double>(step);
    const double lr_d = lr;
    AdamWStepScalars s;
    s.beta1 = beta1;
    s.one_minus_beta1 = static_cast<float>(1.0 - static_cast<double>(beta1));
    s.beta2 = beta2;
    s.one_minus_beta2 = static_cast<float>(1.0 - static_cast<double>(beta2));
    s.eps = eps;
    s.decay_factor = static_cast<float>(1.0 - lr_d * static_cast<double>(weight_decay));
    s.step_size = static_cast<float>(lr_d / (1.0 - std::pow(static_cast<double>(beta1), t)));
    s.bias_correction2_sqrt =
        static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(beta2), t)));
    return s;
  }
};

// One element. `decay_factor` is s.decay_factor for decayed tensors and 1
// otherwise (multiplying by 1 is exact, so no branch is needed per element).
MLA_HOST_DEVICE inline void AdamWUpdateElement(float& p, float& m, float& v, float g,
                                               float decay_factor, const AdamWStepScalars& s) {
  p = p * decay_factor;
  m = m * s.beta1 + s.one_minus_beta1 * g;
  // Products associate left to right as in PyTorch's addcmul/addcdiv kernels.
  v = v * s.beta2 + s.one_minus_beta2 * g * g;
  const float denom = sqrtf(v) / s.bias_correction2_sqrt + s.eps;
  p = p + -s.step_size * m / denom;
}

}  // namespace mla
