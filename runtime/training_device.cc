#include "runtime/training_device.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cpu/peak_flops.h"
#include "layers/device_array.h"
#include "runtime/create_kernels.h"

namespace mla {

double MeasureGemmPeakGflops(Kernels& kernels, int64_t n) {
  DeviceArray<float> a(&kernels, n * n), b(&kernels, n * n), c(&kernels, n * n);
  kernels.Fill(a.data(), 1.0f, n * n);
  kernels.Fill(b.data(), 0.5f, n * n);
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {
    kernels.Synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    kernels.LinearForward(a.data(), b.data(), nullptr, c.data(), n, n, n, Epilogue::kNone, false);
    kernels.Synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0 && s > 0) best = std::max(best, 2.0 * n * n * n / s / 1e9);
  }
  return best;
}

namespace {

// Everything in host memory: the CPU kernels' buffers are the host's, so the
// optim/ code runs on them directly.
class CpuTrainingDevice final : public TrainingDevice {
 public:
  CpuTrainingDevice(Communicator* host_comm, std::unique_ptr<Kernels> kernels)
      : comm_(host_comm), kernels_(std::move(kernels)) {}

  absl::string_view name() const override { return "cpu"; }
  Kernels& kernels() override { return *kernels_; }
  Communicator& buffer_comm() override { return *comm_; }
  absl::Status CheckMemory(const ModelConfig&, const MemoryPlanOptions&, bool) override {
    return absl::OkStatus();
  }
  double MeasurePeakGflops() override { return MeasureSgemmPeakGflops(1536, 5); }

  absl::Status CreateOptimizer(const AdamWConfig& config, ElementRange range,
                               absl::Span<const DecaySegment> segments) override {
    MLA_ASSIGN_OR_RETURN(AdamW opt, AdamW::Create(config, range, segments));
    opt_.emplace(std::move(opt));
    return absl::OkStatus();
  }
  absl::StatusOr<ClipResult> ClipGradNorm(float* grads, int64_t n, double max_norm,
                                          Communicator* shard_comm) override {
    return mla::ClipGradNorm(absl::MakeSpan(grads, static_cast<size_t>(n)), max_norm, shard_comm);
  }
  void OptimizerStep(float* params_range, const float* grads_range, float lr) override {
    opt_->Step(params_range, grads_range, lr);
  }
  int64_t optimizer_step() const override { return opt_->step(); }
  void set_optimizer_step(int64_t step) override { opt_->set_step(step); }
  absl::Status ParametersChanged(const float*, int64_t) override { return absl::OkStatus(); }
  absl::Span<const float> MomentsOnHost(AdamMoment which, int64_t offset, int64_t n,
                                        std::vector<float>*) override {
    return (which == AdamMoment::kM ? opt_->m() : opt_->v()).subspan(offset, n);
  }
  absl::Status LoadMoments(AdamMoment which,
                           const std::function<absl::Status(absl::Span<float>)>& fill) override {
    return fill(which == AdamMoment::kM ? opt_->mutable_m() : opt_->mutable_v());
  }

 private:
  Communicator* comm_;
  std::unique_ptr<Kernels> kernels_;
  std::optional<AdamW> opt_;
};

}  // namespace

std::unique_ptr<TrainingDevice> CreateCpuTrainingDevice(Communicator* host_comm) {
  return std::make_unique<CpuTrainingDevice>(host_comm, std::make_unique<CpuKernels>());
}

absl::StatusOr<std::unique_ptr<TrainingDevice>> CreateTrainingDevice(absl::string_view name,
                                                                     Precision precision,
                                                                     Communicator* host_comm) {
  if (name == "cpu") {
    MLA_ASSIGN_OR_RETURN(std::unique_ptr<Kernels> kernels, CreateKernels(name, precision));
    return std::unique_ptr<TrainingDevice>(
        std::make_unique<CpuTrainingDevice>(host_comm, std::move(kernels)));
  }
  if (name == "cuda") return CreateCudaTrainingDevice(host_comm, precision);
  return absl::InvalidArgumentError(absl::StrCat("device=", name, ": expected cpu or cuda"));
}

}  // namespace mla
