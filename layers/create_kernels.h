#pragma once
// The one place a program turns --device and --precision into kernels:
//   cpu   CpuKernels (oneDNN + OpenMP), fp32 only;
//   cuda  CudaKernels on the current GPU (fp32, or bf16 GEMM operands), in a
//         build with the CUDA backend.
// Failure: InvalidArgument for an unknown device or a precision the device
// lacks; FailedPrecondition naming what is missing when the build has no
// CUDA backend; CudaKernels::Create's error when no GPU is usable.
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "layers/kernels.h"
#include "layers/precision.h"

namespace mla {

absl::StatusOr<std::unique_ptr<Kernels>> CreateKernels(absl::string_view device,
                                                       Precision precision);

}  // namespace mla
