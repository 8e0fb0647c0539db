// CUDA element-wise kernels against the CPU kernels (the same shared math):
// run when a GPU is visible, skip with a message otherwise.
//
// GELU tolerance, derived per point (GeluBound): both sides evaluate the
// same expression (layers/math/activation_math.h) except E = exp(2z), which
// is the device's expf (≤ 2 ulp, CUDA Math API) on the GPU and the host's
// polynomial (about 2 ulp) on the CPU, so E differs by δ_E ≤ 4 ulp ≤ 8u
// relative (u = 2⁻²⁴). Through t = 1 − 2/(E + 1), dt/dE·E = (1 − t²)/2, and
// the three roundings after E (each ≤ u of a value ≤ 2) may now differ too:
//   |Δt| ≤ (1 − t²)/2·δ_E + 6u + 4u·|z|·(1 − t²)   (the last: z's own roundings,
//                                                     contracted to FMAs or not)
//   |Δh| ≤ ½|u_in|·|Δt| + 4u·|h|
//   |Δg| ≤ |Δt|·(½ + |u_in·t·dz|) + 6u·(½|1 + t| + ½|u_in|(1 − t²)|dz|)
// for h = ½u(1 + t) and g = ½(1 + t) + ½u(1 − t²)dz, dz = √(2/π)(1 + 3·0.044715u²).
#include <cuda_runtime.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cuda/elementwise.h"
#include "layers/math/activation_math.h"

namespace mla {
namespace {

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff

struct GeluBound {
  double h = 0, grad = 0;
};

GeluBound BoundAt(float u_in) {
  const double u = u_in;
  const double z = math::kGeluScale * (u + math::kGeluCubic * u * u * u);
  const double t = std::tanh(z), s = 1.0 - t * t;
  const double dz = math::kGeluScale * (1.0 + 3.0 * math::kGeluCubic * u * u);
  const double dt = s / 2.0 * 8.0 * kU + 6.0 * kU + 4.0 * kU * std::fabs(z) * s;
  GeluBound b;
  b.h = 0.5 * std::fabs(u) * dt + 4.0 * kU * std::fabs(0.5 * u * (1.0 + t));
  b.grad = dt * (0.5 + std::fabs(u * t * dz)) +
           6.0 * kU * (0.5 * std::fabs(1.0 + t) + 0.5 * std::fabs(u) * s * std::fabs(dz));
  return b;
}

class CudaElementwiseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::DeviceAvailable()) GTEST_SKIP() << "no CUDA device visible; skipping GPU parity";
  }
};

TEST_F(CudaElementwiseTest, GeluMatchesCpu) {
  const int64_t n = 1 << 16;
  std::vector<float> u(n), h_cpu(n), du_cpu(n), dh(n, 1.0f), h_gpu(n), du_gpu(n);
  for (int64_t i = 0; i < n; ++i) u[i] = -8.0f + 16.0f * static_cast<float>(i) / n;
  CpuKernels cpu;
  cpu.GeluForward(u.data(), h_cpu.data(), n);
  cpu.GeluBackward(u.data(), dh.data(), du_cpu.data(), n);
  float *du_, *dh_, *dx_, *dd_;
  ASSERT_EQ(cudaMalloc(&du_, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dh_, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dx_, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dd_, n * 4), cudaSuccess);
  cudaMemcpy(du_, u.data(), n * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dd_, dh.data(), n * 4, cudaMemcpyHostToDevice);
  ASSERT_TRUE(cuda::GeluForward(du_, dh_, n, nullptr).ok());
  ASSERT_TRUE(cuda::GeluBackward(du_, dd_, dx_, n, nullptr).ok());
  cudaMemcpy(h_gpu.data(), dh_, n * 4, cudaMemcpyDeviceToHost);
  cudaMemcpy(du_gpu.data(), dx_, n * 4, cudaMemcpyDeviceToHost);
  double worst_h = 0, worst_g = 0;  // largest error as a fraction of its bound
  for (int64_t i = 0; i < n; ++i) {
    const GeluBound b = BoundAt(u[i]);
    EXPECT_NEAR(h_gpu[i], h_cpu[i], b.h) << u[i];
    EXPECT_NEAR(du_gpu[i], du_cpu[i], b.grad) << u[i];
    worst_h = std::max(worst_h, std::fabs(static_cast<double>(h_gpu[i]) - h_cpu[i]) / b.h);
    worst_g = std::max(worst_g, std::fabs(static_cast<double>(du_gpu[i]) - du_cpu[i]) / b.grad);
  }
  std::printf("[measured] GELU forward: largest error %.3g of the bound; backward: %.3g\n",
              worst_h, worst_g);
  cudaFree(du_);
  cudaFree(dh_);
  cudaFree(dx_);
  cudaFree(dd_);
}

}  // namespace
}  // namespace mla
