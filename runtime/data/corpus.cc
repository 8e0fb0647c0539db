#include "runtime/data/corpus.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/json.h"
#include "base/status_macros.h"
#include "runtime/data/mapped_file.h"

namespace mla {
namespace {

constexpr absl::string_view kEndOfText = "<|endoftext|>";

void AddStory(absl::string_view s, std::vector<std::string>* out) {
  s = absl::StripAsciiWhitespace(s);
  if (!s.empty()) out->emplace_back(s);
}

// TinyStories' JSON files and JSON lines through the streaming reader: the
// "story" (else "text") string of each top-level object; other fields are
// read (strictly) and ignored.
absl::Status ReadJsonStories(absl::string_view text, absl::string_view name,
                             std::vector<std::string>* stories) {
  json::StreamReader reader(text);
  json::Value item;
  while (true) {
    absl::StatusOr<bool> more = reader.Next(&item);
    if (!more.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", more.status().message()));
    if (!*more) return absl::OkStatus();
    if (item.type != json::Value::Type::kObject)
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": a JSON corpus item must be an object holding a \"story\" or \"text\" field"));
    const json::Value* story = item.Find("story");
    if (story == nullptr || story->type != json::Value::Type::kString) story = item.Find("text");
    if (story != nullptr && story->type == json::Value::Type::kString) AddStory(story->string, stories);
  }
}

}  // namespace

absl::StatusOr<CorpusFormat> ParseCorpusFormat(absl::string_view name) {
  if (name == "auto") return CorpusFormat::kAuto;
  if (name == "endoftext") return CorpusFormat::kEndOfText;
  if (name == "json") return CorpusFormat::kJson;
  if (name == "lines") return CorpusFormat::kLines;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown corpus format '", name, "' (expected auto, endoftext, json or lines)"));
}

absl::string_view CorpusFormatName(CorpusFormat format) {
  switch (format) {
    case CorpusFormat::kAuto: return "auto";
    case CorpusFormat::kEndOfText: return "endoftext";
    case CorpusFormat::kJson: return "json";
    case CorpusFormat::kLines: return "lines";
  }
  return "unknown";
}

CorpusFormat DetectCorpusFormat(absl::string_view text) {
  absl::string_view head = absl::StripLeadingAsciiWhitespace(text);
  if (!head.empty() && (head[0] == '[' || head[0] == '{')) return CorpusFormat::kJson;
  if (text.find(kEndOfText) != absl::string_view::npos) return CorpusFormat::kEndOfText;
  return CorpusFormat::kLines;
}

absl::StatusOr<std::vector<std::string>> ParseCorpus(absl::string_view text, CorpusFormat format,
                                                     absl::string_view name) {
  if (format == CorpusFormat::kAuto) format = DetectCorpusFormat(text);
  std::vector<std::string> stories;
  switch (format) {
    case CorpusFormat::kEndOfText:
      for (absl::string_view piece : absl::StrSplit(text, kEndOfText)) AddStory(piece, &stories);
      break;
    case CorpusFormat::kLines:
      for (absl::string_view line : absl::StrSplit(text, '\n')) AddStory(line, &stories);
      break;
    case CorpusFormat::kJson:
      MLA_RETURN_IF_ERROR(ReadJsonStories(text, name, &stories));
      break;
    case CorpusFormat::kAuto: break;
  }
  if (stories.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": corpus holds no stories (", text.empty() ? "the file is empty" : "format ",
        text.empty() ? "" : CorpusFormatName(format), ")"));
  }
  return stories;
}

absl::StatusOr<std::vector<std::string>> ReadCorpus(const std::string& path,
                                                    CorpusFormat format) {
  MLA_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseCorpus(text, format, path);
}

absl::Status WriteCorpusLines(const std::string& path, const std::vector<std::string>& stories) {
  std::string out;
  size_t total = 0;
  for (const std::string& s : stories) total += s.size() + 1;
  out.reserve(total);
  for (const std::string& s : stories) {
    size_t start = out.size();
    out += s;
    for (size_t i = start; i < out.size(); ++i) {
      if (out[i] == '\n' || out[i] == '\r') out[i] = ' ';
    }
    out.push_back('\n');
  }
  return WriteFileAtomically(path, out);
}

}  // namespace mla
