#include "base/utf8.h"
#include "runtime/data/corpus.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/safe_output.h"
#include "base/status_macros.h"
#include "runtime/data/mapped_file.h"

namespace mla {
namespace {

constexpr absl::string_view kEndOfText = "<|endoftext|>";

void AddStory(absl::string_view s, std::vector<std::string>* out) {
  s = absl::StripAsciiWhitespace(s);
  if (!s.empty()) out->emplace_back(s);
}

// A small JSON reader: just enough of RFC 8259 to walk TinyStories' JSON files
// and JSON lines, collecting the "story" (or "text") string of each top-level
// object and skipping every other value. No JSON library is among the
// project's Debian dependencies, and this is the only JSON the pipeline reads.
class JsonStoryReader {
 public:
  JsonStoryReader(absl::string_view text, absl::string_view name) : s_(text), name_(name) {}

  absl::Status Read(std::vector<std::string>* stories) {
    SkipSpace();
    while (pos_ < s_.size()) {
      if (s_[pos_] == '[') {
        ++pos_;
        SkipSpace();
        if (Peek() == ']') {
          ++pos_;
        } else {
          while (true) {
            MLA_RETURN_IF_ERROR(ReadTopLevelItem(stories));
            SkipSpace();
            if (Peek() == ',') {
              ++pos_;
              continue;
            }
            if (Peek() == ']') {
              ++pos_;
              break;
            }
            return Error("expected ',' or ']' in array");
          }
        }
      } else {
        MLA_RETURN_IF_ERROR(ReadTopLevelItem(stories));  // JSON lines
      }
      SkipSpace();
    }
    return absl::OkStatus();
  }

 private:
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) {
      ++pos_;
    }
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(name_, ": malformed JSON at byte ", pos_, ": ", what));
  }

  absl::Status ReadTopLevelItem(std::vector<std::string>* stories) {
    SkipSpace();
    if (Peek() != '{') return Error("expected an object holding a \"story\" or \"text\" field");
    ++pos_;
    SkipSpace();
    std::string story, text;
    bool has_story = false, has_text = false;
    if (Peek() == '}') {
      ++pos_;
    } else {
      while (true) {
        SkipSpace();
        std::string key;
        MLA_RETURN_IF_ERROR(ReadString(&key));
        SkipSpace();
        if (Peek() != ':') return Error("expected ':' after object key");
        ++pos_;
        SkipSpace();
        if ((key == "story" || key == "text") && Peek() == '"') {
          MLA_RETURN_IF_ERROR(ReadString(key == "story" ? &story : &text));
          (key == "story" ? has_story : has_text) = true;
        } else {
          MLA_RETURN_IF_ERROR(SkipValue(0));
        }
        SkipSpace();
        if (Peek() == ',') {
          ++pos_;
          continue;
        }
        if (Peek() == '}') {
          ++pos_;
          break;
        }
        return Error("expected ',' or '}' in object");
      }
    }
    if (has_story) {
      AddStory(story, stories);
    } else if (has_text) {
      AddStory(text, stories);
    }
    return absl::OkStatus();
  }

  absl::Status SkipValue(int depth) {
    if (depth > 256) return Error("nesting too deep");
    SkipSpace();
    char c = Peek();
    if (c == '"') {
      std::string ignored;
      return ReadString(&ignored);
    }
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++pos_;
      SkipSpace();
      if (Peek() == close) {
        ++pos_;
        return absl::OkStatus();
      }
      while (true) {
        SkipSpace();
        if (c == '{') {
          std::string key;
          MLA_RETURN_IF_ERROR(ReadString(&key));
          SkipSpace();
          if (Peek() != ':') return Error("expected ':' after object key");
          ++pos_;
        }
        MLA_RETURN_IF_ERROR(SkipValue(depth + 1));
        SkipSpace();
        if (Peek() == ',') {
          ++pos_;
          continue;
        }
        if (Peek() == close) {
          ++pos_;
          return absl::OkStatus();
        }
        return Error(c == '{' ? "expected ',' or '}' in object" : "expected ',' or ']' in array");
      }
    }
    // A number or a literal: consume its characters.
    size_t start = pos_;
    while (pos_ < s_.size() && (absl::ascii_isalnum(static_cast<unsigned char>(s_[pos_])) ||
                                s_[pos_] == '-' || s_[pos_] == '+' || s_[pos_] == '.')) {
      ++pos_;
    }
    if (pos_ == start) return Error("expected a value");
    return absl::OkStatus();
  }


  absl::Status ReadHex4(uint32_t* value) {
    if (pos_ + 4 > s_.size()) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= static_cast<uint32_t>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v |= static_cast<uint32_t>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v |= static_cast<uint32_t>(h - 'A' + 10);
      } else {
        return Error("bad hex digit in \\u escape");
      }
    }
    *value = v;
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out) {
    if (Peek() != '"') return Error("expected a string");
    ++pos_;
    out->clear();
    while (true) {
      if (pos_ >= s_.size()) return Error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return Error("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          MLA_RETURN_IF_ERROR(ReadHex4(&cp));
          if (cp >= 0xD800 && cp < 0xDC00 && pos_ + 1 < s_.size() && s_[pos_] == '\\' &&
              s_[pos_ + 1] == 'u') {
            pos_ += 2;
            uint32_t low = 0;
            MLA_RETURN_IF_ERROR(ReadHex4(&low));
            if (low < 0xDC00 || low > 0xDFFF) return Error("bad UTF-16 surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;  // lone surrogate: replacement character
          }
          AppendUtf8(cp, out);
          break;
        }
        default: return Error("bad escape in string");
      }
    }
  }

  absl::string_view s_;
  absl::string_view name_;
  size_t pos_ = 0;
};

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
  const size_t bom = absl::ConsumePrefix(&text, kUtf8Bom) ? kUtf8Bom.size() : 0;
  if (const size_t bad = FirstInvalidUtf8(text); bad < text.size())
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": not valid UTF-8 at byte ", bad + bom,
        " (the corpus must be UTF-8; convert it first, e.g. iconv -f latin1 -t utf-8)"));
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
      MLA_RETURN_IF_ERROR(JsonStoryReader(text, name).Read(&stories));
      break;
    case CorpusFormat::kAuto: break;
  }
  for (size_t i = 0; i < stories.size(); ++i)
    if (stories[i].size() > kMaxStoryBytes)
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": story ", i + 1, " is ", stories[i].size(), " bytes, above the ", kMaxStoryBytes,
          "-byte limit for one story (format ", CorpusFormatName(format),
          "; is that the right --format?)"));
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
