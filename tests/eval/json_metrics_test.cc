// mla-eval's strict JSON reader and its text metrics on hand-computed cases.
#include "gtest/gtest.h"
#include "launch/mla_eval_json.h"
#include "launch/mla_eval_metrics.h"

namespace mla {
namespace {

TEST(JsonTest, ParsesNestedValuesAndEscapes) {
  auto v = json::Parse(R"( {"a": [1, -2.5e1, true, null], "s": "x\"\u00e9\ud83d\ude00\n"} )");
  ASSERT_TRUE(v.ok()) << v.status();
  const json::Value* a = v->Find("a");
  ASSERT_EQ(a->array.size(), 4u);
  EXPECT_EQ(a->array[1].number, -25.0);
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_EQ(v->Find("s")->string, "x\"\xc3\xa9\xf0\x9f\x98\x80\n");
}

TEST(JsonTest, RejectsWhatStrictJsonForbids) {
  for (const char* bad : {"{\"a\": 1,}", "[1 2]", "{'a': 1}", "01", "1.", "NaN", "\"a\tb\"",
                          "{\"a\": 1, \"a\": 2}", "\"\\ud800\"", "{} x", "", "[", "\"abc",
                          "1e999"})
    EXPECT_FALSE(json::Parse(bad).ok()) << bad;
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(json::Parse(deep).ok());
}

TEST(JsonTest, QuoteRoundTripsThroughParse) {
  const std::string s = "line\nquote\" back\\ tab\t ctl\x01 caf\xc3\xa9";
  auto v = json::Parse(json::Quote(s));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->string, s);
  EXPECT_EQ(json::Parse(json::Number(0.1))->number, 0.1);
}

// Generated text cut inside a multi-byte character, or raw bytes: each byte
// that is not part of a valid sequence becomes U+FFFD ("\xEF\xBF\xBD").
TEST(JsonTest, QuoteRepairsInvalidUtf8) {
  EXPECT_EQ(json::Quote("caf\xc3"), "\"caf\xEF\xBF\xBD\"");
  EXPECT_EQ(json::Quote("a\xff\xfe b"), "\"a\xEF\xBF\xBD\xEF\xBF\xBD b\"");
  EXPECT_EQ(json::Quote("\xed\xa0\x80"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");  // a surrogate
  EXPECT_EQ(json::Quote("\xf0\x9f\x98\x80 ok"), "\"\xf0\x9f\x98\x80 ok\"");
}

TEST(TextMetricsTest, DistinctRepetitionAndLengthsByHand) {
  // Words: "the cat saw the cat saw the cat" (8 words): distinct-1 3/8,
  // bigrams 7 with 3 distinct; 4-grams 5, of which "the cat saw the" and
  // "cat saw the cat" repeat once each → 2/5. Second: "A dog." → 2 words.
  const auto m = ComputeTextMetrics(
      {{"The cat saw the cat, saw the cat!", 10, true}, {"A dog.", 3, false}});
  EXPECT_EQ(m.generations, 2);
  EXPECT_DOUBLE_EQ(m.distinct_1, 5.0 / 10.0);
  EXPECT_DOUBLE_EQ(m.distinct_2, 4.0 / 8.0);
  EXPECT_DOUBLE_EQ(m.repetition_rate, 2.0 / 5.0);
  EXPECT_DOUBLE_EQ(m.mean_words, 5.0);
  EXPECT_DOUBLE_EQ(m.mean_tokens, 6.5);
  EXPECT_DOUBLE_EQ(m.eos_share, 0.5);
}

}  // namespace
}  // namespace mla
