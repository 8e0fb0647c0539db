// The float → bfloat16 rounding shared by the CUDA cast kernels and the CPU
// references (layers/math/bf16_math.h): closed-form cases for each rule of
// IEEE round-to-nearest-even, and an exhaustive/random comparison with an
// independent reference that picks the nearer neighbour in double. Host code,
// run on every machine.
#include "layers/math/bf16_math.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace mla::math {
namespace {

float F(uint32_t bits) { return FloatFromBits(bits); }

TEST(Bf16MathTest, ExactValuesKeepTheirBits) {
  EXPECT_EQ(FloatToBf16Bits(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16Bits(-2.0f), 0xc000);
  EXPECT_EQ(FloatToBf16Bits(0.0f), 0x0000);
  EXPECT_EQ(FloatToBf16Bits(-0.0f), 0x8000);
  // Every non-NaN bfloat16 converts to a float that converts back to itself.
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const bool nan = (b & 0x7fff) > 0x7f80;
    if (nan) continue;
    ASSERT_EQ(FloatToBf16Bits(Bf16BitsToFloat(static_cast<uint16_t>(b))), b) << std::hex << b;
  }
}

TEST(Bf16MathTest, HalfwayCasesRoundToEven) {
  // Neighbours of 1 are 1 and 1 + 2⁻⁷; the midpoint 1 + 2⁻⁸ goes to 1 (even).
  EXPECT_EQ(FloatToBf16Bits(1.0f + 0x1p-8f), 0x3f80);
  // Midpoint of 1 + 2⁻⁷ (odd last bit) and 1 + 2⁻⁶ goes up to the even one.
  EXPECT_EQ(FloatToBf16Bits(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(FloatToBf16Bits(-(1.0f + 3 * 0x1p-8f)), 0xbf82);
  // One float ulp either side of the midpoint decides by distance.
  EXPECT_EQ(FloatToBf16Bits(1.0f + 0x1p-8f + 0x1p-23f), 0x3f81);
  EXPECT_EQ(FloatToBf16Bits(1.0f + 0x1p-8f - 0x1p-23f), 0x3f80);
}

TEST(Bf16MathTest, LargestFiniteAndOverflow) {
  const float max_bf16 = 0x1.fep127f;  // (2 − 2⁻⁷)·2¹²⁷, bits 0x7F7F
  EXPECT_EQ(FloatToBf16Bits(max_bf16), 0x7f7f);
  // Just below the midpoint to the next (unrepresentable) step stays finite…
  EXPECT_EQ(FloatToBf16Bits(F(0x7f7f7fff)), 0x7f7f);
  // …the midpoint itself ties to even, which is infinity (0x7F80)…
  EXPECT_EQ(FloatToBf16Bits(F(0x7f7f8000)), 0x7f80);
  // …and the largest float is past it.
  EXPECT_EQ(FloatToBf16Bits(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(FloatToBf16Bits(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(FloatToBf16Bits(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(FloatToBf16Bits(-std::numeric_limits<float>::infinity()), 0xff80);
}

TEST(Bf16MathTest, NanStaysNanWithItsSign) {
  EXPECT_TRUE(std::isnan(RoundToBf16(std::numeric_limits<float>::quiet_NaN())));
  // A NaN whose payload lies only in the dropped low bits would truncate to
  // infinity; it must come out as a quiet NaN instead.
  EXPECT_EQ(FloatToBf16Bits(F(0x7f800001)), 0x7fc0);
  EXPECT_EQ(FloatToBf16Bits(F(0xff800001)), 0xffc0);
  // A NaN with high payload bits keeps them.
  EXPECT_EQ(FloatToBf16Bits(F(0x7fa12345)), 0x7fe1);
  EXPECT_TRUE(std::isnan(Bf16BitsToFloat(0x7fc0)));
}

TEST(Bf16MathTest, SubnormalsRoundWithoutFlushing) {
  // Smallest bfloat16 subnormal 2⁻¹³³ (bits 0x0001) is exact.
  EXPECT_EQ(FloatToBf16Bits(0x1p-133f), 0x0001);
  EXPECT_EQ(Bf16BitsToFloat(0x0001), 0x1p-133f);
  // Half of it ties to even: zero. Three halves tie to 2·2⁻¹³³.
  EXPECT_EQ(FloatToBf16Bits(0x1p-134f), 0x0000);
  EXPECT_EQ(FloatToBf16Bits(3 * 0x1p-134f), 0x0002);
  // Just above half rounds up to the smallest subnormal.
  EXPECT_EQ(FloatToBf16Bits(F(0x00008001)), 0x0001);
  // The smallest float subnormal is far below half: zero, keeping the sign.
  EXPECT_EQ(FloatToBf16Bits(F(0x00000001)), 0x0000);
  EXPECT_EQ(FloatToBf16Bits(F(0x80000001)), 0x8000);
  // The largest float subnormal rounds up into the normals (2⁻¹²⁶).
  EXPECT_EQ(FloatToBf16Bits(F(0x007fffff)), 0x0080);
}

// Independent reference: the two bfloat16 neighbours of x (truncation and the
// next step away from zero), compared by distance in double, ties to the even
// one. Valid for finite x whose upper neighbour is finite or infinity.
uint16_t NearestByDistance(float x) {
  const uint32_t bits = FloatBits(x);
  const uint16_t lo = static_cast<uint16_t>(bits >> 16);
  const uint16_t hi = static_cast<uint16_t>(lo + 1);
  const double dx = x;
  const double dlo = std::fabs(dx - Bf16BitsToFloat(lo));
  // The step above the largest finite value is infinity; its distance is the
  // one to 2¹²⁸ (where it would be with an unbounded exponent).
  const double vhi = (hi & 0x7fff) == 0x7f80 ? std::copysign(std::ldexp(1.0, 128), dx)
                                              : static_cast<double>(Bf16BitsToFloat(hi));
  const double dhi = std::fabs(dx - vhi);
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1) == 0 ? lo : hi;
}

TEST(Bf16MathTest, MatchesNearestNeighbourOnRandomBitPatterns) {
  std::mt19937 rng(7);
  int checked = 0;
  for (int i = 0; i < 1 << 20; ++i) {
    const uint32_t bits = rng();
    const float x = F(bits);
    if (!std::isfinite(x)) continue;
    ASSERT_EQ(FloatToBf16Bits(x), NearestByDistance(x)) << std::hex << bits;
    ++checked;
  }
  EXPECT_GT(checked, 1 << 19);
}

TEST(Bf16MathTest, RelativeErrorIsAtMostUnitRoundoff) {
  // |bf16(x) − x| ≤ 2⁻⁸·|x| for normal x: the bound the GEMM tolerances use.
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> d(-1e3f, 1e3f);
  for (int i = 0; i < 100000; ++i) {
    const float x = d(rng);
    ASSERT_LE(std::fabs(static_cast<double>(RoundToBf16(x)) - x), 0x1p-8 * std::fabs(x)) << x;
  }
}

}  // namespace
}  // namespace mla::math
