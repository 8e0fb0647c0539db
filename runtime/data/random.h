#pragma once
// Portable deterministic randomness for the data pipeline. The standard
// library's engines are portable but its distributions and std::shuffle are
// not (each library implements them differently), and the corpus, the split
// and the batch order must be the same on every machine, so the few
// primitives needed are defined here exactly.
//
// Thread safety: a SplitMix64 is a plain value; use one per thread.
#include <cstdint>
#include <span>
#include <utility>

namespace mla {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit state, full period, good
// enough statistical quality for shuffling and template choices.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0, without modulo bias (Lemire's multiply-shift
  // with rejection).
  uint64_t Below(uint64_t n) {
    while (true) {
      unsigned __int128 m = static_cast<unsigned __int128>(Next()) * n;
      uint64_t low = static_cast<uint64_t>(m);
      if (low >= n || low >= (-n) % n) return static_cast<uint64_t>(m >> 64);
    }
  }
  // True with probability num/den.
  bool Chance(uint64_t num, uint64_t den) { return Below(den) < num; }

 private:
  uint64_t state_;
};

// Mixes several integers into one seed (so (seed, epoch) streams are unrelated).
inline uint64_t MixSeed(uint64_t a, uint64_t b) {
  SplitMix64 r(a ^ (b * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull));
  r.Next();
  return r.Next();
}

// Fisher-Yates shuffle with SplitMix64; identical on every platform.
template <typename T>
void Shuffle(std::span<T> items, SplitMix64& rng) {
  for (size_t i = items.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(rng.Below(i));
    std::swap(items[i - 1], items[j]);
  }
}

}  // namespace mla
