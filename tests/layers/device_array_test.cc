// DeviceArray on the host implementation: the vector-like contract that
// GptModel and the decoder rely on for every device.
#include "layers/device_array.h"

#include <vector>

#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"

namespace mla {
namespace {

TEST(DeviceArrayTest, NewArrayIsZeroFilled) {
  CpuKernels kernels;
  DeviceArray<float> a(&kernels, 1000);
  for (float v : a.ToHost()) ASSERT_EQ(v, 0.0f);
}

TEST(DeviceArrayTest, GrowingKeepsContentsAndZeroFillsTheRest) {
  CpuKernels kernels;
  DeviceArray<int32_t> a(&kernels, 3);
  const std::vector<int32_t> src = {7, -1, 42};
  a.CopyFromHost(src.data(), 3);
  a.Resize(1 << 16);  // beyond the capacity: reallocates
  const std::vector<int32_t> out = a.ToHost();
  ASSERT_EQ(out.size(), size_t{1} << 16);
  EXPECT_EQ(out[0], 7);
  EXPECT_EQ(out[1], -1);
  EXPECT_EQ(out[2], 42);
  for (size_t i = 3; i < out.size(); ++i) ASSERT_EQ(out[i], 0) << i;
}

TEST(DeviceArrayTest, ShrinkingThenGrowingGivesZeros) {
  CpuKernels kernels;
  DeviceArray<float> a(&kernels, 4);
  const std::vector<float> ones(4, 1.0f);
  a.CopyFromHost(ones.data(), 4);
  a.Resize(1);
  a.Resize(4);  // within the capacity
  EXPECT_EQ(a.ToHost(), (std::vector<float>{1.0f, 0.0f, 0.0f, 0.0f}));
}

TEST(DeviceArrayTest, CopiesAtAnOffset) {
  CpuKernels kernels;
  DeviceArray<float> a(&kernels, 6);
  const std::vector<float> src = {1.5f, 2.5f};
  a.CopyFromHost(src.data(), 2, 3);
  std::vector<float> back(2);
  a.CopyToHost(back.data(), 2, 3);
  EXPECT_EQ(back, src);
  EXPECT_EQ(a.ToHost()[2], 0.0f);
  EXPECT_EQ(a.ToHost()[5], 0.0f);
}

TEST(DeviceArrayTest, MoveTransfersOwnership) {
  CpuKernels kernels;
  DeviceArray<float> a(&kernels, 8);
  float* p = a.data();
  DeviceArray<float> b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.size(), 8);
  EXPECT_EQ(a.data(), nullptr);  // NOLINT(bugprone-use-after-move): the contract under test
  EXPECT_EQ(a.size(), 0);
}

TEST(DeviceArrayTest, HostKernelsAllocateAlignedMemory) {
  CpuKernels kernels;
  EXPECT_TRUE(kernels.is_host());
  DeviceArray<float> a(&kernels, 3);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u);
  EXPECT_EQ(kernels.AllocateBytes(0), nullptr);
}

}  // namespace
}  // namespace mla
