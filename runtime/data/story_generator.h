#pragma once
// The story generator: expands a story grammar (runtime/data/story_grammar.h,
// format in docs/data.md) into short children's stories. The grammar holds
// all the language (word lists, phrases, sentence frames and the story plan);
// this file holds only the engine that runs the plan: it draws choices from a
// SplitMix64 stream, fills the templates and joins the sections.
//
// Built-in grammars: "v1" (the original corpus, byte-identical to the earlier
// generator for every seed) and "v2" (richer, with long-range structure).
// Story i of a corpus depends only on (grammar, seed, i), so generation is
// deterministic and the same for any number of threads.
//
// Thread safety: StoryGenerator is immutable after construction; Generate()
// may be called from many threads.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/data/story_grammar.h"

namespace mla {

struct StoryCorpusStats {
  int64_t stories = 0;
  int64_t words = 0;              // whitespace-separated words
  int64_t distinct_words = 0;     // lower-cased, punctuation stripped
  int64_t min_words = 0;
  int64_t max_words = 0;
  int64_t median_words = 0;       // words of the story at rank n/2 (sorted by length)
  int64_t p90_words = 0;          // words of the story at rank 9n/10
  // Filled by GenerateStories only:
  int64_t distinct_templates = 0;   // sentence templates used at least once
  int64_t available_templates = 0;  // sentence templates the grammar holds
  // Sentence frames: a template together with the inline alternatives and
  // phrases chosen inside it (its wording with the story's variables left
  // open); see docs/data.md.
  int64_t distinct_frames = 0;
};

// What one story was built from.
struct StoryTrace {
  std::vector<int> templates;     // sentence template ids, in order
  std::vector<uint64_t> frames;   // sentence frame digests, in order
};

class StoryGenerator {
 public:
  // Parses `spec` (a built-in name or a grammar file) and checks it by
  // generating a few stories, so that errors that depend on the drawn
  // choices (a variable used before it is set, a computed name that does
  // not exist) surface here with their file and line.
  static absl::StatusOr<std::unique_ptr<StoryGenerator>> Create(absl::string_view spec);
  static absl::StatusOr<std::unique_ptr<StoryGenerator>> FromGrammar(
      std::unique_ptr<const StoryGrammar> grammar);

  // One story from a stream seed; `trace` (optional) receives what it was
  // built from.
  absl::StatusOr<std::string> Generate(uint64_t stream_seed, StoryTrace* trace) const;
  const StoryGrammar& grammar() const { return *grammar_; }

 private:
  explicit StoryGenerator(std::unique_ptr<const StoryGrammar> grammar)
      : grammar_(std::move(grammar)) {}
  std::unique_ptr<const StoryGrammar> grammar_;
};

struct StoryOptions {
  std::string grammar = "v1";  // built-in name or grammar file
  int threads = 2;             // the corpus does not depend on it
};

// `count` distinct stories for `seed` (story i from (seed, i); a duplicate is
// redrawn from the next stream of i), with corpus statistics when `stats` is
// non-null. Error when count <= 0, threads <= 0 or the grammar is bad.
absl::StatusOr<std::vector<std::string>> GenerateStories(int64_t count, uint64_t seed,
                                                         const StoryOptions& options,
                                                         StoryCorpusStats* stats);
// The same with the built-in v1 grammar on two threads.
absl::StatusOr<std::vector<std::string>> GenerateStories(int64_t count, uint64_t seed,
                                                         StoryCorpusStats* stats);

// Words, distinct words and the length distribution of any corpus (for
// `mla-data` reports).
void CountWords(const std::vector<std::string>& stories, StoryCorpusStats* stats);

}  // namespace mla
