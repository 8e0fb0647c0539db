#pragma once
// A small strict JSON reader (RFC 8259: one value per text, no trailing
// commas, no comments, no NaN, UTF-8 strings with \u escapes and surrogate
// pairs, nesting depth ≤ 64) for mla-eval's prompt files, and the string
// quoting its JSON/JSONL writers use. No JSON library is a dependency.
//
// Thread safety: pure functions. Failure: Parse returns InvalidArgument with
// the byte offset and what was expected.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
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

  const Value* Find(absl::string_view key) const;  // objects only; nullptr when absent
};

absl::StatusOr<Value> Parse(absl::string_view text);

// `s` as a JSON string literal, quotes included (control characters escaped;
// valid UTF-8 passes through, every byte that is not part of a valid sequence
// becomes U+FFFD, so the literal is always valid UTF-8).
std::string Quote(absl::string_view s);

// Shortest round-trip form of a finite double; "null" for NaN/inf.
std::string Number(double v);

}  // namespace mla::json
