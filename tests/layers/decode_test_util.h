#pragma once
// Shared by the decode-kernel tests (CPU and GPU): a segment table built from
// (slot, n, pos0) triples, random fills, the attention problems both run, and
// a straightforward reference of the cache attention in double with its
// first-order fp32 error bound.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "layers/kernels.h"
#include "tests/layers/random_values.h"

namespace mla::testing {

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff

struct Seg {
  int slot, n, pos0;
};

// Host tables of a call; `batch()` points both table copies at host memory
// (a GPU test re-points `device` at its copy).
struct Tables {
  explicit Tables(const std::vector<Seg>& segs) {
    S = static_cast<int>(segs.size());
    int rows = 0;
    for (const Seg& s : segs) {
      slot.push_back(s.slot);
      row0.push_back(rows);
      pos0.push_back(s.pos0);
      for (int i = 0; i < s.n; ++i) pos.push_back(s.pos0 + i);
      rows += s.n;
      max_len = std::max(max_len, s.pos0 + s.n);
    }
    row0.push_back(rows);
    M = rows;
  }
  DecodeBatch batch() const {
    DecodeBatch b;
    b.S = S;
    b.M = M;
    b.max_len = max_len;
    b.host = {slot.data(), row0.data(), pos0.data(), pos.data()};
    b.device = b.host;
    return b;
  }
  // The slot of row r.
  int SlotOf(int64_t r) const {
    int s = 0;
    while (row0[s + 1] <= r) ++s;
    return slot[s];
  }
  int S = 0;
  int64_t M = 0;
  int max_len = 0;
  std::vector<int32_t> slot, row0, pos0, pos;
};

// The cache-attention problems of the decode-kernel tests: random queries
// (in [−2, 2]) and caches for `slots` slots of `cache_len` positions, with
// `in` pointing at them in host memory; Views() points the same call at
// copies elsewhere (a GPU test's device arrays).
// MHA: H = 3 heads of D = 8; the queries are columns q_offset … q_offset + C
// of rows 3·C wide (as in the fused QKV projection's output).
struct MhaProblem {
  static constexpr int H = 3, D = 8, C = H * D;
  MhaProblem(const Tables& t, int slots, int cache_len, int q_offset)
      : q(Random(t.M * 3 * C, 6, -2, 2)),
        k(Random(static_cast<size_t>(slots) * cache_len * C, 7, -2, 2)),
        v(Random(static_cast<size_t>(slots) * cache_len * C, 8)),
        q_offset(q_offset),
        cache_len(cache_len),
        in(Views(q.data(), k.data(), v.data())) {}
  MhaProblem(const MhaProblem&) = delete;
  MhaProblem& operator=(const MhaProblem&) = delete;

  DecodeAttentionViews Views(const float* q_rows, const float* k_cache,
                             const float* v_cache) const {
    DecodeAttentionViews views;
    views.H = H;
    views.D = D;
    views.scale = 1.0f / std::sqrt(static_cast<float>(D));
    views.cache_len = cache_len;
    views.q = q_rows + q_offset;
    views.ld_q = 3 * C;
    views.k = k_cache;
    views.v = v_cache;
    return views;
  }

  std::vector<float> q, k, v;
  int q_offset, cache_len;
  DecodeAttentionViews in;
};

// Latent (MLA): H = 2 heads of D = 8 over rank R = 6 latents, with P = 4
// rotary dims per head when `rope`; W_uk then W_uv, adjacent as in the model.
struct LatentProblem {
  static constexpr int H = 2, D = 8, C = H * D, R = 6, P = 4;
  LatentProblem(const Tables& t, int slots, int cache_len, bool rope)
      : q(Random(t.M * C, 9, -2, 2)),
        q_rope(Random(t.M * H * P, 10, -2, 2)),
        latent(Random(static_cast<size_t>(slots) * cache_len * R, 11)),
        k_rope(Random(static_cast<size_t>(slots) * cache_len * P, 12)),
        w(Random(2 * C * R, 13)),
        cache_len(cache_len),
        rope(rope),
        in(Views(q.data(), q_rope.data(), latent.data(), k_rope.data(), w.data())) {}
  LatentProblem(const LatentProblem&) = delete;
  LatentProblem& operator=(const LatentProblem&) = delete;

  DecodeAttentionViews Views(const float* q_rows, const float* q_rope_rows,
                             const float* latent_cache, const float* k_rope_cache,
                             const float* w_uk_uv) const {
    DecodeAttentionViews views;
    views.H = H;
    views.D = D;
    views.R = R;
    views.P = rope ? P : 0;
    views.scale = 1.0f / std::sqrt(static_cast<float>(D + views.P));
    views.cache_len = cache_len;
    views.q = q_rows;
    views.ld_q = C;
    views.latent = latent_cache;
    if (rope) {
      views.q_rope = q_rope_rows;
      views.k_rope = k_rope_cache;
    }
    views.w_uk = w_uk_uv;
    views.w_uv = w_uk_uv + C * R;
    return views;
  }

  std::vector<float> q, q_rope, latent, k_rope, w;
  int cache_len;
  bool rope;
  DecodeAttentionViews in;
};

// Reference cache attention for one kind (layers/kernels.h, "Decoding"):
// keys and values formed explicitly in double (expanded from the latents
// for MLA), scores, softmax and the weighted sum in double. Also returns,
// per output, a first-order bound on the fp32 error of any summation order:
//   score error  δ = scale·u·(E + 2)·Σ|q||k|  (E = D, or D + R through the
//                latent: one product forms k or q̃, one the score),
//   probability  relative error ≤ 2·max δ + 8u (exp, sum, normalisation),
//   output       ((len + R' + 8)·u + 2·max δ)·Σ_s p_s·|v|_s,j, where |v| is
//                the value formed from absolute values and R' = R for the
//                latent (the product forming v, or W_uv·ō) and 0 for MHA.
struct AttentionRef {
  std::vector<float> y;
  std::vector<double> tol;
};

inline AttentionRef ReferenceAttention(const DecodeAttentionViews& in, const Tables& t,
                                       bool latent, int64_t ld_y) {
  const int H = in.H, D = in.D, R = in.R, P = in.P, L = in.cache_len;
  const int64_t C = static_cast<int64_t>(H) * D;
  AttentionRef out;
  out.y.assign(static_cast<size_t>(t.M * ld_y), 0.0f);
  out.tol.assign(out.y.size(), 0.0);
  const double E = latent ? D + R : D;
  for (int64_t r = 0; r < t.M; ++r) {
    const int64_t slot = t.SlotOf(r);
    const int len = t.pos[r] + 1;
    for (int h = 0; h < H; ++h) {
      // k, |k|, v, |v| for positions 0 … len−1 of head h.
      std::vector<double> k(static_cast<size_t>(len) * D), ak(k.size()), v(k.size()), av(k.size());
      for (int s = 0; s < len; ++s)
        for (int d = 0; d < D; ++d) {
          const size_t i = static_cast<size_t>(s) * D + d;
          if (!latent) {
            const int64_t at = (slot * L + s) * C + h * D + d;
            k[i] = in.k[at];
            ak[i] = std::fabs(in.k[at]);
            v[i] = in.v[at];
            av[i] = std::fabs(in.v[at]);
            continue;
          }
          const float* c = in.latent + (slot * L + s) * R;
          const float* wk = in.w_uk + (static_cast<int64_t>(h) * D + d) * R;
          const float* wv = in.w_uv + (static_cast<int64_t>(h) * D + d) * R;
          for (int j = 0; j < R; ++j) {
            k[i] += static_cast<double>(wk[j]) * c[j];
            ak[i] += std::fabs(static_cast<double>(wk[j]) * c[j]);
            v[i] += static_cast<double>(wv[j]) * c[j];
            av[i] += std::fabs(static_cast<double>(wv[j]) * c[j]);
          }
        }
      const float* q = in.q + r * in.ld_q + h * D;
      std::vector<double> score(len), p(len);
      double dmax = 0.0, mx = -1e300;
      for (int s = 0; s < len; ++s) {
        double dot = 0.0, mag = 0.0;
        for (int d = 0; d < D; ++d) {
          dot += q[d] * k[static_cast<size_t>(s) * D + d];
          mag += std::fabs(q[d]) * ak[static_cast<size_t>(s) * D + d];
        }
        if (in.q_rope != nullptr) {
          const float* qr = in.q_rope + r * H * P + static_cast<int64_t>(h) * P;
          const float* kr = in.k_rope + (slot * L + s) * P;
          for (int j = 0; j < P; ++j) {
            dot += static_cast<double>(qr[j]) * kr[j];
            mag += std::fabs(static_cast<double>(qr[j]) * kr[j]);
          }
        }
        score[s] = in.scale * dot;
        dmax = std::max(dmax, in.scale * kU * (E + P + 2) * mag);
        mx = std::max(mx, score[s]);
      }
      double sum = 0.0;
      for (int s = 0; s < len; ++s) sum += (p[s] = std::exp(score[s] - mx));
      for (int s = 0; s < len; ++s) p[s] /= sum;
      const double rel = (len + (latent ? R : 0) + 8) * kU + 2 * dmax;
      for (int d = 0; d < D; ++d) {
        double acc = 0.0, mag = 0.0;
        for (int s = 0; s < len; ++s) {
          acc += p[s] * v[static_cast<size_t>(s) * D + d];
          mag += p[s] * av[static_cast<size_t>(s) * D + d];
        }
        out.y[r * ld_y + h * D + d] = static_cast<float>(acc);
        out.tol[r * ld_y + h * D + d] = rel * mag + 0.5 * kU * std::fabs(acc);  // + final rounding
      }
    }
  }
  return out;
}

}  // namespace mla::testing
