#pragma once
// TrainingDevice: what the training loop (runtime/trainer.cc) needs from the
// device it trains on, beyond the model's Kernels: the communicator for
// buffers in the kernels' memory (gradient buckets, ZeRO-1 reduce-scatter and
// all-gather), global-norm clipping, AdamW with its moments, and a start-up
// check that the run fits. One implementation per device:
//
//   cpu   CpuKernels, the host Communicator (MPI), optim/clip and optim/adamw
//         on host memory (training_device.cc).
//   cuda  CudaKernels on the rank's GPU, an NcclCommunicator on the kernels'
//         stream, SumOfSquares + Scale clipping and CudaKernels::AdamWStep
//         with device moments and a device decay mask
//         (cuda_training_device.cc, built with CUDA and NCCL only).
//
// Which devices exist in this build is decided in one place,
// runtime/create_kernels.cc: CreateTrainingDevice asks it for the device's
// backend and its training factory.
//
// Host scalars (loss sums, the stop flag, the norm's sum of squares) always
// travel over the host communicator; only buffers in the kernels' memory use
// buffer_comm(). Not thread safe; one per rank. The host communicator must
// outlive the device.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "comm/communicator.h"
#include "layers/kernels.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "runtime/memory_plan.h"
#include "runtime/model_config.h"

namespace mla {

enum class AdamMoment { kM, kV };

// Peak GEMM GFLOP/s of `kernels`: an n×n·n×n LinearForward, best of a few
// timed runs, on three fp32 n×n operands allocated in the kernels' memory
// and freed on return (runtime/memory_plan.h counts them as "measurement";
// devices use n = kPeakGemmSize). The GEMM runs in the kernels' precision.
double MeasureGemmPeakGflops(Kernels& kernels, int64_t n);

// The GEMM shapes one training step of `config` runs on `rows` = micro-batch
// × T rows: one [N, K] per distinct Linear weight (the LM head included, the
// position table, a lookup, not; MLA's W_uk and W_uv as the one [2C, R]
// GEMM they are), from the parameter layout.
struct LinearShape {
  int64_t N = 0, K = 0;
  bool operator==(const LinearShape&) const = default;
};
std::vector<LinearShape> TrainingLinearShapes(const ModelConfig& config);

// GFLOP/s `kernels` reach on a Linear of [rows, K] inputs and an [N, K]
// weight: the faster of the forward (2·rows·N·K FLOPs) and the backward with
// both input and weight gradients (4·rows·N·K), each the fastest of
// `repeats` timed runs after a warm-up, on operands in the kernels' memory.
double MeasureLinearGflops(Kernels& kernels, int64_t rows, LinearShape shape, int repeats);

// Rows of the training-shape GEMMs the CPU peak times: a GEMM's rate no
// longer grows with its row count well before this, and it keeps the
// start-up measurement of a paper-scale model to a few seconds.
inline constexpr int64_t kPeakRowsCap = 2048;

class TrainingDevice {
 public:
  virtual ~TrainingDevice() = default;

  virtual absl::string_view name() const = 0;  // "cpu", "cuda"
  virtual Kernels& kernels() = 0;
  // Collectives over buffers in the kernels' memory.
  virtual Communicator& buffer_comm() = 0;

  // Before the model is allocated: devices with a fixed memory print the
  // plan (when `print`) and fail with CheckMemoryPlanFits' message if it does
  // not fit. The CPU checks the plan (without a GEMM workspace) against the
  // host memory available to each of the node's ranks and puts the plan in
  // its refusal.
  virtual absl::Status CheckMemory(const ModelConfig& config, const MemoryPlanOptions& options,
                                   bool print) = 0;
  // Peak GEMM GFLOP/s of this device in the run's precision, measured, for
  // MFU. The CPU: the maximum of the square sgemm ladder
  // (layers/cpu/peak_flops.h) and of MeasureLinearGflops over
  // TrainingLinearShapes(config) on min(rows, kPeakRowsCap) rows, so no
  // training GEMM runs faster than the peak it is rated against. CUDA:
  // MeasureGemmPeakGflops on its kernels (config and rows unused).
  virtual double MeasurePeakGflops(const ModelConfig& config, int64_t rows) = 0;

  // AdamW over `range` of the flat parameter buffer (optim/adamw.h
  // semantics); the moments start at zero, in the kernels' memory.
  virtual absl::Status CreateOptimizer(const AdamWConfig& config, ElementRange range,
                                       absl::Span<const DecaySegment> segments) = 0;
  // Clips `grads` (n floats, kernels' memory; the whole buffer, or this
  // rank's shard with shard_comm the host communicator) as optim/clip.h does.
  virtual absl::StatusOr<ClipResult> ClipGradNorm(float* grads, int64_t n, double max_norm,
                                                  Communicator* shard_comm) = 0;
  // One AdamW update of the range; both pointers at the range's first element.
  virtual void OptimizerStep(float* params_range, const float* grads_range, float lr) = 0;
  virtual int64_t optimizer_step() const = 0;
  virtual void set_optimizer_step(int64_t step) = 0;
  // Moments [offset, offset + n) of the range (offset relative to its start)
  // readable from the host (see runtime/host_staging.h for `staging`).
  virtual absl::Span<const float> MomentsOnHost(AdamMoment which, int64_t offset, int64_t n,
                                                std::vector<float>* staging) = 0;
  // Called with the whole parameter buffer after it was initialised or loaded
  // and after every optimizer update (all-gather included): devices that keep
  // a low-precision copy of the weights (cuda with --precision=bf16) refresh
  // it here. The first call registers the buffer.
  virtual absl::Status ParametersChanged(const float* params, int64_t n) = 0;
  // Fills the moments of the whole range through `fill` on a host span.
  virtual absl::Status LoadMoments(
      AdamMoment which, const std::function<absl::Status(absl::Span<float>)>& fill) = 0;
};

// The CPU device over `host_comm` (which must outlive it).
std::unique_ptr<TrainingDevice> CreateCpuTrainingDevice(Communicator* host_comm);

// The CUDA device: CudaKernels on this rank's GPU (CreateKernels,
// runtime/create_kernels.h) and an NcclCommunicator over `host_comm`
// (collective); every rank agrees on CreateKernels' outcome. Defined in
// builds with CUDA and NCCL only (runtime/cuda_training_device.cc); programs
// reach it through CreateTrainingDevice("cuda", ...).
absl::StatusOr<std::unique_ptr<TrainingDevice>> CreateCudaTrainingDevice(Communicator* host_comm,
                                                                         Precision precision);

// "cpu" (fp32 only), or a device whose backend (runtime/create_kernels.h)
// can train: "cuda" (fp32 or bf16 GEMMs) in builds with CUDA and NCCL.
// Otherwise CreateKernels' error for the name ("--device=cuda: this build
// has no CUDA support ..."), or Unimplemented saying training is not
// supported on the device and why.
absl::StatusOr<std::unique_ptr<TrainingDevice>> CreateTrainingDevice(absl::string_view name,
                                                                     Precision precision,
                                                                     Communicator* host_comm);

}  // namespace mla
