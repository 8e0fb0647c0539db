#pragma once
// AttentionLayer: causal self-attention for the four kinds of docs/model.md,
// forward and backward, written against the Kernels interface.
//
//   mha       [q|k|v] = x·W_qkvᵀ + b                        (cache: K, V)
//   mha_rope  as mha with RoPE on q and k                   (cache: K, V)
//   mla       c_kv = x·W_dkvᵀ [R] (RMSNorm optional),
//             [k|v] = c_kv·[W_uk;W_uv]ᵀ, q = x·W_qᵀ or c_q·W_uqᵀ
//   mla_rope  mla + q_r = RoPE(s·W_qrᵀ) per head [P], k_r = RoPE(x·W_krᵀ) shared
//   out       = Attn(q, k, v)·W_oᵀ + b_o   (added into the residual stream)
//
// Shapes: input x [B·T, C]; per-head dims D = C/H; R latent rank; Q query rank;
// P rotary dims. The layer keeps the activations of its last Forward for
// Backward (buffers sized once by Reserve, in the kernels' memory). Weights are offsets into the one
// parameter buffer; gradients use the same offsets into the gradient buffer.
#include <cstdint>
#include "layers/device_array.h"
#include "layers/kernels.h"

namespace mla {

enum class RopeMode { kNone, kFullHead, kDecoupled };

struct AttentionShape {
  int C = 0, H = 0, R = 0, Q = 0, P = 0;
  bool mla = false;
  bool latent_norm = false;
  RopeMode rope = RopeMode::kNone;
  float rope_theta = 10000.0f;
  int D() const { return C / H; }
};

// Offsets (in floats) of the attention weights; -1 when the kind has none.
struct AttentionWeights {
  int64_t w_qkv = -1, b_qkv = -1;
  int64_t w_q = -1, w_dq = -1, q_norm = -1, w_uq = -1, w_qr = -1;
  int64_t w_dkv = -1, kv_norm = -1, w_uk = -1, w_uv = -1, w_kr = -1;
  int64_t w_o = -1, b_o = -1;
};

// Gradient scratch shared by all attention layers of a model (backward runs
// one layer at a time); in the kernels' memory.
struct AttentionScratch {
  DeviceArray<float> d_y, d_q, d_kv, d_qr, d_kr, d_ckv, d_ckv_raw, d_cq, d_cq_raw;
};

class AttentionLayer {
 public:
  AttentionLayer(Kernels* kernels, AttentionShape shape, AttentionWeights weights);

  // Sizes the activation buffers for batches of up to B sequences of T tokens.
  void Reserve(int B, int T, AttentionScratch* scratch);

  // residual[B·T, C] += Attention(x); x is the LayerNorm output.
  void Forward(const float* params, const float* x, float* residual, int B, int T);
  // Given d_out = dL/d(residual after the layer), accumulates parameter
  // gradients into grads and writes dL/dx into d_x.
  void Backward(const float* params, float* grads, const float* x, const float* d_out, float* d_x,
                int B, int T, AttentionScratch* scratch);

  const AttentionShape& shape() const { return shape_; }
  const AttentionWeights& weights() const { return weights_; }

 private:
  AttentionViews Views(int B, int T) const;

  Kernels* kernels_;
  AttentionShape shape_;
  AttentionWeights weights_;
  // Activations of the last Forward.
  DeviceArray<float> qkv_;                // mha kinds: [M, 3C]
  DeviceArray<float> q_, kv_, qr_, kr_;   // mla kinds: [M,C], [M,2C], [M,H·P], [M,P]
  DeviceArray<float> c_q_, c_q_n_, q_rstd_, c_kv_, c_kv_n_, kv_rstd_;
  DeviceArray<float> y_, probs_;          // [M, C], [B, H, T, T]
};

}  // namespace mla
