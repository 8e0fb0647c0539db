// base/json.h: the strict reader, the streaming reader and the writer, on
// hand-written texts whose parse follows from RFC 8259.
#include "base/json.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla::json {
namespace {

using ::testing::HasSubstr;

// Every item of a stream, or the first error.
absl::StatusOr<std::vector<Value>> ReadAll(absl::string_view text) {
  StreamReader reader(text);
  std::vector<Value> items;
  Value v;
  while (true) {
    absl::StatusOr<bool> more = reader.Next(&v);
    if (!more.ok()) return more.status();
    if (!*more) return items;
    items.push_back(v);
  }
}

TEST(JsonTest, ParsesNestedValuesAndEscapes) {
  auto v = Parse(R"( {"a": [1, -2.5e1, true, null], "s": "x\"\u00e9\ud83d\ude00\n\/"} )");
  ASSERT_TRUE(v.ok()) << v.status();
  const Value* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->array.size(), 4u);
  EXPECT_EQ(a->array[0].number, 1.0);
  EXPECT_EQ(a->array[1].number, -25.0);
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_EQ(a->array[3].type, Value::Type::kNull);
  EXPECT_EQ(v->Find("s")->string, "x\"\xc3\xa9\xf0\x9f\x98\x80\n/");
  EXPECT_EQ(v->Find("missing"), nullptr);
}

TEST(JsonTest, RejectsWhatStrictJsonForbids) {
  for (const char* bad :
       {"{\"a\": 1,}", "[1,]", "[1 2]", "{'a': 1}", "{a: 1}", "01", "-", "1.", ".5", "+1", "1e",
        "NaN", "Infinity", "tru", "nul", "\"a\tb\"", "{\"a\": 1, \"a\": 2}", "\"\\ud800\"",
        "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\x41\"", "\"\\u12g4\"", "{} x", "", "   ", "[",
        "{\"a\"", "{\"a\" 1}", "\"abc", "1e999", "// c\n1", "/* c */ 1"})
    EXPECT_FALSE(Parse(bad).ok()) << bad;
}

TEST(JsonTest, NestingDeeperThan64IsRejected) {
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(Parse(ok).ok());
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_FALSE(Parse(deep).ok());
}

TEST(JsonTest, ErrorNamesTheByteOffsetAndWhatWasExpected) {
  auto v = Parse("[1, 2 3]");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), HasSubstr("malformed JSON at byte 6: expected ',' or ']'"));
}

TEST(JsonTest, QuoteRoundTripsThroughParse) {
  const std::string s = "line\nquote\" back\\ tab\t ctl\x01\x1f caf\xc3\xa9";
  EXPECT_EQ(Quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  auto v = Parse(Quote(s));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->string, s);
}

TEST(JsonTest, NumbersRoundTripAndNonFiniteIsNull) {
  for (double x : {0.1, -1.0 / 3.0, 1e-300, 6.02214076e23, 0.0, 42.0}) {
    auto v = Parse(Number(x));
    ASSERT_TRUE(v.ok()) << Number(x);
    EXPECT_EQ(v->number, x);
  }
  EXPECT_EQ(Number(42.0), "42");
  EXPECT_EQ(Number(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(Number(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(Number("%.2f", 1.005e1), "10.05");
  EXPECT_EQ(Number("%.2f", -std::numeric_limits<double>::infinity()), "null");
}

TEST(JsonStreamTest, YieldsTheElementsOfATopLevelArray) {
  auto items = ReadAll(" [ {\"a\": 1}, 2 , \"x\" ] ");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].Find("a")->number, 1.0);
  EXPECT_EQ((*items)[1].number, 2.0);
  EXPECT_EQ((*items)[2].string, "x");
}

TEST(JsonStreamTest, YieldsJsonLinesOneByOne) {
  auto items = ReadAll("{\"t\": \"A\"}\n{\"t\": \"B\"}\r\n\n[]\n[{\"t\": \"C\"}]\n");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].Find("t")->string, "A");
  EXPECT_EQ((*items)[1].Find("t")->string, "B");
  EXPECT_EQ((*items)[2].Find("t")->string, "C");
}

TEST(JsonStreamTest, EmptyTextHasNoItems) {
  auto items = ReadAll(" \n\t ");
  ASSERT_TRUE(items.ok());
  EXPECT_TRUE(items->empty());
}

TEST(JsonStreamTest, MalformedStreamsAreErrorsWithOffsets) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {Case{"[1 2]", "at byte 3: expected ',' or ']'"},
                        Case{"[1, 2", "at byte 5: expected ',' or ']'"},
                        Case{"[1,]", "at byte 3: expected a value"},
                        Case{"[,1]", "at byte 1: expected a value"},
                        Case{"{\"a\": 1}\n{\"a\": }", "at byte 15: expected a value"},
                        Case{"{\"a\": \"x\ty\"}", "at byte 8: expected no raw control"},
                        Case{"]", "at byte 0: expected a value"}}) {
    auto items = ReadAll(c.text);
    ASSERT_FALSE(items.ok()) << c.text;
    EXPECT_THAT(items.status().message(), HasSubstr(c.message)) << c.text;
  }
}

}  // namespace
}  // namespace mla::json
