#pragma once
// Turning CUDA runtime error codes into messages that name the failing call:
// `CudaStatus` for fallible boundaries (absl::Status), `MLA_CUDA_CHECK` for
// calls where a failure is an invariant breach (a bad launch configuration or
// a device fault) and ends the process with that message. Shared by the CUDA
// kernels (layers/cuda) and the NCCL communicator (comm/), which must not
// reach into each other. Host code only (g++); thread safe.
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace mla::cuda {

inline absl::Status CudaStatus(cudaError_t code, absl::string_view call) {
  if (code == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(call, ": ", cudaGetErrorName(code), " (", cudaGetErrorString(code), ")"));
}

}  // namespace mla::cuda

// `call` is evaluated once; the message names the expression as written.
#define MLA_CUDA_CHECK(call)                                                          \
  do {                                                                                \
    const cudaError_t mla_cuda_code_ = (call);                                        \
    CHECK(mla_cuda_code_ == cudaSuccess)                                              \
        << #call << ": " << cudaGetErrorName(mla_cuda_code_) << " ("                  \
        << cudaGetErrorString(mla_cuda_code_) << ")";                                 \
  } while (false)
