#pragma once
// The project's one JSON module: a strict reader (RFC 8259: no trailing
// commas, no comments, no NaN, UTF-8 strings with \u escapes and surrogate
// pairs, unique object keys, nesting depth ≤ 64), a streaming mode that hands
// over one top-level item at a time (corpora: JSON lines, or one array of
// objects as large as the file), and the writer's quoting of strings and
// numbers (mla-eval's JSON/JSONL, mla-train's config.json and metrics.jsonl,
// mla-ckpt's safetensors header). No JSON library is a dependency.
//
// Thread safety: Parse, Quote and Number are pure; a StreamReader is used by
// one thread. Failure: InvalidArgument "malformed JSON at byte N: expected
// X", N counted from the start of the text.
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace mla::json {

struct Value {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in file order, keys unique

  // Defined in json.cc, where Value is complete: a vector of pairs holding
  // the type being defined may not be destroyed or copied inside its own
  // definition (clang with libstdc++ refuses it).
  Value();
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
  ~Value();

  const Value* Find(absl::string_view key) const;  // objects only; nullptr when absent
};

// Exactly one value (surrounded by optional whitespace).
absl::StatusOr<Value> Parse(absl::string_view text);

// A text holding a sequence of top-level values separated by whitespace (JSON
// lines are one case). Next() yields them one by one, except that the
// elements of a top-level array are yielded one by one instead of the array,
// so a file that is one large array never exists as one Value. Each item is
// read as strictly as Parse reads a value. `text` must outlive the reader.
class StreamReader {
 public:
  explicit StreamReader(absl::string_view text) : text_(text) {}

  // The next item into *item: true, or false at the end of the text.
  absl::StatusOr<bool> Next(Value* item);

 private:
  absl::string_view text_;
  size_t pos_ = 0;
  bool in_array_ = false;  // between a top-level '[' and its ']'
  bool first_in_array_ = false;
};

// `s` as a JSON string literal, quotes included (control characters escaped;
// valid UTF-8 passes through, every byte that is not part of a valid sequence
// becomes U+FFFD, so the literal is always valid UTF-8).
std::string Quote(absl::string_view s);

// Shortest round-trip form of a finite double; "null" for NaN/inf (JSON has
// neither).
std::string Number(double v);
// `v` printed with a printf format such as "%.6f", or "null" when not finite.
std::string Number(const absl::FormatSpec<double>& format, double v);

}  // namespace mla::json
