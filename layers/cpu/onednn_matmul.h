#pragma once
// OnednnMatmul: C[M,N] (= or +=) op(A)[M,K]·op(B)[K,N] (+ bias[N]) (→ GELU)
// through oneDNN matmul primitives, one primitive per distinct shape and
// epilogue, created on first use and cached. Operands are user memory with
// leading dimensions; op() is an optional transpose.
//
// Not thread safe: one instance per issuing thread. The primitive runs on
// oneDNN's OpenMP threads and has finished when Run returns.
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "layers/kernels.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace mla {

struct MatmulShape {
  int64_t M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  bool trans_a = false;  // A stored as [K, M]
  bool trans_b = false;  // B stored as [N, K] (a Linear weight)
  Epilogue epilogue = Epilogue::kNone;
  bool accumulate = false;  // C += result (not with GELU)
  bool operator==(const MatmulShape&) const = default;
};

struct MatmulShapeHash {
  size_t operator()(const MatmulShape& s) const;
};

class OnednnMatmul {
 public:
  OnednnMatmul();
  OnednnMatmul(const OnednnMatmul&) = delete;
  OnednnMatmul& operator=(const OnednnMatmul&) = delete;

  void Run(const MatmulShape& shape, const float* a, const float* b, const float* bias, float* c);
  // Number of cached primitives (distinct shapes seen).
  size_t cached_shapes() const { return cache_.size(); }
  // oneDNN's name for the implementation chosen for `shape` (e.g. "gemm:jit").
  std::string ImplementationName(const MatmulShape& shape);

 private:
  struct Entry {
    dnnl::matmul primitive;
    dnnl::memory a, b, bias, c;
  };
  Entry& Get(const MatmulShape& shape);

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::unordered_map<MatmulShape, std::unique_ptr<Entry>, MatmulShapeHash> cache_;
};

}  // namespace mla
