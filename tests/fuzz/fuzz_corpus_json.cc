// Fuzz target: the corpus readers (runtime/data/corpus.h), chiefly the
// TinyStories JSON / JSON-lines parser, on arbitrary text. Every story a
// parser returns must be non-empty and trimmed of surrounding whitespace.
// (The evaluation prompt-JSONL parser is not in this tree yet; when it lands
// it gets a target of its own beside this one.)
#include <cctype>
#include <cstdint>
#include <string>

#include "runtime/data/corpus.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void CheckStories(const absl::StatusOr<std::vector<std::string>>& stories) {
  if (!stories.ok()) {
    MLA_FUZZ_CHECK(!stories.status().message().empty(), "error without a message");
    return;
  }
  for (const std::string& s : *stories) {
    MLA_FUZZ_CHECK(!s.empty(), "empty story returned");
    MLA_FUZZ_CHECK(!std::isspace(static_cast<unsigned char>(s.front())) &&
                       !std::isspace(static_cast<unsigned char>(s.back())),
                   "story not trimmed");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  CheckStories(mla::ParseCorpus(text, mla::CorpusFormat::kJson, "fuzz"));
  CheckStories(mla::ParseCorpus(text, mla::CorpusFormat::kAuto, "fuzz"));
  return 0;
}
