// The story grammar format (docs/data.md): what a grammar means, and that a
// bad grammar file is rejected with its file and line.
#include "runtime/data/story_grammar.h"

#include <fstream>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/data/story_generator.h"
#include "tests/runtime/data/data_test_util.h"

namespace mla {
namespace {

using ::testing::HasSubstr;

// A grammar whose lists have one entry each, so its one story is fixed by the
// format's rules alone.
constexpr char kFixedGrammar[] = R"(grammar 1
# a comment
list genders: sex he his
  girl; she; her
list names_girl
  Ada
list things: name tags
  apple; red round
list number_words
  zero | one | two | three | four
phrase greeting
  hello
sentence opening
  {N} was {a_N.kind}. {N.He} had {#count} {thing}s, then {#count-1}.
sentence closing
  "{@greeting}," said {N} to {N.his} {thing.tags} {thing}.
story
  let N = genders
  set N.kind = {N.sex}
  set N = {@names_{N.sex}}
  let thing = things until {thing.tags} has round
  number count = 3..3
  section one
  say opening
  section two
  say closing
)";

std::string Story(absl::string_view text, uint64_t seed) {
  auto grammar = ParseStoryGrammar(text, "test.grammar");
  EXPECT_TRUE(grammar.ok()) << grammar.status();
  if (!grammar.ok()) return "";
  auto generator = StoryGenerator::FromGrammar(*std::move(grammar));
  EXPECT_TRUE(generator.ok()) << generator.status();
  if (!generator.ok()) return "";
  auto story = (*generator)->Generate(seed, nullptr);
  EXPECT_TRUE(story.ok()) << story.status();
  return story.ok() ? *story : "";
}

TEST(StoryGrammar, FieldsCapitalsArticlesNumbersAndSectionsFollowTheFormat) {
  EXPECT_EQ(Story(kFixedGrammar, 5),
            "Ada was a girl. She had three apples, then two. \"hello,\" said Ada to her red round "
            "apple.");
}

TEST(StoryGrammar, UntilRedrawsUntilTheConditionHolds) {
  constexpr char kGrammar[] = R"(grammar 1
list things: name tags
  kite; light | ball; | feather; light soft | stone;
sentence s
  {thing}
story
  let thing = things until {thing.tags} has light
  section main
  say s
)";
  for (uint64_t seed = 0; seed < 50; ++seed) {
    std::string s = Story(kGrammar, seed);
    EXPECT_TRUE(s == "kite" || s == "feather") << s;
  }
}

TEST(StoryGrammar, ProceduresAndAlternativesDrawEveryChoice) {
  constexpr char kGrammar[] = R"(grammar 1
list names
  Ann | Bo | Cy
proc person
  set $ = {@names}
sentence s
  {A} and {B} {ran|hopped}.
story
  call person A
  call person B until {B} != {A}
  section main
  say s
)";
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    std::string s = Story(kGrammar, seed);
    EXPECT_NE(s.substr(0, 2), s.substr(s.find(" and ") + 5, 2)) << s;
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 12u);  // 3 * 2 ordered name pairs * 2 verbs
}

struct BadGrammar {
  const char* name;
  const char* text;
  const char* where;    // "test.grammar:LINE"
  const char* problem;
};

class BadGrammarTest : public ::testing::TestWithParam<BadGrammar> {};

TEST_P(BadGrammarTest, IsRejectedWithFileLineAndProblem) {
  const BadGrammar& c = GetParam();
  auto grammar = ParseStoryGrammar(c.text, "test.grammar");
  absl::Status status = grammar.status();
  if (grammar.ok()) status = StoryGenerator::FromGrammar(*std::move(grammar)).status();
  ASSERT_FALSE(status.ok()) << c.name;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(c.where) + ": "));
  EXPECT_THAT(std::string(status.message()), HasSubstr(c.problem));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadGrammarTest,
    ::testing::Values(
        BadGrammar{"NoHeader", "sentence s\n  hi\nstory\n  section m\n  say s\n",
                   "test.grammar:1", "starts with the line 'grammar 1'"},
        BadGrammar{"UnknownBlock", "grammar 1\nsentense s\n  hi\n", "test.grammar:2",
                   "unknown block 'sentense'"},
        BadGrammar{"IndentedOutsideBlock", "grammar 1\n  hi\n", "test.grammar:2",
                   "outside any block"},
        BadGrammar{"WrongFieldCount",
                   "grammar 1\nlist t: name tags\n  kite; light\n  ball\nsentence s\n  hi\n"
                   "story\n  section m\n  say s\n",
                   "test.grammar:4", "has 1 fields; list 't' has 2"},
        BadGrammar{"UnbalancedBrace", "grammar 1\nsentence s\n  ok\n  {N was here\nstory\n"
                   "  section m\n  say s\n",
                   "test.grammar:4", "unmatched '{'"},
        BadGrammar{"UnknownVariable",
                   "grammar 1\nsentence s\n  {Nme} ran.\nstory\n  set N = x\n  section m\n"
                   "  say s\n",
                   "test.grammar:3", "unknown variable '{Nme}'"},
        BadGrammar{"UnknownList", "grammar 1\nsentence s\n  {@colours}\nstory\n  section m\n"
                   "  say s\n",
                   "test.grammar:3", "unknown list or phrase 'colours'"},
        BadGrammar{"UnknownSentence", "grammar 1\nsentence s\n  hi\nstory\n  section m\n"
                   "  say t\n",
                   "test.grammar:6", "unknown sentence block 't'"},
        BadGrammar{"BadProbability", "grammar 1\nsentence s\n  hi\nstory\n  section m\n"
                   "  say s 3/2\n",
                   "test.grammar:6", "bad repeat '3/2'"},
        BadGrammar{"UnknownStatement", "grammar 1\nsentence s\n  hi\nstory\n  section m\n"
                   "  shout s\n",
                   "test.grammar:6", "unknown statement 'shout'"},
        BadGrammar{"NoStory", "grammar 1\nsentence s\n  hi\n", "test.grammar:3",
                   "no 'story' block"},
        BadGrammar{"DuplicateBlock", "grammar 1\nsentence s\n  hi\nsentence s\n  ho\n",
                   "test.grammar:4", "second block named 's'"},
        BadGrammar{"RecursiveProcedure",
                   "grammar 1\nproc p\n  call p $\nsentence s\n  hi\nstory\n  call p x\n"
                   "  section m\n  say s\n",
                   "test.grammar:3", "nest deeper than"},
        // Found only by generating: a variable read before it is set.
        BadGrammar{"UsedBeforeSet",
                   "grammar 1\nsentence s\n  {N} ran.\nstory\n  section m\n  say s\n"
                   "  set N = x\n",
                   "test.grammar:3", "'N' is used before the story sets it"},
        // ... a computed name that does not exist,
        BadGrammar{"ComputedNameMissing",
                   "grammar 1\nlist k\n  a | b\nsentence a.s\n  hi\nstory\n  set k = {@k}\n"
                   "  section m\n  say {k}.s\n",
                   "test.grammar:9", "no block named 'b.s'"},
        // ... a condition that never holds,
        BadGrammar{"UntilNeverHolds",
                   "grammar 1\nlist k\n  a\nsentence s\n  hi\nstory\n  let x = k until {x} == b\n"
                   "  section m\n  say s\n",
                   "test.grammar:7", "still false after"},
        // ... a pad whose sentence adds no words,
        BadGrammar{"PadWithoutWords",
                   "grammar 1\nlist e: a b\n  x;\nsentence s\n  word\nsentence z\n  {e.b}\n"
                   "story\n  let e = e\n  section m\n  say s\n  pad m with z until 5 words\n",
                   "test.grammar:12", "added no words"},
        // ... and a number outside number_words.
        BadGrammar{"NumberOutOfRange",
                   "grammar 1\nlist number_words\n  zero | one\nsentence s\n  {#n+1}\nstory\n"
                   "  number n = 1..1\n  section m\n  say s\n",
                   "test.grammar:5", "outside number_words"}),
    [](const ::testing::TestParamInfo<BadGrammar>& info) { return info.param.name; });

TEST(StoryGrammar, MissingFileNamesThePathAndTheBuiltIns) {
  std::string path = testing_util::FreshDir() + "/none.grammar";
  auto grammar = LoadStoryGrammar(path);
  ASSERT_FALSE(grammar.ok());
  EXPECT_THAT(std::string(grammar.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(grammar.status().message()), HasSubstr("built in: v1, v2"));
}

TEST(StoryGrammar, DirectoryIsRejected) {
  std::string dir = testing_util::FreshDir();
  auto grammar = LoadStoryGrammar(dir);
  ASSERT_FALSE(grammar.ok());
  EXPECT_THAT(std::string(grammar.status().message()), HasSubstr(dir + ": is a directory"));
}

TEST(StoryGrammar, BuiltInGrammarsParseAndAFileCopyGivesTheSameStories) {
  for (const std::string& name : BuiltinStoryGrammarNames()) {
    auto text = BuiltinStoryGrammarText(name);
    ASSERT_TRUE(text.ok());
    std::string path = testing_util::FreshDir() + "/" + name + ".grammar";
    std::ofstream(path) << *text;
    StoryOptions from_file{.grammar = path, .threads = 1};
    StoryOptions builtin{.grammar = name, .threads = 1};
    auto a = GenerateStories(50, 11, from_file, nullptr);
    auto b = GenerateStories(50, 11, builtin, nullptr);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(*a, *b) << name;
  }
}

}  // namespace
}  // namespace mla
