#include "runtime/memory_plan.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "comm/communicator.h"

namespace mla {
namespace {

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

}  // namespace

// Mirrors the Reserve() calls of GptModel, TransformerBlock and
// AttentionLayer, and the scratch CudaKernels grows on first use.
ActivationCounts CountActivations(const ModelConfig& config, int B, int T) {
  const int64_t M = static_cast<int64_t>(B) * T;
  const int64_t C = config.d_model, H = config.n_head, V = config.vocab_size;
  const int64_t L = config.n_layer, hidden = static_cast<int64_t>(config.mlp_ratio) * C;
  const int64_t R = config.kv_rank, Q = config.q_rank, P = config.rope_dim;
  const bool decoupled = config.attention == AttentionKind::kMlaRope;
  const int64_t probs = static_cast<int64_t>(B) * H * T * T;
  ActivationCounts a;

  // Per block: ln1, x_mid, ln2, fc_pre, fc_act, attention y and probs.
  int64_t block = 3 * M * C + 2 * M * hidden + M * C + probs;
  int64_t block_stats = 4 * M;  // LN mean/rstd ×2
  // Shared backward scratch: d_ln, d_fc, attention d_y.
  int64_t scratch = M * C + M * hidden + M * C;
  if (!config.is_mla()) {
    block += 3 * M * C;    // qkv
    scratch += 3 * M * C;  // d[q|k|v]
  } else {
    block += M * C + 2 * M * C + M * R;  // q, [k|v], c_kv
    scratch += M * C + 2 * M * C + M * R;
    if (config.latent_norm) {
      block += M * R;
      block_stats += M;
      scratch += M * R;
    }
    if (Q > 0) {
      block += M * Q;
      scratch += M * Q;
      if (config.latent_norm) {
        block += M * Q;
        block_stats += M;
        scratch += M * Q;
      }
    }
    if (decoupled) {
      block += M * H * P + M * P;  // q_r, k_r
      scratch += M * H * P + M * P;
    }
  }
  // Model: residual stream (L+1 buffers), ln_f output and the two gradient rows.
  const int64_t model = (L + 1) * M * C + 3 * M * C;
  // CUDA scratch: score gradients, per-head rotary-key parts, the widest bias gradient.
  const int64_t kernels = probs + (decoupled ? probs / T * P : 0) + std::max(3 * C, hidden);

  a.tensor_values = L * block + scratch + model + kernels;
  a.fp32_values = L * block_stats + 2 * M /* ln_f stats */ + M * V /* logits */ +
                  M /* per-row loss */;
  a.token_ids = 2 * M;
  return a;
}

absl::StatusOr<MemoryPlan> ComputeMemoryPlan(const ModelConfig& config,
                                             const MemoryPlanOptions& o) {
  if (absl::Status s = ValidateModelConfig(config); !s.ok()) return s;
  const int T = o.seq_len == 0 ? config.context_length : o.seq_len;
  if (o.micro_batch < 1)
    return absl::InvalidArgumentError(absl::StrCat("micro_batch=", o.micro_batch, ": must be ≥ 1"));
  if (T < 1 || T > config.context_length)
    return absl::InvalidArgumentError(absl::StrCat(
        "seq_len=", T, ": must be in [1, context_length=", config.context_length, "]"));
  if (o.zero_stage != 0 && o.zero_stage != 1)
    return absl::InvalidArgumentError(absl::StrCat("zero=", o.zero_stage, ": must be 0 or 1"));
  if (o.world_size < 1)
    return absl::InvalidArgumentError(absl::StrCat("world_size=", o.world_size, ": must be ≥ 1"));
  if (o.workspace_bytes < 0)
    return absl::InvalidArgumentError("workspace_bytes must be ≥ 0");

  const int64_t n = ComputeModelCost(config).parameters;
  const bool bf16 = o.precision == Precision::kBf16;
  MemoryPlan plan;
  plan.parameter_bytes = n * 4 + (bf16 ? n * 2 : 0);
  plan.gradient_bytes = n * 4;
  const int64_t moments = o.zero_stage == 1 ? ShardRange(n, 0, o.world_size).size() : n;
  plan.optimizer_bytes = moments * 8;
  const ActivationCounts a = CountActivations(config, o.micro_batch, T);
  plan.activation_bytes = (a.tensor_values + a.fp32_values + a.token_ids) * 4;
  plan.workspace_bytes = o.workspace_bytes;
  return plan;
}

std::string FormatMemoryPlan(const MemoryPlan& plan) {
  std::string out;
  const std::pair<const char*, int64_t> rows[] = {
      {"parameters", plan.parameter_bytes}, {"gradients", plan.gradient_bytes},
      {"optimizer", plan.optimizer_bytes},  {"activations", plan.activation_bytes},
      {"workspace", plan.workspace_bytes},  {"total", plan.total_bytes()}};
  for (const auto& [name, bytes] : rows) absl::StrAppendFormat(&out, "%-12s %10.1f MiB\n", name, MiB(bytes));
  return out;
}

absl::Status CheckMemoryPlanFits(const MemoryPlan& plan, int64_t available_bytes) {
  if (plan.total_bytes() <= available_bytes) return absl::OkStatus();
  const std::pair<const char*, int64_t> parts[] = {
      {"parameters", plan.parameter_bytes}, {"gradients", plan.gradient_bytes},
      {"optimizer state", plan.optimizer_bytes}, {"activations", plan.activation_bytes},
      {"workspace", plan.workspace_bytes}};
  const auto* largest = std::max_element(
      std::begin(parts), std::end(parts), [](const auto& a, const auto& b) { return a.second < b.second; });
  return absl::FailedPreconditionError(absl::StrFormat(
      "the run needs %.1f MiB of GPU memory but %.1f MiB are available; the largest part is "
      "%s (%.1f MiB): reduce the micro-batch or sequence length, or use "
      "ZeRO-1 (--zero=1)",
      MiB(plan.total_bytes()), MiB(available_bytes), largest->first, MiB(largest->second)));
}

}  // namespace mla
