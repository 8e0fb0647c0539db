// CUDA element-wise kernels against the CPU kernels (the same shared math):
// run when a GPU is visible, skip with a message otherwise. fp32 tolerance:
// both sides evaluate the same expression; the device's expf differs from the
// host's by at most 2 ulp, which moves GELU by a few ulp of its output.
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "layers/cuda/elementwise.h"

namespace mla {
namespace {

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
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(h_gpu[i], h_cpu[i], 1e-6f * (1.0f + std::fabs(h_cpu[i]))) << u[i];
    EXPECT_NEAR(du_gpu[i], du_cpu[i], 1e-6f * (1.0f + std::fabs(du_cpu[i]))) << u[i];
  }
  cudaFree(du_);
  cudaFree(dh_);
  cudaFree(dx_);
  cudaFree(dd_);
}

}  // namespace
}  // namespace mla
