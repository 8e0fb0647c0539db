#pragma once
// DeviceBuffer<T>: an owning, move-only array in GPU memory (cudaMalloc /
// cudaFree), with a grow-only Reserve for scratch that is sized on first use
// and then reused. Allocation failures come back as a status naming
// cudaMalloc and the size; Reserve inside the kernel interface CHECKs.
// Not thread safe.
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "layers/cuda/cuda_check.h"

namespace mla::cuda {

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  static absl::StatusOr<DeviceBuffer> Allocate(int64_t count) {
    DeviceBuffer b;
    if (count > 0) {
      void* p = nullptr;
      const cudaError_t e = cudaMalloc(&p, static_cast<size_t>(count) * sizeof(T));
      if (e != cudaSuccess)
        return CudaStatus(e, absl::StrCat("cudaMalloc(", count * sizeof(T), " bytes)"));
      b.data_ = static_cast<T*>(p);
      b.count_ = count;
    }
    return b;
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Release();
      data_ = std::exchange(o.data_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { Release(); }

  // Grows to at least `count` elements (contents are not kept).
  T* Reserve(int64_t count) {
    if (count > count_) {
      absl::StatusOr<DeviceBuffer> grown = Allocate(count);
      CHECK(grown.ok()) << grown.status();
      *this = std::move(*grown);
    }
    return data_;
  }

  T* data() const { return data_; }
  int64_t size() const { return count_; }

 private:
  void Release() {
    // cudaFree synchronises the device, so a buffer still in use by a queued
    // kernel is not freed under it.
    if (data_ != nullptr) {
      const cudaError_t e = cudaFree(data_);
      LOG_IF(ERROR, e != cudaSuccess) << "cudaFree: " << cudaGetErrorString(e);
    }
    data_ = nullptr;
    count_ = 0;
  }
  T* data_ = nullptr;
  int64_t count_ = 0;
};

}  // namespace mla::cuda
