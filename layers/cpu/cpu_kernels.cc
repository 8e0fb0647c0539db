#include "layers/cpu/cpu_kernels.h"

#include <omp.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "glog/logging.h"
#include "layers/math/activation_math.h"
#include "layers/math/bf16_math.h"
#include "layers/cpu/sgemm.h"
#include "layers/cpu/small_batch_linear.h"
#include "oneapi/dnnl/dnnl.h"

namespace mla {
namespace {

// Softmax over the first `valid` entries of a score row, zeros in
// [valid, width). Each loop has one plain bound so it vectorises (a masked
// loop over the width is split by the compiler into scalar pieces).
void CausalSoftmaxRow(float* row, int valid, int width) {
  float mx = row[0];
#pragma omp simd reduction(max : mx)
  for (int s = 1; s < valid; ++s) mx = std::max(mx, row[s]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int s = 0; s < valid; ++s) {
    const float e = math::Exp(row[s] - mx);
    row[s] = e;
    sum += e;
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int s = 0; s < valid; ++s) row[s] *= inv;
  std::fill(row + valid, row + width, 0.0f);
}

// Softmax backward over one row: d = p·(d − p·d) on [0, valid), zeros up to
// width.
void CausalSoftmaxGradRow(const float* p, float* d, int valid, int width) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int s = 0; s < valid; ++s) dot += p[s] * d[s];
#pragma omp simd
  for (int s = 0; s < valid; ++s) d[s] = math::SoftmaxGrad(p[s], d[s], dot);
  std::fill(d + valid, d + width, 0.0f);
}

// Row strides that are multiples of 512 floats (2 KiB) alias in the caches;
// kStridePad floats (one 64-byte line) break the pattern.
constexpr int64_t kStridePad = 16;
bool HasAliasingStride(int64_t ld) { return ld % 512 == 0; }

}  // namespace

CpuKernels::CpuKernels() {
  // Flush denormals to zero on every OpenMP thread (MXCSR is per thread):
  // early in training tiny gradients and moments otherwise go subnormal and
  // slow the x86 FPU down by an order of magnitude.
#pragma omp parallel
  _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ | DAZ
  _mm_setcsr(_mm_getcsr() | 0x8040);
}

float* CpuKernels::Scratch(std::vector<float>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

void CpuKernels::UseBf16Weights(const float* params, int64_t n) {
  CHECK_GE(n, 0);
  bf16_base_ = params;
  bf16_weights_.resize(n);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) bf16_weights_[i] = math::FloatToBf16Bits(params[i]);
}

const uint16_t* CpuKernels::Bf16Weight(const float* w, int64_t numel) const {
  if (bf16_base_ == nullptr) return nullptr;
  const auto at = reinterpret_cast<uintptr_t>(w), base = reinterpret_cast<uintptr_t>(bf16_base_);
  if (at < base || (at - base) % sizeof(float) != 0) return nullptr;
  const auto offset = static_cast<int64_t>((at - base) / sizeof(float));
  if (offset + numel > static_cast<int64_t>(bf16_weights_.size())) return nullptr;
  return bf16_weights_.data() + offset;
}

void CpuKernels::LinearForward(const float* x, const float* w, const float* bias, float* y,
                               int64_t M, int64_t N, int64_t K, Epilogue epilogue,
                               bool accumulate) {
  // bf16 weights at any M: the small-batch kernels widen them in registers
  // (more than kSmallBatchMaxRows rows in groups over L2-sized weight panels),
  // so no fp32 copy of a matrix is ever made.
  const uint16_t* w16 = Bf16Weight(w, N * K);
  if (w16 != nullptr && M >= 1 && K >= 1) {
    SmallBatchLinearBf16(x, w16, bias, y, M, N, K, epilogue, accumulate);
    return;
  }
  if (M >= 1 && M <= kSmallBatchMaxRows && K >= 1) {
    SmallBatchLinear(x, w, bias, y, M, N, K, epilogue, accumulate);
    return;
  }
  MatmulShape s;
  s.M = M; s.N = N; s.K = K;
  s.lda = K; s.ldb = K; s.ldc = N;
  s.trans_b = true;
  s.epilogue = epilogue;
  s.accumulate = accumulate;
  matmul_.Run(s, x, w, bias, y);
}

void CpuKernels::WeightGradDirect(const float* x, int64_t ld_x, const float* dy, int64_t ld_dy,
                                  float* dw, int64_t M, int64_t N, int64_t K) {
  MatmulShape s;  // dw[N,K] += dyᵀ[N,M]·x[M,K]
  s.M = N; s.N = K; s.K = M;
  s.lda = ld_dy; s.ldb = ld_x; s.ldc = K;
  s.trans_a = true;
  s.accumulate = true;
  matmul_.Run(s, dy, x, nullptr, dw);
}

void CpuKernels::WeightGradTransposed(const float* x, int64_t ld_x, const float* dy,
                                      int64_t ld_dy, float* dwt, int64_t M, int64_t N, int64_t K) {
  MatmulShape s;  // dwᵀ[K,N] = xᵀ[K,M]·dy[M,N]
  s.M = K; s.N = N; s.K = M;
  s.lda = ld_x; s.ldb = ld_dy; s.ldc = N;
  s.trans_a = true;
  matmul_.Run(s, x, dy, nullptr, dwt);
}

void CpuKernels::AddTransposed(const float* dwt, float* dw, int64_t N, int64_t K) {
  constexpr int64_t kTile = 32;
  const int64_t n_tiles = (N + kTile - 1) / kTile, k_tiles = (K + kTile - 1) / kTile;
#pragma omp parallel for schedule(static)
  for (int64_t tile = 0; tile < n_tiles * k_tiles; ++tile) {
    const int64_t n0 = tile / k_tiles * kTile, k0 = tile % k_tiles * kTile;
    const int64_t n1 = std::min(N, n0 + kTile), k1 = std::min(K, k0 + kTile);
    for (int64_t n = n0; n < n1; ++n) {
      float* out = dw + n * K;
      const float* in = dwt + n;
#pragma omp simd
      for (int64_t k = k0; k < k1; ++k) out[k] += in[k * N];
    }
  }
}

const float* CpuKernels::PaddedCopy(const float* src, int64_t rows, int64_t cols, int64_t ld,
                                    std::vector<float>& buffer) {
  float* dst = Scratch(buffer, static_cast<size_t>(rows) * ld);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * cols, src + (r + 1) * cols, dst + r * ld);
  return dst;
}

void CpuKernels::LinearBackward(const float* x, const float* w, const float* dy, float* dx,
                                float* dw, float* db, int64_t M, int64_t N, int64_t K,
                                bool accumulate_dx) {
  // Operands whose rows lie a multiple of 2 KiB apart are copied to a padded
  // stride first: at such strides the GEMM's walk down the rows keeps hitting
  // the same cache sets, which halves its speed (and makes it depend on the
  // buffer's address), while the copy is one cheap streaming pass.
  const float* dy_g = dy;
  int64_t ld_dy = N;
  if (dw != nullptr && HasAliasingStride(N)) {
    ld_dy = N + kStridePad;
    dy_g = PaddedCopy(dy, M, N, ld_dy, padded_dy_);
  }
  const float* x_g = x;
  int64_t ld_x = K;
  if (dw != nullptr && HasAliasingStride(K)) {
    ld_x = K + kStridePad;
    x_g = PaddedCopy(x, M, K, ld_x, padded_x_);
  }
  if (dx != nullptr) {  // dx[M,K] = dy[M,N]·w[N,K]
    MatmulShape s;
    s.M = M; s.N = K; s.K = N;
    s.lda = ld_dy; s.ldb = K; s.ldc = K;
    s.accumulate = accumulate_dx;
    matmul_.Run(s, dy_g, w, nullptr, dx);
  }
  if (dw != nullptr) {
    // oneDNN's gemm favours wide outputs, so tall weights (N > K) are
    // computed as dwᵀ and added back transposed. The choice is a fixed rule of
    // the shape, never a timing, so every process and every resumed run sums
    // in the same order (bit-exact resume depends on it).
    if (N > K) {
      float* dwt = Scratch(transpose_scratch_, static_cast<size_t>(K) * N);
      WeightGradTransposed(x_g, ld_x, dy_g, ld_dy, dwt, M, N, K);
      AddTransposed(dwt, dw, N, K);
    } else {
      WeightGradDirect(x_g, ld_x, dy_g, ld_dy, dw, M, N, K);
    }
  }
  if (db != nullptr) {
    const int nt = omp_get_max_threads();
    float* partial = Scratch(thread_scratch_, static_cast<size_t>(nt) * N);
#pragma omp parallel
    {
      float* mine = partial + static_cast<int64_t>(omp_get_thread_num()) * N;
      std::fill(mine, mine + N, 0.0f);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < M; ++i) {
        const float* row = dy + i * N;
#pragma omp simd
        for (int64_t j = 0; j < N; ++j) mine[j] += row[j];
      }
    }
    for (int t = 0; t < nt; ++t)
      for (int64_t j = 0; j < N; ++j) db[j] += partial[static_cast<int64_t>(t) * N + j];
  }
}

void CpuKernels::LayerNormForward(const float* x, const float* w, const float* b, float* y,
                                  float* mean, float* rstd, int64_t M, int64_t C) {
#pragma omp parallel for schedule(static) if (M > 1)
  for (int64_t i = 0; i < M; ++i) {
    const float* xi = x + i * C;
    float* yi = y + i * C;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < C; ++j) sum += xi[j];
    const float m = sum / C;
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int64_t j = 0; j < C; ++j) var += (xi[j] - m) * (xi[j] - m);
    const float r = 1.0f / std::sqrt(var / C + 1e-5f);
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) yi[j] = (xi[j] - m) * r * w[j] + b[j];
    mean[i] = m;
    rstd[i] = r;
  }
}

void CpuKernels::LayerNormBackward(const float* dy, const float* x, const float* w,
                                   const float* mean, const float* rstd, float* dx, float* dw,
                                   float* db, int64_t M, int64_t C) {
  const int nt = omp_get_max_threads();
  float* partial = Scratch(thread_scratch_, static_cast<size_t>(nt) * 2 * C);
#pragma omp parallel
  {
    float* pdw = partial + static_cast<int64_t>(omp_get_thread_num()) * 2 * C;
    float* pdb = pdw + C;
    std::fill(pdw, pdw + 2 * C, 0.0f);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      const float* xi = x + i * C;
      const float* dyi = dy + i * C;
      float* dxi = dx + i * C;
      const float m = mean[i], r = rstd[i];
      float mean_g = 0.0f, mean_gx = 0.0f;
#pragma omp simd reduction(+ : mean_g, mean_gx)
      for (int64_t j = 0; j < C; ++j) {
        const float xh = (xi[j] - m) * r;
        const float g = dyi[j] * w[j];
        mean_g += g;
        mean_gx += g * xh;
      }
      mean_g /= C;
      mean_gx /= C;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) {
        const float xh = (xi[j] - m) * r;
        pdw[j] += dyi[j] * xh;
        pdb[j] += dyi[j];
        dxi[j] += r * (dyi[j] * w[j] - mean_g - xh * mean_gx);
      }
    }
  }
  for (int t = 0; t < nt; ++t) {
    const float* pdw = partial + static_cast<int64_t>(t) * 2 * C;
    for (int64_t j = 0; j < C; ++j) {
      dw[j] += pdw[j];
      db[j] += pdw[C + j];
    }
  }
}

void CpuKernels::RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M,
                                int64_t C) {
#pragma omp parallel for schedule(static) if (M > 1)
  for (int64_t i = 0; i < M; ++i) {
    const float* xi = x + i * C;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < C; ++j) ss += xi[j] * xi[j];
    const float r = 1.0f / std::sqrt(ss / C + 1e-5f);
    float* yi = y + i * C;
#pragma omp simd
    for (int64_t j = 0; j < C; ++j) yi[j] = xi[j] * r * w[j];
    rstd[i] = r;
  }
}

void CpuKernels::RmsNormBackward(const float* dy, const float* x, const float* w,
                                 const float* rstd, float* dx, float* dw, int64_t M, int64_t C) {
  const int nt = omp_get_max_threads();
  float* partial = Scratch(thread_scratch_, static_cast<size_t>(nt) * C);
#pragma omp parallel
  {
    float* pdw = partial + static_cast<int64_t>(omp_get_thread_num()) * C;
    std::fill(pdw, pdw + C, 0.0f);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      const float* xi = x + i * C;
      const float* dyi = dy + i * C;
      float* dxi = dx + i * C;
      const float r = rstd[i];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < C; ++j) dot += dyi[j] * w[j] * xi[j];
      const float k = dot * r * r / C;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) {
        pdw[j] += dyi[j] * xi[j] * r;
        dxi[j] = r * (dyi[j] * w[j] - xi[j] * k);
      }
    }
  }
  for (int t = 0; t < nt; ++t)
    for (int64_t j = 0; j < C; ++j) dw[j] += partial[static_cast<int64_t>(t) * C + j];
}

void CpuKernels::GeluForward(const float* u, float* h, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) h[i] = math::GeluTanh(u[i]);
}

void CpuKernels::GeluBackward(const float* u, const float* dh, float* du, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) du[i] = dh[i] * math::GeluTanhGrad(u[i]);
}

void CpuKernels::EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe,
                                  float* x, int B, int T, int C) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(B) * T; ++i) {
    const float* e = wte + static_cast<int64_t>(tokens[i]) * C;
    float* xi = x + i * C;
    if (wpe != nullptr) {
      const float* p = wpe + (i % T) * C;
#pragma omp simd
      for (int j = 0; j < C; ++j) xi[j] = e[j] + p[j];
    } else {
      std::copy(e, e + C, xi);
    }
  }
}

void CpuKernels::EmbeddingBackward(const int32_t* tokens, const float* dx, float* dwte,
                                   float* dwpe, int B, int T, int C) {
  // Threads own disjoint column ranges, so repeated tokens never race.
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int c0 = static_cast<int>(static_cast<int64_t>(C) * t / nt);
    const int c1 = static_cast<int>(static_cast<int64_t>(C) * (t + 1) / nt);
    for (int64_t i = 0; i < static_cast<int64_t>(B) * T; ++i) {
      const float* g = dx + i * C;
      float* e = dwte + static_cast<int64_t>(tokens[i]) * C;
      for (int j = c0; j < c1; ++j) e[j] += g[j];
      if (dwpe != nullptr) {
        float* p = dwpe + (i % T) * C;
        for (int j = c0; j < c1; ++j) p[j] += g[j];
      }
    }
  }
}

const std::pair<std::vector<float>, std::vector<float>>& CpuKernels::RopeTable(int dims,
                                                                               float theta,
                                                                               int positions) {
  auto& table = rope_tables_[{dims, theta}];
  const int half = dims / 2;
  const int have = table.first.empty() ? 0 : static_cast<int>(table.first.size()) / half;
  if (have < positions) {
    table.first.resize(static_cast<size_t>(positions) * half);
    table.second.resize(static_cast<size_t>(positions) * half);
    for (int p = 0; p < positions; ++p) {
      for (int i = 0; i < half; ++i) {
        // Angles in double so long contexts keep float-exact cos/sin.
        const double a = static_cast<double>(p) * math::RopeFrequency(i, dims, theta);
        table.first[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(a));
        table.second[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(a));
      }
    }
  }
  return table;
}

void CpuKernels::Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims,
                      float theta, bool inverse) {
  CHECK_EQ(dims % 2, 0);
  const auto& table = RopeTable(dims, theta, pos0 + T);
  const float* cosv = table.first.data();
  const float* sinv = table.second.data();
  const int half = dims / 2;
  const float sign = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pos = (r % T) + pos0;
    const float* c = cosv + pos * half;
    const float* s = sinv + pos * half;
    for (int h = 0; h < heads; ++h) {
      float* z = x + r * ld + static_cast<int64_t>(h) * dims;
      for (int i = 0; i < half; ++i) math::RopeRotatePair(z[2 * i], z[2 * i + 1], c[i], sign * s[i]);
    }
  }
}

// Causal attention runs in blocks of kRowBlock query rows; block [r0, r1)
// only meets keys [0, r1), so score tiles right of the block diagonal are
// never computed (about half the FLOPs of full T×T attention at long T).
constexpr int kRowBlock = 64;

void CpuKernels::AttentionForward(const AttentionViews& in, float* y, int64_t ld_y,
                                  float* probs) {
  const int B = in.B, T = in.T, H = in.H, D = in.D, P = in.P;
  const bool rope = in.q_rope != nullptr;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const int64_t row0 = static_cast<int64_t>(b) * T;
      float* S = probs + (static_cast<int64_t>(b) * H + h) * T * T;
      const float* K = in.k + row0 * in.ld_k + h * D;
      const float* V = in.v + row0 * in.ld_v + h * D;
      for (int r0 = 0; r0 < T; r0 += kRowBlock) {
        const int r1 = std::min(T, r0 + kRowBlock);
        float* Sb = S + static_cast<int64_t>(r0) * T;
        Sgemm('N', 'T', r1 - r0, r1, D, in.scale, in.q + (row0 + r0) * in.ld_q + h * D, in.ld_q,
              K, in.ld_k, 0.0f, Sb, T);
        if (rope) {
          Sgemm('N', 'T', r1 - r0, r1, P, in.scale,
                in.q_rope + (row0 + r0) * in.ld_q_rope + h * P, in.ld_q_rope,
                in.k_rope + row0 * in.ld_k_rope, in.ld_k_rope, 1.0f, Sb, T);
        }
        for (int t = r0; t < r1; ++t) CausalSoftmaxRow(S + static_cast<int64_t>(t) * T, t + 1, r1);
        Sgemm('N', 'N', r1 - r0, D, r1, 1.0f, Sb, T, V, in.ld_v, 0.0f,
              y + (row0 + r0) * ld_y + h * D, ld_y);
      }
    }
  }
}

void CpuKernels::AttentionBackward(const AttentionViews& in, const float* probs, const float* dy,
                                   int64_t ld_dy, const AttentionGrads& g) {
  const int B = in.B, T = in.T, H = in.H, D = in.D, P = in.P;
  const bool rope = in.q_rope != nullptr;
  const int nt = omp_get_max_threads();
  const int64_t tile = static_cast<int64_t>(std::min(T, kRowBlock)) * T;
  float* tiles = Scratch(thread_scratch_, static_cast<size_t>(nt) * tile);
  // Per-(b, h) contributions to the shared rotary key, summed over heads below.
  float* dkr_parts =
      rope ? Scratch(rope_grad_scratch_, static_cast<size_t>(B) * H * T * P) : nullptr;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const int64_t row0 = static_cast<int64_t>(b) * T;
      const float* Pm = probs + (static_cast<int64_t>(b) * H + h) * T * T;
      float* dS = tiles + static_cast<int64_t>(omp_get_thread_num()) * tile;
      const float* Q = in.q + row0 * in.ld_q + h * D;
      const float* K = in.k + row0 * in.ld_k + h * D;
      const float* V = in.v + row0 * in.ld_v + h * D;
      float* dK = g.dk + row0 * g.ld_dk + h * D;
      float* dV = g.dv + row0 * g.ld_dv + h * D;
      float* dKr = rope ? dkr_parts + (static_cast<int64_t>(b) * H + h) * T * P : nullptr;
      // The last row block meets every key, so it writes dK/dV (beta 0) and
      // the earlier blocks, meeting keys [0, r1), add to their prefix.
      const int last = (T - 1) / kRowBlock * kRowBlock;
      for (int r0 = last; r0 >= 0; r0 -= kRowBlock) {
        const int r1 = std::min(T, r0 + kRowBlock), rows = r1 - r0;
        const float beta = r0 == last ? 0.0f : 1.0f;
        const float* Pb = Pm + static_cast<int64_t>(r0) * T;
        const float* dY = dy + (row0 + r0) * ld_dy + h * D;
        // dP = dY·Vᵀ
        Sgemm('N', 'T', rows, r1, D, 1.0f, dY, ld_dy, V, in.ld_v, 0.0f, dS, T);
        for (int t = r0; t < r1; ++t)
          CausalSoftmaxGradRow(Pm + static_cast<int64_t>(t) * T,
                               dS + static_cast<int64_t>(t - r0) * T, t + 1, r1);
        // dV += Pᵀ·dY, dQ = scale·dS·K, dK += scale·dSᵀ·Q
        Sgemm('T', 'N', r1, D, rows, 1.0f, Pb, T, dY, ld_dy, beta, dV, g.ld_dv);
        Sgemm('N', 'N', rows, D, r1, in.scale, dS, T, K, in.ld_k, 0.0f,
              g.dq + (row0 + r0) * g.ld_dq + h * D, g.ld_dq);
        Sgemm('T', 'N', r1, D, rows, in.scale, dS, T, Q + static_cast<int64_t>(r0) * in.ld_q,
              in.ld_q, beta, dK, g.ld_dk);
        if (rope) {
          Sgemm('N', 'N', rows, P, r1, in.scale, dS, T, in.k_rope + row0 * in.ld_k_rope,
                in.ld_k_rope, 0.0f, g.dq_rope + (row0 + r0) * g.ld_dq_rope + h * P,
                g.ld_dq_rope);
          Sgemm('T', 'N', r1, P, rows, in.scale, dS, T,
                in.q_rope + (row0 + r0) * in.ld_q_rope + h * P, in.ld_q_rope, beta, dKr, P);
        }
      }
    }
  }
  if (rope) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < static_cast<int64_t>(B) * T; ++r) {
      const int64_t b = r / T, t = r % T;
      float* out = g.dk_rope + r * g.ld_dk_rope;
      std::fill(out, out + P, 0.0f);
      for (int h = 0; h < H; ++h) {
        const float* part = dkr_parts + ((b * H + h) * T + t) * P;
        for (int j = 0; j < P; ++j) out[j] += part[j];
      }
    }
  }
}

double CpuKernels::SoftmaxCrossEntropy(float* logits, const int32_t* targets, float* dlogits,
                                       int64_t M, int64_t V, float grad_scale) {
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int64_t i = 0; i < M; ++i) {
    float* row = logits + i * V;
    const int32_t target = targets[i];
    const float target_logit = row[target];  // read before dlogits may overwrite it
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, row[j]);
    float sum = 0.0f;
    if (dlogits != nullptr) {
      // One exp per logit: keep e^(z - max) in dlogits and scale it after.
      float* d = dlogits + i * V;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < V; ++j) {
        const float e = math::Exp(row[j] - mx);
        d[j] = e;
        sum += e;
      }
      const float scale = grad_scale / sum;
#pragma omp simd
      for (int64_t j = 0; j < V; ++j) d[j] *= scale;
      d[target] -= grad_scale;
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < V; ++j) sum += math::Exp(row[j] - mx);
    }
    total += static_cast<double>(mx + std::log(sum) - target_logit);
  }
  return total;
}

void CpuKernels::Add(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void CpuKernels::Fill(float* x, float value, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

void CpuKernels::Copy(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}

void* CpuKernels::AllocateBytes(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc needs a multiple
  void* p = std::aligned_alloc(64, rounded);
  CHECK(p != nullptr) << "out of host memory allocating " << bytes << " bytes";
  std::memset(p, 0, rounded);
  return p;
}

void CpuKernels::FreeBytes(void* p) { std::free(p); }

void CpuKernels::CopyToDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuKernels::CopyToHost(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuKernels::CopyOnDevice(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) std::memmove(dst, src, bytes);
}

}  // namespace mla
