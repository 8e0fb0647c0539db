// The node-local device choice mla-eval makes (CreateKernels(--device,
// fp32, comm) on the MPI communicator, runtime/create_kernels.h), under
// mpirun -np 2 on one node with a fake device kind registered through
// RegisterDeviceBackend: its kernels are FakeDeviceKernels and it records
// which device index CreateKernels asked for. With one device per rank,
// rank r must get device r (on one node the node-local rank is the world
// rank) and the two ranks distinct devices; with one device both share it;
// with none the error names the device and nothing is created.
#include <cstdint>
#include <memory>

#include "comm/mpi_communicator.h"
#include "gtest/gtest.h"
#include "layers/cpu/cpu_kernels.h"
#include "runtime/create_kernels.h"
#include "tests/device/fake_device_kernels.h"

namespace mla {
namespace {

struct FakeDeviceLog {
  int created = 0;
  int last_index = -1;
};

// Registers "fake" with `devices` visible devices; every creation is logged.
void RegisterFakeDevice(int devices, FakeDeviceLog* log) {
  static CpuKernels* const inner = new CpuKernels();
  DeviceBackend fake;
  fake.count = [devices]() -> absl::StatusOr<int> { return devices; };
  fake.create = [log](int index, Precision) -> absl::StatusOr<std::unique_ptr<Kernels>> {
    ++log->created;
    log->last_index = index;
    return std::unique_ptr<Kernels>(std::make_unique<testing::FakeDeviceKernels>(inner));
  };
  RegisterDeviceBackend("fake", std::move(fake));
}

class CreateKernelsMpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto comm = MpiCommunicator::Create();
    ASSERT_TRUE(comm.ok()) << comm.status();
    comm_ = std::move(*comm);
    ASSERT_EQ(comm_->size(), 2) << "run under mpirun -np 2";
    ASSERT_EQ(comm_->local_size(), 2) << "both ranks must share a node";
  }
  // mla-eval's call, with `devices` fake devices visible.
  absl::StatusOr<std::unique_ptr<Kernels>> CreateOnFakeDevices(int devices) {
    RegisterFakeDevice(devices, &log_);
    return CreateKernels("fake", Precision::kFp32, *comm_);
  }
  std::unique_ptr<MpiCommunicator> comm_;
  FakeDeviceLog log_;
};

TEST_F(CreateKernelsMpiTest, EachRankGetsTheDeviceOfItsNodeLocalRank) {
  absl::StatusOr<std::unique_ptr<Kernels>> kernels = CreateOnFakeDevices(2);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  EXPECT_NE(dynamic_cast<testing::FakeDeviceKernels*>(kernels->get()), nullptr)
      << "the kernels are not the registered device's";
  EXPECT_EQ(log_.created, 1);
  EXPECT_EQ(log_.last_index, comm_->rank());
  // Distinct devices: bit `index` set by each rank, both bits set once.
  int64_t chosen = int64_t{1} << log_.last_index;
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(&chosen, 1), ReduceOp::kSum).ok());
  EXPECT_EQ(chosen, 0b11);
}

TEST_F(CreateKernelsMpiTest, OneVisibleDeviceIsSharedAsDeviceZero) {
  absl::StatusOr<std::unique_ptr<Kernels>> kernels = CreateOnFakeDevices(1);
  ASSERT_TRUE(kernels.ok()) << kernels.status();
  EXPECT_EQ(log_.last_index, 0);
}

TEST_F(CreateKernelsMpiTest, NoVisibleDeviceFailsNamingTheDevice) {
  absl::StatusOr<std::unique_ptr<Kernels>> kernels = CreateOnFakeDevices(0);
  ASSERT_FALSE(kernels.ok());
  EXPECT_EQ(kernels.status().message().rfind("--device=fake: ", 0), 0u) << kernels.status();
  EXPECT_EQ(log_.created, 0);
}

}  // namespace
}  // namespace mla
