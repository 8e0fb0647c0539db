// Reading corpora in the forms users have them.
#include "runtime/data/corpus.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/data/data_test_util.h"

namespace mla {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Parse(absl::string_view text, CorpusFormat f = CorpusFormat::kAuto) {
  auto s = ParseCorpus(text, f, "test");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : std::vector<std::string>{};
}

TEST(Corpus, EndOfTextSeparatedStoriesAreSplitAndTrimmed) {
  EXPECT_THAT(Parse("One day.\nThe end.\n<|endoftext|>\nTwo.  <|endoftext|>\n\n<|endoftext|>"),
              ElementsAre("One day.\nThe end.", "Two."));
}

TEST(Corpus, TinyStoriesJsonArrayGivesTheStoryFields) {
  const char* json = R"([
    {"story": "Tom ran.\nHe said \"hi\".", "instruction": {"prompt:": "x", "words": ["a", "b"]},
     "summary": "s", "source": "GPT-4"},
    {"summary": "no story here", "n": -1.5e3, "ok": true, "z": null},
    {"source": "x", "story": "Caf\u00e9 \ud83d\ude00 \/ done"}
  ])";
  EXPECT_THAT(Parse(json), ElementsAre("Tom ran.\nHe said \"hi\".", "Café 😀 / done"));
}

TEST(Corpus, JsonLinesWithTextFieldAreRead) {
  EXPECT_THAT(Parse("{\"text\": \"A.\"}\n{\"text\": \"B.\", \"id\": 2}\n"),
              ElementsAre("A.", "B."));
}

TEST(Corpus, PlainLinesAreOneStoryEach) {
  EXPECT_THAT(Parse("first story\r\n\nsecond story\n"), ElementsAre("first story", "second story"));
}

TEST(Corpus, MalformedJsonNamesTheFileAndOffset) {
  auto s = ParseCorpus("[{\"story\": \"a\"} {\"story\": \"b\"}]", CorpusFormat::kJson, "c.json");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("c.json: malformed JSON at byte 16"));
}

TEST(Corpus, UnterminatedJsonStringIsAnError) {
  EXPECT_FALSE(ParseCorpus("[{\"story\": \"abc", CorpusFormat::kJson, "c").ok());
}

TEST(Corpus, LeadingByteOrderMarkIsSkipped) {
  EXPECT_THAT(Parse("\xEF\xBB\xBFOne.\nTwo.\n"), ElementsAre("One.", "Two."));
  EXPECT_THAT(Parse("\xEF\xBB\xBF[{\"story\": \"A.\"}]"), ElementsAre("A."));
}

TEST(Corpus, TextThatIsNotUtf8IsAnErrorNamingTheByte) {
  // Latin-1 "café" (0xE9 alone), a surrogate encoded in UTF-8 (CESU), an
  // overlong '/', a code point above U+10FFFF.
  for (const auto& [text, offset] : std::vector<std::pair<std::string, int>>{
           {"Once a caf\xE9.\n", 10}, {"ok \xED\xA0\x80\n", 3}, {"\xC0\xAF", 0},
           {"ab\xF4\x90\x80\x80", 2}}) {
    auto s = ParseCorpus(text, CorpusFormat::kLines, "bad.txt");
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_THAT(std::string(s.status().message()),
                HasSubstr(absl::StrCat("bad.txt: not valid UTF-8 at byte ", offset)));
  }
  // Counted in the file, byte-order mark included.
  auto s = ParseCorpus("\xEF\xBB\xBFx\xFF", CorpusFormat::kLines, "bom.txt");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("at byte 4"));
}

TEST(Corpus, StoryAboveTheSizeLimitIsAnErrorNamingIt) {
  const std::string text = "short\n" + std::string(kMaxStoryBytes + 1, 'a') + "\n";
  auto s = ParseCorpus(text, CorpusFormat::kLines, "big.txt");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("big.txt: story 2 is"));
  EXPECT_EQ(Parse(std::string(kMaxStoryBytes, 'a'), CorpusFormat::kLines).size(), 1u);
}

TEST(Corpus, EmptyFileIsAnErrorNamingIt) {
  std::string path = testing_util::FreshDir() + "/empty.txt";
  std::ofstream(path).close();
  auto s = ReadCorpus(path, CorpusFormat::kAuto);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr(path));
  EXPECT_THAT(s.status().message(), HasSubstr("no stories"));
}

TEST(Corpus, MissingFileIsNotFoundNamingIt) {
  std::string path = testing_util::FreshDir() + "/missing.txt";
  auto s = ReadCorpus(path, CorpusFormat::kAuto);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.status().message(), HasSubstr(path));
}

TEST(Corpus, WrittenLinesReadBackAsTheSameStories) {
  std::string path = testing_util::FreshDir() + "/stories.txt";
  ASSERT_TRUE(WriteCorpusLines(path, {"A b.", "C\nd."}).ok());
  auto s = ReadCorpus(path, CorpusFormat::kAuto);
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(*s, ElementsAre("A b.", "C d."));
}

}  // namespace
}  // namespace mla
