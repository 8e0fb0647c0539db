// mla-eval's text metrics on hand-computed cases (its JSON reader is
// base/json.h, tested in tests/base/json_test.cc).
#include "gtest/gtest.h"
#include "launch/mla_eval_metrics.h"

namespace mla {
namespace {

TEST(TextMetricsTest, DistinctRepetitionAndLengthsByHand) {
  // Words: "the cat saw the cat saw the cat" (8 words): distinct-1 3/8,
  // bigrams 7 with 3 distinct; 4-grams 5, of which "the cat saw the" and
  // "cat saw the cat" repeat once each → 2/5. Second: "A dog." → 2 words.
  const auto m = ComputeTextMetrics(
      {{"The cat saw the cat, saw the cat!", 10, true}, {"A dog.", 3, false}});
  EXPECT_EQ(m.generations, 2);
  EXPECT_DOUBLE_EQ(m.distinct_1, 5.0 / 10.0);
  EXPECT_DOUBLE_EQ(m.distinct_2, 4.0 / 8.0);
  EXPECT_DOUBLE_EQ(m.repetition_rate, 2.0 / 5.0);
  EXPECT_DOUBLE_EQ(m.mean_words, 5.0);
  EXPECT_DOUBLE_EQ(m.mean_tokens, 6.5);
  EXPECT_DOUBLE_EQ(m.eos_share, 0.5);
}

}  // namespace
}  // namespace mla
