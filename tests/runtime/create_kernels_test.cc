// CreateKernels' answers that do not depend on a GPU (runtime/create_kernels.h):
// the CPU device, unknown names, and --device=cuda in this build: refused
// with "no CUDA support" where the build has no CUDA; where it has, either
// CUDA kernels on a visible GPU or an error naming --device=cuda that says
// no GPU is usable when the devices cannot be counted (the GPU case is
// exercised by the GPU tests under tests/layers/cuda).
#include "runtime/create_kernels.h"

#include "comm/local_communicator.h"
#include "gtest/gtest.h"
#include "runtime/training_device.h"

namespace mla {
namespace {

TEST(CreateKernelsTest, CpuIsTheHost) {
  absl::StatusOr<std::unique_ptr<Kernels>> kernels = CreateKernels("cpu", Precision::kFp32);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  EXPECT_TRUE((*kernels)->is_host());
}

TEST(CreateKernelsTest, UnknownDeviceIsRefusedWithTheChoices) {
  absl::StatusOr<std::unique_ptr<Kernels>> kernels = CreateKernels("tpu", Precision::kFp32);
  ASSERT_FALSE(kernels.ok());
  EXPECT_EQ(kernels.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(kernels.status().message(), "--device=tpu: expected cpu or cuda");
}

TEST(CreateKernelsTest, CudaAnswersAccordingToTheBuild) {
  absl::StatusOr<std::unique_ptr<Kernels>> kernels = CreateKernels("cuda", Precision::kFp32);
#if MLA_TEST_BUILT_WITH_CUDA
  if (kernels.ok()) {
    EXPECT_FALSE((*kernels)->is_host());
    return;
  }
  EXPECT_EQ(kernels.status().message().rfind("--device=cuda: ", 0), 0u) << kernels.status();
  EXPECT_EQ(kernels.status().message().find("no CUDA support"), absl::string_view::npos)
      << "a CUDA build must not say it lacks CUDA: " << kernels.status();
  if (kernels.status().message().find("cudaGetDeviceCount") != absl::string_view::npos) {
    EXPECT_NE(kernels.status().message().find("no GPU is usable here"), absl::string_view::npos)
        << kernels.status();
  }
#else
  ASSERT_FALSE(kernels.ok());
  EXPECT_EQ(kernels.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(kernels.status().message().find("this build has no CUDA support (built without CUDA"),
            absl::string_view::npos)
      << kernels.status();
#endif
}

TEST(CreateKernelsTest, TrainingOnADeviceWithoutTrainingIsRefused) {
  DeviceBackend kernels_only;
  kernels_only.count = []() -> absl::StatusOr<int> { return 1; };
  kernels_only.create = [](int, Precision) -> absl::StatusOr<std::unique_ptr<Kernels>> {
    return absl::InternalError("not reached: training is refused before kernels are made");
  };
  kernels_only.training_missing = "no optimizer for it";
  RegisterDeviceBackend("kernels_only", std::move(kernels_only));
  LocalCommunicator comm;
  auto device = CreateTrainingDevice("kernels_only", Precision::kFp32, &comm);
  ASSERT_FALSE(device.ok());
  EXPECT_EQ(device.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(device.status().message(),
            "--device=kernels_only: training is not supported on this device (no optimizer for "
            "it)");
}

}  // namespace
}  // namespace mla
