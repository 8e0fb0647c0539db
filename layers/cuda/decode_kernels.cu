// CUDA decode kernels (layers/cuda/decode_kernels.h). C++17, no Abseil.
#include <cuda_runtime.h>

#include "layers/cuda/decode_kernels.h"
#include "layers/cuda/reduce.cuh"
#include "layers/math/activation_math.h"

namespace mla::cuda::launch {
namespace {

constexpr int kThreads = 256;

// The segment s with row0[s] ≤ r < row0[s + 1].
__device__ int SegmentOf(const int32_t* row0, int S, int64_t r) {
  int lo = 0, hi = S - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (row0[mid] <= r)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

__global__ void DecodeEmbeddingKernel(const int32_t* tokens, const float* wte, const float* wpe,
                                      float* x, const int32_t* pos, int64_t M, int C) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= M * C) return;
  const int64_t r = i / C, j = i % C;
  float v = wte[static_cast<int64_t>(tokens[r]) * C + j];
  if (wpe != nullptr) v += wpe[static_cast<int64_t>(pos[r]) * C + j];
  x[i] = v;
}

__global__ void DecodeRopeKernel(float* x, int64_t ld, int64_t M, int heads, int dims,
                                 const int32_t* pos, const float* cos_table,
                                 const float* sin_table) {
  const int half = dims / 2;
  const int64_t per_row = static_cast<int64_t>(heads) * half;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= M * per_row) return;
  const int64_t r = idx / per_row;
  const int h = static_cast<int>((idx % per_row) / half);
  const int i = static_cast<int>(idx % half);
  const int64_t p = pos[r];
  float* z = x + r * ld + static_cast<int64_t>(h) * dims + 2 * i;
  math::RopeRotatePair(z[0], z[1], cos_table[p * half + i], sin_table[p * half + i]);
}

__global__ void DecodeCacheAppendKernel(const float* src, int64_t ld_src, int width, float* cache,
                                        int L, const int32_t* slot, const int32_t* row0, int S,
                                        const int32_t* pos, int64_t M) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= M * width) return;
  const int64_t r = i / width, j = i % width;
  const int64_t s = slot[SegmentOf(row0, S, r)];
  cache[(s * L + pos[r]) * width + j] = src[r * ld_src + j];
}

// One block per (row, head); dynamic shared memory holds the query [E] and
// rotary query [P]. Warps take keys in turn (lanes along the key, so reads
// are coalesced), then the block normalises and forms the weighted sum with
// threads along the output columns.
__global__ void CacheAttentionKernel(CacheAttentionArgs a) {
  extern __shared__ float qs[];
  __shared__ float red[kWarp];
  const int64_t rh = blockIdx.x;
  const int64_t r = rh / a.H;
  const int h = static_cast<int>(rh % a.H);
  const int64_t slot = a.slot[SegmentOf(a.row0, a.S, r)];
  const int len = a.pos[r] + 1;
  const bool rope = a.q_rope != nullptr;
  const float* q = a.q + r * a.ld_q + h * a.q_head;
  for (int e = threadIdx.x; e < a.E; e += blockDim.x) qs[e] = q[e];
  if (rope)
    for (int e = threadIdx.x; e < a.P; e += blockDim.x)
      qs[a.E + e] = a.q_rope[r * a.ld_q_rope + static_cast<int64_t>(h) * a.P + e];
  __syncthreads();
  float* sc = a.scores + rh * a.max_len;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  for (int s = warp; s < len; s += warps) {
    const int64_t row = slot * a.L + s;
    const float* k = a.k + row * a.k_row + h * a.k_head;
    float dot = 0.0f;
    for (int e = lane; e < a.E; e += kWarp) dot += qs[e] * k[e];
    if (rope) {
      const float* kr = a.k_rope + row * a.P;
      for (int e = lane; e < a.P; e += kWarp) dot += qs[a.E + e] * kr[e];
    }
    dot = WarpSum(dot);
    if (lane == 0) sc[s] = a.scale * dot;
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int s = threadIdx.x; s < len; s += blockDim.x) mx = fmaxf(mx, sc[s]);
  mx = BlockMax(mx, red);
  float sum = 0.0f;
  for (int s = threadIdx.x; s < len; s += blockDim.x) {
    const float e = math::Exp(sc[s] - mx);
    sc[s] = e;
    sum += e;
  }
  sum = BlockSum(sum, red);  // its barriers also publish the sc writes
  const float inv = 1.0f / sum;
  float* y = a.y + r * a.ld_y + h * a.y_head;
  const float* v0 = a.v + slot * a.L * a.v_row + h * a.v_head;
  for (int j = threadIdx.x; j < a.F; j += blockDim.x) {
    float acc = 0.0f;
    for (int s = 0; s < len; ++s) acc += sc[s] * v0[s * a.v_row + j];
    y[j] = acc * inv;
  }
}

}  // namespace

int DecodeEmbedding(const int32_t* tokens, const float* wte, const float* wpe, float* x,
                    const int32_t* pos, int64_t M, int C, cudaStream_t stream) {
  const int64_t n = M * C;
  if (n == 0) return cudaSuccess;
  DecodeEmbeddingKernel<<<Blocks(n, kThreads), kThreads, 0, stream>>>(tokens, wte, wpe, x, pos,
                                                                      M, C);
  return cudaGetLastError();
}

int DecodeRope(float* x, int64_t ld, int64_t M, int heads, int dims, const int32_t* pos,
               const float* cos_table, const float* sin_table, cudaStream_t stream) {
  const int64_t n = M * heads * (dims / 2);
  if (n == 0) return cudaSuccess;
  DecodeRopeKernel<<<Blocks(n, kThreads), kThreads, 0, stream>>>(x, ld, M, heads, dims, pos,
                                                                 cos_table, sin_table);
  return cudaGetLastError();
}

int DecodeCacheAppend(const float* src, int64_t ld_src, int width, float* cache, int L,
                      const int32_t* slot, const int32_t* row0, int S, const int32_t* pos,
                      int64_t M, cudaStream_t stream) {
  const int64_t n = M * width;
  if (n == 0) return cudaSuccess;
  DecodeCacheAppendKernel<<<Blocks(n, kThreads), kThreads, 0, stream>>>(src, ld_src, width, cache,
                                                                        L, slot, row0, S, pos, M);
  return cudaGetLastError();
}

int CacheAttention(const CacheAttentionArgs& args, cudaStream_t stream) {
  const int64_t blocks = args.M * args.H;
  if (blocks == 0) return cudaSuccess;
  const size_t shared = static_cast<size_t>(args.E + (args.q_rope != nullptr ? args.P : 0)) *
                        sizeof(float);
  if (shared > 48 * 1024) return cudaErrorInvalidValue;  // E beyond the default shared memory
  CacheAttentionKernel<<<static_cast<unsigned>(blocks), kThreads, shared, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace mla::cuda::launch
