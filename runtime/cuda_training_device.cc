// The CUDA TrainingDevice (runtime/training_device.h): CudaKernels on the
// rank's GPU, NCCL for gradient buckets and ZeRO-1, device-resident AdamW.
// Compiled in builds with CUDA and NCCL only; runtime/create_kernels.cc
// registers it as the "cuda" backend's training.
// One rank needs no collective at all: the buffer communicator is then the
// single-process one (every reduction the identity, buffers never touched),
// so a 1-GPU run does not start NCCL, whose socket bootstrap needs a network
// interface.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/adamw_math.h"
#include "base/cuda_status.h"
#include "base/status_macros.h"
#include "comm/local_communicator.h"
#include "comm/nccl_communicator.h"
#include "glog/logging.h"
#include "layers/cuda/cuda_kernels.h"
#include "layers/device_array.h"
#include "runtime/create_kernels.h"
#include "runtime/host_staging.h"
#include "runtime/training_device.h"

namespace mla {
namespace {

absl::Status Cuda(cudaError_t e, const char* call) { return cuda::CudaStatus(e, call); }

class CudaTrainingDevice final : public TrainingDevice {
 public:
  CudaTrainingDevice(int device, std::unique_ptr<cuda::CudaKernels> kernels,
                     std::unique_ptr<Communicator> buffer_comm)
      : device_(device),
        kernels_(std::move(kernels)),
        buffer_comm_(std::move(buffer_comm)),
        m_(kernels_.get()),
        v_(kernels_.get()),
        decay_(kernels_.get()) {}

  absl::string_view name() const override { return "cuda"; }
  Kernels& kernels() override { return *kernels_; }
  Communicator& buffer_comm() override { return *buffer_comm_; }

  absl::Status CheckMemory(const ModelConfig& config, const MemoryPlanOptions& options,
                           bool print) override {
    MLA_ASSIGN_OR_RETURN(MemoryPlan plan, ComputeMemoryPlan(config, options));
    size_t free_bytes = 0, total_bytes = 0;
    MLA_RETURN_IF_ERROR(Cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo"));
    if (print) {
      std::printf("mla-train: GPU %d memory plan per rank (micro-batch %d, %s, ZeRO-%d, %d ranks; "
                  "%.1f of %.1f MiB free):\n%s",
                  device_, options.micro_batch,
                  std::string(PrecisionName(options.precision)).c_str(), options.zero_stage,
                  options.world_size, free_bytes / 1048576.0, total_bytes / 1048576.0,
                  FormatMemoryPlan(plan).c_str());
      std::fflush(stdout);
    }
    return CheckMemoryPlanFits(plan, static_cast<int64_t>(free_bytes));
  }

  double MeasurePeakGflops(const ModelConfig&, int64_t) override {
    return MeasureGemmPeakGflops(*kernels_, kPeakGemmSize);
  }

  absl::Status CreateOptimizer(const AdamWConfig& config, ElementRange range,
                               absl::Span<const DecaySegment> segments) override {
    MLA_ASSIGN_OR_RETURN(std::vector<uint8_t> mask, BuildDecayMask(config, range, segments));
    config_ = config;
    m_.Resize(range.size());
    v_.Resize(range.size());
    decay_.Resize(range.size());
    decay_.CopyFromHost(mask.data(), range.size());
    step_ = 0;
    return absl::OkStatus();
  }

  absl::StatusOr<ClipResult> ClipGradNorm(float* grads, int64_t n, double max_norm,
                                          Communicator* shard_comm) override {
    // A GEMM without a cuBLASLt algorithm left NaN behind: stop with its shape.
    MLA_RETURN_IF_ERROR(kernels_->status());
    // optim/clip.h's arithmetic: the sum of squares in double, all-reduced
    // over the shards, scale = max_norm / (norm + 1e-6) when below 1.
    double sum = kernels_->SumOfSquares(grads, n);
    if (shard_comm != nullptr)
      MLA_RETURN_IF_ERROR(shard_comm->AllReduce(absl::MakeSpan(&sum, 1), ReduceOp::kSum));
    ClipResult result;
    result.norm = std::sqrt(sum);
    result.finite = std::isfinite(result.norm);
    if (!result.finite || max_norm <= 0.0) return result;
    const double scale = max_norm / (result.norm + 1e-6);
    if (scale < 1.0) {
      result.scale = static_cast<float>(scale);
      kernels_->Scale(grads, result.scale, n);
    }
    return result;
  }

  void OptimizerStep(float* params_range, const float* grads_range, float lr) override {
    ++step_;
    const AdamWStepScalars s = AdamWStepScalars::Make(config_.beta1, config_.beta2, config_.eps,
                                                      config_.weight_decay, lr, step_);
    kernels_->AdamWStep(params_range, m_.data(), v_.data(), grads_range, decay_.data(), m_.size(),
                        s);
  }
  int64_t optimizer_step() const override { return step_; }
  void set_optimizer_step(int64_t step) override {
    CHECK_GE(step, 0);
    step_ = step;
  }
  absl::Span<const float> MomentsOnHost(AdamMoment which, int64_t offset, int64_t n,
                                        std::vector<float>* staging) override {
    const DeviceArray<float>& moment = which == AdamMoment::kM ? m_ : v_;
    CHECK_LE(offset + n, moment.size());
    return HostView(*kernels_, moment.data() + offset, n, staging);
  }
  absl::Status LoadMoments(AdamMoment which,
                           const std::function<absl::Status(absl::Span<float>)>& fill) override {
    DeviceArray<float>& moment = which == AdamMoment::kM ? m_ : v_;
    return FillFromHost(*kernels_, moment.data(), moment.size(), fill);
  }

 private:
  int device_;
  std::unique_ptr<cuda::CudaKernels> kernels_;
  std::unique_ptr<Communicator> buffer_comm_;  // NCCL, or LocalCommunicator for one rank
  AdamWConfig config_;
  // The bf16 weight copy GEMMs read (fp32: nothing to do): registered on the
  // first call, recast after each update.
  absl::Status ParametersChanged(const float* params, int64_t n) override {
    if (params != registered_params_ || n != registered_count_) {
      MLA_RETURN_IF_ERROR(kernels_->SetParameterBuffer(params, n));  // casts once
      registered_params_ = params;
      registered_count_ = n;
      return absl::OkStatus();
    }
    kernels_->RefreshLowPrecisionWeights();
    return absl::OkStatus();
  }

  DeviceArray<float> m_, v_;
  DeviceArray<uint8_t> decay_;
  const float* registered_params_ = nullptr;
  int64_t registered_count_ = 0;
  int64_t step_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TrainingDevice>> CreateCudaTrainingDevice(Communicator* host_comm,
                                                                         Precision precision) {
  // The kernels' stream must live on the GPU NCCL will drive: CreateKernels
  // makes current the GPU that NcclCommunicator::Create's rule
  // (ChooseLocalDevice) picks for this rank before the kernels exist. Every
  // rank agrees on the outcome so none is left in a collective.
  absl::StatusOr<std::unique_ptr<Kernels>> created =
      CreateKernels("cuda", precision, *host_comm);
  MLA_RETURN_IF_ERROR(AgreeOnStatus(*host_comm, created.status()));
  auto* gpu = dynamic_cast<cuda::CudaKernels*>(created->get());
  CHECK(gpu != nullptr) << "CreateKernels(\"cuda\") made kernels that are not CudaKernels";
  std::unique_ptr<cuda::CudaKernels> kernels(gpu);
  created->release();
  int device = 0;
  MLA_RETURN_IF_ERROR(cuda::CudaStatus(cudaGetDevice(&device), "cudaGetDevice"));
  std::unique_ptr<Communicator> buffer_comm;
  if (host_comm->size() == 1) {
    buffer_comm = std::make_unique<LocalCommunicator>();
  } else {
    MLA_ASSIGN_OR_RETURN(buffer_comm, NcclCommunicator::Create(*host_comm, kernels->stream()));
  }
  return std::unique_ptr<TrainingDevice>(
      new CudaTrainingDevice(device, std::move(kernels), std::move(buffer_comm)));
}

}  // namespace mla
