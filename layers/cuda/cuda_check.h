#pragma once
// Turning CUDA runtime and cuBLAS(Lt) error codes into messages that name the
// failing call: `CudaStatus`/`CublasStatus` for fallible boundaries
// (absl::Status), `MLA_CUDA_CHECK`/`MLA_CUBLAS_CHECK` for calls inside the
// void kernel interface, where a failure is an invariant breach (a bad launch
// configuration or a device fault) and ends the process with that message.
// Host code only (g++); thread safe.
#include <cublasLt.h>
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

inline absl::Status CublasStatus(cublasStatus_t code, absl::string_view call) {
  if (code == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, ": ", cublasLtGetStatusString(code)));
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

#define MLA_CUBLAS_CHECK(call)                                                        \
  do {                                                                                \
    const cublasStatus_t mla_cublas_code_ = (call);                                   \
    CHECK(mla_cublas_code_ == CUBLAS_STATUS_SUCCESS)                                  \
        << #call << ": " << cublasLtGetStatusString(mla_cublas_code_);                \
  } while (false)
