// base/cli.h: flagfiles with CR line endings and stray arguments are refused.
#include "base/cli.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/base/temp_dir_test.h"

namespace mla {
namespace {

class CliTest : public testing::TempDirTest {
 protected:
  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = Path(name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  absl::Status Check(std::vector<std::string> args) {
    args.insert(args.begin(), "prog");
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    return CheckFlagfiles(static_cast<int>(argv.size()), argv.data());
  }
};

TEST_F(CliTest, UnixFlagfileIsAccepted) {
  const std::string f = WriteFile("ok.flags", "--steps=20\n--lr=1e-3\n");
  EXPECT_TRUE(Check({"--flagfile=" + f}).ok());
}

TEST_F(CliTest, CrLfFlagfileIsRefusedShowingTheCarriageReturn) {
  const std::string f = WriteFile("dos.flags", "--steps=20\r\n--lr=1e-3\r\n");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--flagfile=" + f}, {"-flagfile=" + f}, {"--flagfile", f},
        {"--flagfile=" + WriteFile("ok.flags", "--steps=1\n") + "," + f}}) {
    const absl::Status s = Check(args);
    ASSERT_FALSE(s.ok()) << args[0];
    EXPECT_NE(s.message().find("dos.flags line 1"), std::string::npos) << s;
    EXPECT_NE(s.message().find("'--steps=20\\r'"), std::string::npos) << s;
  }
}

TEST_F(CliTest, CrInANestedFlagfileIsRefused) {
  const std::string inner = WriteFile("inner.flags", "--steps=20\r\n");
  const std::string outer = WriteFile("outer.flags", "--flagfile=" + inner + "\n");
  const absl::Status s = Check({"--flagfile=" + outer});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("inner.flags"), std::string::npos) << s;
}

TEST_F(CliTest, StrayArgumentIsRefusedAndNamed) {
  std::string prog = "prog", word = "false";
  EXPECT_TRUE(CheckNoStrayArguments({prog.data()}).ok());
  const absl::Status s = CheckNoStrayArguments({prog.data(), word.data()});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'false'"), std::string::npos) << s;
}

TEST(CapThreadsTest, ThreadsBeyondTheAffinityMaskAreCapped) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(AvailableCpus(), CPU_COUNT(&set));
  EXPECT_EQ(CapThreads(1, "test"), 1);
  EXPECT_EQ(CapThreads(100000, "test"), CPU_COUNT(&set));
}

}  // namespace
}  // namespace mla
