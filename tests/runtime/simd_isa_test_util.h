#pragma once
// For the small-batch linear tests: one test instance per SIMD path,
// a path this CPU lacks reported as skipped.
//   INSTANTIATE_TEST_SUITE_P(Isas, MySuite, kAllSimdIsas, SimdIsaParamName);
#include <string>

#include "gtest/gtest.h"
#include "layers/cpu/small_batch_linear.h"

namespace mla::testing {

class SimdIsaTest : public ::testing::TestWithParam<SimdIsa> {
 protected:
  void SetUp() override {
    if (!SimdIsaAvailable(GetParam()))
      GTEST_SKIP() << SimdIsaName(GetParam()) << " is not available on this CPU";
  }
};

inline const auto kAllSimdIsas =
    ::testing::Values(SimdIsa::kScalar, SimdIsa::kAvx2, SimdIsa::kAvx512);

inline std::string SimdIsaParamName(const ::testing::TestParamInfo<SimdIsa>& info) {
  return SimdIsaName(info.param);
}

}  // namespace mla::testing
