// The synthetic story corpus: deterministic for a seed, varied, distinct,
// of the promised length, and free of template debris; the v1 grammar
// reproduces the original generator byte for byte.
#include "runtime/data/story_generator.h"

#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(StoryGenerator, SameSeedGivesTheSameCorpus) {
  auto a = GenerateStories(2000, 42, nullptr);
  auto b = GenerateStories(2000, 42, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(StoryGenerator, DifferentSeedsGiveDifferentCorpora) {
  auto a = GenerateStories(200, 1, nullptr);
  auto b = GenerateStories(200, 2, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  int same = 0;
  for (size_t i = 0; i < a->size(); ++i) same += (*a)[i] == (*b)[i];
  EXPECT_EQ(same, 0);
}

TEST(StoryGenerator, PrefixOfALargerCorpusIsTheSmallerCorpus) {
  // Story i depends only on (seed, i) (duplicates aside), so growing --count
  // keeps the earlier stories.
  auto small = GenerateStories(300, 9, nullptr);
  auto large = GenerateStories(900, 9, nullptr);
  ASSERT_TRUE(small.ok() && large.ok());
  EXPECT_TRUE(std::equal(small->begin(), small->end(), large->begin()));
}

TEST(StoryGenerator, NoTwoStoriesAreIdentical) {
  auto stories = GenerateStories(20000, 3, nullptr);
  ASSERT_TRUE(stories.ok());
  EXPECT_EQ(std::set<std::string>(stories->begin(), stories->end()).size(), 20000u);
}

TEST(StoryGenerator, EveryTemplateOfTheGrammarIsReachable) {
  // The rarest template is drawn with probability about 1/150 per story, so in
  // 20000 stories each appears hundreds of times in expectation.
  StoryCorpusStats stats;
  ASSERT_TRUE(GenerateStories(20000, 4, &stats).ok());
  EXPECT_EQ(stats.distinct_templates, stats.available_templates);
  EXPECT_GE(stats.available_templates, 150);
  // A template with inline alternatives gives several frames.
  EXPECT_GT(stats.distinct_frames, stats.distinct_templates);
}

TEST(StoryGenerator, V1GrammarReproducesTheOriginalGeneratorByteForByte) {
  // tests/data/golden/stories_v1_seed7_count40.txt is the stories.txt written
  // by `mla-data stories --count=40 --seed=7` built from commit fd7a5f0, the
  // last commit whose generator held the grammar in C++ (BuildGrammar), before
  // the grammar became runtime/data/grammars/v1.grammar.
  const char* src = std::getenv("MLA_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "MLA_SOURCE_DIR is not set (run through ctest)";
  std::ifstream in(std::string(src) + "/tests/data/golden/stories_v1_seed7_count40.txt");
  ASSERT_TRUE(in) << "missing golden sample";
  std::vector<std::string> golden;
  for (std::string line; std::getline(in, line);) golden.push_back(line);
  ASSERT_EQ(golden.size(), 40u);
  StoryOptions options;
  options.grammar = "v1";
  for (int threads : {1, 2}) {
    options.threads = threads;
    auto stories = GenerateStories(40, 7, options, nullptr);
    ASSERT_TRUE(stories.ok()) << stories.status();
    for (size_t i = 0; i < golden.size(); ++i) {
      ASSERT_EQ((*stories)[i], golden[i]) << "story " << i << " on " << threads << " threads";
    }
  }
}

TEST(StoryGenerator, LengthStatisticsAreOrderStatistics) {
  StoryCorpusStats stats;
  // Lengths 1..10 words: median is the word count at rank 5 (6), p90 at rank 9 (10).
  std::vector<std::string> stories;
  for (int n = 10; n >= 1; --n) {
    std::string s;
    for (int w = 0; w < n; ++w) s += w == 0 ? "a" : " a";
    stories.push_back(s);
  }
  CountWords(stories, &stats);
  EXPECT_EQ(stats.words, 55);
  EXPECT_EQ(stats.min_words, 1);
  EXPECT_EQ(stats.max_words, 10);
  EXPECT_EQ(stats.median_words, 6);
  EXPECT_EQ(stats.p90_words, 10);
  EXPECT_EQ(stats.distinct_words, 1);
}

TEST(StoryGenerator, StoriesHaveAbout100To250Words) {
  StoryCorpusStats stats;
  ASSERT_TRUE(GenerateStories(5000, 5, &stats).ok());
  EXPECT_GE(stats.min_words, 100);
  EXPECT_LE(stats.max_words, 250);
  EXPECT_GT(stats.distinct_words, 1000);
}

TEST(StoryGenerator, TextHasNoTemplateDebrisAndGoodArticles) {
  auto stories = GenerateStories(5000, 6, nullptr);
  ASSERT_TRUE(stories.ok());
  std::regex a_before_vowel(R"(\b[Aa] [aeiouAEIOU])");
  std::regex an_before_consonant(R"(\b[Aa]n [b-df-hj-np-tv-z])");
  std::regex lower_sentence_start(R"([.!?] [a-z])");
  for (const std::string& s : *stories) {
    ASSERT_EQ(s.find_first_of("{}|"), std::string::npos) << s;
    ASSERT_FALSE(std::regex_search(s, a_before_vowel)) << s;
    ASSERT_FALSE(std::regex_search(s, an_before_consonant)) << s;
    ASSERT_FALSE(std::regex_search(s, lower_sentence_start)) << s;
    ASSERT_TRUE(s.back() == '.' || s.back() == '!' || s.back() == '"') << s;
    // Quotes are balanced.
    ASSERT_EQ(std::count(s.begin(), s.end(), '"') % 2, 0) << s;
  }
}

TEST(StoryGenerator, NonPositiveCountIsAnError) {
  EXPECT_FALSE(GenerateStories(0, 1, nullptr).ok());
}

}  // namespace
}  // namespace mla
