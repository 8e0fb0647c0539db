#pragma once
// The GPU memory a training run needs, computed before anything is
// allocated, so a run that cannot fit fails at start-up with one clear
// message instead of an out-of-memory error mid-step. Every category comes
// from the code that allocates it, not from a hand-kept mirror:
//   parameters, gradients  the parameter layout's size table
//                          (runtime/parameter_layout.h), 4 bytes a value
//   optimizer              the rank's AdamW moments (fp32 m and v) and its
//                          weight-decay mask (1 byte a value)
//   activations            GptModel::ActivationBytes: the model's own sizing
//                          calls run without allocating (what Reserve
//                          allocates, byte for byte; tests/device checks it
//                          against the allocations of a fake device)
//   kernel scratch         what CudaKernels grows privately during a step
//                          (score gradients, per-head rotary-key gradients,
//                          the bias-gradient row, per-row losses)
//   measurement            the peak-FLOP/s GEMM the trainer runs after the
//                          model is allocated, when it measures (MeasureGemmPeakGflops: three
//                          fp32 n×n operands; with bf16 kernels also the two
//                          bf16 operand copies, which stay as grow-only scratch)
//   workspace              the cuBLASLt workspace
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
  bool measure_peak = true;  // the run measures peak GFLOP/s (mla-train --peak_gflops=0)
};

// The side of the square GEMM of MeasureGemmPeakGflops (runtime/training_device.h).
inline constexpr int64_t kPeakGemmSize = 4096;

struct MemoryPlan {
  int64_t parameter_bytes = 0;
  int64_t gradient_bytes = 0;
  int64_t optimizer_bytes = 0;
  int64_t activation_bytes = 0;
  int64_t kernel_scratch_bytes = 0;
  int64_t measurement_bytes = 0;
  int64_t workspace_bytes = 0;
  int64_t total_bytes() const {
    return parameter_bytes + gradient_bytes + optimizer_bytes + activation_bytes +
           kernel_scratch_bytes + measurement_bytes + workspace_bytes;
  }
};

// Bytes MeasureGemmPeakGflops(kernels, n) holds at its peak: three fp32
// n×n operands, and with bf16 kernels the bf16 copies of its two inputs
// (grow-only operand scratch of CudaKernels, kept for the whole run).
int64_t PeakMeasurementBytes(int64_t n, Precision precision);

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
