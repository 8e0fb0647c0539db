#pragma once
// Counter-based random numbers: a value is a pure function of (seed, stream,
// index), so initialisation and sampling are reproducible whatever the thread
// count or world size. SplitMix64 finaliser as the mixing function.
#include <cmath>
#include <cstdint>

namespace mla {

inline uint64_t MixBits(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in (0, 1), never 0 (safe for log).
inline double UniformAt(uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t bits = MixBits(seed ^ MixBits(stream ^ MixBits(index)));
  return (static_cast<double>(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Standard normal via Box–Muller on two uniforms of the same index.
inline double NormalAt(uint64_t seed, uint64_t stream, uint64_t index) {
  const double u1 = UniformAt(seed, stream, 2 * index);
  const double u2 = UniformAt(seed, stream, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace mla
