#pragma once
// LtMatmul: cuBLASLt matmuls with a plan cache. A plan (matmul descriptor,
// the four matrix layouts and the algorithm the heuristic picked) is built on
// the first call with a MatmulKey and reused for every later call with an
// equal key, so steady-state training only sets pointers and launches. All
// plans share one workspace (cuBLASLt needs it only during the call, and every
// call is on the same stream). The cache keeps the kMaxPlans most recently
// used plans (layers/cuda/lru_cache.h): training needs a few dozen, while
// decoding meets a new shape at every cache length and would otherwise grow
// it without bound. Plans are host objects read when a call is enqueued, so
// evicting one does not wait for the stream.
//
// Epilogues (bias, GELU with or without aux, DGELU+bias-gradient,
// bias-gradient of B) are requested through the key; when the heuristic has no
// algorithm for a fused epilogue on this shape, alignment or type, Run returns
// false and the caller runs the unfused sequence (plain GEMM + kernels). A
// plain GEMM without an algorithm (e.g. operands whose alignment no kernel
// accepts) is a FailedPrecondition status naming the shape, type and
// alignments; the output is left unwritten.
//
// Every GEMM computes in CUBLAS_COMPUTE_32F with fp32 alpha/beta and fp32 C/D
// (and so fp32 bias and aux, which follow D's type). The key's type is that
// of A and B: kF32 (no TF32, so results match the CPU path to fp32 rounding)
// or kBF16 (bfloat16 operands, products accumulated in fp32: the mixed
// precision GEMM). Owns the cuBLASLt handle; not thread safe.
#include <cublasLt.h>

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "layers/cuda/device_buffer.h"
#include "layers/cuda/lru_cache.h"
#include "layers/cuda/matmul_key.h"

namespace mla::cuda {

// Pointers of one call; bias/aux as the epilogue needs them.
struct MatmulArgs {
  const void* a = nullptr;  // float or bfloat16 bits, as the key's type says
  const void* b = nullptr;
  void* c = nullptr;  // float; D = C (in place)
  void* bias = nullptr;  // BIAS*: read; *BGRAD*: written
  void* aux = nullptr;   // GELU_AUX_BIAS: written; DGELU_BGRAD: read
  int64_t ld_aux = 0;
  float alpha = 1.0f;
};

class LtMatmul {
 public:
  static constexpr int64_t kWorkspaceBytes = 32 << 20;
  static constexpr size_t kMaxPlans = 512;

  static absl::StatusOr<std::unique_ptr<LtMatmul>> Create(cudaStream_t stream);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // Runs D = α·op(A)·op(B) (+ C) with the key's epilogue. Returns false (and
  // does nothing) when a fused epilogue has no algorithm; an error when a
  // plain GEMM has none. m == 0 or n == 0 (an empty D) runs nothing and
  // returns true; the caller owns what an empty product means for a bias
  // gradient (nothing to add). Failures of the launch itself CHECK-fail.
  absl::StatusOr<bool> Run(const MatmulKey& key, const MatmulArgs& args);

  int64_t cached_plans() const { return static_cast<int64_t>(plans_.size()); }
  int64_t evicted_plans() const { return plans_.evictions(); }
  void* workspace() const { return workspace_.data(); }

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool supported = false;
    cublasStatus_t heuristic_status = CUBLAS_STATUS_SUCCESS;  // why not, when unsupported
  };
  LtMatmul(cublasLtHandle_t handle, cudaStream_t stream, DeviceBuffer<uint8_t> workspace)
      : handle_(handle), stream_(stream), workspace_(std::move(workspace)) {}
  Plan& GetPlan(const MatmulKey& key, const MatmulArgs& args);
  Plan MakePlan(const MatmulKey& key, const MatmulArgs& args);
  void SetPointers(const Plan& plan, const MatmulKey& key, const MatmulArgs& args);
  static void Destroy(Plan& plan);

  cublasLtHandle_t handle_;
  cudaStream_t stream_;
  DeviceBuffer<uint8_t> workspace_;
  LruCache<MatmulKey, Plan> plans_{kMaxPlans, &LtMatmul::Destroy};
};

}  // namespace mla::cuda
