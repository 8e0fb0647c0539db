#include "runtime/gpt_model.h"

#include <cmath>

#include "base/status_macros.h"
#include "glog/logging.h"
#include "runtime/random.h"

namespace mla {

absl::StatusOr<std::unique_ptr<GptModel>> GptModel::Create(const ModelConfig& config,
                                                           Kernels* kernels) {
  MLA_RETURN_IF_ERROR(ValidateModelConfig(config));
  if (kernels == nullptr) return absl::InvalidArgumentError("the model needs kernels");
  return std::unique_ptr<GptModel>(new GptModel(config, kernels));
}

GptModel::GptModel(const ModelConfig& c, Kernels* kernels)
    : config_(c), kernels_(kernels), layout_(BuildParameterLayout(c)) {
  if (kernels != nullptr) {
    params_ = DeviceArray<float>(kernels, layout_.total);
    grads_ = DeviceArray<float>(kernels, layout_.total);
  }
  AttentionShape shape;
  shape.C = c.d_model;
  shape.H = c.n_head;
  shape.R = c.kv_rank;
  shape.Q = c.is_mla() ? c.q_rank : 0;
  shape.P = c.rope_dim;
  shape.mla = c.is_mla();
  shape.latent_norm = c.latent_norm;
  shape.rope = c.attention == AttentionKind::kMhaRope   ? RopeMode::kFullHead
               : c.attention == AttentionKind::kMlaRope ? RopeMode::kDecoupled
                                                        : RopeMode::kNone;
  shape.rope_theta = c.rope_theta;
  blocks_.reserve(c.n_layer);
  for (const BlockWeights& w : layout_.weights.blocks) {
    blocks_.emplace_back(kernels_, shape, c.mlp_ratio * c.d_model, w);
    block_begin_.push_back(w.ln1_w);
  }
  block_begin_.push_back(layout_.weights.ln_f_w);
  residual_.resize(c.n_layer + 1);
}

void GptModel::InitParameters(uint64_t seed) {
  // Host kernels: fill the buffer in place; otherwise fill a host copy.
  std::vector<float> host;
  float* base = params_.data();
  if (!kernels_->is_host()) {
    host.resize(static_cast<size_t>(layout_.total));
    base = host.data();
  }
  for (size_t i = 0; i < layout_.params.size(); ++i) {
    const ParamSpec& p = layout_.params[i];
    float* dst = base + p.offset;
    switch (p.init) {
      case ParamSpec::Init::kZeros: std::fill(dst, dst + p.numel, 0.0f); break;
      case ParamSpec::Init::kOnes: std::fill(dst, dst + p.numel, 1.0f); break;
      case ParamSpec::Init::kNormal:
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < p.numel; ++j)
          dst[j] = static_cast<float>(p.init_std * NormalAt(seed, i, j));
        break;
    }
  }
  if (!kernels_->is_host()) params_.CopyFromHost(host.data(), layout_.total);
}

std::vector<float> GptModel::LogitsToHost() const {
  std::vector<float> out(static_cast<size_t>(last_rows_ * config_.vocab_size));
  logits_.CopyToHost(out.data(), static_cast<int64_t>(out.size()));
  return out;
}

const int32_t* GptModel::TokensOnDevice(const int32_t* tokens, int64_t n,
                                        DeviceArray<int32_t>* staging) {
  if (tokens == nullptr || kernels_->is_host()) return tokens;
  if (staging->size() < n) staging->Resize(n);
  staging->CopyFromHost(tokens, n);
  return staging->data();
}

void GptModel::ZeroGrads() { kernels_->Fill(grads_.data(), 0.0f, layout_.total); }

void GptModel::SizeActivations(int B, int T, ActivationSizer& z) {
  const int64_t M = static_cast<int64_t>(B) * T;
  const int64_t C = config_.d_model, V = config_.vocab_size;
  for (auto& r : residual_) z.Need(r, M * C);
  for (auto* v : {&lnf_, &d_lnf_, &d_res_}) z.Need(*v, M * C);
  z.Need(lnf_mean_, M);
  z.Need(lnf_rstd_, M);
  z.Need(logits_, M * V);
  if (kernels_ == nullptr || !kernels_->is_host()) {  // token ids are uploaded per call
    z.Need(inputs_dev_, M);
    z.Need(targets_dev_, M);
  }
  for (auto& b : blocks_) b.Reserve(B, T, &scratch_, z);
}

void GptModel::Reserve(int B, int T) {
  CHECK_LE(T, config_.context_length) << "sequence longer than the context";
  const int64_t M = static_cast<int64_t>(B) * T;
  if (M <= reserved_rows_ && B <= reserved_B_ && T <= reserved_T_) return;
  ActivationSizer sizer(kernels_);
  SizeActivations(B, T, sizer);
  reserved_rows_ = static_cast<int>(M);
  reserved_B_ = B;
  reserved_T_ = T;
}

int64_t GptModel::ActivationBytes(const ModelConfig& config, int B, int T) {
  GptModel sized(config, nullptr);
  ActivationSizer counter(nullptr);
  sized.SizeActivations(B, T, counter);
  return counter.bytes();
}

void GptModel::ReserveCached(int64_t rows, int segments) {
  ActivationSizer z(kernels_);
  const int64_t C = config_.d_model;
  z.Need(cached_x_, rows * C);
  z.Need(cached_last_, segments * C);
  z.Need(cached_logits_, rows * config_.vocab_size);
  z.Need(lnf_, rows * C);
  z.Need(lnf_mean_, rows);
  z.Need(lnf_rstd_, rows);
  for (auto& b : blocks_) b.ReserveCached(rows, z);
}

void GptModel::Forward(const int32_t* tokens, const DecodeBatch& batch, KvCache& cache,
                       DecodeMode mode, bool all_logits) {
  Kernels& k = *kernels_;
  const ModelWeights& w = layout_.weights;
  const float* p = params_.data();
  const int C = config_.d_model;
  const int64_t rows = batch.M;
  CHECK_LE(rows * C, cached_x_.size()) << "more rows than ReserveCached sized";
  CHECK_LE(static_cast<int64_t>(batch.S) * C, cached_last_.size());
  CHECK_EQ(cache.layers(), config_.n_layer);
  k.DecodeEmbedding(tokens, p + w.wte, w.wpe >= 0 ? p + w.wpe : nullptr, cached_x_.data(), C,
                    batch);
  const CachedCall call{&batch, mode};
  for (int l = 0; l < config_.n_layer; ++l)
    blocks_[l].Forward(p, cached_x_.data(), call, cache.Layer(l));
  const float* final_in = cached_x_.data();
  int64_t out_rows = rows;
  if (!all_logits) {
    for (int s = 0; s < batch.S; ++s)
      k.CopyOnDevice(cached_last_.data() + static_cast<int64_t>(s) * C,
                     cached_x_.data() + static_cast<int64_t>(batch.host.row0[s + 1] - 1) * C,
                     C * sizeof(float));
    final_in = cached_last_.data();
    out_rows = batch.S;
  }
  k.LayerNormForward(final_in, p + w.ln_f_w, p + w.ln_f_b, lnf_.data(), lnf_mean_.data(),
                     lnf_rstd_.data(), out_rows, C);
  k.LinearForward(lnf_.data(), p + w.lm_head, nullptr, cached_logits_.data(), out_rows,
                  config_.vocab_size, C, Epilogue::kNone, false);
}

double GptModel::Forward(const int32_t* inputs, const int32_t* targets, int B, int T,
                         float grad_scale) {
  Reserve(B, T);
  Kernels& k = *kernels_;
  const int64_t M = static_cast<int64_t>(B) * T;
  const int C = config_.d_model, V = config_.vocab_size;
  const ModelWeights& w = layout_.weights;
  const float* p = params_.data();
  last_rows_ = M;
  inputs = TokensOnDevice(inputs, M, &inputs_dev_);
  targets = TokensOnDevice(targets, M, &targets_dev_);
  k.EmbeddingForward(inputs, p + w.wte, w.wpe >= 0 ? p + w.wpe : nullptr, residual_[0].data(), B, T,
                     C);
  for (int l = 0; l < config_.n_layer; ++l)
    blocks_[l].Forward(p, residual_[l].data(), residual_[l + 1].data(), B, T);
  k.LayerNormForward(residual_.back().data(), p + w.ln_f_w, p + w.ln_f_b, lnf_.data(),
                     lnf_mean_.data(), lnf_rstd_.data(), M, C);
  k.LinearForward(lnf_.data(), p + w.lm_head, nullptr, logits_.data(), M, V, C, Epilogue::kNone, false);
  if (targets == nullptr) return 0.0;
  const double sum = k.SoftmaxCrossEntropy(logits_.data(), targets,
                                           grad_scale > 0 ? logits_.data() : nullptr, M, V,
                                           grad_scale);
  return sum / static_cast<double>(M);
}

void GptModel::Backward(const int32_t* inputs, int B, int T,
                        const std::function<void(int64_t, int64_t)>& grads_ready) {
  Kernels& k = *kernels_;
  const int64_t M = static_cast<int64_t>(B) * T;
  const int C = config_.d_model, V = config_.vocab_size;
  const ModelWeights& w = layout_.weights;
  const float* p = params_.data();
  float* g = grads_.data();
  inputs = TokensOnDevice(inputs, M, &inputs_dev_);
  k.LinearBackward(lnf_.data(), p + w.lm_head, logits_.data(), d_lnf_.data(), g + w.lm_head, nullptr, M,
                   V, C, false);
  k.Fill(d_res_.data(), 0.0f, M * C);
  k.LayerNormBackward(d_lnf_.data(), residual_.back().data(), p + w.ln_f_w, lnf_mean_.data(),
                      lnf_rstd_.data(), d_res_.data(), g + w.ln_f_w, g + w.ln_f_b, M, C);
  // Blocks own contiguous ranges in layout order; ln_f and an untied head
  // follow the last block; the embeddings (tied head included) come first.
  if (grads_ready) grads_ready(w.ln_f_w, layout_.total);
  for (int l = config_.n_layer - 1; l >= 0; --l) {
    blocks_[l].Backward(p, g, residual_[l].data(), d_res_.data(), B, T, &scratch_);
    if (grads_ready) grads_ready(block_begin_[l], block_begin_[l + 1]);
  }
  k.EmbeddingBackward(inputs, d_res_.data(), g + w.wte, w.wpe >= 0 ? g + w.wpe : nullptr, B, T, C);
  if (grads_ready) grads_ready(0, block_begin_[0]);
}

}  // namespace mla
