// --precision parsing (layers/precision.h): host code, run on every machine.
#include "layers/precision.h"

#include <string>

#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(PrecisionTest, ParsesBothNamesAndRoundTrips) {
  for (Precision p : {Precision::kFp32, Precision::kBf16}) {
    absl::StatusOr<Precision> parsed = ParsePrecision(PrecisionName(p));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, p);
  }
}

TEST(PrecisionTest, RejectsOtherNamesWithTheValueAndTheChoices) {
  for (const char* bad : {"fp16", "BF16", "", "bfloat16"}) {
    absl::StatusOr<Precision> parsed = ParsePrecision(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(std::string("precision=") + bad + ":"),
              std::string::npos)
        << parsed.status();
    EXPECT_NE(parsed.status().message().find("fp32 or bf16"), std::string::npos);
  }
}

}  // namespace
}  // namespace mla
