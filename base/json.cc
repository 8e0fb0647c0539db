#include "base/json.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/utf8.h"

namespace mla::json {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  Parser(absl::string_view text, size_t pos) : t_(text), i_(pos) {}

  absl::StatusOr<Value> ParseDocument() {
    Value v;
    absl::Status st = ParseValue(0, &v);
    if (!st.ok()) return st;
    SkipSpace();
    if (i_ != t_.size()) return Error("end of input after the value");
    return v;
  }

  size_t pos() const { return i_; }
  bool AtEnd() {
    SkipSpace();
    return i_ == t_.size();
  }
  // Consumes `c` (after whitespace) when it is next.
  bool Consume(char c) {
    SkipSpace();
    if (i_ < t_.size() && t_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  absl::Status ParseValue(Value* v) { return ParseValue(0, v); }

  absl::Status Error(absl::string_view expected) const {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed JSON at byte ", i_, ": expected ", expected));
  }

 private:
  void SkipSpace() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t' || t_[i_] == '\n' || t_[i_] == '\r'))
      ++i_;
  }
  bool Literal(absl::string_view word) {
    if (t_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  absl::Status ParseValue(int depth, Value* v) {
    if (depth > kMaxDepth) return Error("nesting depth at most 64");
    SkipSpace();
    if (i_ >= t_.size()) return Error("a value");
    const char c = t_[i_];
    if (c == '{') return ParseObject(depth, v);
    if (c == '[') return ParseArray(depth, v);
    if (c == '"') {
      v->type = Value::Type::kString;
      return ParseString(&v->string);
    }
    if (Literal("true")) { v->type = Value::Type::kBool; v->boolean = true; return absl::OkStatus(); }
    if (Literal("false")) { v->type = Value::Type::kBool; v->boolean = false; return absl::OkStatus(); }
    if (Literal("null")) { v->type = Value::Type::kNull; return absl::OkStatus(); }
    return ParseNumber(v);
  }

  absl::Status ParseObject(int depth, Value* v) {
    v->type = Value::Type::kObject;
    ++i_;
    SkipSpace();
    if (i_ < t_.size() && t_[i_] == '}') { ++i_; return absl::OkStatus(); }
    while (true) {
      SkipSpace();
      if (i_ >= t_.size() || t_[i_] != '"') return Error("a string key");
      std::string key;
      absl::Status st = ParseString(&key);
      if (!st.ok()) return st;
      if (v->Find(key) != nullptr) return Error(absl::StrCat("unique keys ('", key, "' repeats)"));
      SkipSpace();
      if (i_ >= t_.size() || t_[i_] != ':') return Error("':'");
      ++i_;
      Value item;
      st = ParseValue(depth + 1, &item);
      if (!st.ok()) return st;
      v->object.emplace_back(std::move(key), std::move(item));
      SkipSpace();
      if (i_ < t_.size() && t_[i_] == ',') { ++i_; continue; }
      if (i_ < t_.size() && t_[i_] == '}') { ++i_; return absl::OkStatus(); }
      return Error("',' or '}'");
    }
  }

  absl::Status ParseArray(int depth, Value* v) {
    v->type = Value::Type::kArray;
    ++i_;
    SkipSpace();
    if (i_ < t_.size() && t_[i_] == ']') { ++i_; return absl::OkStatus(); }
    while (true) {
      Value item;
      absl::Status st = ParseValue(depth + 1, &item);
      if (!st.ok()) return st;
      v->array.push_back(std::move(item));
      SkipSpace();
      if (i_ < t_.size() && t_[i_] == ',') { ++i_; continue; }
      if (i_ < t_.size() && t_[i_] == ']') { ++i_; return absl::OkStatus(); }
      return Error("',' or ']'");
    }
  }

  bool Hex4(uint32_t* out) {
    if (i_ + 4 > t_.size()) return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = t_[i_ + k];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return false;
    }
    i_ += 4;
    *out = v;
    return true;
  }


  absl::Status ParseString(std::string* out) {
    ++i_;  // opening quote
    while (true) {
      if (i_ >= t_.size()) return Error("a closing '\"'");
      const unsigned char c = static_cast<unsigned char>(t_[i_]);
      if (c == '"') { ++i_; return absl::OkStatus(); }
      if (c < 0x20) return Error("no raw control characters in a string");
      if (c != '\\') { out->push_back(static_cast<char>(c)); ++i_; continue; }
      ++i_;
      if (i_ >= t_.size()) return Error("an escape");
      const char e = t_[i_++];
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
          uint32_t cp;
          if (!Hex4(&cp)) return Error("4 hex digits after \\u");
          if (cp >= 0xD800 && cp < 0xDC00) {
            uint32_t lo;
            if (!Literal("\\u") || !Hex4(&lo) || lo < 0xDC00 || lo >= 0xE000)
              return Error("a low surrogate after a high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            return Error("no lone low surrogate");
          }
          AppendUtf8(cp, out);
          break;
        }
        default: --i_; return Error("a valid escape");
      }
    }
  }

  absl::Status ParseNumber(Value* v) {
    const size_t start = i_;
    auto digits = [&] {
      const size_t s = i_;
      while (i_ < t_.size() && t_[i_] >= '0' && t_[i_] <= '9') ++i_;
      return i_ > s;
    };
    if (i_ < t_.size() && t_[i_] == '-') ++i_;
    if (i_ < t_.size() && t_[i_] == '0') {
      ++i_;
    } else if (!digits()) {
      i_ = start;
      return Error("a value");
    }
    if (i_ < t_.size() && t_[i_] == '.') {
      ++i_;
      if (!digits()) return Error("digits after '.'");
    }
    if (i_ < t_.size() && (t_[i_] == 'e' || t_[i_] == 'E')) {
      ++i_;
      if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-')) ++i_;
      if (!digits()) return Error("digits in the exponent");
    }
    const std::string lit(t_.substr(start, i_ - start));
    v->type = Value::Type::kNumber;
    v->number = std::strtod(lit.c_str(), nullptr);
    if (!std::isfinite(v->number)) {
      i_ = start;
      return Error("a number in double range");
    }
    return absl::OkStatus();
  }

  absl::string_view t_;
  size_t i_;
};

}  // namespace

Value::Value() = default;
Value::Value(const Value&) = default;
Value::Value(Value&&) noexcept = default;
Value& Value::operator=(const Value&) = default;
Value& Value::operator=(Value&&) noexcept = default;
Value::~Value() = default;

const Value* Value::Find(absl::string_view key) const {
  for (const auto& [k, v] : object)
    if (k == key) return &v;
  return nullptr;
}

absl::StatusOr<Value> Parse(absl::string_view text) { return Parser(text, 0).ParseDocument(); }

absl::StatusOr<bool> StreamReader::Next(Value* item) {
  *item = Value();
  Parser p(text_, pos_);
  if (!in_array_) {
    if (p.AtEnd()) return false;
    if (p.Consume('[')) {
      pos_ = p.pos();
      in_array_ = true;
      first_in_array_ = true;
      return Next(item);
    }
  } else {
    if (p.Consume(']')) {
      pos_ = p.pos();
      in_array_ = false;
      return Next(item);
    }
    if (!first_in_array_ && !p.Consume(',')) return p.Error("',' or ']'");
    first_in_array_ = false;
  }
  if (absl::Status st = p.ParseValue(item); !st.ok()) return st;
  pos_ = p.pos();
  return true;
}

std::string Quote(absl::string_view raw) {
  // Generated text can end inside a multi-byte character (a byte-level
  // piece); the output stays valid UTF-8.
  const std::string s = ToValidUtf8(raw);
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += absl::StrFormat("\\u%04x", c);
        else out.push_back(ch);
    }
  }
  out += "\"";
  return out;
}

std::string Number(const absl::FormatSpec<double>& format, double v) {
  return std::isfinite(v) ? absl::StrFormat(format, v) : "null";
}

std::string Number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace mla::json
