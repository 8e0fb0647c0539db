#include "runtime/decoder.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace mla {
namespace {

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
  if (kernels == nullptr) return absl::InvalidArgumentError("the decoder needs kernels");
  if (model.kernels() == nullptr || model.kernels()->is_host() != kernels->is_host())
    return absl::InvalidArgumentError(absl::StrCat(
        "the model's parameters are in ", model.kernels() != nullptr && model.kernels()->is_host()
                                              ? "host"
                                              : "GPU",
        " memory but the decoder's kernels run on ", kernels->is_host() ? "the host" : "a GPU",
        "; create the model and the decoder on the same kernels"));
  return std::unique_ptr<Decoder>(new Decoder(model, kernels, o));
}

Decoder::Decoder(const GptModel& model, Kernels* kernels, const DecoderOptions& options)
    : model_(model),
      kernels_(kernels),
      options_(options),
      config_(model.config()),
      cache_(model.config(), options.max_batch, options.max_len, kernels),
      table_(kernels) {
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

  const int64_t M = options_.max_rows, C = c.d_model, H = c.n_head, R = c.kv_rank,
                Q = c.q_rank, P = c.rope_dim, B1 = options_.max_batch + 1;
  host_table_.assign(static_cast<size_t>(2 * M + 3 * B1), 0);
  table_.Resize(static_cast<int64_t>(host_table_.size()));
  const int32_t* h = host_table_.data();
  const int32_t* d = table_.data();
  batch_.host = {h + M, h + M + B1, h + M + 2 * B1, h + M + 3 * B1};
  batch_.device = {d + M, d + M + B1, d + M + 2 * B1, d + M + 3 * B1};
  auto make = [&](DeviceArray<float>& a, int64_t n) { a = DeviceArray<float>(kernels_, n); };
  for (auto* a : {&x_, &ln_, &y_}) make(*a, M * C);
  make(mean_, M);
  make(rstd_, M);
  make(fc_, M * c.mlp_ratio * C);
  make(last_, static_cast<int64_t>(options_.max_batch) * C);
  make(logits_, M * c.vocab_size);
  if (!kernels_->is_host()) logits_on_host_.resize(static_cast<size_t>(M) * c.vocab_size);
  host_logits_ = kernels_->is_host() ? logits_.data() : logits_on_host_.data();
  if (!c.is_mla()) {
    make(qkv_, M * 3 * C);
    return;
  }
  make(q_, M * C);
  if (Q > 0) {
    make(c_q_, M * Q);
    if (c.latent_norm) make(c_q_n_, M * Q);
    make(q_rstd_, M);
  }
  make(c_kv_, M * R);
  if (c.latent_norm) make(c_kv_n_, M * R);
  make(kv_rstd_, M);
  if (c.attention == AttentionKind::kMlaRope) {
    make(q_r_, M * H * P);
    make(k_r_, M * P);
  }
}

void Decoder::Forward(absl::Span<const DecodeSegment> segments, bool all_logits) {
  const ModelConfig& c = config_;
  const int nseg = static_cast<int>(segments.size());
  CHECK(nseg >= 1 && nseg <= options_.max_batch) << nseg << " segments";
  // The host table as laid out in the constructor (batch_.host points here).
  const int64_t M = options_.max_rows, B1 = options_.max_batch + 1;
  int32_t* tokens = host_table_.data();
  int32_t* slot = tokens + M;
  int32_t* row0 = slot + B1;
  int32_t* pos0 = row0 + B1;
  int32_t* pos = pos0 + B1;
  int64_t rows = 0;
  int max_len = 0;
  for (int k = 0; k < nseg; ++k) {
    const DecodeSegment& s = segments[k];
    CHECK(s.slot >= 0 && s.slot < options_.max_batch) << "slot " << s.slot;
    CHECK_GE(s.n, 1);
    const int p0 = cache_.length(s.slot);
    CHECK_LE(p0 + s.n, options_.max_len) << "slot " << s.slot << " would overflow the cache";
    CHECK_LE(rows + s.n, M) << "more rows than max_rows";
    for (int j = 0; j < k; ++j) CHECK_NE(slot[j], s.slot) << "slot used twice in one call";
    slot[k] = s.slot;
    row0[k] = static_cast<int32_t>(rows);
    pos0[k] = p0;
    for (int i = 0; i < s.n; ++i) {
      CHECK(s.tokens[i] >= 0 && s.tokens[i] < c.vocab_size) << "token " << s.tokens[i];
      tokens[rows + i] = s.tokens[i];
      pos[rows + i] = p0 + i;
    }
    rows += s.n;
    max_len = std::max(max_len, p0 + s.n);
  }
  row0[nseg] = static_cast<int32_t>(rows);
  batch_.S = nseg;
  batch_.M = rows;
  batch_.max_len = max_len;
  // One upload of the tables per call (a memcpy on the host).
  table_.CopyFromHost(host_table_.data(), static_cast<int64_t>(host_table_.size()));

  Kernels& k = *kernels_;
  const float* p = model_.params();
  const int C = c.d_model;
  k.DecodeEmbedding(table_.data(), p + wte_, wpe_ >= 0 ? p + wpe_ : nullptr, x_.data(), C,
                    batch_);
  const int64_t hidden = static_cast<int64_t>(c.mlp_ratio) * C;
  for (int l = 0; l < c.n_layer; ++l) {
    const LayerOffsets& w = layers_[l];
    k.LayerNormForward(x_.data(), p + w.ln1_w, p + w.ln1_b, ln_.data(), mean_.data(),
                       rstd_.data(), rows, C);
    Attention(l);
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
      k.CopyOnDevice(last_.data() + static_cast<int64_t>(s) * C,
                     x_.data() + static_cast<int64_t>(row0[s + 1] - 1) * C, C * sizeof(float));
    final_in = last_.data();
    out_rows = nseg;
  }
  k.LayerNormForward(final_in, p + lnf_w_, p + lnf_b_, ln_.data(), mean_.data(), rstd_.data(),
                     out_rows, C);
  k.LinearForward(ln_.data(), p + head_, nullptr, logits_.data(), out_rows, c.vocab_size, C,
                  Epilogue::kNone, false);
  if (!k.is_host())  // the one device → host copy of a step, for sampling
    logits_.CopyToHost(logits_on_host_.data(), out_rows * c.vocab_size);
  for (int s = 0; s < nseg; ++s) cache_.set_length(slot[s], pos0[s] + row0[s + 1] - row0[s]);
}

DecodeAttentionViews Decoder::Views(int l) const {
  const ModelConfig& c = config_;
  const float* p = model_.params();
  const AttentionWeights& w = layers_[l].attn;
  DecodeAttentionViews v;
  v.H = c.n_head;
  v.D = c.head_dim();
  v.P = c.rope_dim;
  v.R = c.kv_rank;
  v.scale = scale_;
  v.cache_len = options_.max_len;
  if (!c.is_mla()) {
    v.q = qkv_.data();
    v.ld_q = 3 * c.d_model;
    v.k = cache_.Part(l, KvPart::kKey);
    v.v = cache_.Part(l, KvPart::kValue);
    return v;
  }
  v.q = q_.data();
  v.ld_q = c.d_model;
  v.latent = cache_.Part(l, KvPart::kLatent);
  if (c.attention == AttentionKind::kMlaRope) {
    v.q_rope = q_r_.data();
    v.k_rope = cache_.Part(l, KvPart::kRopeKey);
  }
  v.w_uk = p + w.w_uk;
  v.w_uv = p + w.w_uv;
  return v;
}

void Decoder::Attention(int l) {
  const ModelConfig& c = config_;
  Kernels& k = *kernels_;
  const float* p = model_.params();
  const AttentionWeights& w = layers_[l].attn;
  const int64_t rows = batch_.M;
  const int C = c.d_model, H = c.n_head, D = c.head_dim(), R = c.kv_rank, Q = c.q_rank,
            P = c.rope_dim, L = options_.max_len;
  const float theta = c.rope_theta;
  if (!c.is_mla()) {
    k.LinearForward(ln_.data(), p + w.w_qkv, p + w.b_qkv, qkv_.data(), rows, 3 * C, C,
                    Epilogue::kBias, false);
    if (c.attention == AttentionKind::kMhaRope) {
      k.DecodeRope(qkv_.data(), 3 * C, H, D, theta, batch_);
      k.DecodeRope(qkv_.data() + C, 3 * C, H, D, theta, batch_);
    }
    k.DecodeCacheAppend(qkv_.data() + C, 3 * C, C, cache_.Part(l, KvPart::kKey), L, batch_);
    k.DecodeCacheAppend(qkv_.data() + 2 * C, 3 * C, C, cache_.Part(l, KvPart::kValue), L, batch_);
    k.DecodeAttention(Views(l), batch_, y_.data(), C);
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
  if (c.attention == AttentionKind::kMlaRope) {
    k.LinearForward(src_q, p + w.w_qr, nullptr, q_r_.data(), rows, H * P, src_q_dim,
                    Epilogue::kNone, false);
    k.DecodeRope(q_r_.data(), H * P, H, P, theta, batch_);
    k.LinearForward(ln_.data(), p + w.w_kr, nullptr, k_r_.data(), rows, P, C, Epilogue::kNone,
                    false);
    k.DecodeRope(k_r_.data(), P, 1, P, theta, batch_);
    k.DecodeCacheAppend(k_r_.data(), P, P, cache_.Part(l, KvPart::kRopeKey), L, batch_);
  }
  k.DecodeCacheAppend(src_kv, R, R, cache_.Part(l, KvPart::kLatent), L, batch_);
  k.DecodeLatentAttention(Views(l), batch_, options_.mode == DecodeMode::kAbsorbed, y_.data(), C);
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
