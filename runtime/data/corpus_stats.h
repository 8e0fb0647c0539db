#pragma once
// Token statistics of a shard. The unigram entropy H = -sum_v p(v) ln p(v) of
// the token distribution is the cross-entropy of the best model that ignores
// context, so a validation loss below it shows a model has learned context.
//
// And the context sensitivity of a story corpus: how much better the next
// word can be predicted when tokens far back (beyond `short_context`) can be
// seen. See MeasureContextSensitivity.
//
// Thread safety: pure functions.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mla {

struct UnigramStats {
  uint64_t tokens = 0;
  uint32_t distinct = 0;        // ids that occur at least once
  double entropy_nats = 0.0;    // in nats per token, the unit of the training loss
  double entropy_bits = 0.0;    // the same in bits per token
};

UnigramStats ComputeUnigramStats(std::span<const uint16_t> tokens, uint32_t vocab_size);

struct ContextSensitivity {
  int64_t train_stories = 0, eval_stories = 0, eval_tokens = 0;
  int short_context = 0, long_context = 0;
  double short_nats = 0.0;  // cross-entropy (nats/token) with the short window
  double long_nats = 0.0;   // the same with the long window
  double gap() const { return short_nats - long_nats; }
};

// The gain in cross-entropy, on held-out stories, of a language model that
// may use the story's last `long_context` tokens over the same model limited
// to the last `short_context` tokens (docs/data.md, "Context sensitivity").
// Tokens are lower-cased words and single punctuation marks. The model mixes
// a trigram, bigram and unigram model (counts from the first 90 % of
// `stories`) with a unigram cache and a bigram cache over the window, i.e.
// the repetition of words and word pairs from earlier in the story, which is
// what attention can copy from far back and a short-context model cannot;
// the five mixture weights are fitted by EM for each window separately. The
// n-gram part sees only the last two tokens, so the gap comes from the caches
// alone: information more than `short_context` tokens back.
// Requires at least 10 stories and 0 < short_context < long_context.
ContextSensitivity MeasureContextSensitivity(const std::vector<std::string>& stories,
                                             int short_context, int long_context);

}  // namespace mla
