#pragma once
// Row-major single-precision GEMM through oneDNN's BLAS-like entry point:
// C = alpha·op(A)·op(B) + beta·C. Inside an OpenMP parallel region oneDNN
// runs it on the calling thread; outside it uses its own threads.
#include <cstdint>

#include "glog/logging.h"
#include "oneapi/dnnl/dnnl.h"

namespace mla {

inline void Sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const dnnl_status_t st = dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  CHECK_EQ(st, dnnl_success) << "dnnl_sgemm failed";
}

}  // namespace mla
