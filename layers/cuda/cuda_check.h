#pragma once
// cuBLAS(Lt) error codes as messages that name the failing call, next to the
// CUDA runtime's (base/cuda_status.h): `CublasStatus` for fallible boundaries
// (absl::Status), `MLA_CUBLAS_CHECK` for calls inside the void kernel
// interface, where a failure is an invariant breach and ends the process with
// that message. Host code only (g++); thread safe.
#include <cublasLt.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/cuda_status.h"
#include "glog/logging.h"

namespace mla::cuda {

inline absl::Status CublasStatus(cublasStatus_t code, absl::string_view call) {
  if (code == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, ": ", cublasLtGetStatusString(code)));
}

}  // namespace mla::cuda

#define MLA_CUBLAS_CHECK(call)                                                        \
  do {                                                                                \
    const cublasStatus_t mla_cublas_code_ = (call);                                   \
    CHECK(mla_cublas_code_ == CUBLAS_STATUS_SUCCESS)                                  \
        << #call << ": " << cublasLtGetStatusString(mla_cublas_code_);                \
  } while (false)
