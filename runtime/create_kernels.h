#pragma once
// The one place a program turns --device and --precision into kernels:
//   cpu   CpuKernels (oneDNN + OpenMP), fp32 only;
//   cuda  CudaKernels (fp32, or bf16 GEMM operands) on the GPU that
//         SelectLocalCudaDevice (comm/nccl_device.h) picks for node-local
//         rank `local_rank` of `local_size`, as training does; in a build
//         with the CUDA backend.
// It sits in runtime/ because choosing a rank's GPU is comm's rule and the
// kernels are layers'. Failure: InvalidArgument for an unknown device or a
// precision the device lacks; FailedPrecondition naming what is missing when
// the build has no CUDA backend; the GPU choice's or CudaKernels::Create's
// error otherwise, each prefixed "--device=cuda: ".
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "layers/kernels.h"
#include "layers/precision.h"

namespace mla {

absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(absl::string_view device,
                                                       Precision precision, int local_rank = 0,
                                                       int local_size = 1);

}  // namespace mla
