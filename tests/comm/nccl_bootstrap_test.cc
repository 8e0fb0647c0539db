// The NCCL start-up logic over the MPI communicator, without GPUs (run under
// mpirun -np 2): device choice from the node-local rank, the duplicate-GPU
// check and the unique-id broadcast with its failure path.
#include "comm/nccl_bootstrap.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "comm/mpi_communicator.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

std::unique_ptr<MpiCommunicator> World() {
  auto comm = MpiCommunicator::Create();
  CHECK(comm.ok()) << comm.status();
  return std::move(*comm);
}

TEST(ChooseLocalDeviceTest, OneGpuPerLocalRank) {
  EXPECT_EQ(*ChooseLocalDevice(0, 4, 4), 0);
  EXPECT_EQ(*ChooseLocalDevice(3, 4, 8), 3);
}

TEST(ChooseLocalDeviceTest, SingleVisibleDeviceIsDeviceZero) {
  EXPECT_EQ(*ChooseLocalDevice(2, 4, 1), 0);
}

TEST(ChooseLocalDeviceTest, MoreRanksThanDevicesFails) {
  const auto d = ChooseLocalDevice(0, 4, 2);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("4 ranks run on this node but only 2"), absl::string_view::npos)
      << d.status();
}

TEST(ChooseLocalDeviceTest, NoDeviceFails) { EXPECT_FALSE(ChooseLocalDevice(0, 1, 0).ok()); }

// Both ranks of this job share one node: MPI's node-local ranks pick
// different devices when two are visible.
TEST(ChooseLocalDeviceTest, RanksOfOneNodePickDistinctDevices) {
  auto comm = World();
  ASSERT_EQ(comm->local_size(), 2);
  const auto d = ChooseLocalDevice(comm->local_rank(), comm->local_size(), 2);
  ASSERT_TRUE(d.ok()) << d.status();
  std::vector<int64_t> used(2, 0);
  used[*d] = 1;
  ASSERT_TRUE(comm->AllReduce(absl::MakeSpan(used), ReduceOp::kSum).ok());
  EXPECT_EQ(used, (std::vector<int64_t>{1, 1}));
}

TEST(CheckDistinctDevicesTest, DistinctIdentitiesPass) {
  auto comm = World();
  EXPECT_TRUE(CheckDistinctDevices(*comm, absl::StrCat("node:0000:0", comm->rank(), ":00.0")).ok());
}

TEST(CheckDistinctDevicesTest, SharedGpuFailsOnEveryRank) {
  auto comm = World();
  const absl::Status s = CheckDistinctDevices(*comm, "node:0000:01:00.0");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("would both drive GPU node:0000:01:00.0"), absl::string_view::npos) << s;
}

TEST(ExchangeUniqueIdTest, EveryRankReceivesRootsBytes) {
  auto comm = World();
  int calls = 0;
  auto id = ExchangeUniqueId(*comm, [&]() -> absl::StatusOr<NcclUniqueIdBytes> {
    ++calls;
    NcclUniqueIdBytes b;
    for (int i = 0; i < kNcclUniqueIdBytes; ++i) b[i] = static_cast<uint8_t>(3 * i + 1);
    return b;
  });
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(calls, comm->rank() == 0 ? 1 : 0);
  for (int i = 0; i < kNcclUniqueIdBytes; ++i) EXPECT_EQ((*id)[i], static_cast<uint8_t>(3 * i + 1));
}

TEST(ExchangeUniqueIdTest, RootFailureReachesEveryRank) {
  auto comm = World();
  auto id = ExchangeUniqueId(*comm, []() -> absl::StatusOr<NcclUniqueIdBytes> {
    return absl::InternalError("ncclGetUniqueId: unhandled system error");
  });
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(id.status().message().find("ncclGetUniqueId"), absl::string_view::npos) << id.status();
}

}  // namespace
}  // namespace mla
