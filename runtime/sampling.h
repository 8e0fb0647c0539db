#pragma once
// Next-token sampling over one row of logits [V]: greedy (temperature 0),
// temperature, top-k and top-p (nucleus), in that order:
//   z = logits / temperature; keep the k largest (k > 0); p = softmax(z) over
//   them; keep the smallest prefix of p sorted descending whose mass reaches
//   top_p; renormalise; draw with u = UniformAt(seed, kSamplingStream, draw).
// The draw is a pure function of (seed, draw index), so a request with the same
// seed gives the same tokens whatever the batch, thread count or order.
// Ties are broken by the lower token id (greedy included).
//
// Thread safety: a Sampler owns scratch; one per thread. Failure: parameters
// are validated by ValidateSamplingParams; Sample CHECKs them.
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace mla {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int top_k = 0;             // 0: no limit
  float top_p = 1.0f;        // in (0, 1]; 1: no nucleus cut
  uint64_t seed = 0;
};

absl::Status ValidateSamplingParams(const SamplingParams& params);

inline constexpr uint64_t kSamplingStream = 0x53414d504c45ULL;  // "SAMPLE"

// Index of the largest logit (the lowest index among equals).
int ArgMax(const float* logits, int vocab);

class Sampler {
 public:
  explicit Sampler(int vocab);
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // `draw` numbers the draws of one request (0 for its first generated token).
  int Sample(const float* logits, const SamplingParams& params, uint64_t draw);

 private:
  int vocab_;
  std::vector<std::pair<float, int>> candidates_;  // (logit, id), preallocated [V]
};

}  // namespace mla
