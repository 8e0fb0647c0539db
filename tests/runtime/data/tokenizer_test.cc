// The sentencepiece tokenizer: exact round trip on corpus text, embedding via
// model bytes, the word cache's exactness, and shards built from a corpus.
#include "runtime/data/tokenizer.h"

#include <cmath>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/data/story_generator.h"
#include "runtime/data/token_shard.h"
#include "runtime/data/tokenize_corpus.h"
#include "tests/runtime/data/data_test_util.h"

namespace mla {
namespace {

using ::testing::HasSubstr;

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto stories = GenerateStories(3000, 17, nullptr);
    CHECK(stories.ok());
    stories_ = new std::vector<std::string>(std::move(*stories));
    TokenizerTrainOptions options;
    options.vocab_size = 1000;
    auto tok = TrainTokenizer(*stories_, options);
    CHECK(tok.ok()) << tok.status();
    tokenizer_ = new Tokenizer(std::move(*tok));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete stories_;
  }
  // Text that a corpus of real stories contains beyond the generated grammar.
  static std::vector<std::string> TrickyTexts() {
    return {"Line one.\n\nLine two.", "Two  spaces and a trailing space ", " leading",
            "Numbers 2024 and 3.14!", "Caf\xc3\xa9 na\xc3\xafve \xf0\x9f\x98\x80 \xe4\xbd\xa0",
            "tab\there", "\"Quotes,\" she said - and left...", "a"};
  }
  static std::vector<std::string>* stories_;
  static Tokenizer* tokenizer_;
};
std::vector<std::string>* TokenizerTest::stories_ = nullptr;
Tokenizer* TokenizerTest::tokenizer_ = nullptr;

TEST_F(TokenizerTest, HasRequestedVocabAndSpecialIds) {
  EXPECT_EQ(tokenizer_->vocab_size(), 1000);
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
}

TEST_F(TokenizerTest, DecodeOfEncodeIsTheOriginalText) {
  for (size_t i = 0; i < stories_->size(); i += 7) {
    const std::string& s = (*stories_)[i];
    std::vector<int> ids = tokenizer_->Encode(s);
    ASSERT_EQ(tokenizer_->Decode(ids), s);
    ASSERT_LT(ids.size(), s.size()) << "BPE compresses corpus text";
  }
  for (const std::string& s : TrickyTexts()) {
    EXPECT_EQ(tokenizer_->Decode(tokenizer_->Encode(s)), s) << s;
  }
}

TEST_F(TokenizerTest, ModelBytesRebuildTheSameTokenizer) {
  auto copy = Tokenizer::LoadFromBytes(tokenizer_->model_bytes());
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(copy->vocab_size(), tokenizer_->vocab_size());
  EXPECT_EQ(copy->Encode((*stories_)[0]), tokenizer_->Encode((*stories_)[0]));
}

TEST_F(TokenizerTest, SavedModelFileLoads) {
  std::string path = testing_util::FreshDir() + "/tok.model";
  std::ofstream(path, std::ios::binary) << tokenizer_->model_bytes();
  auto loaded = Tokenizer::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Encode("Lily had a red ball."), tokenizer_->Encode("Lily had a red ball."));
}

TEST_F(TokenizerTest, TrainingIsDeterministic) {
  TokenizerTrainOptions options;
  options.vocab_size = 1000;
  auto again = TrainTokenizer(*stories_, options);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->model_bytes(), tokenizer_->model_bytes());
}

TEST_F(TokenizerTest, CachedEncoderGivesExactlyTheTokenizersIds) {
  ASSERT_TRUE(tokenizer_->splits_at_spaces());
  CachedEncoder encoder(*tokenizer_);
  std::vector<std::string> texts = TrickyTexts();
  texts.insert(texts.end(), stories_->begin(), stories_->begin() + 500);
  for (const std::string& s : texts) {
    std::vector<int> cached;
    encoder.Encode(s, &cached);
    ASSERT_EQ(cached, tokenizer_->Encode(s)) << s;
  }
}

TEST_F(TokenizerTest, CachedEncoderIsExactForANormalisingModelToo) {
  // A model with NFKC normalisation (as many published models use) does not
  // reproduce text exactly; the encoder must notice and encode texts whole.
  size_t next = 0;
  std::string bytes, error;
  ASSERT_TRUE(spm::Train({{"model_type", "bpe"}, {"vocab_size", "600"},
                          {"normalization_rule_name", "nmt_nfkc"}, {"minloglevel", "1"}},
                         [&](std::string* out) {
                           if (next >= 1000) return false;
                           *out = (*stories_)[next++];
                           return true;
                         },
                         1, &bytes, &error))
      << error;
  auto nfkc = Tokenizer::LoadFromBytes(bytes);
  ASSERT_TRUE(nfkc.ok()) << nfkc.status();
  EXPECT_FALSE(nfkc->splits_at_spaces());
  CachedEncoder encoder(*nfkc);
  for (const std::string& s : TrickyTexts()) {
    std::vector<int> cached;
    encoder.Encode(s, &cached);
    EXPECT_EQ(cached, nfkc->Encode(s)) << s;
  }
}

TEST_F(TokenizerTest, GarbageModelFileIsAnErrorNamingIt) {
  std::string path = testing_util::FreshDir() + "/bad.model";
  std::ofstream(path) << "this is not a model";
  auto loaded = Tokenizer::Load(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(loaded.status().message(), HasSubstr(path));
}

TEST_F(TokenizerTest, ShardsHoldEveryStoryOnceInItsSplitFollowedByEos) {
  std::string dir = testing_util::FreshDir();
  TokenizeOptions options;  // 5% validation, 2 threads
  auto report = TokenizeCorpus(*stories_, *tokenizer_, dir + "/train.bin", dir + "/val.bin",
                               options);
  ASSERT_TRUE(report.ok()) << report.status();
  std::vector<std::string> want_train, want_val;
  for (const std::string& s : *stories_) {
    (IsValidationStory(s, options.seed, options.val_fraction) ? want_val : want_train).push_back(s);
  }
  // The validation share is binomial(3000, 0.05): 150 +- 12 (one sd); allow 5 sd.
  EXPECT_NEAR(static_cast<double>(want_val.size()), 150.0, 5 * std::sqrt(3000 * 0.05 * 0.95));
  for (auto [path, want] : {std::pair{dir + "/train.bin", &want_train},
                            std::pair{dir + "/val.bin", &want_val}}) {
    auto shard = TokenShard::Open(path);
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ(shard->header().document_count, want->size());
    std::vector<std::string> got;
    std::vector<int> ids;
    for (uint16_t t : shard->tokens()) {
      if (static_cast<int>(t) == tokenizer_->eos_id()) {
        got.push_back(tokenizer_->Decode(ids));
        ids.clear();
      } else {
        ids.push_back(t);
      }
    }
    EXPECT_TRUE(ids.empty()) << "shard ends with EOS";
    EXPECT_EQ(got, *want) << path;
  }
  EXPECT_EQ(report->train_stories + report->val_stories, 3000);
}

}  // namespace
}  // namespace mla
