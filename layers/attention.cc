#include "layers/attention.h"

#include <cmath>

#include "glog/logging.h"

namespace mla {

AttentionLayer::AttentionLayer(Kernels* kernels, AttentionShape shape, AttentionWeights weights)
    : kernels_(kernels), shape_(shape), weights_(weights) {
  if (shape_.mla) {
    // k and v come from one matmul over the adjacent [W_uk; W_uv] block.
    CHECK_EQ(weights_.w_uv, weights_.w_uk + static_cast<int64_t>(shape_.C) * shape_.R)
        << "w_uk and w_uv must be adjacent in the parameter buffer";
  }
}

void AttentionLayer::Reserve(int B, int T, AttentionScratch* s, ActivationSizer& z) {
  const int64_t M = static_cast<int64_t>(B) * T;
  const int64_t C = shape_.C, H = shape_.H, R = shape_.R, Q = shape_.Q, P = shape_.P;
  ReserveCached(M, z);
  z.Need(probs_, static_cast<int64_t>(B) * H * T * T);
  z.Need(s->d_y, M * C);
  if (!shape_.mla) {
    z.Need(s->d_kv, M * 3 * C);  // holds d[q|k|v]
    return;
  }
  z.Need(kv_, M * 2 * C);
  z.Need(s->d_q, M * C);
  z.Need(s->d_kv, M * 2 * C);
  z.Need(s->d_ckv, M * R);
  if (shape_.latent_norm) z.Need(s->d_ckv_raw, M * R);
  if (Q > 0) {
    z.Need(s->d_cq, M * Q);
    if (shape_.latent_norm) z.Need(s->d_cq_raw, M * Q);
  }
  if (shape_.rope == RopeMode::kDecoupled) {
    z.Need(s->d_qr, M * H * P);
    z.Need(s->d_kr, M * P);
  }
}

void AttentionLayer::ReserveCached(int64_t M, ActivationSizer& z) {
  const int64_t C = shape_.C, H = shape_.H, R = shape_.R, Q = shape_.Q, P = shape_.P;
  z.Need(y_, M * C);
  if (!shape_.mla) {
    z.Need(qkv_, M * 3 * C);
    return;
  }
  z.Need(q_, M * C);
  z.Need(c_kv_, M * R);
  if (shape_.latent_norm) {
    z.Need(c_kv_n_, M * R);
    z.Need(kv_rstd_, M);
  }
  if (Q > 0) {
    z.Need(c_q_, M * Q);
    if (shape_.latent_norm) {
      z.Need(c_q_n_, M * Q);
      z.Need(q_rstd_, M);
    }
  }
  if (shape_.rope == RopeMode::kDecoupled) {
    z.Need(qr_, M * H * P);
    z.Need(kr_, M * P);
  }
}

AttentionViews AttentionLayer::Views(int B, int T) const {
  const int C = shape_.C;
  AttentionViews v;
  v.B = B; v.T = T; v.H = shape_.H; v.D = shape_.D();
  const bool decoupled = shape_.rope == RopeMode::kDecoupled;
  v.P = decoupled ? shape_.P : 0;
  v.scale = 1.0f / std::sqrt(static_cast<float>(v.D + v.P));
  if (!shape_.mla) {
    v.q = qkv_.data();          v.ld_q = 3 * C;
    v.k = qkv_.data() + C;      v.ld_k = 3 * C;
    v.v = qkv_.data() + 2 * C;  v.ld_v = 3 * C;
  } else {
    v.q = q_.data();            v.ld_q = C;
    v.k = kv_.data();           v.ld_k = 2 * C;
    v.v = kv_.data() + C;       v.ld_v = 2 * C;
    if (decoupled) {
      v.q_rope = qr_.data();    v.ld_q_rope = static_cast<int64_t>(shape_.H) * shape_.P;
      v.k_rope = kr_.data();    v.ld_k_rope = shape_.P;
    }
  }
  return v;
}

DecodeAttentionViews AttentionLayer::CachedViews(const float* p, const LayerCache& cache) const {
  DecodeAttentionViews v;
  v.H = shape_.H;
  v.D = shape_.D();
  v.P = shape_.P;
  v.R = shape_.R;
  const bool decoupled = shape_.rope == RopeMode::kDecoupled;
  v.scale = 1.0f / std::sqrt(static_cast<float>(v.D + (decoupled ? v.P : 0)));
  v.cache_len = cache.len;
  if (!shape_.mla) {
    v.q = qkv_.data();
    v.ld_q = 3 * shape_.C;
    v.k = cache.first;
    v.v = cache.second;
    return v;
  }
  v.q = q_.data();
  v.ld_q = shape_.C;
  v.latent = cache.first;
  if (decoupled) {
    v.q_rope = qr_.data();
    v.k_rope = cache.second;
  }
  v.w_uk = p + weights_.w_uk;
  v.w_uv = p + weights_.w_uv;
  return v;
}

template <typename RopeFn>
const float* AttentionLayer::Project(const float* p, const float* x, int64_t M, RopeFn rope) {
  Kernels& k = *kernels_;
  const int C = shape_.C, H = shape_.H, D = shape_.D(), R = shape_.R, Q = shape_.Q, P = shape_.P;
  const AttentionWeights& w = weights_;
  if (!shape_.mla) {
    k.LinearForward(x, p + w.w_qkv, p + w.b_qkv, qkv_.data(), M, 3 * C, C, Epilogue::kBias, false);
    if (shape_.rope == RopeMode::kFullHead) {
      rope(qkv_.data(), 3 * C, H, D);
      rope(qkv_.data() + C, 3 * C, H, D);
    }
    return nullptr;
  }
  const float* src_q = x;
  int src_q_dim = C;
  if (Q > 0) {
    k.LinearForward(x, p + w.w_dq, nullptr, c_q_.data(), M, Q, C, Epilogue::kNone, false);
    src_q = c_q_.data();
    if (shape_.latent_norm) {
      k.RmsNormForward(c_q_.data(), p + w.q_norm, c_q_n_.data(), q_rstd_.data(), M, Q);
      src_q = c_q_n_.data();
    }
    src_q_dim = Q;
    k.LinearForward(src_q, p + w.w_uq, nullptr, q_.data(), M, C, Q, Epilogue::kNone, false);
  } else {
    k.LinearForward(x, p + w.w_q, nullptr, q_.data(), M, C, C, Epilogue::kNone, false);
  }
  k.LinearForward(x, p + w.w_dkv, nullptr, c_kv_.data(), M, R, C, Epilogue::kNone, false);
  const float* src_kv = c_kv_.data();
  if (shape_.latent_norm) {
    k.RmsNormForward(c_kv_.data(), p + w.kv_norm, c_kv_n_.data(), kv_rstd_.data(), M, R);
    src_kv = c_kv_n_.data();
  }
  if (shape_.rope == RopeMode::kDecoupled) {
    k.LinearForward(src_q, p + w.w_qr, nullptr, qr_.data(), M, H * P, src_q_dim, Epilogue::kNone,
                    false);
    rope(qr_.data(), H * P, H, P);
    k.LinearForward(x, p + w.w_kr, nullptr, kr_.data(), M, P, C, Epilogue::kNone, false);
    rope(kr_.data(), P, 1, P);
  }
  return src_kv;
}

void AttentionLayer::Forward(const float* p, const float* x, float* residual, int B, int T) {
  Kernels& k = *kernels_;
  const int64_t M = static_cast<int64_t>(B) * T;
  const int C = shape_.C, R = shape_.R;
  const float theta = shape_.rope_theta;
  const float* src_kv = Project(p, x, M, [&](float* a, int64_t ld, int heads, int dims) {
    k.Rope(a, ld, M, T, 0, heads, dims, theta, false);
  });
  if (shape_.mla)
    k.LinearForward(src_kv, p + weights_.w_uk, nullptr, kv_.data(), M, 2 * C, R, Epilogue::kNone,
                    false);
  k.AttentionForward(Views(B, T), y_.data(), C, probs_.data());
  k.LinearForward(y_.data(), p + weights_.w_o, p + weights_.b_o, residual, M, C, C,
                  Epilogue::kBias, true);
}

void AttentionLayer::Forward(const float* p, const float* x, float* residual,
                             const CachedCall& call, const LayerCache& cache) {
  Kernels& k = *kernels_;
  const DecodeBatch& b = *call.batch;
  const int C = shape_.C, R = shape_.R, P = shape_.P, L = cache.len;
  const float theta = shape_.rope_theta;
  const float* src_kv = Project(p, x, b.M, [&](float* a, int64_t ld, int heads, int dims) {
    k.DecodeRope(a, ld, heads, dims, theta, b);
  });
  if (!shape_.mla) {
    k.DecodeCacheAppend(qkv_.data() + C, 3 * C, C, cache.first, L, b);
    k.DecodeCacheAppend(qkv_.data() + 2 * C, 3 * C, C, cache.second, L, b);
    k.DecodeAttention(CachedViews(p, cache), b, y_.data(), C);
  } else {
    if (shape_.rope == RopeMode::kDecoupled)
      k.DecodeCacheAppend(kr_.data(), P, P, cache.second, L, b);
    k.DecodeCacheAppend(src_kv, R, R, cache.first, L, b);
    k.DecodeLatentAttention(CachedViews(p, cache), b, call.mode == DecodeMode::kAbsorbed,
                            y_.data(), C);
  }
  k.LinearForward(y_.data(), p + weights_.w_o, p + weights_.b_o, residual, b.M, C, C,
                  Epilogue::kBias, true);
}

void AttentionLayer::Backward(const float* p, float* g, const float* x, const float* d_out,
                              float* d_x, int B, int T, AttentionScratch* s) {
  Kernels& k = *kernels_;
  const int64_t M = static_cast<int64_t>(B) * T;
  const int C = shape_.C, H = shape_.H, D = shape_.D(), R = shape_.R, Q = shape_.Q, P = shape_.P;
  const AttentionWeights& w = weights_;
  const AttentionViews views = Views(B, T);
  k.LinearBackward(y_.data(), p + w.w_o, d_out, s->d_y.data(), g + w.w_o, g + w.b_o, M, C, C,
                   false);
  AttentionGrads ag;
  if (!shape_.mla) {
    float* dqkv = s->d_kv.data();
    ag.dq = dqkv;          ag.ld_dq = 3 * C;
    ag.dk = dqkv + C;      ag.ld_dk = 3 * C;
    ag.dv = dqkv + 2 * C;  ag.ld_dv = 3 * C;
    k.AttentionBackward(views, probs_.data(), s->d_y.data(), C, ag);
    if (shape_.rope == RopeMode::kFullHead) {
      k.Rope(dqkv, 3 * C, M, T, 0, H, D, shape_.rope_theta, true);
      k.Rope(dqkv + C, 3 * C, M, T, 0, H, D, shape_.rope_theta, true);
    }
    k.LinearBackward(x, p + w.w_qkv, dqkv, d_x, g + w.w_qkv, g + w.b_qkv, M, 3 * C, C, false);
    return;
  }
  const bool decoupled = shape_.rope == RopeMode::kDecoupled;
  ag.dq = s->d_q.data();          ag.ld_dq = C;
  ag.dk = s->d_kv.data();         ag.ld_dk = 2 * C;
  ag.dv = s->d_kv.data() + C;     ag.ld_dv = 2 * C;
  if (decoupled) {
    ag.dq_rope = s->d_qr.data();  ag.ld_dq_rope = static_cast<int64_t>(H) * P;
    ag.dk_rope = s->d_kr.data();  ag.ld_dk_rope = P;
  }
  k.AttentionBackward(views, probs_.data(), s->d_y.data(), C, ag);
  // Keys and values through the latent.
  const float* src_kv = shape_.latent_norm ? c_kv_n_.data() : c_kv_.data();
  k.LinearBackward(src_kv, p + w.w_uk, s->d_kv.data(), s->d_ckv.data(), g + w.w_uk, nullptr, M,
                   2 * C, R, false);
  const float* d_ckv = s->d_ckv.data();
  if (shape_.latent_norm) {
    k.RmsNormBackward(s->d_ckv.data(), c_kv_.data(), p + w.kv_norm, kv_rstd_.data(),
                      s->d_ckv_raw.data(), g + w.kv_norm, M, R);
    d_ckv = s->d_ckv_raw.data();
  }
  k.LinearBackward(x, p + w.w_dkv, d_ckv, d_x, g + w.w_dkv, nullptr, M, R, C, false);
  if (decoupled) {
    k.Rope(s->d_qr.data(), H * P, M, T, 0, H, P, shape_.rope_theta, true);
    k.Rope(s->d_kr.data(), P, M, T, 0, 1, P, shape_.rope_theta, true);
    k.LinearBackward(x, p + w.w_kr, s->d_kr.data(), d_x, g + w.w_kr, nullptr, M, P, C, true);
  }
  // Queries.
  if (Q == 0) {
    k.LinearBackward(x, p + w.w_q, s->d_q.data(), d_x, g + w.w_q, nullptr, M, C, C, true);
    if (decoupled)
      k.LinearBackward(x, p + w.w_qr, s->d_qr.data(), d_x, g + w.w_qr, nullptr, M, H * P, C, true);
    return;
  }
  const float* src_q = shape_.latent_norm ? c_q_n_.data() : c_q_.data();
  k.LinearBackward(src_q, p + w.w_uq, s->d_q.data(), s->d_cq.data(), g + w.w_uq, nullptr, M, C, Q,
                   false);
  if (decoupled)
    k.LinearBackward(src_q, p + w.w_qr, s->d_qr.data(), s->d_cq.data(), g + w.w_qr, nullptr, M,
                     H * P, Q, true);
  const float* d_cq = s->d_cq.data();
  if (shape_.latent_norm) {
    k.RmsNormBackward(s->d_cq.data(), c_q_.data(), p + w.q_norm, q_rstd_.data(),
                      s->d_cq_raw.data(), g + w.q_norm, M, Q);
    d_cq = s->d_cq_raw.data();
  }
  k.LinearBackward(x, p + w.w_dq, d_cq, d_x, g + w.w_dq, nullptr, M, Q, C, true);
}

}  // namespace mla
