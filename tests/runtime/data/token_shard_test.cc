// Token shard format: write/read round trip, the checksum's definition, and a
// clear error for every kind of damaged file.
#include "runtime/data/token_shard.h"

#include <cstring>
#include <fstream>
#include <iterator>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/data/data_test_util.h"

namespace mla {
namespace {

using ::testing::HasSubstr;
using testing_util::FreshDir;
using testing_util::WriteShard;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(Fnv1a64, MatchesPublishedTestVectors) {
  // Test vectors of the FNV reference (Fowler/Noll/Vo): "" and "a".
  EXPECT_EQ(Fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar", 6), 0x85944171f73967e8ull);
}

TEST(TokenShard, WriteThenReadGivesTheSameTokensAndHeader) {
  std::string path = FreshDir() + "/s.bin";
  auto writer = ShardWriter::Create(path, 1000, 2);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->AppendDocument(std::vector<int>{5, 999, 7}).ok());
  ASSERT_TRUE((*writer)->AppendDocument(std::vector<int>{}).ok());
  ASSERT_TRUE((*writer)->AppendTokens(std::vector<uint16_t>{11, 2}, 1).ok());
  ASSERT_TRUE((*writer)->Finish().ok());

  auto shard = TokenShard::Open(path);
  ASSERT_TRUE(shard.ok()) << shard.status();
  std::vector<uint16_t> got(shard->tokens().begin(), shard->tokens().end());
  EXPECT_EQ(got, (std::vector<uint16_t>{5, 999, 7, 2, 2, 11, 2}));
  EXPECT_EQ(shard->header().vocab_size, 1000u);
  EXPECT_EQ(shard->header().eos_id, 2u);
  EXPECT_EQ(shard->header().document_count, 3u);
  EXPECT_EQ(shard->header().version, kShardVersion);
  // The file is exactly header + 2 bytes per token, the checksum FNV-1a over them.
  std::string bytes = ReadBytes(path);
  ASSERT_EQ(bytes.size(), kShardHeaderBytes + 2 * got.size());
  EXPECT_EQ(shard->header().checksum,
            Fnv1a64(bytes.data() + kShardHeaderBytes, bytes.size() - kShardHeaderBytes));
  EXPECT_EQ(std::memcmp(bytes.data(), "MLATOKS", 8), 0);
}

TEST(TokenShard, WriterRejectsIdOutsideVocab) {
  std::string path = FreshDir() + "/s.bin";
  auto writer = ShardWriter::Create(path, 10, 2);
  ASSERT_TRUE(writer.ok());
  absl::Status s = (*writer)->AppendDocument(std::vector<int>{3, 10});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("token id 10"));
}

TEST(TokenShard, UnfinishedWriterLeavesNoShard) {
  std::string path = FreshDir() + "/s.bin";
  {
    auto writer = ShardWriter::Create(path, 10, 2);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->AppendDocument(std::vector<int>{1}).ok());
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

class DamagedShard : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = FreshDir() + "/s.bin";
    WriteShard(path_, {1, 2, 3, 4, 5, 6}, 100, 0);
    bytes_ = ReadBytes(path_);
  }
  // Opens the file after `bytes_` was edited; returns the error message.
  std::string OpenError() {
    WriteBytes(path_, bytes_);
    auto shard = TokenShard::Open(path_);
    EXPECT_FALSE(shard.ok());
    if (shard.ok()) return "";
    EXPECT_THAT(shard.status().message(), HasSubstr(path_));  // names the file
    return std::string(shard.status().message());
  }
  std::string path_;
  std::string bytes_;
};

TEST_F(DamagedShard, BadMagicIsReported) {
  bytes_[0] = 'X';
  EXPECT_THAT(OpenError(), HasSubstr("bad magic"));
}

TEST_F(DamagedShard, UnsupportedVersionIsReported) {
  bytes_[8] = 7;
  EXPECT_THAT(OpenError(), HasSubstr("unsupported token shard version 7"));
}

TEST_F(DamagedShard, TruncationIsReported) {
  bytes_.resize(bytes_.size() - 2);
  EXPECT_THAT(OpenError(), HasSubstr("truncated"));
}

TEST_F(DamagedShard, FileShorterThanHeaderIsReported) {
  bytes_.resize(10);
  EXPECT_THAT(OpenError(), HasSubstr("truncated"));
}

TEST_F(DamagedShard, TrailingBytesAreReported) {
  bytes_ += "xx";
  EXPECT_THAT(OpenError(), HasSubstr("trailing bytes"));
}

TEST_F(DamagedShard, ChecksumMismatchIsReported) {
  bytes_[kShardHeaderBytes + 3] ^= 1;
  EXPECT_THAT(OpenError(), HasSubstr("checksum mismatch"));
}

TEST_F(DamagedShard, TokenIdAtOrAboveVocabIsReported) {
  // Token 2 (offset 4) becomes 100 = vocab; the checksum is made consistent so
  // only the range check can catch it.
  bytes_[kShardHeaderBytes + 4] = 100;
  uint64_t sum = Fnv1a64(bytes_.data() + kShardHeaderBytes, bytes_.size() - kShardHeaderBytes);
  std::memcpy(bytes_.data() + 40, &sum, 8);
  EXPECT_THAT(OpenError(), HasSubstr("token id 100 at position 2 is >= vocab size 100"));
}

TEST(TokenShard, MissingFileIsNotFoundNamingThePath) {
  std::string path = FreshDir() + "/nope.bin";
  auto shard = TokenShard::Open(path);
  ASSERT_FALSE(shard.ok());
  EXPECT_EQ(shard.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(shard.status().message(), HasSubstr(path));
}

}  // namespace
}  // namespace mla
