// ShardRange: the shard boundaries every rank, ZeRO-1 and the checkpoint
// agree on. Checked against its specification: contiguous, in rank order,
// covering the buffer, aligned, near-equal; plus worked examples.
#include <algorithm>
#include <tuple>

#include "comm/communicator.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(ShardRange, WorkedExamples) {
  // 83 floats = 6 blocks of 16 (the last holds 3): 3 blocks each.
  EXPECT_EQ(ShardRange(83, 0, 2), (ElementRange{0, 48}));
  EXPECT_EQ(ShardRange(83, 1, 2), (ElementRange{48, 83}));
  // 7 blocks over 3 ranks: 3, 2, 2.
  EXPECT_EQ(ShardRange(112, 0, 3), (ElementRange{0, 48}));
  EXPECT_EQ(ShardRange(112, 1, 3), (ElementRange{48, 80}));
  EXPECT_EQ(ShardRange(112, 2, 3), (ElementRange{80, 112}));
  // Fewer blocks than ranks: trailing shards are empty.
  EXPECT_EQ(ShardRange(20, 2, 4), (ElementRange{20, 20}));
  EXPECT_EQ(ShardRange(0, 0, 1), (ElementRange{0, 0}));
}

class ShardRangeProperties : public ::testing::TestWithParam<std::tuple<int64_t, int>> {};

TEST_P(ShardRangeProperties, ContiguousAlignedNearEqualCover) {
  const auto [total, size] = GetParam();
  int64_t expected_begin = 0;
  int64_t min_blocks = total, max_blocks = 0;
  for (int r = 0; r < size; ++r) {
    const ElementRange s = ShardRange(total, r, size);
    EXPECT_EQ(s.begin, expected_begin) << "rank " << r;
    EXPECT_GE(s.size(), 0);
    // Whole blocks, except the shard that ends the buffer.
    if (s.end != total) {
      EXPECT_EQ(s.size() % kShardAlignment, 0) << "rank " << r;
    }
    const int64_t blocks = (s.size() + kShardAlignment - 1) / kShardAlignment;
    min_blocks = std::min(min_blocks, blocks);
    max_blocks = std::max(max_blocks, blocks);
    expected_begin = s.end;
  }
  EXPECT_EQ(expected_begin, total);
  EXPECT_LE(max_blocks - min_blocks, 1) << "shards are not near-equal";
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, ShardRangeProperties,
    ::testing::Combine(::testing::Values<int64_t>(0, 1, 15, 16, 17, 83, 1000, 30'000'017),
                       ::testing::Values(1, 2, 3, 7, 8, 64)));

}  // namespace
}  // namespace mla
