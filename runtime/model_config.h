#pragma once
// ModelConfig: the shape of a GPT model with one of four attention kinds, its
// validation, and the closed-form accounting the tools print (parameter count,
// training FLOPs per token, KV-cache bytes per token).
//
// Letters: V vocab, T context, L layers, C d_model, H heads, D = C/H head dim,
// R kv latent rank, P rotary dims (d_R), Q query latent rank (0 = none).
//
//   mha       q,k,v = x·W_qkv + b          learned positions
//   mha_rope  as mha, RoPE on all D dims of q and k, no learned positions
//   mla       c_kv = x·W_dkv (R), k = c_kv·W_uk, v = c_kv·W_uv; learned positions
//   mla_rope  mla plus decoupled RoPE: q_r per head (P dims), one k_r = RoPE(x·W_kr)
//             (P dims) shared by all heads; no learned positions
#include <cstdint>
#include <string>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mla {

enum class AttentionKind { kMha, kMhaRope, kMla, kMlaRope };

absl::string_view AttentionKindName(AttentionKind kind);
absl::StatusOr<AttentionKind> ParseAttentionKind(absl::string_view name);
// Abseil flag marshalling, so AttentionKind is a flag type of its own.
bool AbslParseFlag(absl::string_view text, AttentionKind* kind, std::string* error);
std::string AbslUnparseFlag(AttentionKind kind);

// The model config schema: one row per field, in the order every listing
// uses. This table is the only place a field's name, type, default and
// description are written; from it come the ModelConfig members below, every
// program's model flags (runtime/model_flags.h: mla-train, mla-eval, mla-calc,
// mla-bench), ModelConfigToString, the checkpoint's /config entries
// (runtime/model_checkpoint.h), mla-eval's --random_init_config keys and
// what mla-ckpt shows. The rules between fields are ValidateModelConfig's.
//
//   X(type, name, default, help)
#define MLA_MODEL_CONFIG_FIELDS(X)                                                              \
  X(int, vocab_size, 4096,                                                                      \
    "Vocabulary size V (at most 65536: tokens are stored as uint16). mla-train: when not "     \
    "given (or 0), the training shard's vocabulary.")                                           \
  X(int, context_length, 512,                                                                   \
    "Context length T: the longest sequence the model accepts (mla-train and mla-bench: the "  \
    "length of every training window; mla-calc counts FLOPs at this length).")                 \
  X(int, n_layer, 9, "Transformer blocks L.")                                                   \
  X(int, d_model, 512, "Model width C.")                                                        \
  X(int, n_head, 8, "Attention heads H (must divide d_model).")                                 \
  X(::mla::AttentionKind, attention, ::mla::AttentionKind::kMlaRope,                            \
    "Attention kind: mha, mha_rope, mla or mla_rope.")                                          \
  X(int, kv_rank, 256, "MLA kinds: rank R of the shared key/value latent c_kv (<= d_model).")   \
  X(int, rope_dim, 32, "mla_rope: decoupled rotary dims d_R per head (even).")                  \
  X(int, q_rank, 0, "MLA kinds: query compression rank (0: queries straight from x).")          \
  X(bool, latent_norm, false, "MLA kinds: RMSNorm on the latents c_kv (and c_q).")              \
  X(int, mlp_ratio, 4, "MLP hidden width as a multiple of d_model.")                            \
  X(bool, tied_embeddings, true, "Share the token embedding with the output head.")             \
  X(float, rope_theta, 10000.0f, "RoPE base.")

#define MLA_MODEL_CONFIG_MEMBER(type, name, default_value, help) type name = default_value;

struct ModelConfig {
  MLA_MODEL_CONFIG_FIELDS(MLA_MODEL_CONFIG_MEMBER)

  int head_dim() const { return d_model / n_head; }
  bool is_mla() const {
    return attention == AttentionKind::kMla || attention == AttentionKind::kMlaRope;
  }
  bool uses_rope() const {
    return attention == AttentionKind::kMhaRope || attention == AttentionKind::kMlaRope;
  }
  bool learned_positions() const { return !uses_rope(); }
  // Rotary dims per head: D for mha_rope, P for mla_rope, 0 otherwise.
  int rotary_dims() const;
  // Per-head query/key width used in the score q·k: D, or D + P for mla_rope.
  int qk_head_dim() const;
};
#undef MLA_MODEL_CONFIG_MEMBER

// Checks every field; the message names the field and the rule it breaks.
absl::Status ValidateModelConfig(const ModelConfig& config);

struct ModelCost {
  int64_t parameters = 0;            // all trainable parameters (tied head counted once)
  int64_t non_embedding_parameters = 0;
  double train_flops_per_token = 0;  // forward + backward at full context
  int64_t kv_cache_values_per_token = 0;  // per token, all layers
  int64_t kv_cache_values_per_token_per_layer = 0;
  int64_t kv_cache_bytes_per_token(int bytes_per_value) const {
    return kv_cache_values_per_token * bytes_per_value;
  }
};

ModelCost ComputeModelCost(const ModelConfig& config);

// One line per schema field, `name=value`, in the schema's order (used in
// logs and files).
std::string ModelConfigToString(const ModelConfig& config);

// A schema row at run time: its name, help and member.
struct ModelConfigField {
  using Member = std::variant<int ModelConfig::*, bool ModelConfig::*, float ModelConfig::*,
                              AttentionKind ModelConfig::*>;
  absl::string_view name;
  absl::string_view help;
  Member member;
};

// Every schema row, in order.
absl::Span<const ModelConfigField> ModelConfigFields();
// The row called `name`, or nullptr.
const ModelConfigField* FindModelConfigField(absl::string_view name);
// A field's value as text: 512, true, mla_rope, 10000.
std::string ModelConfigFieldText(const ModelConfig& config, const ModelConfigField& field);
// Sets a field from text (integers in base 10, true/false, an attention kind,
// a number); InvalidArgument "name=text: ..." when the text is not one.
// Does not validate the config as a whole.
absl::Status SetModelConfigField(const ModelConfigField& field, absl::string_view text,
                                 ModelConfig* config);

// `key=value,key=value` over the schema's names (mla-eval
// --random_init_config) applied to `base`, then validated. `aliases` maps
// extra key spellings to schema names.
absl::StatusOr<ModelConfig> ParseModelConfigSpec(
    absl::string_view spec, ModelConfig base,
    absl::Span<const std::pair<absl::string_view, absl::string_view>> aliases);

}  // namespace mla
