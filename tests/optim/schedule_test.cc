// The learning-rate schedule at its closed-form points.
#include "optim/schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace mla {
namespace {

// peak 6e-4, min 6e-5, 100 warmup updates, cosine ends at update 1100.
const LrSchedule kSchedule{6e-4, 6e-5, 100, 1100};

TEST(LrSchedule, WarmupStartsAtPeakOverWarmup) {
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 0), 6e-6f);
}

TEST(LrSchedule, WarmupIsLinear) {
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 49), 3e-4f);
}

TEST(LrSchedule, ReachesPeakAtTheEndOfWarmup) {
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 99), 6e-4f);
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 100), 6e-4f);  // cosine at progress 0
}

TEST(LrSchedule, CosineMidpointIsHalfwayBetweenPeakAndMin) {
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 600), 3.3e-4f);
}

TEST(LrSchedule, CosineQuarterPoint) {
  // progress ¼: min + ½(1 + cos(π/4))(peak − min).
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 350), 6e-5 + 0.5 * (1 + std::sqrt(0.5)) * 5.4e-4);
}

TEST(LrSchedule, EndsAtMinAndStaysThere) {
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 1100), 6e-5f);
  EXPECT_FLOAT_EQ(LearningRate(kSchedule, 5000), 6e-5f);
}

TEST(LrSchedule, NoWarmupStartsAtPeak) {
  EXPECT_FLOAT_EQ(LearningRate(LrSchedule{1e-3, 0.0, 0, 10}, 0), 1e-3f);
  EXPECT_FLOAT_EQ(LearningRate(LrSchedule{1e-3, 0.0, 0, 10}, 10), 0.0f);
}

TEST(LrSchedule, ValidationRejectsInconsistentSchedules) {
  EXPECT_TRUE(ValidateLrSchedule(kSchedule).ok());
  EXPECT_FALSE(ValidateLrSchedule(LrSchedule{1e-4, 1e-3, 10, 100}).ok());  // min > peak
  EXPECT_FALSE(ValidateLrSchedule(LrSchedule{1e-3, 0.0, 200, 100}).ok());  // warmup > total
  EXPECT_FALSE(ValidateLrSchedule(LrSchedule{1e-3, -1.0, 0, 100}).ok());   // negative min
}

}  // namespace
}  // namespace mla
