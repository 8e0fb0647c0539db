// CudaKernels: the decoding section of the kernel interface (layers/kernels.h)
// on one GPU, with the cache layouts of runtime/kv_cache.h.
//
//   embedding, RoPE, cache append   one .cu kernel each over the rows
//                                   (layers/cuda/decode_kernels.cu).
//   MHA                             the fused cache-attention kernel over the
//                                   K and V blocks.
//   MLA absorbed                    q̃ = W_uk,hᵀ q_h as one strided-batched
//                                   GEMM over the heads; the cache-attention
//                                   kernel over the latents (shared by the
//                                   heads) and the shared rotary key, giving
//                                   Σ_s p_s c_s per head; y_h = W_uv,h (that)
//                                   as a second batched GEMM. The cache is
//                                   never expanded.
//   MLA naive                       [K | V] = C·[W_uk; W_uv]ᵀ for each
//                                   segment's cached positions (one GEMM per
//                                   segment), then the attention kernel.
// Scratch (scores, latent queries and outputs, expansions) is grow-only.
#include <algorithm>

#include "layers/cuda/cuda_check.h"
#include "layers/cuda/cuda_kernels.h"
#include "layers/cuda/decode_kernels.h"

namespace mla::cuda {
namespace {

void Launched(int code, const char* kernel) {
  CHECK(code == cudaSuccess) << kernel << " launch: "
                             << cudaGetErrorString(static_cast<cudaError_t>(code));
}

launch::CacheAttentionArgs BaseArgs(const DecodeAttentionViews& in, const DecodeBatch& b,
                                    float* scores) {
  launch::CacheAttentionArgs a;
  a.M = b.M;
  a.S = b.S;
  a.H = in.H;
  a.L = in.cache_len;
  a.max_len = b.max_len;
  a.scale = in.scale;
  a.slot = b.device.slot;
  a.row0 = b.device.row0;
  a.pos = b.device.pos;
  a.scores = scores;
  return a;
}

}  // namespace

void CudaKernels::DecodeEmbedding(const int32_t* tokens, const float* wte, const float* wpe,
                                  float* x, int C, const DecodeBatch& b) {
  Launched(launch::DecodeEmbedding(tokens, wte, wpe, x, b.device.pos, b.M, C, stream_),
           "DecodeEmbeddingKernel");
}

void CudaKernels::DecodeRope(float* x, int64_t ld, int heads, int dims, float theta,
                             const DecodeBatch& b) {
  CHECK_EQ(dims % 2, 0);
  // Powers of two: growing the table synchronises, and decoding lengthens
  // the prefix by one position per step.
  int positions = 64;
  while (positions < b.max_len) positions *= 2;
  const RopeTable& table = GetRopeTable(dims, theta, positions);
  Launched(launch::DecodeRope(x, ld, b.M, heads, dims, b.device.pos, table.cos.data(),
                              table.sin.data(), stream_),
           "DecodeRopeKernel");
}

void CudaKernels::DecodeCacheAppend(const float* src, int64_t ld_src, int width, float* cache,
                                    int cache_len, const DecodeBatch& b) {
  Launched(launch::DecodeCacheAppend(src, ld_src, width, cache, cache_len, b.device.slot,
                                     b.device.row0, b.S, b.device.pos, b.M, stream_),
           "DecodeCacheAppendKernel");
}

void CudaKernels::DecodeAttention(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                                  int64_t ld_y) {
  const int64_t C = static_cast<int64_t>(in.H) * in.D;
  launch::CacheAttentionArgs a =
      BaseArgs(in, b, decode_scores_.Reserve(b.M * in.H * std::max(b.max_len, 1)));
  a.q = in.q;
  a.ld_q = in.ld_q;
  a.q_head = in.D;
  a.E = in.D;
  a.k = in.k;
  a.k_row = C;
  a.k_head = in.D;
  a.v = in.v;
  a.v_row = C;
  a.v_head = in.D;
  a.F = in.D;
  a.y = y;
  a.ld_y = ld_y;
  a.y_head = in.D;
  Launched(launch::CacheAttention(a, stream_), "CacheAttentionKernel (MHA)");
}

void CudaKernels::DecodeLatentAttention(const DecodeAttentionViews& in, const DecodeBatch& b,
                                        bool absorbed, float* y, int64_t ld_y) {
  const int H = in.H, D = in.D, R = in.R, P = in.P, L = in.cache_len;
  const int64_t C = static_cast<int64_t>(H) * D, HR = static_cast<int64_t>(H) * R;
  if (b.M == 0) return;
  launch::CacheAttentionArgs a =
      BaseArgs(in, b, decode_scores_.Reserve(b.M * H * std::max(b.max_len, 1)));
  if (in.q_rope != nullptr) {
    a.q_rope = in.q_rope;
    a.ld_q_rope = static_cast<int64_t>(H) * P;
    a.k_rope = in.k_rope;
    a.P = P;
  }
  if (absorbed) {
    float* q_lat = decode_q_lat_.Reserve(b.M * HR);
    float* o_lat = decode_o_lat_.Reserve(b.M * HR);
    // q̃_h[M, R] = q_h[M, D]·W_uk,h[D, R], batched over the heads.
    RowGemm(MatmulType::kF32, false, false, b.M, R, D, 1.0f, in.q, in.ld_q, D, in.w_uk, R,
            static_cast<int64_t>(D) * R, false, q_lat, HR, R, H);
    a.q = q_lat;
    a.ld_q = HR;
    a.q_head = R;
    a.E = R;
    a.k = in.latent;
    a.k_row = R;
    a.k_head = 0;
    a.v = in.latent;
    a.v_row = R;
    a.v_head = 0;
    a.F = R;
    a.y = o_lat;
    a.ld_y = HR;
    a.y_head = R;
    Launched(launch::CacheAttention(a, stream_), "CacheAttentionKernel (absorbed MLA)");
    // y_h[M, D] = ō_h[M, R]·W_uv,hᵀ, batched over the heads.
    RowGemm(MatmulType::kF32, false, true, b.M, D, R, 1.0f, o_lat, HR, R, in.w_uv, R, static_cast<int64_t>(D) * R,
            false, y, ld_y, D, H);
    return;
  }
  CHECK_EQ(in.w_uv, in.w_uk + C * R) << "naive decoding expands with W_uk and W_uv adjacent";
  int slots = 0;
  for (int s = 0; s < b.S; ++s) slots = std::max(slots, b.host.slot[s] + 1);
  float* expanded = decode_expanded_.Reserve(static_cast<int64_t>(slots) * L * 2 * C);
  for (int s = 0; s < b.S; ++s) {
    const int64_t slot = b.host.slot[s];
    const int len = b.host.pos0[s] + b.host.row0[s + 1] - b.host.row0[s];
    // [K | V] rows of the slot's cached positions, in the slot's block.
    RowGemm(MatmulType::kF32, false, true, len, 2 * C, R, 1.0f, in.latent + slot * L * R, R, 0, in.w_uk, R, 0,
            false, expanded + slot * L * 2 * C, 2 * C, 0, 1);
  }
  a.q = in.q;
  a.ld_q = in.ld_q;
  a.q_head = D;
  a.E = D;
  a.k = expanded;
  a.k_row = 2 * C;
  a.k_head = D;
  a.v = expanded + C;
  a.v_row = 2 * C;
  a.v_head = D;
  a.F = D;
  a.y = y;
  a.ld_y = ld_y;
  a.y_head = D;
  Launched(launch::CacheAttention(a, stream_), "CacheAttentionKernel (naive MLA)");
}

}  // namespace mla::cuda
