#pragma once
// Token statistics of a shard. The unigram entropy H = -sum_v p(v) ln p(v) of
// the token distribution is the cross-entropy of the best model that ignores
// context, so a validation loss below it shows a model has learned context.
//
// Thread safety: pure function.
#include <cstdint>
#include <span>

namespace mla {

struct UnigramStats {
  uint64_t tokens = 0;
  uint32_t distinct = 0;        // ids that occur at least once
  double entropy_nats = 0.0;    // in nats per token, the unit of the training loss
  double entropy_bits = 0.0;    // the same in bits per token
};

UnigramStats ComputeUnigramStats(std::span<const uint16_t> tokens, uint32_t vocab_size);

}  // namespace mla
