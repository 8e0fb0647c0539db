#include "runtime/parameter_layout.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace mla {

int ParameterLayout::Find(const std::string& name) const {
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].name == name) return static_cast<int>(i);
  return -1;
}

ParameterLayout BuildParameterLayout(const ModelConfig& c) {
  ParameterLayout layout;
  const float std = 0.02f;
  const float residual_std = 0.02f / std::sqrt(2.0f * c.n_layer);
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamSpec::Init init,
                 float init_std = 0.0f) {
    ParamSpec p;
    p.name = std::move(name);
    p.numel = 1;
    for (int64_t d : shape) p.numel *= d;
    p.shape = std::move(shape);
    p.offset = layout.total;
    p.decay = p.shape.size() == 2;
    p.init = init;
    p.init_std = init_std;
    layout.total += p.numel;
    layout.params.push_back(std::move(p));
  };
  using I = ParamSpec::Init;
  const int64_t V = c.vocab_size, T = c.context_length, C = c.d_model, H = c.n_head,
                D = c.head_dim(), R = c.kv_rank, Q = c.q_rank, P = c.rope_dim,
                M = static_cast<int64_t>(c.mlp_ratio) * C;
  add("wte.weight", {V, C}, I::kNormal, std);
  if (c.learned_positions()) add("wpe.weight", {T, C}, I::kNormal, std);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    add(b + "ln1.weight", {C}, I::kOnes);
    add(b + "ln1.bias", {C}, I::kZeros);
    if (!c.is_mla()) {
      add(b + "attn.w_qkv", {3 * C, C}, I::kNormal, std);
      add(b + "attn.b_qkv", {3 * C}, I::kZeros);
    } else {
      if (Q == 0) {
        add(b + "attn.w_q", {H * D, C}, I::kNormal, std);
      } else {
        add(b + "attn.w_dq", {Q, C}, I::kNormal, std);
        if (c.latent_norm) add(b + "attn.q_norm.weight", {Q}, I::kOnes);
        add(b + "attn.w_uq", {H * D, Q}, I::kNormal, std);
      }
      if (c.attention == AttentionKind::kMlaRope)
        add(b + "attn.w_qr", {H * P, Q == 0 ? C : Q}, I::kNormal, std);
      add(b + "attn.w_dkv", {R, C}, I::kNormal, std);
      if (c.latent_norm) add(b + "attn.kv_norm.weight", {R}, I::kOnes);
      add(b + "attn.w_uk", {H * D, R}, I::kNormal, std);
      add(b + "attn.w_uv", {H * D, R}, I::kNormal, std);
      if (c.attention == AttentionKind::kMlaRope) add(b + "attn.w_kr", {P, C}, I::kNormal, std);
    }
    add(b + "attn.w_o", {C, H * D}, I::kNormal, residual_std);
    add(b + "attn.b_o", {C}, I::kZeros);
    add(b + "ln2.weight", {C}, I::kOnes);
    add(b + "ln2.bias", {C}, I::kZeros);
    add(b + "mlp.w_fc", {M, C}, I::kNormal, std);
    add(b + "mlp.b_fc", {M}, I::kZeros);
    add(b + "mlp.w_proj", {C, M}, I::kNormal, residual_std);
    add(b + "mlp.b_proj", {C}, I::kZeros);
  }
  add("ln_f.weight", {C}, I::kOnes);
  add("ln_f.bias", {C}, I::kZeros);
  if (!c.tied_embeddings) add("lm_head.weight", {V, C}, I::kNormal, std);
  return layout;
}

}  // namespace mla
