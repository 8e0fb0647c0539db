#include "runtime/create_kernels.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "comm/communicator.h"
#include "comm/nccl_bootstrap.h"
#include "glog/logging.h"
#include "layers/cpu/cpu_kernels.h"
#if MLA_WITH_CUDA_KERNELS
#include "comm/nccl_device.h"
#include "layers/cuda/cuda_kernels.h"
#include "runtime/training_device.h"
#endif

namespace mla {
namespace {

using BackendMap = std::map<std::string, DeviceBackend, std::less<>>;

// The registration point of the CUDA backend: the build defines
// MLA_WITH_CUDA_KERNELS (CUDA) and MLA_WITH_CUDA_TRAINING (CUDA and NCCL,
// runtime/cuda_training_device.cc) on this file only.
BackendMap BuiltInBackends() {
  BackendMap backends;
#if MLA_WITH_CUDA_KERNELS
  DeviceBackend gpu;
  gpu.count = []() -> absl::StatusOr<int> {
    absl::StatusOr<int> count = CudaDeviceCount();
    if (count.ok() && *count > 0) return count;
    return absl::FailedPreconditionError(absl::StrCat(
        "this build has CUDA but no GPU is usable here (",
        count.ok() ? "no CUDA device visible" : count.status().message(), ")"));
  };
  gpu.create = [](int index, Precision precision) -> absl::StatusOr<std::unique_ptr<Kernels>> {
    MLA_RETURN_IF_ERROR(UseCudaDevice(index));
    MLA_ASSIGN_OR_RETURN(std::unique_ptr<cuda::CudaKernels> kernels,
                         cuda::CudaKernels::Create(cuda::CudaKernelsOptions{precision}));
    return std::unique_ptr<Kernels>(std::move(kernels));
  };
#if MLA_WITH_CUDA_TRAINING
  gpu.create_training = CreateCudaTrainingDevice;
#else
  gpu.training_missing =
      "this build has CUDA but no NCCL (install NCCL next to the CUDA toolkit and reconfigure)";
#endif
  backends.emplace("cuda", std::move(gpu));
#endif
  return backends;
}

BackendMap& Backends() {
  static BackendMap backends = BuiltInBackends();
  return backends;
}

absl::Status Prefixed(absl::string_view device, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("--device=", device, ": ", status.message()));
}

}  // namespace

void RegisterDeviceBackend(std::string name, DeviceBackend backend) {
  CHECK(name != "cpu") << "the cpu device is built in";
  Backends().insert_or_assign(std::move(name), std::move(backend));
}

absl::StatusOr<const DeviceBackend*> FindDeviceBackend(absl::string_view device) {
  const auto& backends = Backends();
  if (auto it = backends.find(device); it != backends.end()) return &it->second;
  if (device == "cuda")
    return absl::FailedPreconditionError(
        "--device=cuda: this build has no CUDA support (built without CUDA: configure with "
        "-DMLA_CUDA=ON on a machine with nvcc)");
  std::vector<std::string> names = {"cpu", "cuda"};
  for (const auto& [name, backend] : backends)
    if (name != "cuda") names.push_back(name);
  return absl::InvalidArgumentError(
      absl::StrCat("--device=", device, ": expected ", absl::StrJoin(names, " or ")));
}

absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(absl::string_view device,
                                                       Precision precision, int local_rank,
                                                       int local_size) {
  if (device == "cpu") {
    if (precision != Precision::kFp32)
      return absl::InvalidArgumentError(absl::StrCat(
          "--precision=", PrecisionName(precision),
          " is not supported with --device=cpu (the CPU kernels compute in fp32); use "
          "--precision=fp32 or --device=cuda"));
    return std::unique_ptr<Kernels>(std::make_unique<CpuKernels>());
  }
  MLA_ASSIGN_OR_RETURN(const DeviceBackend* backend, FindDeviceBackend(device));
  absl::StatusOr<int> count = backend->count();
  if (!count.ok()) return Prefixed(device, count.status());
  absl::StatusOr<int> index = ChooseLocalDevice(local_rank, local_size, *count);
  if (!index.ok()) return Prefixed(device, index.status());
  absl::StatusOr<std::unique_ptr<Kernels>> kernels = backend->create(*index, precision);
  if (!kernels.ok()) return Prefixed(device, kernels.status());
  return kernels;
}

absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(absl::string_view device,
                                                       Precision precision,
                                                       const Communicator& comm) {
  return CreateKernels(device, precision, comm.local_rank(), comm.local_size());
}

}  // namespace mla
