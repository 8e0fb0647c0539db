#include "runtime/decoder.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "layers/math/activation_math.h"
#include "oneapi/dnnl/dnnl.h"

namespace mla {
namespace {

// Row-major sgemm. Inside an OpenMP region oneDNN runs it on the calling
// thread; outside it uses its own threads.
void Sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  CHECK_EQ(st, dnnl_success) << "dnnl_sgemm failed";
}

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

int64_t OffsetOf(const ParameterLayout& layout, const std::string& name) {
  const int i = layout.Find(name);
  return i < 0 ? -1 : layout.params[i].offset;
}

}  // namespace

absl::StatusOr<DecodeMode> ParseDecodeMode(absl::string_view name) {
  if (name == "absorbed") return DecodeMode::kAbsorbed;
  if (name == "naive") return DecodeMode::kNaive;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown decode mode '", name, "' (expected absorbed or naive)"));
}

absl::string_view DecodeModeName(DecodeMode mode) {
  return mode == DecodeMode::kAbsorbed ? "absorbed" : "naive";
}

absl::string_view StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kEos: return "eos";
    case StopReason::kLength: return "length";
    case StopReason::kContext: return "context";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Decoder>> Decoder::Create(const GptModel& model, Kernels* kernels,
                                                         const DecoderOptions& options) {
  const int ctx = model.config().context_length;
  DecoderOptions o = options;
  if (o.max_len == 0) o.max_len = ctx;
  if (o.max_batch < 1)
    return absl::InvalidArgumentError(absl::StrCat("max_batch must be >= 1, got ", o.max_batch));
  if (o.max_len < 1 || o.max_len > ctx)
    return absl::InvalidArgumentError(
        absl::StrCat("max_len must be in [1, context ", ctx, "], got ", o.max_len));
  if (o.max_rows < o.max_batch)
    return absl::InvalidArgumentError(absl::StrCat(
        "max_rows (", o.max_rows, ") must be >= max_batch (", o.max_batch, ")"));
  return std::unique_ptr<Decoder>(new Decoder(model, kernels, o));
}

Decoder::Decoder(const GptModel& model, Kernels* kernels, const DecoderOptions& options)
    : model_(model),
      kernels_(kernels),
      options_(options),
      config_(model.config()),
      cache_(model.config(), options.max_batch, options.max_len) {
  const ModelConfig& c = config_;
  const ParameterLayout& lay = model.layout();
  wte_ = OffsetOf(lay, "wte.weight");
  wpe_ = OffsetOf(lay, "wpe.weight");
  lnf_w_ = OffsetOf(lay, "ln_f.weight");
  lnf_b_ = OffsetOf(lay, "ln_f.bias");
  head_ = c.tied_embeddings ? wte_ : OffsetOf(lay, "lm_head.weight");
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    LayerOffsets w;
    w.ln1_w = OffsetOf(lay, b + "ln1.weight");
    w.ln1_b = OffsetOf(lay, b + "ln1.bias");
    w.ln2_w = OffsetOf(lay, b + "ln2.weight");
    w.ln2_b = OffsetOf(lay, b + "ln2.bias");
    w.w_fc = OffsetOf(lay, b + "mlp.w_fc");
    w.b_fc = OffsetOf(lay, b + "mlp.b_fc");
    w.w_proj = OffsetOf(lay, b + "mlp.w_proj");
    w.b_proj = OffsetOf(lay, b + "mlp.b_proj");
    w.attn = model.blocks()[l].attention().weights();
    layers_.push_back(w);
  }
  scale_ = 1.0f / std::sqrt(static_cast<float>(c.qk_head_dim()));

  const int rot = c.rotary_dims();
  if (rot > 0) {
    const int half = rot / 2;
    rope_cos_.resize(static_cast<size_t>(options_.max_len) * half);
    rope_sin_.resize(rope_cos_.size());
    for (int p = 0; p < options_.max_len; ++p)
      for (int i = 0; i < half; ++i) {
        // Same frequencies and double-precision angles as the training kernels.
        const double a = static_cast<double>(p) * math::RopeFrequency(i, rot, c.rope_theta);
        rope_cos_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(a));
        rope_sin_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(a));
      }
  }

  const int64_t M = options_.max_rows, C = c.d_model, H = c.n_head, R = c.kv_rank,
                Q = c.q_rank, P = c.rope_dim, L = options_.max_len;
  tokens_.resize(M);
  pos_.resize(M);
  for (auto* v : {&seg_slot_, &seg_row0_, &seg_pos0_, &seg_n_}) v->resize(options_.max_batch + 1);
  for (auto* v : {&x_, &ln_, &y_}) v->resize(M * C);
  mean_.resize(M);
  rstd_.resize(M);
  fc_.resize(M * c.mlp_ratio * C);
  last_.resize(static_cast<size_t>(options_.max_batch) * C);
  logits_.resize(M * c.vocab_size);
  threads_ = omp_get_max_threads();
  if (!c.is_mla()) {
    qkv_.resize(M * 3 * C);
    score_stride_ = M * L;
  } else {
    q_.resize(M * C);
    if (Q > 0) {
      c_q_.resize(M * Q);
      if (c.latent_norm) c_q_n_.resize(M * Q);
      q_rstd_.resize(M);
    }
    c_kv_.resize(M * R);
    if (c.latent_norm) c_kv_n_.resize(M * R);
    kv_rstd_.resize(M);
    if (c.attention == AttentionKind::kMlaRope) {
      q_r_.resize(M * H * P);
      k_r_.resize(M * P);
    }
    if (options_.mode == DecodeMode::kAbsorbed) {
      q_lat_.resize(M * H * R);
      o_lat_.resize(M * H * R);
      score_stride_ = M * H * L;
    } else {
      score_stride_ = M * L;
      kv_stride_ = L * 2 * C;
      expanded_.resize(static_cast<size_t>(threads_) * kv_stride_);
    }
  }
  scores_.resize(static_cast<size_t>(threads_) * score_stride_);
}

float* Decoder::ThreadScratch(int which) {
  const int t = omp_get_thread_num();
  CHECK_LT(t, threads_) << "more OpenMP threads than when the decoder was created";
  return which == 0 ? scores_.data() + t * score_stride_ : expanded_.data() + t * kv_stride_;
}

void Decoder::ApplyRope(float* x, int64_t ld, int64_t rows, int heads, int dims) const {
  const int half = dims / 2;
#pragma omp parallel for schedule(static) if (rows > 8)
  for (int64_t r = 0; r < rows; ++r) {
    const float* cs = rope_cos_.data() + static_cast<int64_t>(pos_[r]) * half;
    const float* sn = rope_sin_.data() + static_cast<int64_t>(pos_[r]) * half;
    for (int h = 0; h < heads; ++h) {
      float* z = x + r * ld + static_cast<int64_t>(h) * dims;
      for (int i = 0; i < half; ++i) math::RopeRotatePair(z[2 * i], z[2 * i + 1], cs[i], sn[i]);
    }
  }
}

void Decoder::Forward(absl::Span<const DecodeSegment> segments, bool all_logits) {
  const ModelConfig& c = config_;
  const int nseg = static_cast<int>(segments.size());
  CHECK(nseg >= 1 && nseg <= options_.max_batch) << nseg << " segments";
  int64_t rows = 0;
  for (int k = 0; k < nseg; ++k) {
    const DecodeSegment& s = segments[k];
    CHECK(s.slot >= 0 && s.slot < options_.max_batch) << "slot " << s.slot;
    CHECK_GE(s.n, 1);
    const int pos0 = cache_.length(s.slot);
    CHECK_LE(pos0 + s.n, options_.max_len) << "slot " << s.slot << " would overflow the cache";
    CHECK_LE(rows + s.n, options_.max_rows) << "more rows than max_rows";
    for (int j = 0; j < k; ++j) CHECK_NE(seg_slot_[j], s.slot) << "slot used twice in one call";
    seg_slot_[k] = s.slot;
    seg_row0_[k] = static_cast<int>(rows);
    seg_pos0_[k] = pos0;
    seg_n_[k] = s.n;
    for (int i = 0; i < s.n; ++i) {
      CHECK(s.tokens[i] >= 0 && s.tokens[i] < c.vocab_size) << "token " << s.tokens[i];
      tokens_[rows + i] = s.tokens[i];
      pos_[rows + i] = pos0 + i;
    }
    rows += s.n;
  }
  seg_row0_[nseg] = static_cast<int>(rows);

  Kernels& k = *kernels_;
  const float* p = model_.params();
  const int C = c.d_model;
  const float* wte = p + wte_;
  const float* wpe = wpe_ >= 0 ? p + wpe_ : nullptr;
#pragma omp parallel for schedule(static) if (rows > 8)
  for (int64_t r = 0; r < rows; ++r) {
    float* x = x_.data() + r * C;
    const float* e = wte + static_cast<int64_t>(tokens_[r]) * C;
    if (wpe != nullptr) {
      const float* pe = wpe + static_cast<int64_t>(pos_[r]) * C;
      for (int i = 0; i < C; ++i) x[i] = e[i] + pe[i];
    } else {
      std::copy(e, e + C, x);
    }
  }
  const int64_t hidden = static_cast<int64_t>(c.mlp_ratio) * C;
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerOffsets& w = layers_[l];
    k.LayerNormForward(x_.data(), p + w.ln1_w, p + w.ln1_b, ln_.data(), mean_.data(),
                       rstd_.data(), rows, C);
    Attention(l, nseg, rows);
    k.LinearForward(y_.data(), p + w.attn.w_o, p + w.attn.b_o, x_.data(), rows, C, C,
                    Epilogue::kBias, true);
    k.LayerNormForward(x_.data(), p + w.ln2_w, p + w.ln2_b, ln_.data(), mean_.data(),
                       rstd_.data(), rows, C);
    k.LinearForward(ln_.data(), p + w.w_fc, p + w.b_fc, fc_.data(), rows, hidden, C,
                    Epilogue::kBiasGelu, false);
    k.LinearForward(fc_.data(), p + w.w_proj, p + w.b_proj, x_.data(), rows, C, hidden,
                    Epilogue::kBias, true);
  }
  const float* final_in = x_.data();
  int64_t out_rows = rows;
  if (!all_logits) {
    for (int s = 0; s < nseg; ++s)
      std::copy_n(x_.data() + static_cast<int64_t>(seg_row0_[s + 1] - 1) * C, C,
                  last_.data() + static_cast<int64_t>(s) * C);
    final_in = last_.data();
    out_rows = nseg;
  }
  k.LayerNormForward(final_in, p + lnf_w_, p + lnf_b_, ln_.data(), mean_.data(), rstd_.data(),
                     out_rows, C);
  k.LinearForward(ln_.data(), p + head_, nullptr, logits_.data(), out_rows, c.vocab_size, C,
                  Epilogue::kNone, false);
  for (int s = 0; s < nseg; ++s) cache_.set_length(seg_slot_[s], seg_pos0_[s] + seg_n_[s]);
}

void Decoder::Attention(int l, int nseg, int64_t rows) {
  const ModelConfig& c = config_;
  Kernels& k = *kernels_;
  const float* p = model_.params();
  const AttentionWeights& w = layers_[l].attn;
  const int C = c.d_model, H = c.n_head, D = c.head_dim(), R = c.kv_rank, Q = c.q_rank,
            P = c.rope_dim;
  if (!c.is_mla()) {
    k.LinearForward(ln_.data(), p + w.w_qkv, p + w.b_qkv, qkv_.data(), rows, 3 * C, C,
                    Epilogue::kBias, false);
    if (c.attention == AttentionKind::kMhaRope) {
      ApplyRope(qkv_.data(), 3 * C, rows, H, D);
      ApplyRope(qkv_.data() + C, 3 * C, rows, H, D);
    }
    for (int s = 0; s < nseg; ++s)
      for (int i = 0; i < seg_n_[s]; ++i) {
        const float* src = qkv_.data() + static_cast<int64_t>(seg_row0_[s] + i) * 3 * C;
        std::copy_n(src + C, C, cache_.Row(l, seg_slot_[s], KvPart::kKey, seg_pos0_[s] + i));
        std::copy_n(src + 2 * C, C, cache_.Row(l, seg_slot_[s], KvPart::kValue, seg_pos0_[s] + i));
      }
    AttentionMha(l, nseg);
    return;
  }
  const float* src_q = ln_.data();
  int src_q_dim = C;
  if (Q > 0) {
    k.LinearForward(ln_.data(), p + w.w_dq, nullptr, c_q_.data(), rows, Q, C, Epilogue::kNone,
                    false);
    src_q = c_q_.data();
    if (c.latent_norm) {
      k.RmsNormForward(c_q_.data(), p + w.q_norm, c_q_n_.data(), q_rstd_.data(), rows, Q);
      src_q = c_q_n_.data();
    }
    src_q_dim = Q;
    k.LinearForward(src_q, p + w.w_uq, nullptr, q_.data(), rows, C, Q, Epilogue::kNone, false);
  } else {
    k.LinearForward(ln_.data(), p + w.w_q, nullptr, q_.data(), rows, C, C, Epilogue::kNone, false);
  }
  k.LinearForward(ln_.data(), p + w.w_dkv, nullptr, c_kv_.data(), rows, R, C, Epilogue::kNone,
                  false);
  const float* src_kv = c_kv_.data();
  if (c.latent_norm) {
    k.RmsNormForward(c_kv_.data(), p + w.kv_norm, c_kv_n_.data(), kv_rstd_.data(), rows, R);
    src_kv = c_kv_n_.data();
  }
  const bool rope = c.attention == AttentionKind::kMlaRope;
  if (rope) {
    k.LinearForward(src_q, p + w.w_qr, nullptr, q_r_.data(), rows, H * P, src_q_dim,
                    Epilogue::kNone, false);
    ApplyRope(q_r_.data(), H * P, rows, H, P);
    k.LinearForward(ln_.data(), p + w.w_kr, nullptr, k_r_.data(), rows, P, C, Epilogue::kNone,
                    false);
    ApplyRope(k_r_.data(), P, rows, 1, P);
  }
  for (int s = 0; s < nseg; ++s)
    for (int i = 0; i < seg_n_[s]; ++i) {
      const int64_t r = seg_row0_[s] + i;
      std::copy_n(src_kv + r * R, R, cache_.Row(l, seg_slot_[s], KvPart::kLatent, seg_pos0_[s] + i));
      if (rope)
        std::copy_n(k_r_.data() + r * P, P,
                    cache_.Row(l, seg_slot_[s], KvPart::kRopeKey, seg_pos0_[s] + i));
    }
  if (options_.mode == DecodeMode::kAbsorbed)
    AttentionMlaAbsorbed(l, nseg, rows);
  else
    AttentionMlaNaive(l, nseg);
}

void Decoder::AttentionMha(int l, int nseg) {
  const int C = config_.d_model, H = config_.n_head, D = config_.head_dim();
  const int units = nseg * H;
#pragma omp parallel for schedule(dynamic, 1) if (units > 1)
  for (int u = 0; u < units; ++u) {
    const int s = u / H, h = u % H;
    const int n = seg_n_[s], pos0 = seg_pos0_[s], len = pos0 + n;
    const int64_t row0 = seg_row0_[s];
    float* S = ThreadScratch(0);
    const float* K = cache_.Row(l, seg_slot_[s], KvPart::kKey, 0) + h * D;
    const float* V = cache_.Row(l, seg_slot_[s], KvPart::kValue, 0) + h * D;
    Sgemm('N', 'T', n, len, D, scale_, qkv_.data() + row0 * 3 * C + h * D, 3 * C, K, C, 0.0f, S,
          len);
    MaskedSoftmax(S, n, len, [pos0](int64_t i) { return pos0 + i; });
    Sgemm('N', 'N', n, D, len, 1.0f, S, len, V, C, 0.0f, y_.data() + row0 * C + h * D, C);
  }
}

void Decoder::AttentionMlaAbsorbed(int l, int nseg, int64_t rows) {
  const float* p = model_.params();
  const AttentionWeights& w = layers_[l].attn;
  const int C = config_.d_model, H = config_.n_head, D = config_.head_dim(), R = config_.kv_rank,
            P = config_.rope_dim;
  const bool rope = config_.attention == AttentionKind::kMlaRope;
  const int64_t HR = static_cast<int64_t>(H) * R;
  // q̃_h = W_uk,hᵀ q_h for every row: [rows, D]·[D, R] per head. Always
  // inside a parallel region, so each small GEMM runs on one thread (oneDNN
  // threading GEMMs this small costs far more than the GEMM itself).
#pragma omp parallel for schedule(static) if (H > 1)
  for (int h = 0; h < H; ++h)
    Sgemm('N', 'N', rows, R, D, 1.0f, q_.data() + h * D, C, p + w.w_uk + int64_t{h} * D * R, R,
          0.0f, q_lat_.data() + h * R, HR);
  // Per segment, all heads at once: the n·H query rows of a segment are
  // contiguous [n·H, R], and every head reads the same cached latents. With
  // fewer segments than threads each segment's rows are split into chunks
  // (a row's causal limit depends only on its own index).
  const int threads = omp_get_max_threads();
  const int chunks = nseg >= threads ? 1 : threads;
#pragma omp parallel for schedule(dynamic, 1) if (nseg * chunks > 1)
  for (int u = 0; u < nseg * chunks; ++u) {
    const int s = u / chunks, c = u % chunks;
    const int n = seg_n_[s], pos0 = seg_pos0_[s], len = pos0 + n;
    const int64_t qrows = static_cast<int64_t>(n) * H;
    const int64_t r0 = qrows * c / chunks, r1 = qrows * (c + 1) / chunks;
    if (r1 == r0) continue;
    const int64_t first = seg_row0_[s] * H + r0;  // in rows of R latent values
    float* S = ThreadScratch(0);
    const float* lat = cache_.Row(l, seg_slot_[s], KvPart::kLatent, 0);
    Sgemm('N', 'T', r1 - r0, len, R, scale_, q_lat_.data() + first * R, R, lat, R, 0.0f, S, len);
    if (rope)
      Sgemm('N', 'T', r1 - r0, len, P, scale_, q_r_.data() + first * P, P,
            cache_.Row(l, seg_slot_[s], KvPart::kRopeKey, 0), P, 1.0f, S, len);
    MaskedSoftmax(S, r1 - r0, len, [pos0, H, r0](int64_t r) { return pos0 + (r0 + r) / H; });
    Sgemm('N', 'N', r1 - r0, R, len, 1.0f, S, len, lat, R, 0.0f, o_lat_.data() + first * R, R);
  }
  // y_h = (Σ_s p_s c_s)·W_uv,hᵀ: [rows, R]·[R, D] per head.
#pragma omp parallel for schedule(static) if (H > 1)
  for (int h = 0; h < H; ++h)
    Sgemm('N', 'T', rows, D, R, 1.0f, o_lat_.data() + h * R, HR, p + w.w_uv + int64_t{h} * D * R,
          R, 0.0f, y_.data() + h * D, C);
}

void Decoder::AttentionMlaNaive(int l, int nseg) {
  const float* p = model_.params();
  const AttentionWeights& w = layers_[l].attn;
  const int C = config_.d_model, H = config_.n_head, D = config_.head_dim(), R = config_.kv_rank,
            P = config_.rope_dim;
  const bool rope = config_.attention == AttentionKind::kMlaRope;
#pragma omp parallel for schedule(dynamic, 1) if (nseg > 1)
  for (int s = 0; s < nseg; ++s) {
    const int n = seg_n_[s], pos0 = seg_pos0_[s], len = pos0 + n;
    const int64_t row0 = seg_row0_[s];
    float* S = ThreadScratch(0);
    float* KV = ThreadScratch(1);
    // [K | V] = C·[W_uk; W_uv]ᵀ for every cached position (W_uk, W_uv adjacent).
    Sgemm('N', 'T', len, 2 * C, R, 1.0f, cache_.Row(l, seg_slot_[s], KvPart::kLatent, 0), R,
          p + w.w_uk, R, 0.0f, KV, 2 * C);
    for (int h = 0; h < H; ++h) {
      Sgemm('N', 'T', n, len, D, scale_, q_.data() + row0 * C + h * D, C, KV + h * D, 2 * C, 0.0f,
            S, len);
      if (rope)
        Sgemm('N', 'T', n, len, P, scale_, q_r_.data() + row0 * H * P + h * P, H * P,
              cache_.Row(l, seg_slot_[s], KvPart::kRopeKey, 0), P, 1.0f, S, len);
      MaskedSoftmax(S, n, len, [pos0](int64_t i) { return pos0 + i; });
      Sgemm('N', 'N', n, D, len, 1.0f, S, len, KV + C + h * D, 2 * C, 0.0f,
            y_.data() + row0 * C + h * D, C);
    }
  }
}

// Generation -----------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

absl::Status ValidateRequest(const GenerationRequest& r, const ModelConfig& c, int max_len) {
  if (r.prompt.empty()) return absl::InvalidArgumentError("empty prompt");
  if (static_cast<int>(r.prompt.size()) >= max_len)
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt of ", r.prompt.size(), " tokens leaves no room in the context of ", max_len,
        " tokens"));
  for (int32_t t : r.prompt)
    if (t < 0 || t >= c.vocab_size)
      return absl::InvalidArgumentError(
          absl::StrCat("prompt token ", t, " is outside the vocabulary of ", c.vocab_size));
  if (r.max_new_tokens < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be >= 1, got ", r.max_new_tokens));
  return ValidateSamplingParams(r.sampling);
}

}  // namespace

std::vector<GenerationResult> Generate(Decoder& decoder,
                                       absl::Span<const GenerationRequest> requests, int eos_id,
                                       GenerationStats* stats) {
  const DecoderOptions& opt = decoder.options();
  const int V = decoder.config().vocab_size;
  KvCache& cache = decoder.cache();
  std::vector<GenerationResult> results(requests.size());
  std::deque<int> pending;
  for (size_t i = 0; i < requests.size(); ++i) {
    results[i].status = ValidateRequest(requests[i], decoder.config(), opt.max_len);
    if (results[i].status.ok()) pending.push_back(static_cast<int>(i));
  }
  GenerationStats local;
  GenerationStats& st = stats != nullptr ? *stats : local;
  Sampler sampler(V);
  std::vector<int> slot_request(opt.max_batch, -1);
  std::vector<int> prefilled(opt.max_batch, 0);  // prompt tokens already in the cache
  std::vector<Clock::time_point> started(opt.max_batch);
  std::vector<int32_t> next_token(opt.max_batch, 0);
  std::vector<DecodeSegment> segs;
  std::vector<int> seg_slots;
  segs.reserve(opt.max_batch);
  seg_slots.reserve(opt.max_batch);
  for (int s = 0; s < opt.max_batch; ++s) cache.Clear(s);

  // Records a sampled token for the request in `slot`; frees the slot when done.
  auto accept = [&](int slot, int token) {
    const int ri = slot_request[slot];
    GenerationResult& res = results[ri];
    bool done = false;
    if (token == eos_id) {
      res.stop = StopReason::kEos;
      done = true;
    } else {
      res.tokens.push_back(token);
      if (static_cast<int>(res.tokens.size()) >= requests[ri].max_new_tokens) {
        res.stop = StopReason::kLength;
        done = true;
      } else if (cache.length(slot) >= opt.max_len) {
        res.stop = StopReason::kContext;  // no position left to feed the token back
        done = true;
      }
    }
    if (done) {
      res.seconds = Since(started[slot]);
      slot_request[slot] = -1;
      cache.Clear(slot);
    } else {
      next_token[slot] = token;
    }
  };

  while (true) {
    // Admit waiting requests into free slots, then prefill every slot whose
    // prompt is not fully in the cache, in chunks of at most max_rows rows.
    for (int s = 0; s < opt.max_batch && !pending.empty(); ++s) {
      if (slot_request[s] >= 0) continue;
      slot_request[s] = pending.front();
      pending.pop_front();
      prefilled[s] = 0;
      started[s] = Clock::now();
    }
    while (true) {
      segs.clear();
      seg_slots.clear();
      int rows = 0;
      for (int s = 0; s < opt.max_batch && rows < opt.max_rows; ++s) {
        if (slot_request[s] < 0) continue;
        const auto& prompt = requests[slot_request[s]].prompt;
        const int left = static_cast<int>(prompt.size()) - prefilled[s];
        if (left <= 0) continue;
        const int n = std::min(left, opt.max_rows - rows);
        segs.push_back({s, n, prompt.data() + prefilled[s]});
        seg_slots.push_back(s);
        prefilled[s] += n;
        rows += n;
      }
      if (segs.empty()) break;
      const auto t0 = Clock::now();
      decoder.Forward(segs, false);
      st.prefill_seconds += Since(t0);
      st.prefill_tokens += rows;
      for (size_t k = 0; k < segs.size(); ++k) {
        const int s = seg_slots[k];
        const int ri = slot_request[s];
        if (prefilled[s] < static_cast<int>(requests[ri].prompt.size())) continue;
        accept(s, sampler.Sample(decoder.logits() + static_cast<int64_t>(k) * V,
                                 requests[ri].sampling, 0));
      }
    }
    // One decode step for every active slot.
    segs.clear();
    seg_slots.clear();
    for (int s = 0; s < opt.max_batch; ++s) {
      if (slot_request[s] < 0) continue;
      segs.push_back({s, 1, &next_token[s]});
      seg_slots.push_back(s);
    }
    if (segs.empty()) {
      if (pending.empty()) break;
      continue;
    }
    const auto t0 = Clock::now();
    decoder.Forward(segs, false);
    st.decode_seconds += Since(t0);
    st.decode_tokens += static_cast<int64_t>(segs.size());
    for (size_t k = 0; k < segs.size(); ++k) {
      const int s = seg_slots[k];
      const int ri = slot_request[s];
      accept(s, sampler.Sample(decoder.logits() + static_cast<int64_t>(k) * V,
                               requests[ri].sampling, results[ri].tokens.size()));
    }
  }
  return results;
}

}  // namespace mla
