#pragma once
// AttentionLayer: causal self-attention for the four kinds of docs/model.md,
// written against the Kernels interface. One layer serves every call the
// model makes:
//   - the training forward over B sequences of T tokens (positions 0 … T−1),
//     keeping its activations for Backward;
//   - cached calls (prefill and single-token decode, runtime/decoder.h): the
//     rows of a DecodeBatch at per-row positions append their keys (MHA) or
//     latents (MLA) to the layer's part of the KV cache and attend to their
//     slot's cached positions.
//
//   mha       [q|k|v] = x·W_qkvᵀ + b                        (cache: K, V)
//   mha_rope  as mha with RoPE on q and k                   (cache: K, V)
//   mla       c_kv = x·W_dkvᵀ [R] (RMSNorm optional),
//             [k|v] = c_kv·[W_uk;W_uv]ᵀ, q = x·W_qᵀ or c_q·W_uqᵀ
//   mla_rope  mla + q_r = RoPE(s·W_qrᵀ) per head [P], k_r = RoPE(x·W_krᵀ) shared
//   out       = Attn(q, k, v)·W_oᵀ + b_o   (added into the residual stream)
//
// Cached MLA calls keep only c_kv (and k_r) in the cache and read it in one
// of two modes (DecodeMode): absorbed, where W_uk and W_uv are folded into
// the query and the output (score_h(s) = (W_uk,hᵀ q_h)·c_s, output
// W_uv,h Σ_s p_s c_s), or naive, which expands K and V from the latents at
// every call. The rotary part adds q_r,h·k_r(s) in both modes.
//
// Shapes: input x [M, C] (M = B·T, or the batch's rows); per-head dims
// D = C/H; R latent rank; Q query rank; P rotary dims. Buffers are sized by
// Reserve / ReserveCached (through an ActivationSizer, so the memory plan
// counts exactly what they allocate), in the kernels' memory. Weights are
// offsets into the one parameter buffer (runtime/parameter_layout.h);
// gradients use the same offsets into the gradient buffer.
#include <algorithm>
#include <cstdint>
#include <map>

#include "layers/device_array.h"
#include "layers/kernels.h"

namespace mla {

enum class RopeMode { kNone, kFullHead, kDecoupled };

// How a cached call of an MLA layer reads the latent cache.
enum class DecodeMode { kAbsorbed, kNaive };

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

// One layer's part of the KV cache (runtime/kv_cache.h): blocks
// [slots, len, width] in the kernels' memory.
struct LayerCache {
  float* first = nullptr;   // keys [C] (mha kinds) or latents c_kv [R] (mla kinds)
  float* second = nullptr;  // values [C] (mha kinds), rotary keys [P] (mla_rope), else null
  int len = 0;              // positions per slot
};

// A cached call: the rows, slots and positions of `batch` (layers/kernels.h)
// and, for MLA kinds, how the latents are read.
struct CachedCall {
  const DecodeBatch* batch = nullptr;
  DecodeMode mode = DecodeMode::kAbsorbed;
};

// Sizes activation buffers. Need(a, n) asks for at least n elements of `a`:
// with kernels it grows `a` on them (Reserve); without, it only adds up the
// bytes the same requests would allocate (runtime/memory_plan.h). A buffer
// asked for several times (scratch shared by layers) counts once, at the
// largest request.
class ActivationSizer {
 public:
  explicit ActivationSizer(Kernels* kernels) : kernels_(kernels) {}
  template <typename T>
  void Need(DeviceArray<T>& a, int64_t n) {
    int64_t& bytes = bytes_[&a];
    bytes = std::max({bytes, a.size() * static_cast<int64_t>(sizeof(T)),
                      n * static_cast<int64_t>(sizeof(T))});
    if (kernels_ == nullptr) return;
    if (a.kernels() == nullptr) a = DeviceArray<T>(kernels_);
    if (a.size() < n) a.Resize(n);
  }
  // Bytes the buffers passed to Need hold (or would hold) afterwards.
  int64_t bytes() const {
    int64_t sum = 0;
    for (const auto& [array, bytes] : bytes_) sum += bytes;
    return sum;
  }

 private:
  Kernels* kernels_;
  std::map<const void*, int64_t> bytes_;
};

// Gradient scratch shared by all attention layers of a model (backward runs
// one layer at a time); in the kernels' memory.
struct AttentionScratch {
  DeviceArray<float> d_y, d_q, d_kv, d_qr, d_kr, d_ckv, d_ckv_raw, d_cq, d_cq_raw;
};

class AttentionLayer {
 public:
  // `kernels` may be null for a layer that is only sized (ActivationSizer
  // without kernels), never run.
  AttentionLayer(Kernels* kernels, AttentionShape shape, AttentionWeights weights);

  // Training buffers for batches of up to B sequences of T tokens.
  void Reserve(int B, int T, AttentionScratch* scratch, ActivationSizer& sizer);
  // Buffers of cached calls of up to `rows` rows.
  void ReserveCached(int64_t rows, ActivationSizer& sizer);

  // Training: residual[B·T, C] += Attention(x); x is the LayerNorm output.
  void Forward(const float* params, const float* x, float* residual, int B, int T);
  // Cached: residual[M, C] += Attention(x) for the M rows of `call`, after
  // appending their keys / latents to `cache`.
  void Forward(const float* params, const float* x, float* residual, const CachedCall& call,
               const LayerCache& cache);
  // Given d_out = dL/d(residual after the layer), accumulates parameter
  // gradients into grads and writes dL/dx into d_x.
  void Backward(const float* params, float* grads, const float* x, const float* d_out, float* d_x,
                int B, int T, AttentionScratch* scratch);

 private:
  // The projections both calls share: q (or [q|k|v]), the latent c_kv
  // (normalised when latent_norm; returned), q_r and k_r, with RoPE applied
  // by `rope(x, ld, heads, dims)` at the call's positions.
  template <typename RopeFn>
  const float* Project(const float* params, const float* x, int64_t M, RopeFn rope);
  AttentionViews Views(int B, int T) const;
  DecodeAttentionViews CachedViews(const float* params, const LayerCache& cache) const;

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
