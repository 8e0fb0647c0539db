// The CUDA kernels behind CudaKernels (launchers declared in
// layers/cuda/kernels_launch.h). Row kernels give one block (normalisation,
// cross-entropy) or one warp (causal softmax) to a row and reduce with warp
// shuffles; column reductions (weight/bias gradients) sum a chunk of rows per
// block in registers and shared memory and add the chunk's partial sum with
// one atomicAdd per column, so results are not bitwise deterministic across
// runs (the order of the chunk sums varies) but each is a sum of the same
// terms. The element-wise math comes from layers/math/.
#include <cuda_runtime.h>

#include "layers/cuda/kernels_launch.h"
#include "layers/cuda/reduce.cuh"
#include "layers/math/activation_math.h"

namespace mla::cuda::launch {
namespace {

constexpr int kRowThreads = 256;
constexpr float kNormEps = 1e-5f;  // docs/model.md: LN and RMSNorm eps

__global__ void LayerNormForwardKernel(const float* x, const float* w, const float* b, float* y,
                                       float* mean, float* rstd, int64_t C) {
  __shared__ float shared[kWarp];
  const int64_t row = blockIdx.x;
  const float* xi = x + row * C;
  float* yi = y + row * C;
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += xi[j];
  const float m = BlockSum(s, shared) / static_cast<float>(C);
  float var = 0.0f;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) var += (xi[j] - m) * (xi[j] - m);
  const float r = 1.0f / sqrtf(BlockSum(var, shared) / static_cast<float>(C) + kNormEps);
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) yi[j] = (xi[j] - m) * r * w[j] + b[j];
  if (threadIdx.x == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

__global__ void LayerNormBackwardRowsKernel(const float* dy, const float* x, const float* w,
                                            const float* mean, const float* rstd, float* dx,
                                            int64_t C) {
  __shared__ float shared[kWarp];
  const int64_t row = blockIdx.x;
  const float* xi = x + row * C;
  const float* dyi = dy + row * C;
  float* dxi = dx + row * C;
  const float m = mean[row], r = rstd[row];
  float g_sum = 0.0f, gx_sum = 0.0f;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const float xh = (xi[j] - m) * r;
    const float g = dyi[j] * w[j];
    g_sum += g;
    gx_sum += g * xh;
  }
  const float mean_g = BlockSum(g_sum, shared) / static_cast<float>(C);
  const float mean_gx = BlockSum(gx_sum, shared) / static_cast<float>(C);
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
    const float xh = (xi[j] - m) * r;
    dxi[j] += r * (dyi[j] * w[j] - mean_g - xh * mean_gx);
  }
}

__global__ void RmsNormForwardKernel(const float* x, const float* w, float* y, float* rstd,
                                     int64_t C) {
  __shared__ float shared[kWarp];
  const int64_t row = blockIdx.x;
  const float* xi = x + row * C;
  float* yi = y + row * C;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) ss += xi[j] * xi[j];
  const float r = 1.0f / sqrtf(BlockSum(ss, shared) / static_cast<float>(C) + kNormEps);
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) yi[j] = xi[j] * r * w[j];
  if (threadIdx.x == 0) rstd[row] = r;
}

__global__ void RmsNormBackwardRowsKernel(const float* dy, const float* x, const float* w,
                                          const float* rstd, float* dx, int64_t C) {
  __shared__ float shared[kWarp];
  const int64_t row = blockIdx.x;
  const float* xi = x + row * C;
  const float* dyi = dy + row * C;
  float* dxi = dx + row * C;
  const float r = rstd[row];
  float dot = 0.0f;
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) dot += dyi[j] * w[j] * xi[j];
  const float k = BlockSum(dot, shared) * r * r / static_cast<float>(C);
  for (int64_t j = threadIdx.x; j < C; j += blockDim.x) dxi[j] = r * (dyi[j] * w[j] - xi[j] * k);
}

// Column reductions: block (32 columns × 8 row lanes) over a chunk of rows.
constexpr int kColTile = 32;
constexpr int kRowLanes = 8;
constexpr int kRowsPerChunk = 256;

// term(i, j) for the weight-gradient sums of the normalisations.
struct SumTerm {
  const float* a;
  int64_t ld;
  __device__ float operator()(int64_t i, int64_t j) const { return a[i * ld + j]; }
};
struct LayerNormWeightTerm {
  const float* dy;
  const float* x;
  const float* mean;
  const float* rstd;
  int64_t C;
  __device__ float operator()(int64_t i, int64_t j) const {
    return dy[i * C + j] * (x[i * C + j] - mean[i]) * rstd[i];
  }
};
struct RmsNormWeightTerm {
  const float* dy;
  const float* x;
  const float* rstd;
  int64_t C;
  __device__ float operator()(int64_t i, int64_t j) const {
    return dy[i * C + j] * x[i * C + j] * rstd[i];
  }
};

template <typename Term>
__global__ void ColumnReduceKernel(Term term, int64_t M, int64_t N, float* out) {
  __shared__ float partial[kRowLanes][kColTile];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kRowsPerChunk;
  const int64_t i1 = i0 + kRowsPerChunk < M ? i0 + kRowsPerChunk : M;
  float s = 0.0f;
  if (j < N)
    for (int64_t i = i0 + threadIdx.y; i < i1; i += kRowLanes) s += term(i, j);
  partial[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < N) {
    for (int r = 1; r < kRowLanes; ++r) s += partial[r][threadIdx.x];
    atomicAdd(out + j, s);
  }
}

template <typename Term>
int LaunchColumnReduce(Term term, int64_t M, int64_t N, float* out, cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  const dim3 grid(Blocks(N, kColTile), Blocks(M, kRowsPerChunk));
  ColumnReduceKernel<<<grid, dim3(kColTile, kRowLanes), 0, stream>>>(term, M, N, out);
  return cudaGetLastError();
}

__global__ void AddBiasRowsKernel(const float* bias, float* y, int64_t M, int64_t N) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < M * N) y[i] += bias[i % N];
}

__global__ void EmbeddingForwardKernel(const int32_t* tokens, const float* wte, const float* wpe,
                                       float* x, int T, int C) {
  const int64_t row = blockIdx.x;
  const float* e = wte + static_cast<int64_t>(tokens[row]) * C;
  const float* p = wpe != nullptr ? wpe + (row % T) * C : nullptr;
  float* xi = x + row * C;
  for (int j = threadIdx.x; j < C; j += blockDim.x) xi[j] = p != nullptr ? e[j] + p[j] : e[j];
}

__global__ void EmbeddingBackwardKernel(const int32_t* tokens, const float* dx, float* dwte,
                                        float* dwpe, int T, int C) {
  const int64_t row = blockIdx.x;
  const float* g = dx + row * C;
  float* e = dwte + static_cast<int64_t>(tokens[row]) * C;
  float* p = dwpe != nullptr ? dwpe + (row % T) * C : nullptr;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    atomicAdd(e + j, g[j]);
    if (p != nullptr) atomicAdd(p + j, g[j]);
  }
}

__global__ void RopeKernel(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads,
                           int dims, const float* cos_table, const float* sin_table,
                           float sign) {
  const int half = dims / 2;
  const int64_t per_row = static_cast<int64_t>(heads) * half;
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= rows * per_row) return;
  const int64_t r = idx / per_row;
  const int h = static_cast<int>((idx % per_row) / half);
  const int i = static_cast<int>(idx % half);
  const int64_t pos = (r % T) + pos0;
  float* z = x + r * ld + static_cast<int64_t>(h) * dims + 2 * i;
  math::RopeRotatePair(z[0], z[1], cos_table[pos * half + i], sign * sin_table[pos * half + i]);
}

// One warp per row of T scores.
__global__ void CausalSoftmaxKernel(float* scores, int64_t rows, int T) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (row >= rows) return;
  const int t = static_cast<int>(row % T);
  float* s = scores + row * T;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j <= t; j += kWarp) mx = fmaxf(mx, s[j]);
  mx = WarpMax(mx);
  float sum = 0.0f;
  for (int j = threadIdx.x; j <= t; j += kWarp) {
    const float e = math::Exp(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  const float inv = 1.0f / WarpSum(sum);
  for (int j = threadIdx.x; j < T; j += kWarp) s[j] = j <= t ? s[j] * inv : 0.0f;
}

__global__ void CausalSoftmaxBackwardKernel(const float* probs, float* d, int64_t rows, int T) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (row >= rows) return;
  const int t = static_cast<int>(row % T);
  const float* p = probs + row * T;
  float* g = d + row * T;
  float dot = 0.0f;
  for (int j = threadIdx.x; j <= t; j += kWarp) dot += p[j] * g[j];
  dot = WarpSum(dot);
  for (int j = threadIdx.x; j < T; j += kWarp)
    g[j] = j <= t ? math::SoftmaxGrad(p[j], g[j], dot) : 0.0f;
}

__global__ void SumHeadsKernel(const float* parts, float* out, int64_t ld, int T, int H, int P,
                               int64_t n) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n) return;
  const int64_t r = idx / P, j = idx % P;
  const int64_t b = r / T, t = r % T;
  float s = 0.0f;
  for (int h = 0; h < H; ++h) s += parts[((b * H + h) * T + t) * P + j];
  out[r * ld + j] = s;
}

__global__ void SoftmaxCrossEntropyKernel(const float* logits, const int32_t* targets,
                                          float* dlogits, float* row_loss, int64_t V,
                                          float grad_scale) {
  __shared__ float shared[kWarp];
  const int64_t row = blockIdx.x;
  const float* z = logits + row * V;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, z[j]);
  mx = BlockMax(mx, shared);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum += math::Exp(z[j] - mx);
  sum = BlockSum(sum, shared);
  const int32_t target = targets[row];
  if (threadIdx.x == 0) row_loss[row] = mx + logf(sum) - z[target];
  if (dlogits == nullptr) return;
  __syncthreads();  // logits may alias dlogits: every read above happens first
  float* d = dlogits + row * V;
  const float inv = 1.0f / sum;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    const float p = math::Exp(z[j] - mx) * inv * grad_scale;
    d[j] = j == target ? p - grad_scale : p;
  }
}

__global__ void AddKernel(const float* x, float* y, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] += x[i];
}

__global__ void FillKernel(float* x, float value, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] = value;
}

__global__ void ScaleKernel(float* x, float s, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) x[i] *= s;
}

__global__ void SumSquaresKernel(const float* x, int64_t n, double* out) {
  __shared__ double shared[kRowThreads];
  double s = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    s += static_cast<double>(x[i]) * x[i];
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(out, shared[0]);
}

int RowBlocks(int64_t M) { return static_cast<int>(M); }

}  // namespace

int LayerNormForward(const float* x, const float* w, const float* b, float* y, float* mean,
                     float* rstd, int64_t M, int64_t C, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  LayerNormForwardKernel<<<RowBlocks(M), kRowThreads, 0, stream>>>(x, w, b, y, mean, rstd, C);
  return cudaGetLastError();
}

int LayerNormBackward(const float* dy, const float* x, const float* w, const float* mean,
                      const float* rstd, float* dx, float* dw, float* db, int64_t M, int64_t C,
                      cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  LayerNormBackwardRowsKernel<<<RowBlocks(M), kRowThreads, 0, stream>>>(dy, x, w, mean, rstd,
                                                                        dx, C);
  if (const int e = cudaGetLastError(); e != cudaSuccess) return e;
  if (const int e = LaunchColumnReduce(LayerNormWeightTerm{dy, x, mean, rstd, C}, M, C, dw, stream);
      e != cudaSuccess)
    return e;
  return LaunchColumnReduce(SumTerm{dy, C}, M, C, db, stream);
}

int RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M, int64_t C,
                   cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  RmsNormForwardKernel<<<RowBlocks(M), kRowThreads, 0, stream>>>(x, w, y, rstd, C);
  return cudaGetLastError();
}

int RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd,
                    float* dx, float* dw, int64_t M, int64_t C, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  RmsNormBackwardRowsKernel<<<RowBlocks(M), kRowThreads, 0, stream>>>(dy, x, w, rstd, dx, C);
  if (const int e = cudaGetLastError(); e != cudaSuccess) return e;
  return LaunchColumnReduce(RmsNormWeightTerm{dy, x, rstd, C}, M, C, dw, stream);
}

int ColumnSumAccumulate(const float* x, int64_t M, int64_t N, int64_t ld, float* out,
                        cudaStream_t stream) {
  return LaunchColumnReduce(SumTerm{x, ld}, M, N, out, stream);
}

int AddBiasRows(const float* bias, float* y, int64_t M, int64_t N, cudaStream_t stream) {
  if (M * N == 0) return cudaSuccess;
  AddBiasRowsKernel<<<Blocks(M * N, kRowThreads), kRowThreads, 0, stream>>>(bias, y, M, N);
  return cudaGetLastError();
}

int EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe, float* x, int B,
                     int T, int C, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(B) * T;
  if (rows == 0) return cudaSuccess;
  EmbeddingForwardKernel<<<RowBlocks(rows), kRowThreads, 0, stream>>>(tokens, wte, wpe, x, T, C);
  return cudaGetLastError();
}

int EmbeddingBackward(const int32_t* tokens, const float* dx, float* dwte, float* dwpe, int B,
                      int T, int C, cudaStream_t stream) {
  const int64_t rows = static_cast<int64_t>(B) * T;
  if (rows == 0) return cudaSuccess;
  EmbeddingBackwardKernel<<<RowBlocks(rows), kRowThreads, 0, stream>>>(tokens, dx, dwte, dwpe, T,
                                                                       C);
  return cudaGetLastError();
}

int Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims,
         const float* cos_table, const float* sin_table, bool inverse, cudaStream_t stream) {
  const int64_t n = rows * heads * (dims / 2);
  if (n == 0) return cudaSuccess;
  RopeKernel<<<Blocks(n, kRowThreads), kRowThreads, 0, stream>>>(
      x, ld, rows, T, pos0, heads, dims, cos_table, sin_table, inverse ? -1.0f : 1.0f);
  return cudaGetLastError();
}

constexpr int kWarpsPerBlock = 8;

int CausalSoftmax(float* scores, int64_t rows, int T, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  CausalSoftmaxKernel<<<Blocks(rows, kWarpsPerBlock), dim3(kWarp, kWarpsPerBlock), 0, stream>>>(
      scores, rows, T);
  return cudaGetLastError();
}

int CausalSoftmaxBackward(const float* probs, float* d, int64_t rows, int T,
                          cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  CausalSoftmaxBackwardKernel<<<Blocks(rows, kWarpsPerBlock), dim3(kWarp, kWarpsPerBlock), 0,
                                stream>>>(probs, d, rows, T);
  return cudaGetLastError();
}

int SumHeads(const float* parts, float* out, int64_t ld, int B, int T, int H, int P,
             cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(B) * T * P;
  if (n == 0) return cudaSuccess;
  SumHeadsKernel<<<Blocks(n, kRowThreads), kRowThreads, 0, stream>>>(parts, out, ld, T, H, P, n);
  return cudaGetLastError();
}

int SoftmaxCrossEntropy(const float* logits, const int32_t* targets, float* dlogits,
                        float* row_loss, int64_t M, int64_t V, float grad_scale,
                        cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  SoftmaxCrossEntropyKernel<<<RowBlocks(M), kRowThreads, 0, stream>>>(logits, targets, dlogits,
                                                                      row_loss, V, grad_scale);
  return cudaGetLastError();
}

int Add(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  AddKernel<<<Blocks(n, kRowThreads), kRowThreads, 0, stream>>>(x, y, n);
  return cudaGetLastError();
}

int Fill(float* x, float value, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  FillKernel<<<Blocks(n, kRowThreads), kRowThreads, 0, stream>>>(x, value, n);
  return cudaGetLastError();
}

int Scale(float* x, float s, int64_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  ScaleKernel<<<Blocks(n, kRowThreads), kRowThreads, 0, stream>>>(x, s, n);
  return cudaGetLastError();
}

int SumSquaresAccumulate(const float* x, int64_t n, double* out, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  // Enough blocks to fill a GPU; each strides over the rest.
  const int blocks = Blocks(n, kRowThreads) < 1024 ? Blocks(n, kRowThreads) : 1024;
  SumSquaresKernel<<<blocks, kRowThreads, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

}  // namespace mla::cuda::launch
