// runtime/run_lock.h: one job per run directory; a dead holder's lock is stale.
#include "runtime/run_lock.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/base/temp_dir_test.h"

namespace mla {
namespace {

class RunLockTest : public testing::TempDirTest {
 protected:
  std::string LockFileText() const {
    std::ifstream in(dir_ + "/run/" + RunDirLock::kFileName);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string run() const { return Path("run"); }
};

TEST_F(RunLockTest, AcquireCreatesTheDirectoryAndRecordsTheHolder) {
  absl::StatusOr<RunDirLock> lock = RunDirLock::Acquire(run());
  ASSERT_TRUE(lock.ok()) << lock.status();
  EXPECT_TRUE(std::filesystem::is_directory(run()));
  EXPECT_NE(LockFileText().find(absl::StrCat("pid ", getpid(), " on host ")), std::string::npos)
      << LockFileText();
}

// OFD locks conflict between open file descriptions, even in one process.
TEST_F(RunLockTest, SecondAcquireIsRefusedNamingTheHolder) {
  absl::StatusOr<RunDirLock> first = RunDirLock::Acquire(run());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<RunDirLock> second = RunDirLock::Acquire(run());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find(absl::StrCat("pid ", getpid())), std::string::npos)
      << second.status();
  EXPECT_NE(second.status().message().find("started "), std::string::npos);
}

TEST_F(RunLockTest, DestroyingTheLockReleasesIt) {
  { ASSERT_TRUE(RunDirLock::Acquire(run()).ok()); }
  EXPECT_TRUE(RunDirLock::Acquire(run()).ok());
}

TEST_F(RunLockTest, LockOfAKilledHolderIsTakenOver) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<RunDirLock> held = RunDirLock::Acquire(run());
    const char ok = held.ok() ? '1' : '0';
    if (write(ready[1], &ok, 1) != 1) _exit(2);
    for (;;) pause();
  }
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  ASSERT_EQ(ok, '1');
  absl::StatusOr<RunDirLock> refused = RunDirLock::Acquire(run());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find(absl::StrCat("pid ", child, " ")), std::string::npos)
      << refused.status();
  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  absl::StatusOr<RunDirLock> taken = RunDirLock::Acquire(run());
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_NE(LockFileText().find(absl::StrCat("pid ", getpid(), " ")), std::string::npos);
  close(ready[0]);
  close(ready[1]);
}

}  // namespace
}  // namespace mla
