#pragma once
// LtMatmul: cuBLASLt matmuls with a plan cache. A plan (matmul descriptor,
// the four matrix layouts and the algorithm the heuristic picked) is built on
// the first call with a MatmulKey and reused for every later call with an
// equal key, so steady-state training only sets pointers and launches. All
// plans share one workspace (cuBLASLt needs it only during the call, and every
// call is on the same stream).
//
// Epilogues (bias, GELU with or without aux, DGELU+bias-gradient,
// bias-gradient of B) are requested through the key; when the heuristic has no
// algorithm for a fused epilogue on this shape, alignment or type, Run returns
// false and the caller runs the unfused sequence (plain GEMM + kernels). A
// plain GEMM without an algorithm is an error (CHECK naming the call and key).
//
// Every GEMM computes in CUBLAS_COMPUTE_32F with fp32 alpha/beta and fp32 C/D
// (and so fp32 bias and aux, which follow D's type). The key's type is that
// of A and B: kF32 (no TF32, so results match the CPU path to fp32 rounding)
// or kBF16 (bfloat16 operands, products accumulated in fp32: the mixed
// precision GEMM). Owns the cuBLASLt handle; not thread safe.
#include <cublasLt.h>

#include <cstdint>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "layers/cuda/device_buffer.h"
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

  static absl::StatusOr<std::unique_ptr<LtMatmul>> Create(cudaStream_t stream);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // Runs D = α·op(A)·op(B) (+ C) with the key's epilogue. Returns false (and
  // does nothing) only when a fused epilogue has no algorithm.
  bool Run(const MatmulKey& key, const MatmulArgs& args);

  int64_t cached_plans() const { return static_cast<int64_t>(plans_.size()); }
  void* workspace() const { return workspace_.data(); }

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool supported = false;
  };
  LtMatmul(cublasLtHandle_t handle, cudaStream_t stream, DeviceBuffer<uint8_t> workspace)
      : handle_(handle), stream_(stream), workspace_(std::move(workspace)) {}
  Plan& GetPlan(const MatmulKey& key, const MatmulArgs& args);
  void SetPointers(const Plan& plan, const MatmulKey& key, const MatmulArgs& args);
  static void Destroy(Plan& plan);

  cublasLtHandle_t handle_;
  cudaStream_t stream_;
  DeviceBuffer<uint8_t> workspace_;
  absl::flat_hash_map<MatmulKey, Plan> plans_;
};

}  // namespace mla::cuda
