#pragma once
// Launchers of the CUDA decode kernels behind CudaKernels' decoding section
// (compiled by nvcc, in layers/cuda/decode_kernels.cu; host wrappers in
// layers/cuda/decode_kernels.cc): embedding and RoPE at per-row positions,
// cache appends, and one fused cache-attention kernel (scores, softmax,
// probability-weighted sum) used by every attention kind and MLA mode.
//
// Segment tables as in layers/kernels.h (DecodeTable), in device memory. A
// row finds its segment by binary search over row0. Every launch is
// asynchronous on `stream` and returns its cudaError_t as an int, so this
// header needs neither CUDA nor Abseil. Letters as in layers/kernels.h.
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace mla::cuda::launch {

// x[r·C + j] = wte[tokens[r]·C + j] (+ wpe[pos[r]·C + j] when wpe is non-null).
int DecodeEmbedding(const int32_t* tokens, const float* wte, const float* wpe, float* x,
                    const int32_t* pos, int64_t M, int C, cudaStream_t stream);

// Rotates `heads` groups of `dims` columns of each of the M rows by pos[r];
// tables [positions, dims/2] as for Rope.
int DecodeRope(float* x, int64_t ld, int64_t M, int heads, int dims, const int32_t* pos,
               const float* cos_table, const float* sin_table, cudaStream_t stream);

// cache[(slot[seg(r)]·L + pos[r])·width + j] = src[r·ld_src + j].
int DecodeCacheAppend(const float* src, int64_t ld_src, int width, float* cache, int L,
                      const int32_t* slot, const int32_t* row0, int S, const int32_t* pos,
                      int64_t M, cudaStream_t stream);

// One block per (row r, head h), position s ≤ pos[r] of the row's slot:
//   score(s) = scale·(q·k(s) + q_r·k_r(s)),  p = softmax(score),
//   y[r·ld_y + h·y_head + j] = Σ_s p(s)·v(s)_j,  j < F.
// Addresses: q at r·ld_q + h·q_head (E values); k(s) at (slot·L + s)·k_row +
// h·k_head (E values; k_head = 0 when all heads share it, the latent); the
// rotary terms (when q_rope is non-null) q_r at r·ld_q_rope + h·P and k_r(s)
// at (slot·L + s)·P; v(s) at (slot·L + s)·v_row + h·v_head (F values).
// `scores` is scratch [M·H, max_len].
struct CacheAttentionArgs {
  int64_t M = 0;
  int S = 0, H = 0, L = 0, max_len = 0;
  float scale = 1.0f;
  const int32_t* slot = nullptr;
  const int32_t* row0 = nullptr;
  const int32_t* pos = nullptr;
  const float* q = nullptr;       int64_t ld_q = 0, q_head = 0;
  int E = 0;
  const float* k = nullptr;       int64_t k_row = 0, k_head = 0;
  const float* q_rope = nullptr;  int64_t ld_q_rope = 0;
  const float* k_rope = nullptr;
  int P = 0;
  const float* v = nullptr;       int64_t v_row = 0, v_head = 0;
  int F = 0;
  float* y = nullptr;             int64_t ld_y = 0, y_head = 0;
  float* scores = nullptr;
};
int CacheAttention(const CacheAttentionArgs& args, cudaStream_t stream);

}  // namespace mla::cuda::launch
