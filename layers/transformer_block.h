#pragma once
// TransformerBlock: one pre-norm GPT block, forward and backward.
//
//   x_mid = x + Attention(LayerNorm(x; ln1))
//   x_out = x_mid + MLP(LayerNorm(x_mid; ln2)),  MLP(z) = GELU(z·W_fcᵀ + b_fc)·W_projᵀ + b_proj
//
// Rows are tokens ([B·T, C]). The training Forward keeps its activations
// (sized once by Reserve, in the kernels' memory) for Backward. The cached
// Forward (prefill and decode, runtime/decoder.h) runs the rows of a
// DecodeBatch in place on the residual stream, with the attention layer
// reading and appending the layer's KV cache (layers/attention.h); it keeps
// nothing for backward (no copies of the residual, GELU fused into the
// up-projection's epilogue). Weights are offsets into the parameter buffer;
// gradients accumulate at the same offsets of the gradient buffer.
//
// The MLP's up-projection and GELU run as one Kernels::LinearGeluForward; in
// backward, kernels that fuse GELU epilogues (Kernels::fuses_gelu_epilogues)
// get the down-projection's input gradient, GELU' and the up-projection's
// bias gradient as one LinearBackwardDGelu, the others the unfused sequence.
#include <cstdint>

#include "layers/attention.h"
#include "layers/device_array.h"
#include "layers/kernels.h"

namespace mla {

struct BlockWeights {
  int64_t ln1_w = -1, ln1_b = -1, ln2_w = -1, ln2_b = -1;
  int64_t w_fc = -1, b_fc = -1, w_proj = -1, b_proj = -1;
  AttentionWeights attn;
};

// Gradient scratch shared by all blocks of a model.
struct BlockScratch {
  AttentionScratch attn;
  DeviceArray<float> d_ln, d_fc;
};

class TransformerBlock {
 public:
  // `kernels` may be null for a block that is only sized, never run.
  TransformerBlock(Kernels* kernels, AttentionShape shape, int mlp_hidden, BlockWeights weights);

  // Training buffers for up to B sequences of T tokens.
  void Reserve(int B, int T, BlockScratch* scratch, ActivationSizer& sizer);
  // Buffers of cached calls of up to `rows` rows.
  void ReserveCached(int64_t rows, ActivationSizer& sizer);
  // Training: x_out = block(x_in); both [B·T, C].
  void Forward(const float* params, const float* x_in, float* x_out, int B, int T);
  // Cached: x[M, C] = block(x) for the M rows of `call`.
  void Forward(const float* params, float* x, const CachedCall& call, const LayerCache& cache);
  // d_res holds dL/dx_out on entry and dL/dx_in on return.
  void Backward(const float* params, float* grads, const float* x_in, float* d_res, int B, int T,
                BlockScratch* scratch);

 private:
  Kernels* kernels_;
  int C_;
  int hidden_;
  BlockWeights weights_;
  AttentionLayer attention_;
  DeviceArray<float> ln1_, ln1_mean_, ln1_rstd_, x_mid_, ln2_, ln2_mean_, ln2_rstd_;
  DeviceArray<float> fc_pre_, fc_act_;
};

}  // namespace mla
