#include "layers/cuda/elementwise.h"

#include "absl/strings/str_cat.h"
#include "layers/cuda/elementwise_launch.h"

namespace mla::cuda {
namespace {
absl::Status Check(int code, const char* call) {
  if (code == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(call, ": ", launch::ErrorString(code)));
}
}  // namespace

bool DeviceAvailable() {
  int count = 0;
  return launch::DeviceCount(&count) == 0 && count > 0;
}

absl::Status GeluForward(const float* u, float* h, int64_t n, cudaStream_t stream) {
  return Check(launch::GeluForward(u, h, n, stream), "GeluForwardKernel launch");
}

absl::Status GeluBackward(const float* u, const float* dh, float* du, int64_t n,
                          cudaStream_t stream) {
  return Check(launch::GeluBackward(u, dh, du, n, stream), "GeluBackwardKernel launch");
}

absl::Status AdamWStep(float* params, float* m, float* v, const float* grads,
                       const uint8_t* decay, int64_t n, const AdamWStepScalars& scalars,
                       cudaStream_t stream) {
  return Check(launch::AdamWStep(params, m, v, grads, decay, n, scalars, stream),
               "AdamWKernel launch");
}

}  // namespace mla::cuda
