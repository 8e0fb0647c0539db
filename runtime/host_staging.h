#pragma once
// Host access to buffers in a Kernels implementation's memory, for the code
// that moves them to and from host-only APIs (checkpoint files, HDF5). On host
// kernels (kernels.is_host()) both functions work on the buffer itself, so the
// CPU path copies nothing; otherwise the data is staged through a host vector
// with the kernels' CopyToHost / CopyToDevice. Not thread safe (the kernels'
// calls are issued from one thread).
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "layers/kernels.h"

namespace mla {

// The n floats at `data` (kernels' memory) readable from the host: `data`
// itself, or a copy in *staging (valid until staging changes).
inline absl::Span<const float> HostView(Kernels& kernels, const float* data, int64_t n,
                                        std::vector<float>* staging) {
  if (kernels.is_host()) return absl::MakeConstSpan(data, static_cast<size_t>(n));
  staging->resize(static_cast<size_t>(n));
  kernels.CopyToHost(staging->data(), data, static_cast<size_t>(n) * sizeof(float));
  return absl::MakeConstSpan(*staging);
}

// Fills the n floats at `data` (kernels' memory) by calling `fill` on a host
// span: `data` itself, or a host buffer copied to `data` once `fill` succeeds.
inline absl::Status FillFromHost(Kernels& kernels, float* data, int64_t n,
                                 const std::function<absl::Status(absl::Span<float>)>& fill) {
  if (kernels.is_host()) return fill(absl::MakeSpan(data, static_cast<size_t>(n)));
  std::vector<float> staging(static_cast<size_t>(n));
  if (absl::Status s = fill(absl::MakeSpan(staging)); !s.ok()) return s;
  kernels.CopyToDevice(data, staging.data(), staging.size() * sizeof(float));
  return absl::OkStatus();
}

}  // namespace mla
