#pragma once
// DeviceVector<T>: a test's host vector copied into GPU memory (a
// DeviceBuffer, at least one element so a pointer always exists), with
// Upload to replace its contents and Host to read it back after the device
// finished. For the GPU parity tests; needs a visible device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "layers/cuda/device_buffer.h"

namespace mla::cuda::testing {

template <typename T>
class DeviceVector {
 public:
  explicit DeviceVector(const std::vector<T>& host) : n_(host.size()) {
    buf_ = *DeviceBuffer<T>::Allocate(static_cast<int64_t>(std::max<size_t>(n_, 1)));
    Upload(host);
  }
  // Replaces the contents (same size as at construction).
  void Upload(const std::vector<T>& host) {
    if (n_ > 0) cudaMemcpy(buf_.data(), host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice);
  }
  T* get() { return buf_.data(); }
  std::vector<T> Host() {
    std::vector<T> out(n_);
    cudaDeviceSynchronize();
    if (n_ > 0) cudaMemcpy(out.data(), buf_.data(), n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return out;
  }

 private:
  size_t n_;
  DeviceBuffer<T> buf_;
};

}  // namespace mla::cuda::testing
