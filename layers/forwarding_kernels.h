#pragma once
// ForwardingKernels: a Kernels that passes every call to another one, the base
// of decorators (layers/profiling_kernels.h, the fake device of
// tests/device), which override only the calls they change. The fused GELU
// calls and fuses_gelu_epilogues() go to the inner implementation too, so a
// decorator keeps its fused epilogues. Same threading as the inner kernels;
// `inner` must outlive the decorator.
#include "layers/kernels.h"

namespace mla {

class ForwardingKernels : public Kernels {
 public:
  explicit ForwardingKernels(Kernels* inner) : inner_(inner) {}

  // DeviceMemory.
  bool is_host() const override { return inner_->is_host(); }
  void* AllocateBytes(size_t bytes) override { return inner_->AllocateBytes(bytes); }
  void FreeBytes(void* p) override { inner_->FreeBytes(p); }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    inner_->CopyToDevice(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    inner_->CopyToHost(dst, src, bytes);
  }
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override {
    inner_->CopyOnDevice(dst, src, bytes);
  }
  void Synchronize() override { inner_->Synchronize(); }

  // TrainingOps.
  void LinearForward(const float* x, const float* w, const float* bias, float* y, int64_t M,
                     int64_t N, int64_t K, Epilogue e, bool acc) override {
    inner_->LinearForward(x, w, bias, y, M, N, K, e, acc);
  }
  void LinearBackward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                      float* db, int64_t M, int64_t N, int64_t K, bool acc) override {
    inner_->LinearBackward(x, w, dy, dx, dw, db, M, N, K, acc);
  }
  void LinearGeluForward(const float* x, const float* w, const float* bias, float* pre, float* h,
                         int64_t M, int64_t N, int64_t K) override {
    inner_->LinearGeluForward(x, w, bias, pre, h, M, N, K);
  }
  void LinearBackwardDGelu(const float* dy, const float* w, const float* pre, float* dpre,
                           float* db, int64_t M, int64_t N, int64_t K) override {
    inner_->LinearBackwardDGelu(dy, w, pre, dpre, db, M, N, K);
  }
  bool fuses_gelu_epilogues() const override { return inner_->fuses_gelu_epilogues(); }
  void LayerNormForward(const float* x, const float* w, const float* b, float* y, float* mean,
                        float* rstd, int64_t M, int64_t C) override {
    inner_->LayerNormForward(x, w, b, y, mean, rstd, M, C);
  }
  void LayerNormBackward(const float* dy, const float* x, const float* w, const float* mean,
                         const float* rstd, float* dx, float* dw, float* db, int64_t M,
                         int64_t C) override {
    inner_->LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db, M, C);
  }
  void RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M,
                      int64_t C) override {
    inner_->RmsNormForward(x, w, y, rstd, M, C);
  }
  void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd,
                       float* dx, float* dw, int64_t M, int64_t C) override {
    inner_->RmsNormBackward(dy, x, w, rstd, dx, dw, M, C);
  }
  void GeluForward(const float* u, float* h, int64_t n) override { inner_->GeluForward(u, h, n); }
  void GeluBackward(const float* u, const float* dh, float* du, int64_t n) override {
    inner_->GeluBackward(u, dh, du, n);
  }
  void EmbeddingForward(const int32_t* t, const float* wte, const float* wpe, float* x, int B,
                        int T, int C) override {
    inner_->EmbeddingForward(t, wte, wpe, x, B, T, C);
  }
  void EmbeddingBackward(const int32_t* t, const float* dx, float* dwte, float* dwpe, int B,
                         int T, int C) override {
    inner_->EmbeddingBackward(t, dx, dwte, dwpe, B, T, C);
  }
  void Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims, float theta,
            bool inverse) override {
    inner_->Rope(x, ld, rows, T, pos0, heads, dims, theta, inverse);
  }
  void AttentionForward(const AttentionViews& in, float* y, int64_t ld_y, float* probs) override {
    inner_->AttentionForward(in, y, ld_y, probs);
  }
  void AttentionBackward(const AttentionViews& in, const float* probs, const float* dy,
                         int64_t ld_dy, const AttentionGrads& g) override {
    inner_->AttentionBackward(in, probs, dy, ld_dy, g);
  }
  double SoftmaxCrossEntropy(float* logits, const int32_t* targets, float* dlogits, int64_t M,
                             int64_t V, float scale) override {
    return inner_->SoftmaxCrossEntropy(logits, targets, dlogits, M, V, scale);
  }
  void Add(const float* x, float* y, int64_t n) override { inner_->Add(x, y, n); }
  void Fill(float* x, float v, int64_t n) override { inner_->Fill(x, v, n); }
  void Copy(const float* x, float* y, int64_t n) override { inner_->Copy(x, y, n); }

  // DecodeOps.
  void DecodeEmbedding(const int32_t* t, const float* wte, const float* wpe, float* x, int C,
                       const DecodeBatch& b) override {
    inner_->DecodeEmbedding(t, wte, wpe, x, C, b);
  }
  void DecodeRope(float* x, int64_t ld, int heads, int dims, float theta,
                  const DecodeBatch& b) override {
    inner_->DecodeRope(x, ld, heads, dims, theta, b);
  }
  void DecodeCacheAppend(const float* src, int64_t ld, int width, float* cache, int len,
                         const DecodeBatch& b) override {
    inner_->DecodeCacheAppend(src, ld, width, cache, len, b);
  }
  void DecodeAttention(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                       int64_t ld_y) override {
    inner_->DecodeAttention(in, b, y, ld_y);
  }
  void DecodeLatentAttention(const DecodeAttentionViews& in, const DecodeBatch& b, bool absorbed,
                             float* y, int64_t ld_y) override {
    inner_->DecodeLatentAttention(in, b, absorbed, y, ld_y);
  }

 protected:
  Kernels* inner() const { return inner_; }

 private:
  Kernels* inner_;
};

}  // namespace mla
