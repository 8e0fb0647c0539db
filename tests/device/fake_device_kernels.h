#pragma once
// FakeDeviceKernels: a test-only Kernels decorator (on ForwardingKernels)
// that pretends to be a device; it polices every call, so it overrides them
// all. Compute goes to another implementation (CpuKernels), but
// is_host() is false and the memory is policed:
//
//   - AllocateBytes maps fresh pages and registers them; between kernel calls
//     every registered page is PROT_NONE, so host code that reads or writes
//     "device" memory other than through the copy calls dies with SIGSEGV.
//   - Every pointer a compute call receives must lie in a registered
//     allocation (token ids included, so a host array passed where an
//     uploaded one belongs fails a CHECK).
//   - CopyToDevice / CopyToHost check that the device side is registered and
//     the host side is not; CopyOnDevice that both are.
//   - The calls are counted, so tests can state how many transfers a step
//     makes, and the bytes requested from AllocateBytes are added up (live
//     and peak), so tests can hold the memory plan to what is allocated.
//
// Pages are opened (PROT_READ|PROT_WRITE) only for the duration of a
// forwarded call. Single-threaded use, like every Kernels.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

#include "glog/logging.h"
#include "layers/forwarding_kernels.h"

namespace mla::testing {

class FakeDeviceKernels final : public ForwardingKernels {
 public:
  struct Counts {
    int64_t allocations = 0, frees = 0;
    int64_t to_device = 0, to_host = 0, on_device = 0;
    int64_t bytes_to_device = 0, bytes_to_host = 0;
    int64_t compute_calls = 0;
  };

  // `inner` computes (host memory); `fused_gelu` is what
  // fuses_gelu_epilogues() reports (the fused calls use inner's defaults).
  explicit FakeDeviceKernels(Kernels* inner, bool fused_gelu = false)
      : ForwardingKernels(inner), fused_gelu_(fused_gelu) {}
  ~FakeDeviceKernels() override {
    for (const auto& [p, size] : regions_) munmap(reinterpret_cast<void*>(p), size);
  }

  const Counts& counts() const { return counts_; }
  void ResetCounts() { counts_ = Counts{}; }
  int64_t live_allocations() const { return static_cast<int64_t>(regions_.size()); }
  // Bytes requested by the live allocations, and the most ever live at once.
  int64_t live_bytes() const { return live_bytes_; }
  int64_t peak_bytes() const { return peak_bytes_; }
  void ResetPeak() { peak_bytes_ = live_bytes_; }
  bool IsDevice(const void* p) const { return Find(p) != 0; }

  bool is_host() const override { return false; }
  bool fuses_gelu_epilogues() const override { return fused_gelu_; }

  void* AllocateBytes(size_t bytes) override {
    if (bytes == 0) return nullptr;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t size = (bytes + page - 1) / page * page;
    void* p = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED) << "mmap of " << bytes << " bytes";
    regions_[reinterpret_cast<uintptr_t>(p)] = size;  // anonymous pages are zero
    requested_[reinterpret_cast<uintptr_t>(p)] = bytes;
    live_bytes_ += static_cast<int64_t>(bytes);
    peak_bytes_ = std::max(peak_bytes_, live_bytes_);
    ++counts_.allocations;
    return p;
  }
  void FreeBytes(void* p) override {
    if (p == nullptr) return;
    auto it = regions_.find(reinterpret_cast<uintptr_t>(p));
    CHECK(it != regions_.end()) << "FreeBytes of a pointer AllocateBytes did not return";
    munmap(p, it->second);
    regions_.erase(it);
    live_bytes_ -= static_cast<int64_t>(requested_.at(reinterpret_cast<uintptr_t>(p)));
    requested_.erase(reinterpret_cast<uintptr_t>(p));
    ++counts_.frees;
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    CheckDevice(dst, bytes, "CopyToDevice dst");
    CheckHost(src, bytes, "CopyToDevice src");
    ++counts_.to_device;
    counts_.bytes_to_device += static_cast<int64_t>(bytes);
    Open([&] { std::memcpy(dst, src, bytes); });
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    CheckDevice(src, bytes, "CopyToHost src");
    CheckHost(dst, bytes, "CopyToHost dst");
    ++counts_.to_host;
    counts_.bytes_to_host += static_cast<int64_t>(bytes);
    Open([&] { std::memcpy(dst, src, bytes); });
  }
  void CopyOnDevice(void* dst, const void* src, size_t bytes) override {
    CheckDevice(dst, bytes, "CopyOnDevice dst");
    CheckDevice(src, bytes, "CopyOnDevice src");
    ++counts_.on_device;
    Open([&] { std::memmove(dst, src, bytes); });
  }
  void Synchronize() override {}

  void LinearForward(const float* x, const float* w, const float* bias, float* y, int64_t M,
                     int64_t N, int64_t K, Epilogue e, bool acc) override {
    Dev({x, w, y}, {bias});
    Compute([&] { inner()->LinearForward(x, w, bias, y, M, N, K, e, acc); });
  }
  void LinearBackward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                      float* db, int64_t M, int64_t N, int64_t K, bool acc) override {
    Dev({dy}, {x, w, dx, dw, db});
    Compute([&] { inner()->LinearBackward(x, w, dy, dx, dw, db, M, N, K, acc); });
  }
  void LinearGeluForward(const float* x, const float* w, const float* bias, float* pre, float* h,
                         int64_t M, int64_t N, int64_t K) override {
    Dev({x, w, bias, pre, h}, {});
    Compute([&] { inner()->LinearGeluForward(x, w, bias, pre, h, M, N, K); });
  }
  void LinearBackwardDGelu(const float* dy, const float* w, const float* pre, float* dpre,
                           float* db, int64_t M, int64_t N, int64_t K) override {
    Dev({dy, w, pre, dpre, db}, {});
    Compute([&] { inner()->LinearBackwardDGelu(dy, w, pre, dpre, db, M, N, K); });
  }
  void LayerNormForward(const float* x, const float* w, const float* b, float* y, float* mean,
                        float* rstd, int64_t M, int64_t C) override {
    Dev({x, w, b, y, mean, rstd}, {});
    Compute([&] { inner()->LayerNormForward(x, w, b, y, mean, rstd, M, C); });
  }
  void LayerNormBackward(const float* dy, const float* x, const float* w, const float* mean,
                         const float* rstd, float* dx, float* dw, float* db, int64_t M,
                         int64_t C) override {
    Dev({dy, x, w, mean, rstd, dx, dw, db}, {});
    Compute([&] { inner()->LayerNormBackward(dy, x, w, mean, rstd, dx, dw, db, M, C); });
  }
  void RmsNormForward(const float* x, const float* w, float* y, float* rstd, int64_t M,
                      int64_t C) override {
    Dev({x, w, y, rstd}, {});
    Compute([&] { inner()->RmsNormForward(x, w, y, rstd, M, C); });
  }
  void RmsNormBackward(const float* dy, const float* x, const float* w, const float* rstd,
                       float* dx, float* dw, int64_t M, int64_t C) override {
    Dev({dy, x, w, rstd, dx, dw}, {});
    Compute([&] { inner()->RmsNormBackward(dy, x, w, rstd, dx, dw, M, C); });
  }
  void GeluForward(const float* u, float* h, int64_t n) override {
    Dev({u, h}, {});
    Compute([&] { inner()->GeluForward(u, h, n); });
  }
  void GeluBackward(const float* u, const float* dh, float* du, int64_t n) override {
    Dev({u, dh, du}, {});
    Compute([&] { inner()->GeluBackward(u, dh, du, n); });
  }
  void EmbeddingForward(const int32_t* t, const float* wte, const float* wpe, float* x, int B,
                        int T, int C) override {
    Dev({t, wte, x}, {wpe});
    Compute([&] { inner()->EmbeddingForward(t, wte, wpe, x, B, T, C); });
  }
  void EmbeddingBackward(const int32_t* t, const float* dx, float* dwte, float* dwpe, int B,
                         int T, int C) override {
    Dev({t, dx, dwte}, {dwpe});
    Compute([&] { inner()->EmbeddingBackward(t, dx, dwte, dwpe, B, T, C); });
  }
  void Rope(float* x, int64_t ld, int64_t rows, int T, int pos0, int heads, int dims, float theta,
            bool inverse) override {
    Dev({x}, {});
    Compute([&] { inner()->Rope(x, ld, rows, T, pos0, heads, dims, theta, inverse); });
  }
  void AttentionForward(const AttentionViews& in, float* y, int64_t ld_y, float* probs) override {
    Dev({in.q, in.k, in.v, y, probs}, {in.q_rope, in.k_rope});
    Compute([&] { inner()->AttentionForward(in, y, ld_y, probs); });
  }
  void AttentionBackward(const AttentionViews& in, const float* probs, const float* dy,
                         int64_t ld_dy, const AttentionGrads& g) override {
    Dev({in.q, in.k, in.v, probs, dy, g.dq, g.dk, g.dv},
        {in.q_rope, in.k_rope, g.dq_rope, g.dk_rope});
    Compute([&] { inner()->AttentionBackward(in, probs, dy, ld_dy, g); });
  }
  double SoftmaxCrossEntropy(float* logits, const int32_t* targets, float* dlogits, int64_t M,
                             int64_t V, float grad_scale) override {
    Dev({logits, targets}, {dlogits});
    double loss = 0;
    Compute([&] { loss = inner()->SoftmaxCrossEntropy(logits, targets, dlogits, M, V, grad_scale); });
    return loss;
  }
  void Add(const float* x, float* y, int64_t n) override {
    Dev({x, y}, {});
    Compute([&] { inner()->Add(x, y, n); });
  }
  void Fill(float* x, float value, int64_t n) override {
    Dev({x}, {});
    Compute([&] { inner()->Fill(x, value, n); });
  }
  void Copy(const float* x, float* y, int64_t n) override {
    Dev({x, y}, {});
    Compute([&] { inner()->Copy(x, y, n); });
  }

  void DecodeEmbedding(const int32_t* t, const float* wte, const float* wpe, float* x, int C,
                       const DecodeBatch& b) override {
    Dev({t, wte, x}, {wpe});
    Table(b);
    Compute([&] { inner()->DecodeEmbedding(t, wte, wpe, x, C, b); });
  }
  void DecodeRope(float* x, int64_t ld, int heads, int dims, float theta,
                  const DecodeBatch& b) override {
    Dev({x}, {});
    Table(b);
    Compute([&] { inner()->DecodeRope(x, ld, heads, dims, theta, b); });
  }
  void DecodeCacheAppend(const float* src, int64_t ld, int width, float* cache, int len,
                         const DecodeBatch& b) override {
    Dev({src, cache}, {});
    Table(b);
    Compute([&] { inner()->DecodeCacheAppend(src, ld, width, cache, len, b); });
  }
  void DecodeAttention(const DecodeAttentionViews& in, const DecodeBatch& b, float* y,
                       int64_t ld_y) override {
    Dev({in.q, in.k, in.v, y}, {in.q_rope, in.k_rope});
    Table(b);
    Compute([&] { inner()->DecodeAttention(in, b, y, ld_y); });
  }
  void DecodeLatentAttention(const DecodeAttentionViews& in, const DecodeBatch& b, bool absorbed,
                             float* y, int64_t ld_y) override {
    Dev({in.q, in.latent, in.w_uk, in.w_uv, y}, {in.q_rope, in.k_rope});
    Table(b);
    Compute([&] { inner()->DecodeLatentAttention(in, b, absorbed, y, ld_y); });
  }

 private:
  // The decode table: the device copy in this memory, the host copy not.
  void Table(const DecodeBatch& b) const {
    Dev({}, {b.device.slot, b.device.row0, b.device.pos0, b.device.pos});
    for (const void* p : {static_cast<const void*>(b.host.slot), static_cast<const void*>(b.host.row0),
                          static_cast<const void*>(b.host.pos0), static_cast<const void*>(b.host.pos)})
      CHECK(!IsDevice(p)) << "decode table: device memory where host memory belongs";
  }
  // Start address of the registration holding p, or 0.
  uintptr_t Find(const void* p) const {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = regions_.upper_bound(a);
    if (it == regions_.begin()) return 0;
    --it;
    return a < it->first + it->second ? it->first : 0;
  }
  void CheckDevice(const void* p, size_t bytes, const char* what) const {
    const uintptr_t start = Find(p);
    CHECK(start != 0) << what << ": not device memory";
    CHECK_LE(reinterpret_cast<uintptr_t>(p) + bytes, start + regions_.at(start))
        << what << ": runs past its allocation";
  }
  void CheckHost(const void* p, size_t bytes, const char* what) const {
    CHECK(!IsDevice(p)) << what << ": device memory where host memory belongs";
    if (bytes > 0) CHECK(!IsDevice(static_cast<const char*>(p) + bytes - 1)) << what;
  }
  // Required (non-null) and optional device pointers of a compute call.
  void Dev(std::initializer_list<const void*> required,
           std::initializer_list<const void*> optional) const {
    for (const void* p : required) CHECK(p != nullptr && IsDevice(p)) << "host or null pointer";
    for (const void* p : optional) CHECK(p == nullptr || IsDevice(p)) << "host pointer";
  }
  void Protect(int prot) {
    for (const auto& [p, size] : regions_)
      CHECK_EQ(mprotect(reinterpret_cast<void*>(p), size, prot), 0);
  }
  template <typename F>
  void Open(F&& f) {
    Protect(PROT_READ | PROT_WRITE);
    f();
    Protect(PROT_NONE);
  }
  template <typename F>
  void Compute(F&& f) {
    ++counts_.compute_calls;
    Open(std::forward<F>(f));
  }

  bool fused_gelu_;
  std::map<uintptr_t, size_t> regions_;    // start → mapped bytes
  std::map<uintptr_t, size_t> requested_;  // start → bytes asked for
  int64_t live_bytes_ = 0, peak_bytes_ = 0;
  Counts counts_;
};

}  // namespace mla::testing
