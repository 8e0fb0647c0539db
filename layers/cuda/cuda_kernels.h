#pragma once
// CudaKernels: the kernel interface (layers/kernels.h) on one GPU, in fp32 or
// mixed precision (CudaKernelsOptions::precision, `--precision`).
//
//   Linear      cuBLASLt (LtMatmul) with fused epilogues: BIAS and GELU_BIAS
//               forward, BGRADB for the bias gradient of the weight GEMM;
//               plans cached per shape (MatmulKey), one 32 MiB workspace.
//               Epilogues without an algorithm fall back to GEMM + kernels.
//   Attention   per batch row, strided-batched cuBLASLt GEMMs over the heads
//               (scores, P·V and the five backward products) around a causal
//               softmax kernel; the shared rotary key (mla_rope) is batched
//               over the sequences per head instead, and its gradient is
//               summed over heads by a kernel.
//   the rest    .cu kernels (layers/cuda/kernels.cu) over the shared math in
//               layers/math/.
//
// Precision::kBf16: every GEMM above (Linear forward, both backward products,
// the fused MLP pieces, and all attention products) takes bfloat16 A and B
// operands and accumulates in fp32 into fp32 outputs (CUBLAS_COMPUTE_32F;
// bias, GELU and bias gradients in fp32, the Linear bias gradient summed from
// the fp32 dy). Activations stay fp32 in memory: the
// activation operands (x, dy, q/k/v views, the softmax P and its gradient dS)
// are rounded into grow-only bf16 scratch per call. Weights come from a bf16
// shadow of the parameter buffer, kept by this object under this contract:
//
//   SetParameterBuffer(params, n)   once, after the fp32 parameters exist on
//                                   the device: allocates the shadow and casts.
//   RefreshLowPrecisionWeights()    after every optimizer step (and after
//                                   anything else writes the parameters, e.g.
//                                   a checkpoint load): one cast kernel over
//                                   the whole buffer, on the stream.
//
// Until the next refresh, GEMMs read the previous weights: a weight pointer
// that lies inside [params, params + n) is read from the shadow at the same
// offset. A weight outside the buffer is cast into scratch on every call. The
// fp32 master weights, gradients and AdamW moments are the caller's and are
// never touched. In fp32 mode both calls are accepted and do nothing, so the
// trainer may call them whatever the precision.
//
// Beyond the interface it offers the fused MLP pieces (GELU_AUX_BIAS forward,
// DGELU_BGRAD backward), the global gradient norm's sum of squares, scaling
// and the AdamW step, for the GPU training loop.
//
// All pointers are device memory of the device current at Create. Calls are
// asynchronous on the object's stream, except SoftmaxCrossEntropy and
// SumOfSquares, which return host values and so wait for the stream. Launch
// and library failures inside the void interface are invariant breaches:
// CHECK-fail with a message naming the kernel or call, except a GEMM that
// cuBLASLt has no algorithm for (status() below). Owns its stream,
// cuBLASLt handle, workspace, weight shadow and grow-only scratch. Not thread
// safe.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/adamw_math.h"
#include "layers/cuda/device_buffer.h"
#include "layers/cuda/lt_matmul.h"
#include "layers/kernels.h"
#include "layers/precision.h"

namespace mla::cuda {

struct CudaKernelsOptions {
  Precision precision = Precision::kFp32;  // GEMM operand type (see above)
  // cuBLASLt's GELU epilogues (GELU_AUX_BIAS, DGELU_BGRAD) for the MLP. Even
  // when asked for, Create turns them off if its probe (gelu_epilogue_error)
  // finds them further than 8 ulp from the shared GELU: their accuracy is
  // not documented.
  bool fuse_gelu_epilogues = true;
};

class CudaKernels final : public Kernels {
 public:
  // Fails (with the CUDA/cuBLASLt message) when no device is usable.
  static absl::StatusOr<std::unique_ptr<CudaKernels>> Create(const CudaKernelsOptions& options);
  // fp32.
  static absl::StatusOr<std::unique_ptr<CudaKernels>> Create();
  ~CudaKernels() override;
  CudaKernels(const CudaKernels&) = delete;
  CudaKernels& operator=(const CudaKernels&) = delete;

  void LinearForward(const float* x, const float* w, const float* bias, float* y, int64_t M,
                     int64_t N, int64_t K, Epilogue epilogue, bool accumulate) override;
  void LinearBackward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                      float* db, int64_t M, int64_t N, int64_t K, bool accumulate_dx) override;
  void LayerNormForward(const float* x, const float* w, const float* b, float* y, float* mean,
                        float* rstd, int64_t M, int64_t C) override;
  void LayerNormBackward(const float* dy, const float* x, const float* w, const float* mean,
                         const float* rstd, float* dx, float* dw, float* db, int64_t M,
                         int64_t C) override;
  void RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M,
                      int64_t C) override;
  void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd,
                       float* dx, float* dw, int64_t M, int64_t C) override;
  void GeluForward(const float* u, float* h, int64_t n) override;
  void GeluBackward(const float* u, const float* dh, float* du, int64_t n) override;
  void EmbeddingForward(const int32_t* tokens, const float* wte, const float* wpe, float* x,
                        int B, int T, int C) override;
  void EmbeddingBackward(const int32_t* tokens, const float* dx, float* dwte, float* dwpe, int B,
                         int T, int C) override;
  void Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims, float theta,
            bool inverse) override;
  void AttentionForward(const AttentionViews& in, float* y, int64_t ld_y, float* probs) override;
  void AttentionBackward(const AttentionViews& in, const float* probs, const float* dy,
                         int64_t ld_dy, const AttentionGrads& grads) override;
  double SoftmaxCrossEntropy(float* logits, const int32_t* targets, float* dlogits, int64_t M,
                             int64_t V, float grad_scale) override;
  void Add(const float* x, float* y, int64_t n) override;
  void Fill(float* x, float value, int64_t n) override;
  void Copy(const float* x, float* y, int64_t n) override;
  // Device memory (cudaMalloc/cudaFree, zero-filled); copies are
  // cudaMemcpyAsync on the stream (CopyToHost then waits for it).
  bool is_host() const override { return false; }
  void* AllocateBytes(size_t bytes) override;
  void FreeBytes(void* p) override;
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override;

  // pre[M,N] = x·wᵀ + bias and h = GELU(pre) in one GEMM (GELU_AUX_BIAS).
  void LinearGeluForward(const float* x, const float* w, const float* bias, float* pre, float* h,
                         int64_t M, int64_t N, int64_t K) override;
  // dpre[M,K] = (dy[M,N]·w[N,K]) ∘ GELU'(pre) and db[K] += Σ_rows dpre in one
  // GEMM (DGELU_BGRAD): the MLP's down-projection input gradient fused with
  // the up-projection's activation and bias gradients.
  void LinearBackwardDGelu(const float* dy, const float* w, const float* pre, float* dpre,
                           float* db, int64_t M, int64_t N, int64_t K) override;
  bool fuses_gelu_epilogues() const override { return fuse_gelu_; }
  // The probe at Create: the largest difference between cuBLASLt's GELU and
  // DGELU epilogues and the shared GELU kernels on the same pre-activations
  // (exact inputs, so the GEMMs agree bit for bit), in units of 8 ulp of the
  // largest output; above 1 the epilogues are off. 0 when not probed.
  double gelu_epilogue_error() const { return gelu_epilogue_error_; }
  // Σ x² in double (waits for the stream).
  double SumOfSquares(const float* x, int64_t n);
  void Scale(float* x, float s, int64_t n);
  void AdamWStep(float* params, float* m, float* v, const float* grads, const uint8_t* decay,
                 int64_t n, const AdamWStepScalars& scalars);
  // Waits for every call issued so far; the first asynchronous fault shows here.
  void Synchronize() override;

  // ---- Decoding (layers/cuda/decode_kernels.cc).
  void DecodeEmbedding(const int32_t* tokens, const float* wte, const float* wpe, float* x, int C,
                       const DecodeBatch& b) override;
  void DecodeRope(float* x, int64_t ld, int heads, int dims, float theta,
                  const DecodeBatch& b) override;
  void DecodeCacheAppend(const float* src, int64_t ld_src, int width, float* cache, int cache_len,
                         const DecodeBatch& b) override;
  void DecodeAttention(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                       int64_t ld_y) override;
  void DecodeLatentAttention(const DecodeAttentionViews& in, const DecodeBatch& b, bool absorbed,
                             float* y, int64_t ld_y) override;

  // The weight-shadow contract above. SetParameterBuffer may be called again
  // (a new buffer replaces the old); it fails on a null buffer, n < 0, or
  // when the shadow (2·n bytes) cannot be allocated. RefreshLowPrecisionWeights in bf16 mode
  // before any SetParameterBuffer is an invariant breach (CHECK).
  absl::Status SetParameterBuffer(const float* params, int64_t n);
  void RefreshLowPrecisionWeights();

  // The first GEMM cuBLASLt had no algorithm for (a FailedPrecondition naming
  // its shape, type and alignments), OK otherwise. Such a GEMM leaves NaN in
  // its output instead of ending the process; the training device returns
  // this status at the next gradient-norm step, and the parity tests check it.
  const absl::Status& status() const { return gemm_status_; }
  Precision precision() const { return precision_; }
  cudaStream_t stream() const { return stream_; }
  const LtMatmul& matmul() const { return *matmul_; }

 private:
  // Per-call bf16 scratch, one buffer per operand role so the operands of one
  // GEMM (and dy, shared by the two backward GEMMs) never share a buffer.
  enum Slot { kSlotX, kSlotDy, kSlotWeight, kSlotQ, kSlotK, kSlotV, kSlotQRope, kSlotKRope,
              kSlotScores, kSlotCount };
  // A GEMM operand in the GEMM's type: the fp32 view itself, or its bf16 copy.
  struct Operand {
    const void* data = nullptr;
    int64_t ld = 0;
    // The element `offset` elements in (bytes depend on the type).
    const void* At(int64_t offset, MatmulType type) const {
      return static_cast<const char*>(data) + offset * MatmulTypeBytes(type);
    }
  };
  struct AttentionOperands {
    Operand q, k, v, q_rope, k_rope;
  };

  CudaKernels(cudaStream_t stream, std::unique_ptr<LtMatmul> matmul, Precision precision)
      : stream_(stream), matmul_(std::move(matmul)), precision_(precision) {}
  MatmulType gemm_type() const {
    return precision_ == Precision::kBf16 ? MatmulType::kBF16 : MatmulType::kF32;
  }
  // rows×cols of x (leading dimension ld) as a GEMM operand: x itself in fp32,
  // else cast into the slot's scratch (packed, ld = cols).
  Operand GemmInput(const float* x, int64_t ld, int64_t rows, int64_t cols, Slot slot);
  // n contiguous weights: the shadow inside the registered buffer, else as GemmInput.
  const void* GemmWeight(const float* w, int64_t n);
  AttentionOperands AttentionInputs(const AttentionViews& in);
  // The Linear products on operands already in the GEMM type.
  void RunLinearForward(const void* x, const void* w, const float* bias, float* y, int64_t M,
                        int64_t N, int64_t K, Epilogue epilogue, bool accumulate);
  void RunLinearBackwardData(const void* dy, const void* w, float* dx, int64_t M, int64_t N,
                             int64_t K, bool accumulate);
  // Row-major C[M,N] (= or +=) alpha·op(A)·op(B), `batch` products `stride_*`
  // elements apart (the CPU path's sgemm, batched); A and B of `type`
  // (gemm_type() for operands made by GemmInput, kF32 for fp32 pointers).
  void RowGemm(MatmulType type, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
               const void* A, int64_t lda, int64_t stride_a, const void* B, int64_t ldb,
               int64_t stride_b, bool accumulate, float* C, int64_t ldc, int64_t stride_c,
               int batch);
  // Measures gelu_epilogue_error_ and sets fuse_gelu_ from it.
  absl::Status ProbeGeluEpilogues();
  // LtMatmul::Run; a plain GEMM without an algorithm records gemm_status_,
  // fills D with NaN and counts as run. False: a fused epilogue has no
  // algorithm (the caller runs the unfused sequence).
  bool Gemm(const MatmulKey& key, const MatmulArgs& args);
  struct RopeTable {
    DeviceBuffer<float> cos, sin;
    int positions = 0;
  };
  const RopeTable& GetRopeTable(int dims, float theta, int positions);

  cudaStream_t stream_;
  std::unique_ptr<LtMatmul> matmul_;
  Precision precision_;
  std::map<std::pair<int, float>, RopeTable> rope_tables_;
  DeviceBuffer<float> bias_grad_;    // [N] BGRADB output, added into db
  DeviceBuffer<float> dscores_;      // [B, H, T, T] attention score gradients
  DeviceBuffer<float> dkr_parts_;    // [B, H, T, P] per-head rotary-key gradients
  DeviceBuffer<float> row_loss_;     // [M] cross-entropy per row
  DeviceBuffer<double> sum_squares_;  // [1]
  // bf16 mode: the registered parameter buffer and its shadow.
  const float* params_ = nullptr;
  int64_t param_count_ = 0;
  DeviceBuffer<uint16_t> param_shadow_;
  std::array<DeviceBuffer<uint16_t>, kSlotCount> bf16_scratch_;
  absl::Status gemm_status_;
  bool fuse_gelu_ = true;
  double gelu_epilogue_error_ = 0;

  DeviceBuffer<float> decode_scores_;    // [M·H, max_len]
  DeviceBuffer<float> decode_q_lat_;     // [M, H·R] absorbed queries
  DeviceBuffer<float> decode_o_lat_;     // [M, H·R] Σ_s p_s c_s per head
  DeviceBuffer<float> decode_expanded_;  // [slots, L, 2·C] naive K | V
};

}  // namespace mla::cuda
