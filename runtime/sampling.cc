#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "runtime/random.h"

namespace mla {

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f)
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be finite and >= 0, got ", p.temperature));
  if (p.top_k < 0)
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  return absl::OkStatus();
}

int ArgMax(const float* logits, int vocab) {
  int best = 0;
  for (int v = 1; v < vocab; ++v)
    if (logits[v] > logits[best]) best = v;
  return best;
}

Sampler::Sampler(int vocab) : vocab_(vocab) { candidates_.reserve(vocab); }

int Sampler::Sample(const float* logits, const SamplingParams& p, uint64_t draw) {
  const absl::Status valid = ValidateSamplingParams(p);
  CHECK(valid.ok()) << valid;
  if (p.temperature <= 0.0f) return ArgMax(logits, vocab_);
  candidates_.clear();
  for (int v = 0; v < vocab_; ++v) candidates_.emplace_back(logits[v], v);
  // Descending by logit, ascending id among equals: a total order, so the
  // result does not depend on the sort implementation.
  auto before = [](const std::pair<float, int>& a, const std::pair<float, int>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t n = candidates_.size();
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) {
    std::nth_element(candidates_.begin(), candidates_.begin() + p.top_k, candidates_.end(), before);
    n = p.top_k;
  }
  const bool nucleus = p.top_p < 1.0f;
  // Sorted whenever a cut was made, so the draw's order is fixed (plain
  // temperature sampling keeps id order, which is fixed too).
  if (nucleus || n < candidates_.size())
    std::sort(candidates_.begin(), candidates_.begin() + n, before);
  float mx = candidates_[0].first;
  for (size_t i = 1; i < n; ++i) mx = std::max(mx, candidates_[i].first);
  const double inv_t = 1.0 / p.temperature;
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double w = std::exp((candidates_[i].first - mx) * inv_t);
    candidates_[i].first = static_cast<float>(w);
    total += w;
  }
  if (nucleus) {
    double mass = 0.0;
    size_t keep = 0;
    while (keep < n) {
      mass += candidates_[keep].first;
      ++keep;
      if (mass >= p.top_p * total) break;
    }
    n = keep;
    total = mass;
  }
  const double u = UniformAt(p.seed, kSamplingStream, draw) * total;
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    acc += candidates_[i].first;
    if (u < acc) return candidates_[i].second;
  }
  return candidates_[n - 1].second;  // rounding left u at the very top
}

}  // namespace mla
