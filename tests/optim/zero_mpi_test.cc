// Gradient synchronisation and ZeRO-1 on two ranks (written for any N).
// The reference for each rank is computed locally from every rank's
// deterministic inputs, i.e. what one rank with the whole batch would do.
#include "optim/zero.h"

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "comm/mpi_communicator.h"
#include "gtest/gtest.h"
#include "optim/adamw.h"
#include "optim/clip.h"

namespace mla {
namespace {

constexpr int64_t kTotal = 10'000 + 37;  // not a multiple of 16: unequal shards

// Rank r's gradient at step t (deterministic, so every rank can rebuild all).
std::vector<float> RankGradient(int rank, int step) {
  std::mt19937 rng(1000 * step + rank);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> g(kTotal);
  for (float& x : g) x = normal(rng);
  return g;
}

std::vector<float> InitialParams() {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> p(kTotal);
  for (float& x : p) x = normal(rng);
  return p;
}

// Averaged gradient as the collectives compute it: rank-ordered float sum
// times the rounded 1/N. For N = 2 this is exactly what any MPI algorithm
// produces (one commutative rounded addition, exact ×½).
std::vector<float> AverageGradient(int size, int step) {
  std::vector<float> sum = RankGradient(0, step);
  for (int r = 1; r < size; ++r) {
    const std::vector<float> g = RankGradient(r, step);
    for (int64_t i = 0; i < kTotal; ++i) sum[i] += g[i];
  }
  const float inv = 1.0f / static_cast<float>(size);
  for (float& x : sum) x *= inv;
  return sum;
}

const std::vector<DecaySegment> kSegments = {
    {0, 4000, true}, {4000, 64, false}, {4064, 5000, true}, {9064, kTotal - 9064, false}};
const AdamWConfig kConfig{0.9f, 0.95f, 1e-8f, 0.1f};
const float kLrs[] = {1e-3f, 2e-3f, 5e-4f};

class ZeroTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<MpiCommunicator>> c = MpiCommunicator::Create();
    ASSERT_TRUE(c.ok()) << c.status();
    comm_ = std::move(*c);
  }
  std::unique_ptr<MpiCommunicator> comm_;
};

TEST_F(ZeroTest, Zero1AdamWOnTwoRanksEqualsPlainAdamWOnOneRankBitwise) {
  ASSERT_EQ(comm_->size(), 2) << "bitwise equality is argued for two ranks";
  // Plain: the whole buffer, averaged gradient computed locally.
  std::vector<float> plain = InitialParams();
  absl::StatusOr<AdamW> whole = AdamW::Create(kConfig, {0, kTotal}, kSegments);
  ASSERT_TRUE(whole.ok());
  // ZeRO-1: reduce-scatter, AdamW on the shard, all-gather.
  Zero1Sharding sharding(comm_.get(), kTotal);
  std::vector<float> zero = InitialParams();
  absl::StatusOr<AdamW> shard = AdamW::Create(kConfig, sharding.shard(), kSegments);
  ASSERT_TRUE(shard.ok());
  const int64_t lo = sharding.shard().begin;
  for (int t = 0; t < 3; ++t) {
    const std::vector<float> avg = AverageGradient(2, t);
    whole->Step(plain.data(), avg.data(), kLrs[t]);

    std::vector<float> g = RankGradient(comm_->rank(), t);
    ASSERT_TRUE(sharding.ReduceScatterGradients(absl::MakeSpan(g)).ok());
    shard->Step(zero.data() + lo, g.data() + lo, kLrs[t]);
    ASSERT_TRUE(sharding.AllGatherParameters(absl::MakeSpan(zero)).ok());
  }
  EXPECT_EQ(std::memcmp(plain.data(), zero.data(), kTotal * sizeof(float)), 0);
  // The moments of the shard equal the plain optimizer's on that range.
  EXPECT_EQ(std::memcmp(whole->m().data() + lo, shard->m().data(), shard->m().size() * 4), 0);
  EXPECT_EQ(std::memcmp(whole->v().data() + lo, shard->v().data(), shard->v().size() * 4), 0);
}

// Backward's order: tensors from the end of the buffer to the start.
void MarkBackward(GradientReducer& reducer, const std::vector<DecaySegment>& tensors) {
  for (auto it = tensors.rbegin(); it != tensors.rend(); ++it)
    ASSERT_TRUE(reducer.MarkReady(it->offset, it->offset + it->numel).ok());
}

TEST_F(ZeroTest, BucketedAllReduceAveragesTheWholeBuffer) {
  const int n = comm_->size();
  std::vector<float> g = RankGradient(comm_->rank(), 0);
  // 4 KiB buckets: the 10k-float buffer needs several.
  GradientReducer reducer(comm_.get(), absl::MakeSpan(g), GradientSync::kAllReduce, 4.0 / 1024);
  EXPECT_EQ(reducer.bucket_floats(), 1024);
  MarkBackward(reducer, kSegments);
  ASSERT_TRUE(reducer.Finish().ok());
  EXPECT_GE(reducer.buckets_started(), kTotal / 1024);
  const std::vector<float> expected = AverageGradient(n, 0);
  if (n == 2) {
    EXPECT_EQ(std::memcmp(g.data(), expected.data(), kTotal * 4), 0);
  } else {
    for (int64_t i = 0; i < kTotal; ++i) ASSERT_NEAR(g[i], expected[i], 1e-6f);
  }
}

TEST_F(ZeroTest, ReducerIsReusableAcrossSteps) {
  std::vector<float> g(kTotal);
  GradientReducer reducer(comm_.get(), absl::MakeSpan(g), GradientSync::kAllReduce, 4.0 / 1024);
  for (int step = 0; step < 3; ++step) {
    const std::vector<float> mine = RankGradient(comm_->rank(), step);
    std::copy(mine.begin(), mine.end(), g.begin());
    MarkBackward(reducer, kSegments);
    ASSERT_TRUE(reducer.Finish().ok());
    const std::vector<float> expected = AverageGradient(comm_->size(), step);
    for (int64_t i = 0; i < kTotal; ++i) ASSERT_NEAR(g[i], expected[i], 1e-6f) << step;
  }
}

TEST_F(ZeroTest, ReduceScatterModeAveragesOnlyTheShard) {
  std::vector<float> g = RankGradient(comm_->rank(), 1);
  GradientReducer reducer(comm_.get(), absl::MakeSpan(g), GradientSync::kReduceScatter, 1.0);
  MarkBackward(reducer, kSegments);
  ASSERT_TRUE(reducer.Finish().ok());
  const std::vector<float> expected = AverageGradient(comm_->size(), 1);
  const ElementRange shard = ShardRange(kTotal, comm_->rank(), comm_->size());
  for (int64_t i = shard.begin; i < shard.end; ++i) ASSERT_NEAR(g[i], expected[i], 1e-6f) << i;
}

TEST_F(ZeroTest, FinishReportsARangeThatWasNeverMarked) {
  std::vector<float> g(kTotal, 1.0f);
  GradientReducer reducer(comm_.get(), absl::MakeSpan(g), GradientSync::kAllReduce, 4.0 / 1024);
  ASSERT_TRUE(reducer.MarkReady(100, kTotal).ok());
  const absl::Status s = reducer.Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ZeroTest, ShardedGradNormEqualsTheWholeBufferNorm) {
  // Each rank holds shard values k·0.5 at global index k mod 64: squares and
  // sums are exact in double, so the global norm has a closed form.
  std::vector<float> g(kTotal);
  double expected_sq = 0.0;
  for (int64_t i = 0; i < kTotal; ++i) {
    g[i] = 0.5f * static_cast<float>(i % 64);
    expected_sq += 0.25 * static_cast<double>((i % 64) * (i % 64));
  }
  const ElementRange shard = ShardRange(kTotal, comm_->rank(), comm_->size());
  absl::StatusOr<double> norm =
      GlobalGradNorm(absl::MakeSpan(g).subspan(shard.begin, shard.size()), comm_.get());
  ASSERT_TRUE(norm.ok());
  EXPECT_EQ(*norm, std::sqrt(expected_sq));
}

}  // namespace
}  // namespace mla
