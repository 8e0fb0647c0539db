#include "runtime/training_device.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cpu/peak_flops.h"
#include "layers/device_array.h"
#include "runtime/create_kernels.h"
#include "runtime/memory_plan.h"
#include "runtime/parameter_layout.h"

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

std::vector<LinearShape> TrainingLinearShapes(const ModelConfig& config) {
  const ParameterLayout layout = BuildParameterLayout(config);
  std::vector<LinearShape> shapes;
  for (const ParamSpec& p : layout.params) {
    // W_uk and W_uv are one [2C, R] GEMM (adjacent in the buffer).
    if (p.shape.size() != 2 || p.offset == layout.weights.wpe || absl::EndsWith(p.name, "attn.w_uv"))
      continue;
    const int64_t rows_of_w = absl::EndsWith(p.name, "attn.w_uk") ? 2 * p.shape[0] : p.shape[0];
    const LinearShape s{rows_of_w, p.shape[1]};
    if (std::find(shapes.begin(), shapes.end(), s) == shapes.end()) shapes.push_back(s);
  }
  return shapes;
}

double MeasureLinearGflops(Kernels& kernels, int64_t rows, LinearShape shape, int repeats) {
  const int64_t M = rows, N = shape.N, K = shape.K;
  DeviceArray<float> x(&kernels, M * K), w(&kernels, N * K), y(&kernels, M * N),
      dx(&kernels, M * K), dw(&kernels, N * K);
  kernels.Fill(x.data(), 0.5f, M * K);
  kernels.Fill(w.data(), 0.25f, N * K);
  kernels.Fill(y.data(), 0.125f, M * N);
  kernels.Fill(dw.data(), 0.0f, N * K);
  const double flops = 2.0 * M * N * K;
  auto best_of = [&](double op_flops, auto&& op) {
    double best = 0;
    for (int rep = 0; rep <= repeats; ++rep) {  // rep 0 warms up
      kernels.Synchronize();
      const auto t0 = std::chrono::steady_clock::now();
      op();
      kernels.Synchronize();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep > 0 && s > 0) best = std::max(best, op_flops / s / 1e9);
    }
    return best;
  };
  const double forward = best_of(flops, [&] {
    kernels.LinearForward(x.data(), w.data(), nullptr, y.data(), M, N, K, Epilogue::kNone, false);
  });
  const double backward = best_of(2 * flops, [&] {
    kernels.LinearBackward(x.data(), w.data(), y.data(), dx.data(), dw.data(), nullptr, M, N, K,
                           false);
  });
  return std::max(forward, backward);
}

namespace {

// Bytes of host memory this process could still allocate: MemAvailable from
// /proc/meminfo, lowered to the cgroup v2 limit's headroom when one is set.
absl::StatusOr<int64_t> AvailableHostBytes() {
  std::ifstream meminfo("/proc/meminfo");
  int64_t available = -1;
  for (std::string key, unit; meminfo >> key;) {
    int64_t kib = 0;
    meminfo >> kib;
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") available = kib * 1024;
  }
  if (available < 0) return absl::UnavailableError("cannot read MemAvailable from /proc/meminfo");
  std::ifstream max_file("/sys/fs/cgroup/memory.max"), current_file("/sys/fs/cgroup/memory.current");
  int64_t limit = 0, current = 0;
  if (max_file >> limit && current_file >> current && limit > current)
    available = std::min(available, limit - current);
  return available;
}

// Everything in host memory: the CPU kernels' buffers are the host's, so the
// optim/ code runs on them directly.
class CpuTrainingDevice final : public TrainingDevice {
 public:
  CpuTrainingDevice(Communicator* host_comm, std::unique_ptr<Kernels> kernels)
      : comm_(host_comm), kernels_(std::move(kernels)) {}

  absl::string_view name() const override { return "cpu"; }
  Kernels& kernels() override { return *kernels_; }
  Communicator& buffer_comm() override { return *comm_; }
  // Host memory is shared by the ranks of a node: each gets an even share of
  // what the node has available.
  absl::Status CheckMemory(const ModelConfig& config, const MemoryPlanOptions& options,
                           bool) override {
    MemoryPlanOptions host = options;
    host.workspace_bytes = 0;  // no cuBLASLt workspace on the CPU
    MLA_ASSIGN_OR_RETURN(MemoryPlan plan, ComputeMemoryPlan(config, host));
    MLA_ASSIGN_OR_RETURN(int64_t available, AvailableHostBytes());
    const int ranks_here = std::max(1, comm_->local_size());
    const int64_t share = available / ranks_here;
    if (plan.total_bytes() <= share) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrFormat(
        "the run needs %.1f MiB of host memory per rank but %.1f MiB are available to each of "
        "this node's %d rank(s) (the lower of MemAvailable and the cgroup limit); reduce the "
        "micro-batch, the context or the model, or use ZeRO-1 (--zero=1). The memory plan per "
        "rank (micro-batch %d, ZeRO-%d, %d ranks; mla-calc's numbers without the GPU workspace):\n%s",
        plan.total_bytes() / 1048576.0, share / 1048576.0, ranks_here, options.micro_batch,
        options.zero_stage, options.world_size, FormatMemoryPlan(plan)));
  }
  double MeasurePeakGflops(const ModelConfig& config, int64_t rows) override {
    double peak = MeasureSgemmPeakGflops(5);
    for (const LinearShape& s : TrainingLinearShapes(config))
      peak = std::max(peak, MeasureLinearGflops(*kernels_, std::min(rows, kPeakRowsCap), s, 3));
    return peak;
  }

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
  MLA_ASSIGN_OR_RETURN(const DeviceBackend* backend, FindDeviceBackend(name));
  if (!backend->create_training)
    return absl::UnimplementedError(absl::StrCat(
        "--device=", name, ": training is not supported on this device",
        backend->training_missing.empty() ? "" : absl::StrCat(" (", backend->training_missing, ")")));
  return backend->create_training(host_comm, precision);
}

}  // namespace mla
