#include "runtime/create_kernels.h"

#include "absl/strings/str_cat.h"
#include "layers/cpu/cpu_kernels.h"
#if MLA_WITH_CUDA_KERNELS
#include "comm/nccl_device.h"
#include "layers/cuda/cuda_kernels.h"
#endif

namespace mla {

absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(absl::string_view device,
                                                       Precision precision,
                                                       [[maybe_unused]] int local_rank,
                                                       [[maybe_unused]] int local_size) {
  if (device == "cpu") {
    if (precision != Precision::kFp32)
      return absl::InvalidArgumentError(absl::StrCat(
          "--precision=", PrecisionName(precision),
          " is not supported with --device=cpu (the CPU kernels compute in fp32); use "
          "--precision=fp32 or --device=cuda"));
    return std::unique_ptr<Kernels>(std::make_unique<CpuKernels>());
  }
  if (device != "cuda")
    return absl::InvalidArgumentError(
        absl::StrCat("--device=", device, ": expected cpu or cuda"));
#if MLA_WITH_CUDA_KERNELS
  absl::StatusOr<int> chosen = SelectLocalCudaDevice(local_rank, local_size);
  if (!chosen.ok())
    return absl::Status(chosen.status().code(),
                        absl::StrCat("--device=cuda: ", chosen.status().message()));
  absl::StatusOr<std::unique_ptr<cuda::CudaKernels>> gpu =
      cuda::CudaKernels::Create(cuda::CudaKernelsOptions{precision});
  if (!gpu.ok())
    return absl::Status(gpu.status().code(), absl::StrCat("--device=cuda: ", gpu.status().message()));
  return std::unique_ptr<Kernels>(std::move(*gpu));
#else
  return absl::FailedPreconditionError(
      "--device=cuda: this build has no CUDA support (configure with -DMLA_CUDA=ON on a machine "
      "with nvcc)");
#endif
}

}  // namespace mla
