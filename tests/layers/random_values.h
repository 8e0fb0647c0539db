#pragma once
// Uniform random test inputs from a seed, for the kernel tests.
#include <cstdint>
#include <random>
#include <vector>

namespace mla::testing {

// n values uniform in [lo, hi) from std::mt19937(seed): the same on every
// machine and every run.
inline std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace mla::testing
