// The synthetic story corpus: deterministic for a seed, varied, distinct,
// of the promised length, and free of template debris.
#include "runtime/data/story_generator.h"

#include <regex>
#include <set>

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

TEST(StoryGenerator, EveryFrameOfTheGrammarIsReachable) {
  // The rarest frame is drawn with probability about 1/150 per story, so in
  // 20000 stories each appears hundreds of times in expectation.
  StoryCorpusStats stats;
  ASSERT_TRUE(GenerateStories(20000, 4, &stats).ok());
  EXPECT_EQ(stats.distinct_frames, stats.available_frames);
  EXPECT_GE(stats.available_frames, 150);
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
