#pragma once
// The GPU memory a training run needs, estimated before anything is
// allocated: parameters, gradients, optimizer state, activations (the
// buffers GptModel, its blocks and attention layers reserve for one
// micro-batch, plus the CUDA kernels' scratch) and the cuBLASLt workspace,
// so a run that cannot fit fails at start-up with one clear message instead
// of an out-of-memory error mid-step.
//
// Precision: fp32 keeps everything in float. bf16 keeps fp32 master weights,
// fp32 gradients and fp32 AdamW moments, adds a bf16 copy of the weights for
// the matmuls; activations stay fp32 (the bf16 path rounds GEMM operands into
// per-call scratch, which the plan does not count; bf16 activation storage is
// not supported yet).
// ZeRO-1 shards the AdamW moments: a rank holds its ShardRange of them (the
// plan uses the largest shard, rank 0's).
//
// Pure arithmetic on the config; thread safe.
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "layers/precision.h"  // Precision, ParsePrecision
#include "runtime/model_config.h"

namespace mla {

struct MemoryPlanOptions {
  int micro_batch = 1;    // B
  int seq_len = 0;        // T; 0 means the config's context length
  Precision precision = Precision::kFp32;
  int zero_stage = 0;     // 0 or 1
  int world_size = 1;     // data-parallel ranks (ZeRO-1 shards over them)
  int64_t workspace_bytes = int64_t{32} << 20;  // the cuBLASLt workspace
};

// Element counts of the activation buffers for one micro-batch.
struct ActivationCounts {
  int64_t tensor_values = 0;  // activations and their gradients
  int64_t fp32_values = 0;    // logits and per-row statistics (always fp32)
  int64_t token_ids = 0;      // int32 inputs and targets
};

ActivationCounts CountActivations(const ModelConfig& config, int B, int T);

struct MemoryPlan {
  int64_t parameter_bytes = 0;
  int64_t gradient_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t activation_bytes = 0;
  int64_t workspace_bytes = 0;
  int64_t total_bytes() const {
    return parameter_bytes + gradient_bytes + optimizer_bytes + activation_bytes +
           workspace_bytes;
  }
};

// Fails on an invalid config or options (the message names the field).
absl::StatusOr<MemoryPlan> ComputeMemoryPlan(const ModelConfig& config,
                                             const MemoryPlanOptions& options);

// One line per category and the total, in MiB, for logs and tools:
//   "parameters   12.3 MiB" …
std::string FormatMemoryPlan(const MemoryPlan& plan);

// OK when the plan fits in `available_bytes`; otherwise FailedPrecondition
// naming what is needed, what is available and the largest category.
absl::Status CheckMemoryPlanFits(const MemoryPlan& plan, int64_t available_bytes);

}  // namespace mla
