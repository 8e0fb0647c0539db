#pragma once
// DeviceArray<T>: an owning, move-only array in the memory of one Kernels
// implementation (host memory for CpuKernels, GPU memory for CudaKernels),
// so code written against layers/kernels.h allocates without knowing the
// device. Grows like a vector (Resize keeps the first size() elements and
// zero-fills the rest) but cannot be indexed from the host unless
// kernels->is_host(); use CopyFromHost/CopyToHost otherwise. The kernels must
// outlive the array. Not thread safe.
#include <cstdint>
#include <utility>
#include <vector>

#include "glog/logging.h"
#include "layers/kernels.h"

namespace mla {

template <typename T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(Kernels* kernels) : kernels_(kernels) {}
  DeviceArray(Kernels* kernels, int64_t n) : kernels_(kernels) { Resize(n); }
  DeviceArray(DeviceArray&& o) noexcept
      : kernels_(o.kernels_),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      Release();
      kernels_ = o.kernels_;
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { Release(); }

  // Sets the size to n; growing beyond the capacity reallocates (the old
  // elements are copied on the device); new elements are zero.
  void Resize(int64_t n) {
    CHECK(kernels_ != nullptr) << "DeviceArray without kernels";
    CHECK_GE(n, 0);
    if (n > capacity_) {
      T* grown = static_cast<T*>(kernels_->AllocateBytes(static_cast<size_t>(n) * sizeof(T)));
      if (size_ > 0) kernels_->CopyOnDevice(grown, data_, static_cast<size_t>(size_) * sizeof(T));
      Release();
      data_ = grown;
      capacity_ = n;
    } else if (n < size_) {
      // Shrinking then growing again must give zeros, as a fresh allocation does.
      std::vector<T> zeros(static_cast<size_t>(size_ - n));
      kernels_->CopyToDevice(data_ + n, zeros.data(), zeros.size() * sizeof(T));
    }
    size_ = n;
  }

  // Host → device copy of n elements into [offset, offset + n).
  void CopyFromHost(const T* src, int64_t n, int64_t offset = 0) {
    CHECK_LE(offset + n, size_);
    kernels_->CopyToDevice(data_ + offset, src, static_cast<size_t>(n) * sizeof(T));
  }
  // Device → host copy of [offset, offset + n) (waits for earlier calls).
  void CopyToHost(T* dst, int64_t n, int64_t offset = 0) const {
    CHECK_LE(offset + n, size_);
    kernels_->CopyToHost(dst, data_ + offset, static_cast<size_t>(n) * sizeof(T));
  }
  std::vector<T> ToHost() const {
    std::vector<T> out(static_cast<size_t>(size_));
    CopyToHost(out.data(), size_);
    return out;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  Kernels* kernels() const { return kernels_; }

 private:
  void Release() {
    if (data_ != nullptr) kernels_->FreeBytes(data_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }
  Kernels* kernels_ = nullptr;
  T* data_ = nullptr;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace mla
