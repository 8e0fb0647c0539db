#pragma once
// A gtest fixture owning a fresh directory under /tmp, removed after each test.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace mla::testing {

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mla-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

}  // namespace mla::testing
