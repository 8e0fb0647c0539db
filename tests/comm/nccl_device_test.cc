// SelectLocalCudaDevice (comm/nccl_device.h), the GPU choice training, NCCL
// and mla-eval share, under mpirun -np 2: each rank ends up on the device
// ChooseLocalDevice names for its node-local rank, current on its thread.
// Runs where a CUDA device is visible, skips with a message otherwise (the
// rule itself is tested everywhere by nccl_bootstrap_test).
#include "comm/nccl_device.h"

#include <cuda_runtime.h>

#include "comm/mpi_communicator.h"
#include "comm/nccl_bootstrap.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(LocalDeviceTest, EachRankDrivesTheDeviceOfItsNodeLocalRank) {
  auto comm = MpiCommunicator::Create();
  ASSERT_TRUE(comm.ok()) << comm.status();
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    GTEST_SKIP() << "no CUDA device visible; skipping GPU device choice";
  absl::StatusOr<int> expected =
      ChooseLocalDevice((*comm)->local_rank(), (*comm)->local_size(), count);
  absl::StatusOr<int> chosen = SelectLocalCudaDevice((*comm)->local_rank(),
                                                     (*comm)->local_size());
  ASSERT_EQ(chosen.ok(), expected.ok()) << chosen.status() << " vs " << expected.status();
  if (!expected.ok()) return;  // more ranks than GPUs: both refuse alike
  EXPECT_EQ(*chosen, *expected);
  int current = -1;
  ASSERT_EQ(cudaGetDevice(&current), cudaSuccess);
  EXPECT_EQ(current, *expected);
}

}  // namespace
}  // namespace mla
