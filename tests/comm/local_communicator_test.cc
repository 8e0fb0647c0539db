// LocalCommunicator: a size-1 job where every collective is the identity,
// and CreateCommunicator's choice of it when MPI is not initialised.
#include "comm/local_communicator.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace mla {
namespace {

std::vector<float> Iota(int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = 0.25f * i - 3.0f;
  return v;
}

TEST(LocalCommunicator, IsRankZeroOfOneOnItsOwnNode) {
  LocalCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  EXPECT_EQ(comm.local_rank(), 0);
  EXPECT_EQ(comm.local_size(), 1);
}

TEST(LocalCommunicator, AllReduceLeavesEveryTypeUnchanged) {
  LocalCommunicator comm;
  std::vector<float> f = Iota(37);
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAverage, ReduceOp::kMax, ReduceOp::kMin})
    ASSERT_TRUE(comm.AllReduce(absl::MakeSpan(f), op).ok());
  EXPECT_EQ(f, Iota(37));
  std::vector<double> d = {1.5, -2.0};
  ASSERT_TRUE(comm.AllReduce(absl::MakeSpan(d), ReduceOp::kAverage).ok());
  EXPECT_EQ(d, (std::vector<double>{1.5, -2.0}));
  std::vector<int64_t> i = {7, -1};
  ASSERT_TRUE(comm.AllReduce(absl::MakeSpan(i), ReduceOp::kMax).ok());
  EXPECT_EQ(i, (std::vector<int64_t>{7, -1}));
}

TEST(LocalCommunicator, Int64AverageIsRejected) {
  LocalCommunicator comm;
  int64_t x = 3;
  EXPECT_EQ(comm.AllReduce(absl::MakeSpan(&x, 1), ReduceOp::kAverage).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LocalCommunicator, NonBlockingAllReduceIsCompleteAtOnce) {
  LocalCommunicator comm;
  std::vector<float> f = Iota(100);
  absl::StatusOr<CommRequest> request = comm.StartAllReduce(absl::MakeSpan(f), ReduceOp::kAverage);
  ASSERT_TRUE(request.ok());
  EXPECT_FALSE(request->pending());
  EXPECT_TRUE(request->Wait().ok());
  EXPECT_EQ(f, Iota(100));
}

TEST(LocalCommunicator, NonBlockingMaxIsRejected) {
  LocalCommunicator comm;
  std::vector<float> f = Iota(4);
  EXPECT_EQ(comm.StartAllReduce(absl::MakeSpan(f), ReduceOp::kMax).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LocalCommunicator, ReduceScatterAndAllGatherAreTheIdentity) {
  LocalCommunicator comm;
  std::vector<float> f = Iota(83);
  ASSERT_TRUE(comm.ReduceScatter(absl::MakeSpan(f), ReduceOp::kAverage).ok());
  ASSERT_TRUE(comm.AllGather(absl::MakeSpan(f)).ok());
  EXPECT_EQ(f, Iota(83));
}

TEST(LocalCommunicator, BroadcastFromRootZeroKeepsBytesAndOtherRootsFail) {
  LocalCommunicator comm;
  std::vector<uint8_t> bytes = {1, 2, 3};
  EXPECT_TRUE(comm.Broadcast(absl::MakeSpan(bytes), 0).ok());
  EXPECT_EQ(bytes, (std::vector<uint8_t>{1, 2, 3}));
  EXPECT_EQ(comm.Broadcast(absl::MakeSpan(bytes), 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(LocalCommunicator, AgreeOnStatusReturnsTheLocalErrorWithItsRank) {
  LocalCommunicator comm;
  EXPECT_TRUE(AgreeOnStatus(comm, absl::OkStatus()).ok());
  absl::Status agreed = AgreeOnStatus(comm, absl::NotFoundError("no shard files"));
  EXPECT_EQ(agreed.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(agreed.message(), "rank 0: no shard files");
}

TEST(CreateCommunicator, WithoutMpiInitialisedIsSizeOne) {
  absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateCommunicator();
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_EQ((*comm)->size(), 1);
  EXPECT_EQ((*comm)->rank(), 0);
}

}  // namespace
}  // namespace mla
