#pragma once
// Turns a story corpus into train/val token shards: a deterministic split by
// story, parallel encoding with the shared Tokenizer, EOS after every story.
//
// Thread safety: TokenizeCorpus runs its own worker threads and shares nothing.
// Failure: returns an error naming the shard file that could not be written.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/data/tokenizer.h"

namespace mla {

// True when the story belongs to the validation split. Depends only on the
// story's text, the seed and the fraction, so a story keeps its split when the
// corpus is reordered or grown.
bool IsValidationStory(absl::string_view story, uint64_t seed, double val_fraction);

struct TokenizeOptions {
  double val_fraction = 0.05;
  uint64_t seed = 1;
  int threads = 2;
};

struct TokenizeReport {
  int64_t train_stories = 0, val_stories = 0;
  int64_t train_tokens = 0, val_tokens = 0;  // including one EOS per story
  int64_t text_bytes = 0;
  double encode_seconds = 0.0;  // wall time of the parallel encoding
  int threads = 0;
};

// Writes `train_path` and `val_path` (docs/data-format.md). Stories keep their
// corpus order inside each shard.
absl::StatusOr<TokenizeReport> TokenizeCorpus(const std::vector<std::string>& stories,
                                              const Tokenizer& tokenizer,
                                              const std::string& train_path,
                                              const std::string& val_path,
                                              const TokenizeOptions& options);

}  // namespace mla
