#include "runtime/parameter_layout.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace mla {

ParameterLayout BuildParameterLayout(const ModelConfig& c) {
  ParameterLayout layout;
  const float std = 0.02f;
  const float residual_std = 0.02f / std::sqrt(2.0f * c.n_layer);
  // Appends one tensor and returns its offset: the one place a size, a name
  // and an offset are tied together.
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamSpec::Init init,
                 float init_std = 0.0f, bool align = true) {
    ParamSpec p;
    p.name = std::move(name);
    p.numel = 1;
    for (int64_t d : shape) p.numel *= d;
    p.shape = std::move(shape);
    if (align) layout.total = (layout.total + kParamAlignment - 1) / kParamAlignment * kParamAlignment;
    p.offset = layout.total;
    p.packed_offset = layout.packed_total;
    layout.packed_total += p.numel;
    p.decay = p.shape.size() == 2;
    p.init = init;
    p.init_std = init_std;
    layout.total += p.numel;
    layout.params.push_back(std::move(p));
    return layout.params.back().offset;
  };
  using I = ParamSpec::Init;
  const int64_t V = c.vocab_size, T = c.context_length, C = c.d_model, H = c.n_head,
                D = c.head_dim(), R = c.kv_rank, Q = c.q_rank, P = c.rope_dim,
                M = static_cast<int64_t>(c.mlp_ratio) * C;
  const bool rope_mla = c.attention == AttentionKind::kMlaRope;
  ModelWeights& w = layout.weights;
  w.wte = add("wte.weight", {V, C}, I::kNormal, std);
  if (c.learned_positions()) w.wpe = add("wpe.weight", {T, C}, I::kNormal, std);
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string b = absl::StrCat("blocks.", l, ".");
    BlockWeights& bw = w.blocks.emplace_back();
    AttentionWeights& a = bw.attn;
    bw.ln1_w = add(b + "ln1.weight", {C}, I::kOnes);
    bw.ln1_b = add(b + "ln1.bias", {C}, I::kZeros);
    if (!c.is_mla()) {
      a.w_qkv = add(b + "attn.w_qkv", {3 * C, C}, I::kNormal, std);
      a.b_qkv = add(b + "attn.b_qkv", {3 * C}, I::kZeros);
    } else {
      if (Q == 0) {
        a.w_q = add(b + "attn.w_q", {H * D, C}, I::kNormal, std);
      } else {
        a.w_dq = add(b + "attn.w_dq", {Q, C}, I::kNormal, std);
        if (c.latent_norm) a.q_norm = add(b + "attn.q_norm.weight", {Q}, I::kOnes);
        a.w_uq = add(b + "attn.w_uq", {H * D, Q}, I::kNormal, std);
      }
      if (rope_mla) a.w_qr = add(b + "attn.w_qr", {H * P, Q == 0 ? C : Q}, I::kNormal, std);
      a.w_dkv = add(b + "attn.w_dkv", {R, C}, I::kNormal, std);
      if (c.latent_norm) a.kv_norm = add(b + "attn.kv_norm.weight", {R}, I::kOnes);
      a.w_uk = add(b + "attn.w_uk", {H * D, R}, I::kNormal, std);
      a.w_uv = add(b + "attn.w_uv", {H * D, R}, I::kNormal, std, /*align=*/false);
      if (rope_mla) a.w_kr = add(b + "attn.w_kr", {P, C}, I::kNormal, std);
    }
    a.w_o = add(b + "attn.w_o", {C, H * D}, I::kNormal, residual_std);
    a.b_o = add(b + "attn.b_o", {C}, I::kZeros);
    bw.ln2_w = add(b + "ln2.weight", {C}, I::kOnes);
    bw.ln2_b = add(b + "ln2.bias", {C}, I::kZeros);
    bw.w_fc = add(b + "mlp.w_fc", {M, C}, I::kNormal, std);
    bw.b_fc = add(b + "mlp.b_fc", {M}, I::kZeros);
    bw.w_proj = add(b + "mlp.w_proj", {C, M}, I::kNormal, residual_std);
    bw.b_proj = add(b + "mlp.b_proj", {C}, I::kZeros);
  }
  w.ln_f_w = add("ln_f.weight", {C}, I::kOnes);
  w.ln_f_b = add("ln_f.bias", {C}, I::kZeros);
  w.lm_head = c.tied_embeddings ? w.wte : add("lm_head.weight", {V, C}, I::kNormal, std);
  return layout;
}

std::vector<DecaySegment> DecaySegments(const ParameterLayout& layout) {
  std::vector<DecaySegment> segments;
  int64_t end = 0;
  for (const ParamSpec& p : layout.params) {
    if (p.offset > end) segments.push_back({end, p.offset - end, false});
    segments.push_back({p.offset, p.numel, p.decay});
    end = p.offset + p.numel;
  }
  if (layout.total > end) segments.push_back({end, layout.total - end, false});
  return segments;
}

int64_t PackedOffset(const ParameterLayout& layout, int64_t i) {
  CHECK(i >= 0 && i <= layout.total) << "element " << i << " outside [0, " << layout.total << "]";
  // The first tensor ending after i holds i, or starts after it.
  auto it = std::upper_bound(layout.params.begin(), layout.params.end(), i,
                             [](int64_t v, const ParamSpec& p) { return v < p.offset + p.numel; });
  if (it == layout.params.end()) return layout.packed_total;
  return it->packed_offset + std::max<int64_t>(i - it->offset, 0);
}

}  // namespace mla
