// MpiCommunicator under mpirun (written for any size N >= 2, run with N = 2):
// every collective against its closed-form result.
#include "comm/mpi_communicator.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace mla {
namespace {

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<MpiCommunicator>> c = MpiCommunicator::Create();
    ASSERT_TRUE(c.ok()) << c.status();
    comm_ = std::move(*c);
    n_ = comm_->size();
    r_ = comm_->rank();
  }
  std::unique_ptr<MpiCommunicator> comm_;
  int n_ = 0;
  int r_ = 0;
};

TEST_F(MpiCommunicatorTest, RunsWithAtLeastTwoRanks) { EXPECT_GE(n_, 2); }

TEST_F(MpiCommunicatorTest, FloatSumIsTheSumOverRanks) {
  // Small integers: every partial sum is exact whatever MPI's order.
  std::vector<float> x(1000);
  for (int i = 0; i < 1000; ++i) x[i] = static_cast<float>((r_ + 1) * i);
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(x), ReduceOp::kSum).ok());
  const int ranks_sum = n_ * (n_ + 1) / 2;
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(x[i], static_cast<float>(ranks_sum * i)) << i;
}

TEST_F(MpiCommunicatorTest, FloatAverageIsTheMeanOverRanks) {
  std::vector<float> x(513);
  for (int i = 0; i < 513; ++i) x[i] = static_cast<float>(r_ + 2 * i);
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(x), ReduceOp::kAverage).ok());
  // Exact sum n·2i + n(n−1)/2 times the rounded 1/n: two roundings (≤ 4 ulp is
  // EXPECT_FLOAT_EQ's bound; exact for power-of-two n).
  for (int i = 0; i < 513; ++i)
    ASSERT_FLOAT_EQ(x[i], static_cast<float>(2 * i) + (n_ - 1) / 2.0f) << i;
}

TEST_F(MpiCommunicatorTest, FloatMaxAndMinPickTheExtremeRank) {
  std::vector<float> hi = {static_cast<float>(r_), -static_cast<float>(r_)};
  std::vector<float> lo = hi;
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(hi), ReduceOp::kMax).ok());
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(lo), ReduceOp::kMin).ok());
  EXPECT_EQ(hi, (std::vector<float>{static_cast<float>(n_ - 1), 0.0f}));
  EXPECT_EQ(lo, (std::vector<float>{0.0f, -static_cast<float>(n_ - 1)}));
}

TEST_F(MpiCommunicatorTest, DoubleSumAndAverage) {
  std::vector<double> x = {0.5 * r_, 1.0};
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(x), ReduceOp::kSum).ok());
  EXPECT_EQ(x[0], 0.25 * n_ * (n_ - 1));
  EXPECT_EQ(x[1], static_cast<double>(n_));
  double loss = 2.0 + r_;  // mean over ranks: 2 + (n−1)/2
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(&loss, 1), ReduceOp::kAverage).ok());
  EXPECT_DOUBLE_EQ(loss, 2.0 + (n_ - 1) / 2.0);
}

TEST_F(MpiCommunicatorTest, Int64SumMaxMin) {
  const int64_t big = int64_t{1} << 40;  // beyond int32, to catch a wrong MPI type
  std::vector<int64_t> sum = {big + r_};
  std::vector<int64_t> max = {big * (r_ + 1)};
  std::vector<int64_t> min = {-big * (r_ + 1)};
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(sum), ReduceOp::kSum).ok());
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(max), ReduceOp::kMax).ok());
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(min), ReduceOp::kMin).ok());
  EXPECT_EQ(sum[0], big * n_ + int64_t{n_} * (n_ - 1) / 2);
  EXPECT_EQ(max[0], big * n_);
  EXPECT_EQ(min[0], -big * n_);
}

TEST_F(MpiCommunicatorTest, Int64AverageIsRejectedOnEveryRank) {
  int64_t x = 1;
  EXPECT_EQ(comm_->AllReduce(absl::MakeSpan(&x, 1), ReduceOp::kAverage).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(MpiCommunicatorTest, ManyNonBlockingBucketsAverageTheirRanges) {
  // Uneven buckets over one buffer, all in flight at once, completed in
  // reverse order with some polling first.
  const int64_t total = 100'003;
  std::vector<float> g(total);
  for (int64_t i = 0; i < total; ++i) g[i] = static_cast<float>(r_ * 4 + (i % 1024));
  std::vector<CommRequest> requests;
  int64_t begin = 0;
  for (int b = 0; begin < total; ++b) {
    const int64_t end = std::min<int64_t>(total, begin + 997 + 113 * b);
    absl::StatusOr<CommRequest> rq =
        comm_->StartAllReduce(absl::MakeSpan(g).subspan(begin, end - begin), ReduceOp::kAverage);
    ASSERT_TRUE(rq.ok()) << rq.status();
    requests.push_back(std::move(*rq));
    begin = end;
  }
  EXPECT_GT(requests.size(), 30u);
  for (CommRequest& rq : requests) ASSERT_TRUE(rq.Test().ok());
  for (auto it = requests.rbegin(); it != requests.rend(); ++it) ASSERT_TRUE(it->Wait().ok());
  for (const CommRequest& rq : requests) EXPECT_FALSE(rq.pending());
  // Mean of r·4 + k over r: k + 2(n−1); exact for n = 2 (sum exact, ×½ exact).
  for (int64_t i = 0; i < total; ++i)
    ASSERT_FLOAT_EQ(g[i], static_cast<float>(i % 1024) + 2.0f * (n_ - 1)) << i;
}

TEST_F(MpiCommunicatorTest, ReduceScatterLeavesEachRankItsAveragedShard) {
  for (int64_t total : {83, 10'007}) {  // 83: shards of 48 and 35 on two ranks
    std::vector<float> g(total);
    for (int64_t i = 0; i < total; ++i) g[i] = static_cast<float>(1000 * r_ + i);
    ASSERT_TRUE(comm_->ReduceScatter(absl::MakeSpan(g), ReduceOp::kAverage).ok());
    const ElementRange shard = ShardRange(total, r_, n_);
    // Mean over r of 1000r + i = i + 500(n−1).
    for (int64_t i = shard.begin; i < shard.end; ++i)
      ASSERT_FLOAT_EQ(g[i], static_cast<float>(i) + 500.0f * (n_ - 1)) << "total " << total << " i " << i;
  }
}

TEST_F(MpiCommunicatorTest, AllGatherAssemblesEveryRanksShard) {
  const int64_t total = 83;
  std::vector<float> p(total, std::numeric_limits<float>::quiet_NaN());
  const ElementRange mine = ShardRange(total, r_, n_);
  for (int64_t i = mine.begin; i < mine.end; ++i) p[i] = static_cast<float>(10 * i + r_);
  ASSERT_TRUE(comm_->AllGather(absl::MakeSpan(p)).ok());
  for (int owner = 0; owner < n_; ++owner) {
    const ElementRange s = ShardRange(total, owner, n_);
    for (int64_t i = s.begin; i < s.end; ++i)
      ASSERT_EQ(p[i], static_cast<float>(10 * i + owner)) << i;
  }
}

TEST_F(MpiCommunicatorTest, ReduceScatterThenAllGatherEqualsAllReduceBitwise) {
  const int64_t total = 4099;
  std::vector<float> a(total), b;
  for (int64_t i = 0; i < total; ++i) a[i] = std::sin(0.01f * i * (r_ + 1)) / (1.0f + r_);
  b = a;
  ASSERT_TRUE(comm_->AllReduce(absl::MakeSpan(a), ReduceOp::kAverage).ok());
  ASSERT_TRUE(comm_->ReduceScatter(absl::MakeSpan(b), ReduceOp::kAverage).ok());
  ASSERT_TRUE(comm_->AllGather(absl::MakeSpan(b)).ok());
  // With two ranks every element is one rounded addition (commutative) and an
  // exact ×½, whichever algorithm MPI picks.
  if (n_ == 2) {
    EXPECT_EQ(std::memcmp(a.data(), b.data(), total * sizeof(float)), 0);
  } else {
    for (int64_t i = 0; i < total; ++i) ASSERT_NEAR(a[i], b[i], 1e-6f) << i;
  }
}

TEST_F(MpiCommunicatorTest, BroadcastCopiesTheRootsBytes) {
  const int root = n_ - 1;
  std::vector<uint8_t> bytes(1000);
  for (int i = 0; i < 1000; ++i) bytes[i] = static_cast<uint8_t>(r_ == root ? i * 7 : 0);
  ASSERT_TRUE(comm_->Broadcast(absl::MakeSpan(bytes), root).ok());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(bytes[i], static_cast<uint8_t>(i * 7)) << i;
}

TEST_F(MpiCommunicatorTest, BroadcastRejectsARootOutsideTheJob) {
  std::vector<uint8_t> bytes(4);
  EXPECT_EQ(comm_->Broadcast(absl::MakeSpan(bytes), n_).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(MpiCommunicatorTest, ErrorOnOneRankReachesEveryRank) {
  // Only the last rank fails; every rank must learn it with the same message.
  const absl::Status local =
      r_ == n_ - 1 ? absl::DataLossError("shard 3 checksum mismatch") : absl::OkStatus();
  const absl::Status agreed = AgreeOnStatus(*comm_, local);
  EXPECT_EQ(agreed.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(agreed.message(), absl::StrCat("rank ", n_ - 1, ": shard 3 checksum mismatch"));
}

TEST_F(MpiCommunicatorTest, LowestFailingRankWinsWhenSeveralFail) {
  const absl::Status local = absl::InternalError(absl::StrCat("failure on ", r_));
  const absl::Status agreed = AgreeOnStatus(*comm_, local);
  EXPECT_EQ(agreed.message(), "rank 0: failure on 0");
}

TEST_F(MpiCommunicatorTest, AgreeOnStatusIsOkWhenEveryRankIsOk) {
  EXPECT_TRUE(AgreeOnStatus(*comm_, absl::OkStatus()).ok());
}

TEST_F(MpiCommunicatorTest, NodeLocalRankOnOneMachineIsTheRank) {
  // mpirun -np N on one machine: every rank shares the node.
  EXPECT_EQ(comm_->local_size(), n_);
  EXPECT_EQ(comm_->local_rank(), r_);
}

TEST_F(MpiCommunicatorTest, BarrierCompletes) { EXPECT_TRUE(comm_->Barrier().ok()); }

TEST(CreateCommunicator, UnderMpiSpansTheWholeJob) {
  absl::StatusOr<std::unique_ptr<Communicator>> comm = CreateCommunicator();
  ASSERT_TRUE(comm.ok()) << comm.status();
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  EXPECT_EQ((*comm)->size(), world);
  EXPECT_TRUE(LaunchedUnderMpi());
}

}  // namespace
}  // namespace mla
