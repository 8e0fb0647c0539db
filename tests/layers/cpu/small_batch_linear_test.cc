// SmallBatchLinear (the decoding GEMV) on every SIMD path this CPU has,
// against a double-precision reference. A sum of K fp32 products computed in
// any order is within K·u·Σ|w||x| of the exact value (first order, u the unit
// roundoff); the bound below adds a few ulps for the bias, the accumulated
// value and the GELU.
#include "layers/cpu/small_batch_linear.h"

#include <omp.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "layers/math/activation_math.h"

namespace mla {
namespace {

constexpr double kU = 1.0 / (1 << 24);

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

struct Case {
  int64_t M, N, K;
  Epilogue epilogue;
  bool accumulate;
};

void Check(const Case& c, SimdIsa isa, uint32_t seed) {
  const std::vector<float> x = Random(c.M * c.K, seed);
  const std::vector<float> w = Random(c.N * c.K, seed + 1);
  const std::vector<float> bias = Random(c.N, seed + 2);
  const std::vector<float> y0 = Random(c.M * c.N, seed + 3);
  std::vector<float> y = y0;
  SmallBatchLinear(x.data(), w.data(), c.epilogue == Epilogue::kNone ? nullptr : bias.data(),
                   y.data(), c.M, c.N, c.K, c.epilogue, c.accumulate, isa);
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t n = 0; n < c.N; ++n) {
      double dot = 0.0, mag = 0.0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double p = static_cast<double>(w[n * c.K + k]) * x[m * c.K + k];
        dot += p;
        mag += std::fabs(p);
      }
      double v = dot;
      if (c.epilogue != Epilogue::kNone) {
        v += bias[n];
        mag += std::fabs(bias[n]);
      }
      if (c.accumulate) {
        v += y0[m * c.N + n];
        mag += std::fabs(y0[m * c.N + n]);
      }
      double tol = (c.K + 2) * kU * mag;
      if (c.epilogue == Epilogue::kBiasGelu) {
        // GELU's slope is below 1.13 in magnitude; its own evaluation in fp32
        // adds a few ulps of its result and of its argument.
        tol = 1.13 * tol + 8 * kU * (std::fabs(v) + 1.0);
        v = 0.5 * v * (1.0 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
      }
      ASSERT_NEAR(y[m * c.N + n], v, tol)
          << SimdIsaName(isa) << " M=" << c.M << " N=" << c.N << " K=" << c.K << " at (" << m
          << ", " << n << ")";
    }
  }
}

// One instance per SIMD path; a path this CPU lacks is reported as skipped.
class SmallBatchLinearIsaTest : public ::testing::TestWithParam<SimdIsa> {
 protected:
  void SetUp() override {
    if (!SimdIsaAvailable(GetParam()))
      GTEST_SKIP() << SimdIsaName(GetParam()) << " is not available on this CPU";
  }
};

TEST_P(SmallBatchLinearIsaTest, MatchesTheDoubleReferenceWithTails) {
  // Odd K exercises the 8- and 16-wide tails and K < one vector; odd N the
  // row-block tails.
  uint32_t seed = 1;
  for (int64_t M = 1; M <= kSmallBatchMaxRows; ++M)
    for (int64_t K : {1, 7, 15, 16, 17, 33, 288})
      for (int64_t N : {1, 3, 5, 18}) Check({M, N, K, Epilogue::kNone, false}, GetParam(), seed++);
}

TEST_P(SmallBatchLinearIsaTest, BiasGeluAndAccumulateEpilogues) {
  uint32_t seed = 100;
  for (int64_t M : {1, 3}) {
    Check({M, 37, 29, Epilogue::kBias, false}, GetParam(), seed++);
    Check({M, 37, 29, Epilogue::kBias, true}, GetParam(), seed++);
    Check({M, 37, 29, Epilogue::kNone, true}, GetParam(), seed++);
    Check({M, 37, 29, Epilogue::kBiasGelu, false}, GetParam(), seed++);
  }
}

// Large enough to be split across threads (≥ kSmallBatchThreadMinBytes), with
// N not a multiple of the 16-row split.
TEST_P(SmallBatchLinearIsaTest, ThreadedSplitCoversEveryRow) {
  const int64_t N = 1000, K = 97;
  ASSERT_GE(N * K * 4, kSmallBatchThreadMinBytes);
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Check({1, N, K, Epilogue::kBias, false}, GetParam(), 200 + threads);
    Check({kSmallBatchMaxRows, N, K, Epilogue::kNone, true}, GetParam(), 300 + threads);
  }
  omp_set_num_threads(saved);
}

// More rows than kSmallBatchMaxRows: groups of rows over several weight
// panels (K large enough that a panel holds fewer than N rows), with a row
// group left over (M not a multiple of the group), threaded and not.
TEST_P(SmallBatchLinearIsaTest, ManyRowsInGroupsOverPanels) {
  const int64_t K = 2051, N = 150;
  const int64_t panel_rows = kSmallBatchPanelBytes / (K * 4);
  ASSERT_LT(panel_rows, N / 2) << "the case should span several panels";
  const int saved = omp_get_max_threads();
  uint32_t seed = 400;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (int64_t M : {int64_t{5}, int64_t{9}, int64_t{32}})
      Check({M, N, K, Epilogue::kBias, false}, GetParam(), seed++);
    Check({11, N, K, Epilogue::kNone, true}, GetParam(), seed++);
    Check({6, 40, 33, Epilogue::kBiasGelu, false}, GetParam(), seed++);
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Isas, SmallBatchLinearIsaTest,
                         ::testing::Values(SimdIsa::kScalar, SimdIsa::kAvx2, SimdIsa::kAvx512),
                         [](const ::testing::TestParamInfo<SimdIsa>& info) {
                           return std::string(SimdIsaName(info.param));
                         });

TEST(SmallBatchLinearTest, BestIsaIsAvailableAndScalarAlwaysIs) {
  EXPECT_TRUE(SimdIsaAvailable(SimdIsa::kScalar));
  EXPECT_TRUE(SimdIsaAvailable(BestSimdIsa()));
}

}  // namespace
}  // namespace mla
