#pragma once
// ProfilingKernels: a Kernels decorator (layers/forwarding_kernels.h) that
// accumulates wall time and call counts per kernel of the training and decode
// ops it forwards, for `mla-bench --profile`; memory calls pass untimed.
// Timing is host wall time around each call, so it is exact for the
// synchronous CPU kernels. Not thread safe.
#include <chrono>
#include <map>
#include <string>

#include "layers/forwarding_kernels.h"

namespace mla {

class ProfilingKernels final : public ForwardingKernels {
 public:
  explicit ProfilingKernels(Kernels* inner) : ForwardingKernels(inner) {}

  struct Entry {
    double seconds = 0;
    long calls = 0;
  };
  const std::map<std::string, Entry>& entries() const { return entries_; }
  void Reset() { entries_.clear(); }

  void LinearForward(const float* x, const float* w, const float* bias, float* y, int64_t M,
                     int64_t N, int64_t K, Epilogue e, bool acc) override {
    Time("LinearForward", [&] { inner()->LinearForward(x, w, bias, y, M, N, K, e, acc); });
  }
  void LinearBackward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                      float* db, int64_t M, int64_t N, int64_t K, bool acc) override {
    Time("LinearBackward", [&] { inner()->LinearBackward(x, w, dy, dx, dw, db, M, N, K, acc); });
  }
  void LinearGeluForward(const float* x, const float* w, const float* bias, float* pre, float* h,
                         int64_t M, int64_t N, int64_t K) override {
    Time("LinearGeluForward", [&] { inner()->LinearGeluForward(x, w, bias, pre, h, M, N, K); });
  }
  void LinearBackwardDGelu(const float* dy, const float* w, const float* pre, float* dpre,
                           float* db, int64_t M, int64_t N, int64_t K) override {
    Time("LinearBackwardDGelu",
         [&] { inner()->LinearBackwardDGelu(dy, w, pre, dpre, db, M, N, K); });
  }
  void LayerNormForward(const float* x, const float* w, const float* b, float* y, float* mean,
                        float* rstd, int64_t M, int64_t C) override {
    Time("LayerNormForward", [&] { inner()->LayerNormForward(x, w, b, y, mean, rstd, M, C); });
  }
  void LayerNormBackward(const float* dy, const float* x, const float* w, const float* mean,
                         const float* rstd, float* dx, float* dw, float* db, int64_t M,
                         int64_t C) override {
    Time("LayerNormBackward",
         [&] { inner()->LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db, M, C); });
  }
  void RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M,
                      int64_t C) override {
    Time("RmsNormForward", [&] { inner()->RmsNormForward(x, w, y, rstd, M, C); });
  }
  void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd,
                       float* dx, float* dw, int64_t M, int64_t C) override {
    Time("RmsNormBackward", [&] { inner()->RmsNormBackward(dy, x, w, rstd, dx, dw, M, C); });
  }
  void GeluForward(const float* u, float* h, int64_t n) override {
    Time("GeluForward", [&] { inner()->GeluForward(u, h, n); });
  }
  void GeluBackward(const float* u, const float* dh, float* du, int64_t n) override {
    Time("GeluBackward", [&] { inner()->GeluBackward(u, dh, du, n); });
  }
  void EmbeddingForward(const int32_t* t, const float* wte, const float* wpe, float* x, int B,
                        int T, int C) override {
    Time("EmbeddingForward", [&] { inner()->EmbeddingForward(t, wte, wpe, x, B, T, C); });
  }
  void EmbeddingBackward(const int32_t* t, const float* dx, float* dwte, float* dwpe, int B,
                         int T, int C) override {
    Time("EmbeddingBackward", [&] { inner()->EmbeddingBackward(t, dx, dwte, dwpe, B, T, C); });
  }
  void Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims, float theta,
            bool inverse) override {
    Time("Rope", [&] { inner()->Rope(x, ld, rows, T, pos0, heads, dims, theta, inverse); });
  }
  void AttentionForward(const AttentionViews& in, float* y, int64_t ld_y, float* probs) override {
    Time("AttentionForward", [&] { inner()->AttentionForward(in, y, ld_y, probs); });
  }
  void AttentionBackward(const AttentionViews& in, const float* probs, const float* dy,
                         int64_t ld_dy, const AttentionGrads& g) override {
    Time("AttentionBackward", [&] { inner()->AttentionBackward(in, probs, dy, ld_dy, g); });
  }
  double SoftmaxCrossEntropy(float* logits, const int32_t* targets, float* dlogits, int64_t M,
                             int64_t V, float scale) override {
    double r = 0;
    Time("SoftmaxCrossEntropy",
         [&] { r = inner()->SoftmaxCrossEntropy(logits, targets, dlogits, M, V, scale); });
    return r;
  }
  void Add(const float* x, float* y, int64_t n) override {
    Time("Add", [&] { inner()->Add(x, y, n); });
  }
  void Fill(float* x, float v, int64_t n) override {
    Time("Fill", [&] { inner()->Fill(x, v, n); });
  }
  void Copy(const float* x, float* y, int64_t n) override {
    Time("Copy", [&] { inner()->Copy(x, y, n); });
  }
  void DecodeEmbedding(const int32_t* t, const float* wte, const float* wpe, float* x, int C,
                       const DecodeBatch& b) override {
    Time("DecodeEmbedding", [&] { inner()->DecodeEmbedding(t, wte, wpe, x, C, b); });
  }
  void DecodeRope(float* x, int64_t ld, int heads, int dims, float theta,
                  const DecodeBatch& b) override {
    Time("DecodeRope", [&] { inner()->DecodeRope(x, ld, heads, dims, theta, b); });
  }
  void DecodeCacheAppend(const float* src, int64_t ld, int width, float* cache, int len,
                         const DecodeBatch& b) override {
    Time("DecodeCacheAppend", [&] { inner()->DecodeCacheAppend(src, ld, width, cache, len, b); });
  }
  void DecodeAttention(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                       int64_t ld_y) override {
    Time("DecodeAttention", [&] { inner()->DecodeAttention(in, b, y, ld_y); });
  }
  void DecodeLatentAttention(const DecodeAttentionViews& in, const DecodeBatch& b, bool absorbed,
                             float* y, int64_t ld_y) override {
    Time("DecodeLatentAttention",
         [&] { inner()->DecodeLatentAttention(in, b, absorbed, y, ld_y); });
  }

 private:
  template <typename F>
  void Time(const char* name, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    Entry& e = entries_[name];
    e.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++e.calls;
  }

  std::map<std::string, Entry> entries_;
};

}  // namespace mla
