#pragma once
// Helpers shared by the data tests: fresh temporary paths and small shards.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "runtime/data/token_shard.h"

namespace mla::testing_util {

// A fresh directory under the test temp dir, unique per test and process.
inline std::string FreshDir() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                              absl::StrCat("mla_data_", info->test_suite_name(), "_",
                                           info->name(), "_", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Writes `tokens` as one document-less shard (no EOS added).
inline void WriteShard(const std::string& path, const std::vector<uint16_t>& tokens,
                       uint32_t vocab, uint32_t eos = 0) {
  auto writer = ShardWriter::Create(path, vocab, eos);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->AppendTokens(tokens, 1).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
}

}  // namespace mla::testing_util
