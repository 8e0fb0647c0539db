// CpuKernels: the decoding section of the kernel interface (layers/kernels.h)
// for the KV-cached decoder (runtime/decoder.h). Host memory; the device table
// of a DecodeBatch is the host table.
//
// Threading (the choices the decoder measured fastest on few cores):
//   embedding, RoPE   OpenMP over rows when there are more than 8.
//   MHA attention     one (segment, head) per thread, each issuing
//                     single-threaded oneDNN sgemm (scores, masked softmax,
//                     P·V) against the slot's contiguous cache rows.
//   MLA absorbed      every small GEMM runs inside a parallel region, so on
//                     the calling thread: q̃ per head, then per segment all
//                     heads at once (its n·H query rows share the latents;
//                     with fewer segments than threads a segment's rows are
//                     split into chunks), then the output product per head.
//                     oneDNN threading GEMMs this small costs far more than
//                     the GEMMs themselves.
//   MLA naive         with at least as many segments as threads, one segment
//                     per thread: expand [K | V] for the slot's cached
//                     positions, then per head as MHA. With fewer (batch 1),
//                     each segment's expansion is split by positions across
//                     the threads, then (segment, head) pairs are shared out,
//                     in one parallel region; oneDNN threading these GEMMs
//                     itself cost more than it saved.
// Per-thread scores and expansions live in grow-only scratch sized from the
// call (rows, heads, cache_len), so steady decoding allocates nothing.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "glog/logging.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cpu/sgemm.h"
#include "layers/math/activation_math.h"
#include "oneapi/dnnl/dnnl.h"

namespace mla {
namespace {

// Softmax over row r's first limit(r)+1 entries; the rest of the row becomes 0
// so a following product over the whole row ignores masked positions.
template <typename Limit>
void MaskedSoftmax(float* S, int64_t rows, int64_t len, Limit limit) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = S + r * len;
    const int64_t last = limit(r);
    float mx = row[0];
    for (int64_t s = 1; s <= last; ++s) mx = std::max(mx, row[s]);
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t s = 0; s <= last; ++s) {
      row[s] = math::Exp(row[s] - mx);
      sum += row[s];
    }
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t s = 0; s <= last; ++s) row[s] *= inv;
    std::fill(row + last + 1, row + len, 0.0f);
  }
}

int MaxSegmentRows(const DecodeBatch& b) {
  int n = 0;
  for (int s = 0; s < b.S; ++s) n = std::max(n, b.host.row0[s + 1] - b.host.row0[s]);
  return n;
}

}  // namespace

float* CpuKernels::DecodeThreadScratch(std::vector<float>& buffer, int64_t per_thread) {
  const int threads = omp_get_max_threads();
  return Scratch(buffer, static_cast<size_t>(threads) * per_thread);
}

void CpuKernels::DecodeEmbedding(const int32_t* tokens, const float* wte, const float* wpe,
                                 float* x, int C, const DecodeBatch& b) {
  const int32_t* pos = b.host.pos;
#pragma omp parallel for schedule(static) if (b.M > 8)
  for (int64_t r = 0; r < b.M; ++r) {
    float* xr = x + r * C;
    const float* e = wte + static_cast<int64_t>(tokens[r]) * C;
    if (wpe != nullptr) {
      const float* pe = wpe + static_cast<int64_t>(pos[r]) * C;
      for (int i = 0; i < C; ++i) xr[i] = e[i] + pe[i];
    } else {
      std::copy(e, e + C, xr);
    }
  }
}

void CpuKernels::DecodeRope(float* x, int64_t ld, int heads, int dims, float theta,
                            const DecodeBatch& b) {
  CHECK_EQ(dims % 2, 0);
  // Grown in powers of two: the table is rebuilt when it grows, and decoding
  // lengthens the prefix by one position per step.
  int positions = 64;
  while (positions < b.max_len) positions *= 2;
  const auto& table = RopeTable(dims, theta, positions);
  const float* cosv = table.first.data();
  const float* sinv = table.second.data();
  const int32_t* pos = b.host.pos;
  const int half = dims / 2;
#pragma omp parallel for schedule(static) if (b.M > 8)
  for (int64_t r = 0; r < b.M; ++r) {
    const float* cs = cosv + static_cast<int64_t>(pos[r]) * half;
    const float* sn = sinv + static_cast<int64_t>(pos[r]) * half;
    for (int h = 0; h < heads; ++h) {
      float* z = x + r * ld + static_cast<int64_t>(h) * dims;
      for (int i = 0; i < half; ++i) math::RopeRotatePair(z[2 * i], z[2 * i + 1], cs[i], sn[i]);
    }
  }
}

void CpuKernels::DecodeCacheAppend(const float* src, int64_t ld_src, int width, float* cache,
                                   int cache_len, const DecodeBatch& b) {
  for (int s = 0; s < b.S; ++s) {
    const int64_t slot_base = static_cast<int64_t>(b.host.slot[s]) * cache_len;
    for (int r = b.host.row0[s]; r < b.host.row0[s + 1]; ++r)
      std::memcpy(cache + (slot_base + b.host.pos[r]) * width, src + r * ld_src,
                  static_cast<size_t>(width) * sizeof(float));
  }
}

void CpuKernels::DecodeAttention(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                                 int64_t ld_y) {
  const int H = in.H, D = in.D, L = in.cache_len;
  const int64_t C = static_cast<int64_t>(H) * D;
  const int64_t stride = static_cast<int64_t>(MaxSegmentRows(b)) * L;
  float* scratch = DecodeThreadScratch(decode_scores_, stride);
  const int units = b.S * H;
#pragma omp parallel for schedule(dynamic, 1) if (units > 1)
  for (int u = 0; u < units; ++u) {
    const int s = u / H, h = u % H;
    const int64_t row0 = b.host.row0[s];
    const int n = b.host.row0[s + 1] - b.host.row0[s];
    const int pos0 = b.host.pos0[s], len = pos0 + n;
    float* S = scratch + omp_get_thread_num() * stride;
    const int64_t base = static_cast<int64_t>(b.host.slot[s]) * L * C;
    Sgemm('N', 'T', n, len, D, in.scale, in.q + row0 * in.ld_q + h * D, in.ld_q,
          in.k + base + h * D, C, 0.0f, S, len);
    MaskedSoftmax(S, n, len, [pos0](int64_t i) { return pos0 + i; });
    Sgemm('N', 'N', n, D, len, 1.0f, S, len, in.v + base + h * D, C, 0.0f,
          y + row0 * ld_y + h * D, ld_y);
  }
}

void CpuKernels::DecodeLatentAttention(const DecodeAttentionViews& in, const DecodeBatch& b,
                                       bool absorbed, float* y, int64_t ld_y) {
  if (absorbed)
    DecodeLatentAbsorbed(in, b, y, ld_y);
  else
    DecodeLatentNaive(in, b, y, ld_y);
}

void CpuKernels::DecodeLatentAbsorbed(const DecodeAttentionViews& in, const DecodeBatch& b,
                                      float* y, int64_t ld_y) {
  const int H = in.H, D = in.D, R = in.R, P = in.P, L = in.cache_len;
  const bool rope = in.q_rope != nullptr;
  const int64_t rows = b.M, HR = static_cast<int64_t>(H) * R;
  float* q_lat = Scratch(decode_q_lat_, static_cast<size_t>(rows * HR));
  float* o_lat = Scratch(decode_o_lat_, static_cast<size_t>(rows * HR));
  // q̃_h = W_uk,hᵀ q_h for every row: [rows, D]·[D, R] per head.
#pragma omp parallel for schedule(static) if (H > 1)
  for (int h = 0; h < H; ++h)
    Sgemm('N', 'N', rows, R, D, 1.0f, in.q + h * D, in.ld_q, in.w_uk + int64_t{h} * D * R, R,
          0.0f, q_lat + h * R, HR);
  // Per segment, all heads at once: the n·H query rows of a segment are
  // contiguous [n·H, R], and every head reads the same cached latents. With
  // fewer segments than threads each segment's rows are split into chunks
  // (a row's causal limit depends only on its own index).
  const int threads = omp_get_max_threads();
  const int chunks = b.S >= threads ? 1 : threads;
  const int64_t stride = static_cast<int64_t>(MaxSegmentRows(b)) * H * L;
  float* scratch = DecodeThreadScratch(decode_scores_, stride);
#pragma omp parallel for schedule(dynamic, 1) if (b.S * chunks > 1)
  for (int u = 0; u < b.S * chunks; ++u) {
    const int s = u / chunks, c = u % chunks;
    const int64_t row0 = b.host.row0[s];
    const int n = b.host.row0[s + 1] - b.host.row0[s];
    const int pos0 = b.host.pos0[s], len = pos0 + n;
    const int64_t qrows = static_cast<int64_t>(n) * H;
    const int64_t r0 = qrows * c / chunks, r1 = qrows * (c + 1) / chunks;
    if (r1 == r0) continue;
    const int64_t first = row0 * H + r0;  // in rows of R latent values
    float* S = scratch + omp_get_thread_num() * stride;
    const int64_t slot = b.host.slot[s];
    const float* lat = in.latent + slot * L * R;
    Sgemm('N', 'T', r1 - r0, len, R, in.scale, q_lat + first * R, R, lat, R, 0.0f, S, len);
    if (rope)
      Sgemm('N', 'T', r1 - r0, len, P, in.scale, in.q_rope + first * P, P,
            in.k_rope + slot * L * P, P, 1.0f, S, len);
    MaskedSoftmax(S, r1 - r0, len, [pos0, H, r0](int64_t r) { return pos0 + (r0 + r) / H; });
    Sgemm('N', 'N', r1 - r0, R, len, 1.0f, S, len, lat, R, 0.0f, o_lat + first * R, R);
  }
  // y_h = (Σ_s p_s c_s)·W_uv,hᵀ: [rows, R]·[R, D] per head.
#pragma omp parallel for schedule(static) if (H > 1)
  for (int h = 0; h < H; ++h)
    Sgemm('N', 'T', rows, D, R, 1.0f, o_lat + h * R, HR, in.w_uv + int64_t{h} * D * R, R, 0.0f,
          y + h * D, ld_y);
}

void CpuKernels::DecodeLatentNaive(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                                   int64_t ld_y) {
  const int H = in.H, D = in.D, R = in.R, P = in.P, L = in.cache_len;
  const int64_t C = static_cast<int64_t>(H) * D;
  CHECK_EQ(in.w_uv, in.w_uk + C * R) << "naive decoding expands with W_uk and W_uv adjacent";
  const bool rope = in.q_rope != nullptr;
  const int64_t score_stride = static_cast<int64_t>(MaxSegmentRows(b)) * L;
  const int64_t kv_stride = static_cast<int64_t>(L) * 2 * C;
  float* scores = DecodeThreadScratch(decode_scores_, score_stride);
  float* expanded = DecodeThreadScratch(decode_expanded_, kv_stride);
  // [K | V] = C·[W_uk; W_uv]ᵀ for positions [p0, p1) of segment s into KV.
  auto expand = [&](int s, int64_t p0, int64_t p1, float* KV) {
    const int64_t slot = b.host.slot[s];
    Sgemm('N', 'T', p1 - p0, 2 * C, R, 1.0f, in.latent + (slot * L + p0) * R, R, in.w_uk, R, 0.0f,
          KV + p0 * 2 * C, 2 * C);
  };
  // Head h of segment s against its expanded [K | V].
  auto attend = [&](int s, int h, const float* KV, float* S) {
    const int64_t row0 = b.host.row0[s];
    const int n = b.host.row0[s + 1] - b.host.row0[s];
    const int pos0 = b.host.pos0[s], len = pos0 + n;
    const int64_t slot = b.host.slot[s];
    Sgemm('N', 'T', n, len, D, in.scale, in.q + row0 * in.ld_q + h * D, in.ld_q, KV + h * D,
          2 * C, 0.0f, S, len);
    if (rope)
      Sgemm('N', 'T', n, len, P, in.scale, in.q_rope + row0 * H * P + h * P, H * P,
            in.k_rope + slot * L * P, P, 1.0f, S, len);
    MaskedSoftmax(S, n, len, [pos0](int64_t i) { return pos0 + i; });
    Sgemm('N', 'N', n, D, len, 1.0f, S, len, KV + C + h * D, 2 * C, 0.0f,
          y + row0 * ld_y + h * D, ld_y);
  };
  const int threads = omp_get_max_threads();
  if (b.S >= threads) {
    // One segment per thread: expand into its own slice, then every head.
#pragma omp parallel for schedule(dynamic, 1) if (b.S > 1)
    for (int s = 0; s < b.S; ++s) {
      const int t = omp_get_thread_num();
      float* KV = expanded + t * kv_stride;
      expand(s, 0, b.host.pos0[s] + b.host.row0[s + 1] - b.host.row0[s], KV);
      for (int h = 0; h < H; ++h) attend(s, h, KV, scores + t * score_stride);
    }
    return;
  }
  // Fewer segments than threads (batch-1 decoding): segment s expands into
  // slice s, its positions split across the threads; then the (segment, head)
  // pairs are shared out. Every GEMM runs on its calling thread.
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int u = 0; u < b.S * threads; ++u) {
      const int s = u / threads, c = u % threads;
      const int64_t len = b.host.pos0[s] + b.host.row0[s + 1] - b.host.row0[s];
      const int64_t p0 = len * c / threads, p1 = len * (c + 1) / threads;
      if (p1 > p0) expand(s, p0, p1, expanded + s * kv_stride);
    }
#pragma omp for schedule(dynamic, 1)
    for (int u = 0; u < b.S * H; ++u)
      attend(u / H, u % H, expanded + (u / H) * kv_stride,
             scores + omp_get_thread_num() * score_stride);
  }
}

}  // namespace mla
