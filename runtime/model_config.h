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
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mla {

enum class AttentionKind { kMha, kMhaRope, kMla, kMlaRope };

absl::string_view AttentionKindName(AttentionKind kind);
absl::StatusOr<AttentionKind> ParseAttentionKind(absl::string_view name);

struct ModelConfig {
  int vocab_size = 4096;
  int context_length = 512;  // T: the longest sequence the model accepts
  int n_layer = 9;
  int d_model = 512;         // C
  int n_head = 8;            // H
  AttentionKind attention = AttentionKind::kMlaRope;
  int kv_rank = 256;         // R (MLA kinds only)
  int rope_dim = 32;         // P (mla_rope: decoupled rotary dims per head)
  int q_rank = 0;            // Q: query compression rank, 0 = no compression (MLA kinds)
  bool latent_norm = false;  // RMSNorm on c_kv (and on c_q when Q > 0)
  int mlp_ratio = 4;
  bool tied_embeddings = true;
  float rope_theta = 10000.0f;

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

// One line per field, `name=value`, in a stable order (used in logs and files).
std::string ModelConfigToString(const ModelConfig& config);

}  // namespace mla
