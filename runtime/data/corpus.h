#pragma once
// Reading story corpora as users have them:
//   * endoftext: TinyStories' text release, stories separated by "<|endoftext|>";
//   * json:      TinyStories' JSON release (an array of objects with a "story"
//                field), or JSON lines / an array of objects with a "text" field;
//   * lines:     plain text, one story per line.
// Each story is trimmed of surrounding whitespace; empty stories are skipped.
// The text must be UTF-8 (a leading byte-order mark is skipped); one story
// may hold at most kMaxStoryBytes, so tokenizing one item never needs memory
// out of proportion to a story.
//
// Thread safety: free functions without shared state.
// Failure: missing/unreadable file (NotFound/PermissionDenied), a corpus with
// no stories, text that is not UTF-8 or malformed JSON (with the byte
// offset), or a story above kMaxStoryBytes return an error naming the file.
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mla {

inline constexpr size_t kMaxStoryBytes = size_t{4} << 20;

enum class CorpusFormat { kAuto, kEndOfText, kJson, kLines };

absl::StatusOr<CorpusFormat> ParseCorpusFormat(absl::string_view name);
absl::string_view CorpusFormatName(CorpusFormat format);

// kAuto picks json when the first non-blank byte is '[' or '{', endoftext when
// the text contains "<|endoftext|>", and lines otherwise.
CorpusFormat DetectCorpusFormat(absl::string_view text);

// Splits in-memory text; `name` labels errors (usually the file path).
absl::StatusOr<std::vector<std::string>> ParseCorpus(absl::string_view text, CorpusFormat format,
                                                     absl::string_view name);

absl::StatusOr<std::vector<std::string>> ReadCorpus(const std::string& path, CorpusFormat format);

// Writes stories one per line (newlines inside a story become spaces), the
// form `mla-data stories` produces and `lines` reads back.
absl::Status WriteCorpusLines(const std::string& path, const std::vector<std::string>& stories);

}  // namespace mla
