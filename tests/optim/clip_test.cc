// Global-norm clipping on one rank: closed-form norms, scaling, non-finite.
#include "optim/clip.h"

#include <cmath>
#include <limits>
#include <vector>

#include "comm/local_communicator.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(GlobalGradNorm, EqualsClosedFormOverManyBlocks) {
  // n elements of value a: norm a·sqrt(n); 300k spans several summation blocks.
  const int64_t n = 300'000;
  std::vector<float> g(n, 0.5f);
  absl::StatusOr<double> norm = GlobalGradNorm(g, nullptr);
  ASSERT_TRUE(norm.ok());
  // Every square and partial sum is exact in double (multiples of 1/4 < 2^53).
  EXPECT_EQ(*norm, 0.5 * std::sqrt(static_cast<double>(n)));
}

TEST(GlobalGradNorm, ShardCommunicatorOfSizeOneChangesNothing) {
  std::vector<float> g = {3.0f, 4.0f};
  LocalCommunicator comm;
  EXPECT_EQ(*GlobalGradNorm(g, &comm), 5.0);
}

TEST(ClipGradNorm, ScalesToMaxNormWhenAbove) {
  std::vector<float> g = {3.0f, 4.0f, 0.0f, -12.0f};  // norm 13
  absl::StatusOr<ClipResult> r = ClipGradNorm(absl::MakeSpan(g), 1.0, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->norm, 13.0);
  EXPECT_TRUE(r->finite);
  const float scale = static_cast<float>(1.0 / (13.0 + 1e-6));
  EXPECT_EQ(r->scale, scale);
  EXPECT_EQ(g, (std::vector<float>{3.0f * scale, 4.0f * scale, 0.0f, -12.0f * scale}));
  // The clipped norm is max_norm up to the 1e-6 guard and float rounding.
  EXPECT_NEAR(std::sqrt(9.0 * scale * scale + 16.0 * scale * scale + 144.0 * scale * scale), 1.0,
              1e-6);
}

TEST(ClipGradNorm, LeavesGradientsBelowMaxNormUntouched) {
  std::vector<float> g = {0.3f, 0.4f};
  absl::StatusOr<ClipResult> r = ClipGradNorm(absl::MakeSpan(g), 1.0, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scale, 1.0f);
  EXPECT_EQ(g, (std::vector<float>{0.3f, 0.4f}));
}

TEST(ClipGradNorm, NonPositiveMaxNormOnlyMeasures) {
  std::vector<float> g = {30.0f, 40.0f};
  absl::StatusOr<ClipResult> r = ClipGradNorm(absl::MakeSpan(g), 0.0, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->norm, 50.0);
  EXPECT_EQ(g, (std::vector<float>{30.0f, 40.0f}));
}

TEST(ClipGradNorm, NonFiniteNormIsReportedAndNothingIsScaled) {
  for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    std::vector<float> g = {1.0f, bad, 2.0f};
    absl::StatusOr<ClipResult> r = ClipGradNorm(absl::MakeSpan(g), 1.0, nullptr);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->finite);
    EXPECT_EQ(r->scale, 1.0f);
    EXPECT_EQ(g[0], 1.0f);
    EXPECT_EQ(g[2], 2.0f);
  }
}

}  // namespace
}  // namespace mla
