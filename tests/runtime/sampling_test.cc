// Sampler semantics: greedy, top-k, top-p and temperature against closed-form
// probabilities. Frequency checks use 20000 draws; a count n·p is allowed
// 5 standard deviations sqrt(n·p·(1−p)), so a correct sampler fails with
// probability below 1e-6 per check.
#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/sampling.h"

namespace mla {
namespace {

constexpr int kDraws = 20000;

std::vector<int> Counts(const std::vector<float>& logits, const SamplingParams& p) {
  Sampler s(static_cast<int>(logits.size()));
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) counts[s.Sample(logits.data(), p, i)]++;
  return counts;
}

void ExpectFrequency(int count, double prob) {
  const double mean = kDraws * prob, sd = std::sqrt(kDraws * prob * (1 - prob));
  EXPECT_NEAR(count, mean, 5 * sd + 1e-9) << "probability " << prob;
}

TEST(SamplingTest, GreedyTakesTheLargestLogitAndTheLowestIdOnTies) {
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f};
  Sampler s(4);
  EXPECT_EQ(s.Sample(logits.data(), SamplingParams{}, 0), 1);
  EXPECT_EQ(ArgMax(logits.data(), 4), 1);
}

TEST(SamplingTest, TemperatureOneFollowsTheSoftmax) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const auto c = Counts(logits, {1.0f, 0, 1.0f, 3});
  ExpectFrequency(c[0], 0.5);
  ExpectFrequency(c[1], 0.3);
  ExpectFrequency(c[2], 0.2);
}

TEST(SamplingTest, TemperatureTwoFlattensAsTheSquareRoot) {
  // p ∝ exp(log q / 2) = sqrt(q) for q = (0.64, 0.36): weights 0.8, 0.6.
  const std::vector<float> logits = {std::log(0.64f), std::log(0.36f)};
  const auto c = Counts(logits, {2.0f, 0, 1.0f, 4});
  ExpectFrequency(c[0], 0.8 / 1.4);
}

TEST(SamplingTest, TopKNeverDrawsOutsideTheKLargest) {
  const std::vector<float> logits = {1.0f, 0.0f, 2.0f, 1.5f, 0.5f};
  const auto c = Counts(logits, {1.0f, 2, 1.0f, 5});
  EXPECT_EQ(c[0] + c[1] + c[4], 0);
  const double w2 = std::exp(2.0), w3 = std::exp(1.5);
  ExpectFrequency(c[2], w2 / (w2 + w3));
}

TEST(SamplingTest, TopPKeepsTheSmallestPrefixReachingTheMass) {
  // Probabilities 0.5, 0.3, 0.2: top_p = 0.6 keeps {0, 1}, renormalised 5/8, 3/8.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const auto c = Counts(logits, {1.0f, 0, 0.6f, 6});
  EXPECT_EQ(c[2], 0);
  ExpectFrequency(c[0], 5.0 / 8.0);
}

TEST(SamplingTest, SameSeedAndDrawIndexGiveTheSameToken) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 1.7f);
  Sampler a(50), b(50);
  for (int d = 0; d < 100; ++d)
    EXPECT_EQ(a.Sample(logits.data(), {0.8f, 10, 0.9f, 77}, d),
              b.Sample(logits.data(), {0.8f, 10, 0.9f, 77}, d));
}

TEST(SamplingTest, InvalidParametersAreRejected) {
  EXPECT_FALSE(ValidateSamplingParams({-1.0f, 0, 1.0f, 0}).ok());
  EXPECT_FALSE(ValidateSamplingParams({1.0f, -2, 1.0f, 0}).ok());
  EXPECT_FALSE(ValidateSamplingParams({1.0f, 0, 0.0f, 0}).ok());
  EXPECT_FALSE(ValidateSamplingParams({1.0f, 0, 1.5f, 0}).ok());
  EXPECT_TRUE(ValidateSamplingParams({0.7f, 40, 0.95f, 0}).ok());
}

}  // namespace
}  // namespace mla
