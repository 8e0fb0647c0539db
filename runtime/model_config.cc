#include "runtime/model_config.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

namespace mla {

absl::string_view AttentionKindName(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::kMha: return "mha";
    case AttentionKind::kMhaRope: return "mha_rope";
    case AttentionKind::kMla: return "mla";
    case AttentionKind::kMlaRope: return "mla_rope";
  }
  return "unknown";
}

absl::StatusOr<AttentionKind> ParseAttentionKind(absl::string_view name) {
  for (AttentionKind k : {AttentionKind::kMha, AttentionKind::kMhaRope, AttentionKind::kMla,
                          AttentionKind::kMlaRope}) {
    if (name == AttentionKindName(k)) return k;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "attention: unknown kind '", name, "' (expected mha, mha_rope, mla or mla_rope)"));
}

bool AbslParseFlag(absl::string_view text, AttentionKind* kind, std::string* error) {
  absl::StatusOr<AttentionKind> k = ParseAttentionKind(text);
  if (!k.ok()) {
    *error = std::string(k.status().message());
    return false;
  }
  *kind = *k;
  return true;
}

std::string AbslUnparseFlag(AttentionKind kind) { return std::string(AttentionKindName(kind)); }

int ModelConfig::rotary_dims() const {
  switch (attention) {
    case AttentionKind::kMhaRope: return head_dim();
    case AttentionKind::kMlaRope: return rope_dim;
    default: return 0;
  }
}

int ModelConfig::qk_head_dim() const {
  return attention == AttentionKind::kMlaRope ? head_dim() + rope_dim : head_dim();
}

absl::Status ValidateModelConfig(const ModelConfig& c) {
  auto bad = [](absl::string_view field, auto value, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, "=", value, ": ", rule));
  };
  if (c.vocab_size < 2 || c.vocab_size > 65536)
    return bad("vocab_size", c.vocab_size, "must be in [2, 65536] (tokens are stored as uint16)");
  if (c.context_length < 1 || c.context_length > 65536)
    return bad("context_length", c.context_length, "must be in [1, 65536]");
  if (c.n_layer < 1 || c.n_layer > 1024) return bad("n_layer", c.n_layer, "must be in [1, 1024]");
  if (c.d_model < 1 || c.d_model > 65536) return bad("d_model", c.d_model, "must be in [1, 65536]");
  if (c.n_head < 1) return bad("n_head", c.n_head, "must be at least 1");
  if (c.d_model % c.n_head != 0)
    return bad("n_head", c.n_head, absl::StrCat("must divide d_model=", c.d_model));
  if (c.mlp_ratio < 1 || c.mlp_ratio > 64) return bad("mlp_ratio", c.mlp_ratio, "must be in [1, 64]");
  if (!(c.rope_theta > 1.0f)) return bad("rope_theta", c.rope_theta, "must be greater than 1");
  if (c.attention == AttentionKind::kMhaRope && c.head_dim() % 2 != 0)
    return bad("n_head", c.n_head,
               absl::StrCat("mha_rope rotates pairs, so the head dim d_model/n_head=", c.head_dim(),
                            " must be even"));
  if (c.is_mla()) {
    if (c.kv_rank < 1 || c.kv_rank > c.d_model)
      return bad("kv_rank", c.kv_rank, absl::StrCat("must be in [1, d_model=", c.d_model, "]"));
    if (c.q_rank < 0 || c.q_rank > c.d_model)
      return bad("q_rank", c.q_rank,
                 absl::StrCat("must be 0 (no query compression) or in [1, d_model=", c.d_model, "]"));
  } else if (c.q_rank != 0) {
    return bad("q_rank", c.q_rank, "query compression needs attention=mla or mla_rope");
  }
  if (c.attention == AttentionKind::kMlaRope) {
    if (c.rope_dim < 2 || c.rope_dim % 2 != 0)
      return bad("rope_dim", c.rope_dim, "must be even and at least 2 for mla_rope");
    if (c.rope_dim > c.d_model) return bad("rope_dim", c.rope_dim, "must not exceed d_model");
  }
  if (c.latent_norm && !c.is_mla())
    return bad("latent_norm", "true", "the latent RMSNorm needs attention=mla or mla_rope");
  return absl::OkStatus();
}

ModelCost ComputeModelCost(const ModelConfig& c) {
  const int64_t V = c.vocab_size, T = c.context_length, L = c.n_layer, C = c.d_model,
                H = c.n_head, D = c.head_dim(), R = c.kv_rank, Q = c.q_rank, P = c.rope_dim,
                M = static_cast<int64_t>(c.mlp_ratio) * C;
  int64_t attn = 0;  // weights of one attention block, biases included
  if (!c.is_mla()) {
    attn = 3 * C * C + 3 * C;
  } else {
    attn += (Q == 0) ? C * H * D : C * Q + Q * H * D + (c.latent_norm ? Q : 0);
    attn += C * R + 2 * R * H * D + (c.latent_norm ? R : 0);
    if (c.attention == AttentionKind::kMlaRope) attn += ((Q == 0) ? C : Q) * H * P + C * P;
  }
  attn += H * D * C + C;
  const int64_t mlp = C * M + M + M * C + C;
  const int64_t block = attn + mlp + 4 * C;
  ModelCost cost;
  cost.non_embedding_parameters = L * block + 2 * C;
  const int64_t embed = V * C + (c.learned_positions() ? T * C : 0) + (c.tied_embeddings ? 0 : V * C);
  cost.parameters = cost.non_embedding_parameters + embed;
  // 6 FLOPs per weight per token for the matmuls (lm head included, position
  // table excluded since it is a lookup) plus attention scores and mixing:
  // forward 2·T·(d_qk + D)·H per layer per token over the full context,
  // backward twice that (the usual PaLM/nanoGPT accounting).
  const int64_t matmul_weights = L * (attn + M * C * 2) + V * C;
  const double attn_flops = 6.0 * L * T * H * (c.qk_head_dim() + D);
  cost.train_flops_per_token = 6.0 * matmul_weights + attn_flops;
  if (!c.is_mla()) {
    cost.kv_cache_values_per_token_per_layer = 2 * C;
  } else {
    cost.kv_cache_values_per_token_per_layer =
        R + (c.attention == AttentionKind::kMlaRope ? P : 0);
  }
  cost.kv_cache_values_per_token = L * cost.kv_cache_values_per_token_per_layer;
  return cost;
}

namespace {

#define MLA_MODEL_CONFIG_ROW(type, name, default_value, help) \
  ModelConfigField{#name, help, &ModelConfig::name},
constexpr ModelConfigField kFields[] = {MLA_MODEL_CONFIG_FIELDS(MLA_MODEL_CONFIG_ROW)};
#undef MLA_MODEL_CONFIG_ROW

}  // namespace

absl::Span<const ModelConfigField> ModelConfigFields() { return kFields; }

const ModelConfigField* FindModelConfigField(absl::string_view name) {
  for (const ModelConfigField& f : kFields)
    if (f.name == name) return &f;
  return nullptr;
}

std::string ModelConfigFieldText(const ModelConfig& c, const ModelConfigField& field) {
  struct Text {
    const ModelConfig& c;
    std::string operator()(int ModelConfig::*m) const { return absl::StrCat(c.*m); }
    std::string operator()(bool ModelConfig::*m) const { return c.*m ? "true" : "false"; }
    std::string operator()(float ModelConfig::*m) const { return absl::StrFormat("%g", c.*m); }
    std::string operator()(AttentionKind ModelConfig::*m) const {
      return std::string(AttentionKindName(c.*m));
    }
  };
  return std::visit(Text{c}, field.member);
}

absl::Status SetModelConfigField(const ModelConfigField& field, absl::string_view text,
                                 ModelConfig* config) {
  struct Set {
    absl::string_view text;
    ModelConfig* c;
    absl::Status operator()(int ModelConfig::*m) const {
      return absl::SimpleAtoi(text, &(c->*m)) ? absl::OkStatus()
                                               : absl::InvalidArgumentError("not an integer");
    }
    absl::Status operator()(bool ModelConfig::*m) const {
      if (text != "true" && text != "false")
        return absl::InvalidArgumentError("not a boolean (true or false)");
      c->*m = text == "true";
      return absl::OkStatus();
    }
    absl::Status operator()(float ModelConfig::*m) const {
      return absl::SimpleAtof(text, &(c->*m)) ? absl::OkStatus()
                                               : absl::InvalidArgumentError("not a number");
    }
    absl::Status operator()(AttentionKind ModelConfig::*m) const {
      MLA_ASSIGN_OR_RETURN(c->*m, ParseAttentionKind(text));
      return absl::OkStatus();
    }
  };
  const absl::Status s = std::visit(Set{text, config}, field.member);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat(field.name, "=", text, ": ", s.message()));
}

absl::StatusOr<ModelConfig> ParseModelConfigSpec(
    absl::string_view spec, ModelConfig base,
    absl::Span<const std::pair<absl::string_view, absl::string_view>> aliases) {
  ModelConfig c = base;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    absl::string_view key = kv.first;
    for (const auto& [alias, name] : aliases)
      if (key == alias) key = name;
    const ModelConfigField* field = FindModelConfigField(key);
    if (field == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("unknown model config key '", kv.first, "'"));
    MLA_RETURN_IF_ERROR(SetModelConfigField(*field, kv.second, &c));
  }
  MLA_RETURN_IF_ERROR(ValidateModelConfig(c));
  return c;
}

std::string ModelConfigToString(const ModelConfig& c) {
  std::string out;
  for (const ModelConfigField& f : kFields) absl::StrAppend(&out, f.name, "=", ModelConfigFieldText(c, f), "\n");
  return out;
}

}  // namespace mla
