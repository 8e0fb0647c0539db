// Unigram entropy of a token stream, checked against closed forms.
#include "runtime/data/corpus_stats.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(UnigramStats, UniformOverFourTokensIsTwoBits) {
  std::vector<uint16_t> t = {0, 1, 2, 3, 3, 2, 1, 0};
  UnigramStats s = ComputeUnigramStats(t, 10);
  EXPECT_NEAR(s.entropy_bits, 2.0, 1e-12);
  EXPECT_NEAR(s.entropy_nats, std::log(4.0), 1e-12);
  EXPECT_EQ(s.distinct, 4u);
  EXPECT_EQ(s.tokens, 8u);
}

TEST(UnigramStats, HalfQuarterQuarterIsOneAndAHalfBits) {
  std::vector<uint16_t> t = {5, 5, 6, 7};
  EXPECT_NEAR(ComputeUnigramStats(t, 8).entropy_bits, 1.5, 1e-12);
}

TEST(UnigramStats, SingleRepeatedTokenHasZeroEntropy) {
  std::vector<uint16_t> t(100, 3);
  EXPECT_EQ(ComputeUnigramStats(t, 4).entropy_nats, 0.0);
}

}  // namespace
}  // namespace mla
