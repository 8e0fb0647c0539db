#pragma once
// A procedural generator of short children's stories (about 100-250 words) in
// the spirit of TinyStories: named characters, a place, a loved object, a
// small problem, dialogue, how the problem is solved, and sometimes a lesson,
// in the vocabulary of a young child.
//
// A story is built from slots (opening, setting, friend, problem, solution,
// ending, ...); each slot has several sentence frames with placeholders for
// the story's characters, pronouns, object, place and inline alternatives.
// Story i of a corpus depends only on (seed, i), so generation is
// deterministic and parallelisable.
//
// Thread safety: StoryGenerator is immutable after construction; Generate()
// may be called from many threads.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mla {

struct StoryCorpusStats {
  int64_t stories = 0;
  int64_t words = 0;              // whitespace-separated words
  int64_t distinct_words = 0;     // lower-cased, punctuation stripped
  int64_t distinct_frames = 0;    // sentence frames used at least once
  int64_t available_frames = 0;   // sentence frames the grammar holds
  int64_t min_words = 0;
  int64_t max_words = 0;
};

struct StoryGrammar;

class StoryGenerator {
 public:
  StoryGenerator();
  ~StoryGenerator();
  StoryGenerator(const StoryGenerator&) = delete;
  StoryGenerator& operator=(const StoryGenerator&) = delete;

  // One story from a stream seed; `frames` (optional) receives the ids of the
  // sentence frames used.
  std::string Generate(uint64_t stream_seed, std::vector<int>* frames) const;
  int frame_count() const;

 private:
  std::unique_ptr<const StoryGrammar> grammar_;
};

// `count` distinct stories for `seed` (story i from (seed, i); a duplicate is
// redrawn from the next stream of i), with corpus statistics when `stats` is
// non-null. Error when count <= 0.
absl::StatusOr<std::vector<std::string>> GenerateStories(int64_t count, uint64_t seed,
                                                         StoryCorpusStats* stats);

// Words / distinct words of any corpus (for `mla-data` reports).
void CountWords(const std::vector<std::string>& stories, StoryCorpusStats* stats);

}  // namespace mla
