// Linear products with an empty dimension through the fake device
// (tests/device/empty_linear_checks.h): the contract the CUDA kernels are
// held to by the same checks in cuda_kernels_test, here on CPU arithmetic
// with device-memory policing, on every machine.
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "tests/device/empty_linear_checks.h"
#include "tests/device/fake_device_kernels.h"

namespace mla::testing {
namespace {

TEST(EmptyLinearTest, EmptyProductsAddNothingOnTheDevicePath) {
  CpuKernels inner;
  FakeDeviceKernels device(&inner);
  ExpectEmptyLinearProductsAddNothing(device);
  EXPECT_EQ(device.live_allocations(), 0);
}

TEST(EmptyLinearTest, EmptyProductsAddNothingOnTheHost) {
  CpuKernels cpu;
  ExpectEmptyLinearProductsAddNothing(cpu);
}

}  // namespace
}  // namespace mla::testing
