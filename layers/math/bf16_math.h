#pragma once
// bfloat16 ⇄ float conversion shared by the CUDA cast kernels and the CPU
// references of the tests, so both sides round identically.
//
// bfloat16 is the upper half of an IEEE binary32: sign, the same 8 exponent
// bits, 7 fraction bits (8 significant bits; unit roundoff 2⁻⁸, spacing at 1
// of 2⁻⁷). FloatToBf16Bits rounds to nearest, ties to even, as IEEE 754
// and __float2bfloat16_rn do: finite values beyond the largest bfloat16
// (0x7F7F, 3.3895e38) round to ±infinity when at or past the halfway point,
// subnormals round like any other value (no flush to zero), ±inf stay ±inf,
// and a NaN stays a NaN of the same sign (quiet bit set, so truncating the
// fraction cannot turn it into infinity). Bf16BitsToFloat is exact.
// Pure functions; bit patterns travel as uint16_t so host code needs no CUDA
// header.
#include <cstdint>
#include <cstring>

#include "base/host_device.h"

namespace mla::math {

MLA_HOST_DEVICE inline uint32_t FloatBits(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
#endif
}

MLA_HOST_DEVICE inline float FloatFromBits(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
#endif
}

MLA_HOST_DEVICE inline uint16_t FloatToBf16Bits(float x) {
  const uint32_t bits = FloatBits(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN: keep sign, set quiet bit
  }
  // Adding 0x7FFF rounds the dropped 16 bits half-down; the kept part's lowest
  // bit (0 or 1) turns the exact half into round-half-to-even. A carry out of
  // the fraction bumps the exponent, which is the correct rounding (up to
  // 0x7F80 = infinity past the largest finite value).
  const uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + lsb) >> 16);
}

MLA_HOST_DEVICE inline float Bf16BitsToFloat(uint16_t bits) {
  return FloatFromBits(static_cast<uint32_t>(bits) << 16);
}

// x rounded to the nearest bfloat16, as a float.
MLA_HOST_DEVICE inline float RoundToBf16(float x) { return Bf16BitsToFloat(FloatToBf16Bits(x)); }

}  // namespace mla::math
