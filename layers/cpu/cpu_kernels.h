#pragma once
// CpuKernels: the reference implementation of the kernel interface
// (layers/kernels.h). Linear layers run as oneDNN matmul primitives cached per
// shape, with fused bias / bias+GELU post-ops, except those of at most
// kSmallBatchMaxRows rows (a decoding step), which run as SmallBatchLinear
// (layers/cpu/small_batch_linear.h); normalisations of one row (batch-1
// decoding) run on the calling thread; attention runs per (batch, head)
// on OpenMP threads, each issuing single-threaded oneDNN sgemm calls over
// causal row blocks (key blocks the mask removes are never computed); the
// element-wise kernels are OpenMP loops over the shared math in layers/math/.
// The weight gradient dw = dyᵀ·x is computed either directly or transposed
// (dwᵀ = xᵀ·dy, added back), whichever measured faster for the shape on its
// first use; the choice only changes float summation order. Its operands are
// first copied to a padded row stride when theirs is a multiple of 2 KiB.
//
// Owns its primitive cache and scratch buffers, which grow on first use of a
// shape and are then reused (no allocation in a steady training step).
// Not thread safe: one instance per issuing thread.
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "layers/cpu/onednn_matmul.h"
#include "layers/kernels.h"

namespace mla {

class CpuKernels final : public Kernels {
 public:
  CpuKernels();
  CpuKernels(const CpuKernels&) = delete;
  CpuKernels& operator=(const CpuKernels&) = delete;

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
  // Host memory: 64-byte aligned, zero-filled; copies are memcpy.
  bool is_host() const override { return true; }
  void* AllocateBytes(size_t bytes) override;
  void FreeBytes(void* p) override;
  void CopyToDevice(void* dst, const void* src, size_t bytes) override;
  void CopyToHost(void* dst, const void* src, size_t bytes) override;
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override;
  void Synchronize() override {}

  OnednnMatmul& matmul() { return matmul_; }

  // bf16 decode weights: keeps a bf16 copy of params[0, n) (each value
  // rounded to nearest, ties to even). From then on every LinearForward whose
  // weight lies inside that range reads the copy: up to kSmallBatchMaxRows
  // rows as SmallBatchLinearBf16 (fp32 accumulation, half the weight bytes),
  // more rows through the same kernel in groups over L2-sized weight panels,
  // so every batch size computes with the same rounded weights and no fp32
  // copy of a matrix is made.
  // Biases, norms and embedding lookups keep reading the fp32 parameters,
  // which stay allocated. For inference: the copy is not refreshed when the
  // parameters change (call again to refresh it).
  void UseBf16Weights(const float* params, int64_t n);

 private:
  // cos/sin of every (position, pair) for `dims` rotary dims, at least
  // `positions` rows: [positions, dims/2] each.
  const std::pair<std::vector<float>, std::vector<float>>& RopeTable(int dims, float theta,
                                                                     int positions);
  float* Scratch(std::vector<float>& buffer, size_t n);
  // dw[N,K] += dyᵀ·x as one GEMM with output [N,K]; x and dy have row
  // strides ld_x and ld_dy.
  void WeightGradDirect(const float* x, int64_t ld_x, const float* dy, int64_t ld_dy, float* dw,
                        int64_t M, int64_t N, int64_t K);
  // dwt[K,N] = xᵀ·dy (the transposed weight gradient, written).
  void WeightGradTransposed(const float* x, int64_t ld_x, const float* dy, int64_t ld_dy,
                            float* dwt, int64_t M, int64_t N, int64_t K);
  // dw[N,K] += dwtᵀ.
  void AddTransposed(const float* dwt, float* dw, int64_t N, int64_t K);
  // Copies src[rows, cols] into `buffer` with row stride ld; returns it.
  const float* PaddedCopy(const float* src, int64_t rows, int64_t cols, int64_t ld,
                          std::vector<float>& buffer);

  OnednnMatmul matmul_;
  std::map<std::pair<int, float>, std::pair<std::vector<float>, std::vector<float>>> rope_tables_;
  std::vector<float> thread_scratch_;  // per-thread partial sums / T×T tiles
  std::vector<float> rope_grad_scratch_;
  std::vector<float> transpose_scratch_;  // dwᵀ of tall weights
  std::vector<float> padded_x_, padded_dy_;  // operands re-strided for the GEMM
  // The bf16 copy of [bf16_base_, bf16_base_ + bf16_weights_.size()), if
  // UseBf16Weights was called.
  const uint16_t* Bf16Weight(const float* w, int64_t numel) const;
  const float* bf16_base_ = nullptr;
  std::vector<uint16_t> bf16_weights_;

  // ---- Decoding (layers/cpu/cpu_decode_kernels.cc).
 public:
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

 private:
  void DecodeLatentAbsorbed(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                            int64_t ld_y);
  void DecodeLatentNaive(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                         int64_t ld_y);
  // omp_get_max_threads() slices of `per_thread` floats.
  float* DecodeThreadScratch(std::vector<float>& buffer, int64_t per_thread);
  std::vector<float> decode_scores_, decode_expanded_, decode_q_lat_, decode_o_lat_;
};

}  // namespace mla
