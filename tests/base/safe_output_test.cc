// base/safe_output.h: whole files appear complete or not at all, log writes
// are checked, and an output may not be an input or replace a file unasked.
#include "base/safe_output.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/base/temp_dir_test.h"

namespace mla {
namespace {

class SafeOutputTest : public testing::TempDirTest {
 protected:
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void Write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
};

TEST_F(SafeOutputTest, WriteFileAtomicallyReplacesContentAndLeavesNoTemporary) {
  const std::string p = Path("config.json");
  Write(p, "old");
  ASSERT_TRUE(WriteFileAtomically(p, "new content").ok());
  EXPECT_EQ(Read(p), "new content");
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST_F(SafeOutputTest, UncommittedFileLeavesTheFinalPathUntouched) {
  const std::string p = Path("export.safetensors");
  Write(p, "previous export");
  {
    absl::StatusOr<AtomicFile> f = AtomicFile::Create(p);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE(f->Append("half of a new file").ok());
    EXPECT_EQ(Read(p), "previous export");  // nothing visible before Commit
  }
  EXPECT_EQ(Read(p), "previous export");
  EXPECT_FALSE(std::filesystem::exists(p + ".tmp"));
}

TEST_F(SafeOutputTest, OverwriteRewritesAHeaderBeforeCommit) {
  const std::string p = Path("shard.bin");
  absl::StatusOr<AtomicFile> f = AtomicFile::Create(p);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->Append("0000payload").ok());
  ASSERT_TRUE(f->Overwrite(0, "HEAD").ok());
  ASSERT_TRUE(f->Commit().ok());
  EXPECT_EQ(Read(p), "HEADpayload");
}

TEST_F(SafeOutputTest, CreateInMissingDirectoryNamesPathAndErrno) {
  absl::StatusOr<AtomicFile> f = AtomicFile::Create(Path("no-such-dir/out.json"));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("no-such-dir/out.json.tmp"), std::string::npos);
  EXPECT_NE(f.status().message().find("(errno 2)"), std::string::npos) << f.status();
}

TEST_F(SafeOutputTest, AppendLogAppendsWholeLines) {
  const std::string p = Path("metrics.jsonl");
  Write(p, "{\"step\": 1}\n");
  absl::StatusOr<AppendLog> log = AppendLog::Open(p);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE(log->AppendLine("{\"step\": 2}").ok());
  ASSERT_TRUE(log->Close().ok());
  EXPECT_EQ(Read(p), "{\"step\": 1}\n{\"step\": 2}\n");
}

// /dev/full fails every write with ENOSPC: the disk-full case without a
// full disk.
TEST_F(SafeOutputTest, AppendLogWriteOnAFullDeviceIsAnErrorNamingPathAndErrno) {
  absl::StatusOr<AppendLog> log = AppendLog::Open("/dev/full");
  ASSERT_TRUE(log.ok()) << log.status();
  const absl::Status s = log->AppendLine("{\"step\": 1}");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/dev/full"), std::string::npos) << s;
  EXPECT_NE(s.message().find("No space left on device (errno 28)"), std::string::npos) << s;
}

TEST_F(SafeOutputTest, MissingOutputIsAccepted) {
  EXPECT_TRUE(CheckOutputTarget(Path("new.json"), {}, "--out").ok());
}

TEST_F(SafeOutputTest, ExistingOutputIsRefusedWithoutOverwrite) {
  const std::string p = Path("exists.json");
  Write(p, "x");
  const absl::Status s = CheckOutputTarget(p, {}, "--out");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_NE(s.message().find("--force"), std::string::npos);
  EXPECT_TRUE(CheckOutputTarget(p, {{}, /*overwrite=*/true}, "--out").ok());
}

TEST_F(SafeOutputTest, OutputThatIsAnInputIsRefusedEvenWithOverwrite) {
  const std::string input = Path("ckpt-5.h5");
  Write(input, "checkpoint bytes");
  const OutputRules rules{{input}, /*overwrite=*/true};
  EXPECT_EQ(CheckOutputTarget(input, rules, "--out").code(), absl::StatusCode::kInvalidArgument);
  // Other spellings of the same file: a relative path, a hard link, a symlink.
  const std::string relative = dir_ + "/./ckpt-5.h5";
  EXPECT_EQ(CheckOutputTarget(relative, rules, "--out").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(::link(input.c_str(), Path("hard").c_str()), 0);
  EXPECT_EQ(CheckOutputTarget(Path("hard"), rules, "--out").code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(::symlink(input.c_str(), Path("soft").c_str()), 0);
  EXPECT_EQ(CheckOutputTarget(Path("soft"), rules, "--out").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Read(input), "checkpoint bytes");
}

}  // namespace
}  // namespace mla
