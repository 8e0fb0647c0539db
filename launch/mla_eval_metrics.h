#pragma once
// Automatic text metrics over a set of generations (mla-eval --task=report),
// computed on lower-cased whitespace-separated words with surrounding
// punctuation stripped:
//   distinct-n      distinct n-grams / all n-grams, pooled over generations
//   repetition rate share of a generation's word 4-grams that already occurred
//                   earlier in the same generation, pooled over generations
//   mean length     words and tokens per generation
//   eos share       generations that ended at EOS
// Thread safety: pure functions.
#include <cstdint>
#include <string>
#include <vector>

namespace mla {

struct GenerationText {
  std::string text;
  int64_t tokens = 0;
  bool ended_at_eos = false;
};

struct TextMetrics {
  int64_t generations = 0;
  double distinct_1 = 0.0, distinct_2 = 0.0;
  double repetition_rate = 0.0;
  double mean_words = 0.0, mean_tokens = 0.0;
  double eos_share = 0.0;
};

std::vector<std::string> MetricWords(const std::string& text);
TextMetrics ComputeTextMetrics(const std::vector<GenerationText>& generations);

}  // namespace mla
