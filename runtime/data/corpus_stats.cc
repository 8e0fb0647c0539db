#include "runtime/data/corpus_stats.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "glog/logging.h"

namespace mla {

UnigramStats ComputeUnigramStats(std::span<const uint16_t> tokens, uint32_t vocab_size) {
  std::vector<uint64_t> counts(vocab_size, 0);
  for (uint16_t t : tokens) {
    CHECK_LT(t, vocab_size) << "token id outside the vocabulary";
    ++counts[t];
  }
  UnigramStats stats;
  stats.tokens = tokens.size();
  if (tokens.empty()) return stats;
  double n = static_cast<double>(tokens.size());
  double h = 0.0;
  for (uint64_t c : counts) {
    if (c == 0) continue;
    ++stats.distinct;
    double p = static_cast<double>(c) / n;
    h -= p * std::log(p);
  }
  stats.entropy_nats = h;
  stats.entropy_bits = h / std::numbers::ln2;
  return stats;
}

}  // namespace mla
