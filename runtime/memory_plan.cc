#include "runtime/memory_plan.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "comm/communicator.h"
#include "runtime/gpt_model.h"
#include "runtime/parameter_layout.h"

namespace mla {
namespace {

double MiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

}  // namespace

int64_t PeakMeasurementBytes(int64_t n, Precision precision) {
  return 3 * n * n * 4 + (precision == Precision::kBf16 ? 2 * n * n * 2 : 0);
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

  const int64_t n = BuildParameterLayout(config).total;  // the buffers' floats, padding included
  const bool bf16 = o.precision == Precision::kBf16;
  MemoryPlan plan;
  plan.parameter_bytes = n * 4 + (bf16 ? n * 2 : 0);
  plan.gradient_bytes = n * 4;
  const int64_t moments = o.zero_stage == 1 ? ShardRange(n, 0, o.world_size).size() : n;
  plan.optimizer_bytes = moments * (4 + 4 + 1);
  plan.activation_bytes = GptModel::ActivationBytes(config, o.micro_batch, T);
  {
    // CudaKernels' grow-only training scratch (layers/cuda/cuda_kernels.h).
    const int64_t M = static_cast<int64_t>(o.micro_batch) * T;
    const int64_t C = config.d_model, hidden = static_cast<int64_t>(config.mlp_ratio) * C;
    const int64_t probs = static_cast<int64_t>(o.micro_batch) * config.n_head * T * T;
    const bool decoupled = config.attention == AttentionKind::kMlaRope;
    const int64_t values = probs /* dscores */ +
                           (decoupled ? probs / T * config.rope_dim : 0) /* dkr_parts */ +
                           std::max(3 * C, hidden) /* bias_grad */ + M /* row_loss */;
    plan.kernel_scratch_bytes = values * 4;
  }
  plan.measurement_bytes = o.measure_peak ? PeakMeasurementBytes(kPeakGemmSize, o.precision) : 0;
  plan.workspace_bytes = o.workspace_bytes;
  return plan;
}

std::string FormatMemoryPlan(const MemoryPlan& plan) {
  std::string out;
  const std::pair<const char*, int64_t> rows[] = {
      {"parameters", plan.parameter_bytes}, {"gradients", plan.gradient_bytes},
      {"optimizer", plan.optimizer_bytes},  {"activations", plan.activation_bytes},
      {"kernel scratch", plan.kernel_scratch_bytes},
      {"measurement", plan.measurement_bytes},
      {"workspace", plan.workspace_bytes},  {"total", plan.total_bytes()}};
  for (const auto& [name, bytes] : rows) absl::StrAppendFormat(&out, "%-14s %10.1f MiB\n", name, MiB(bytes));
  return out;
}

absl::Status CheckMemoryPlanFits(const MemoryPlan& plan, int64_t available_bytes) {
  if (plan.total_bytes() <= available_bytes) return absl::OkStatus();
  const std::pair<const char*, int64_t> parts[] = {
      {"parameters", plan.parameter_bytes}, {"gradients", plan.gradient_bytes},
      {"optimizer state", plan.optimizer_bytes}, {"activations", plan.activation_bytes},
      {"kernel scratch", plan.kernel_scratch_bytes},
      {"peak measurement", plan.measurement_bytes},
      {"workspace", plan.workspace_bytes}};
  const auto* largest = std::max_element(
      std::begin(parts), std::end(parts), [](const auto& a, const auto& b) { return a.second < b.second; });
  return absl::FailedPreconditionError(absl::StrFormat(
      "the run needs %.1f MiB of GPU memory but %.1f MiB are available; the largest part is "
      "%s (%.1f MiB): reduce the micro-batch or sequence length, use "
      "ZeRO-1 (--zero=1), or give --peak_gflops to skip the peak measurement",
      MiB(plan.total_bytes()), MiB(available_bytes), largest->first, MiB(largest->second)));
}

}  // namespace mla
