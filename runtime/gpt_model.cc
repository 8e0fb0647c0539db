#include "runtime/gpt_model.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "runtime/random.h"

namespace mla {
namespace {

int64_t OffsetOf(const ParameterLayout& layout, const std::string& name) {
  const int i = layout.Find(name);
  return i < 0 ? -1 : layout.params[i].offset;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GptModel>> GptModel::Create(const ModelConfig& config,
                                                           Kernels* kernels) {
  MLA_RETURN_IF_ERROR(ValidateModelConfig(config));
  return std::unique_ptr<GptModel>(new GptModel(config, kernels));
}

GptModel::GptModel(const ModelConfig& c, Kernels* kernels)
    : config_(c),
      kernels_(kernels),
      layout_(BuildParameterLayout(c)),
      params_(kernels, layout_.total),
      grads_(kernels, layout_.total),
      lnf_(kernels),
      lnf_mean_(kernels),
      lnf_rstd_(kernels),
      logits_(kernels),
      d_lnf_(kernels),
      d_res_(kernels),
      inputs_dev_(kernels),
      targets_dev_(kernels) {
  wte_ = OffsetOf(layout_, "wte.weight");
  wpe_ = OffsetOf(layout_, "wpe.weight");
  lnf_w_ = OffsetOf(layout_, "ln_f.weight");
  lnf_b_ = OffsetOf(layout_, "ln_f.bias");
  head_ = c.tied_embeddings ? wte_ : OffsetOf(layout_, "lm_head.weight");
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
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    auto at = [&](const char* name) { return OffsetOf(layout_, b + name); };
    BlockWeights w;
    w.ln1_w = at("ln1.weight"); w.ln1_b = at("ln1.bias");
    w.ln2_w = at("ln2.weight"); w.ln2_b = at("ln2.bias");
    w.w_fc = at("mlp.w_fc"); w.b_fc = at("mlp.b_fc");
    w.w_proj = at("mlp.w_proj"); w.b_proj = at("mlp.b_proj");
    w.attn.w_qkv = at("attn.w_qkv"); w.attn.b_qkv = at("attn.b_qkv");
    w.attn.w_q = at("attn.w_q"); w.attn.w_dq = at("attn.w_dq");
    w.attn.q_norm = at("attn.q_norm.weight"); w.attn.w_uq = at("attn.w_uq");
    w.attn.w_qr = at("attn.w_qr"); w.attn.w_dkv = at("attn.w_dkv");
    w.attn.kv_norm = at("attn.kv_norm.weight"); w.attn.w_uk = at("attn.w_uk");
    w.attn.w_uv = at("attn.w_uv"); w.attn.w_kr = at("attn.w_kr");
    w.attn.w_o = at("attn.w_o"); w.attn.b_o = at("attn.b_o");
    blocks_.emplace_back(kernels_, shape, c.mlp_ratio * c.d_model, w);
    block_begin_.push_back(w.ln1_w);
  }
  block_begin_.push_back(lnf_w_);
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

void GptModel::Reserve(int B, int T) {
  CHECK_LE(T, config_.context_length) << "sequence longer than the context";
  const int64_t M = static_cast<int64_t>(B) * T;
  const int64_t C = config_.d_model, V = config_.vocab_size;
  if (M <= reserved_rows_ && B <= reserved_B_ && T <= reserved_T_) return;
  while (static_cast<int>(residual_.size()) < config_.n_layer + 1)
    residual_.emplace_back(kernels_);
  for (auto& r : residual_) r.Resize(M * C);
  for (auto* v : {&lnf_, &d_lnf_, &d_res_}) v->Resize(M * C);
  lnf_mean_.Resize(M);
  lnf_rstd_.Resize(M);
  logits_.Resize(M * V);
  if (!kernels_->is_host()) {  // token ids are uploaded per call
    inputs_dev_.Resize(M);
    targets_dev_.Resize(M);
  }
  for (auto& b : blocks_) b.Reserve(B, T, &scratch_);
  reserved_rows_ = static_cast<int>(M);
  reserved_B_ = B;
  reserved_T_ = T;
}

double GptModel::Forward(const int32_t* inputs, const int32_t* targets, int B, int T,
                         float grad_scale) {
  Reserve(B, T);
  Kernels& k = *kernels_;
  const int64_t M = static_cast<int64_t>(B) * T;
  const int C = config_.d_model, V = config_.vocab_size;
  const float* p = params_.data();
  last_rows_ = M;
  inputs = TokensOnDevice(inputs, M, &inputs_dev_);
  targets = TokensOnDevice(targets, M, &targets_dev_);
  k.EmbeddingForward(inputs, p + wte_, wpe_ >= 0 ? p + wpe_ : nullptr, residual_[0].data(), B, T,
                     C);
  for (int l = 0; l < config_.n_layer; ++l)
    blocks_[l].Forward(p, residual_[l].data(), residual_[l + 1].data(), B, T);
  k.LayerNormForward(residual_.back().data(), p + lnf_w_, p + lnf_b_, lnf_.data(),
                     lnf_mean_.data(), lnf_rstd_.data(), M, C);
  k.LinearForward(lnf_.data(), p + head_, nullptr, logits_.data(), M, V, C, Epilogue::kNone, false);
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
  const float* p = params_.data();
  float* g = grads_.data();
  inputs = TokensOnDevice(inputs, M, &inputs_dev_);
  k.LinearBackward(lnf_.data(), p + head_, logits_.data(), d_lnf_.data(), g + head_, nullptr, M,
                   V, C, false);
  k.Fill(d_res_.data(), 0.0f, M * C);
  k.LayerNormBackward(d_lnf_.data(), residual_.back().data(), p + lnf_w_, lnf_mean_.data(),
                      lnf_rstd_.data(), d_res_.data(), g + lnf_w_, g + lnf_b_, M, C);
  // Blocks own contiguous ranges in layout order; ln_f and an untied head
  // follow the last block; the embeddings (tied head included) come first.
  if (grads_ready) grads_ready(lnf_w_, layout_.total);
  for (int l = config_.n_layer - 1; l >= 0; --l) {
    blocks_[l].Backward(p, g, residual_[l].data(), d_res_.data(), B, T, &scratch_);
    if (grads_ready) grads_ready(block_begin_[l], block_begin_[l + 1]);
  }
  k.EmbeddingBackward(inputs, d_res_.data(), g + wte_, wpe_ >= 0 ? g + wpe_ : nullptr, B, T, C);
  if (grads_ready) grads_ready(0, block_begin_[0]);
}

}  // namespace mla
