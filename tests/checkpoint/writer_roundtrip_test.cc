// Single-rank checkpoint behaviour: every part of the state survives a save
// and a load, reading any range of the flat buffers, atomic commit (`.tmp`
// ignored, `latest` pointer), retention, and resolution of what to resume.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "checkpoint/commit.h"
#include "checkpoint/reader.h"
#include "checkpoint/writer.h"
#include "gtest/gtest.h"
#include "tests/checkpoint/test_state.h"

namespace mla::ckpt {
namespace {

using testing::Buffers;
using testing::MakeState;
using testing::SmallLayout;
using testing::Total;

class RoundTripTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::SharedTempDir(MPI_COMM_SELF); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Save(int64_t step, int keep_last = 100, int keep_every = 0) {
    const auto layout = SmallLayout();
    Buffers b(Total(layout));
    CheckpointState s = MakeState(layout, step, b, {0, Total(layout)}, {0, Total(layout)});
    SaveOptions o;
    o.dir = dir_;
    o.keep_last = keep_last;
    o.keep_every = keep_every;
    absl::StatusOr<std::string> path = SaveCheckpoint(MPI_COMM_SELF, s, o);
    EXPECT_TRUE(path.ok()) << path.status();
    return path.ok() ? *path : "";
  }

  std::string dir_;
};

TEST_F(RoundTripTest, EveryPartOfTheStateReadsBackExactly) {
  const std::string path = Save(120);
  ASSERT_EQ(path, dir_ + "/ckpt-120.h5");
  absl::StatusOr<CheckpointReader> r = CheckpointReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto layout = SmallLayout();
  const CheckpointState want = MakeState(layout, 120);
  EXPECT_TRUE(r->ExpectLayout(layout).ok());
  EXPECT_EQ(r->header().step, 120);
  EXPECT_EQ(r->header().tokens_seen, 120 * 4096);
  EXPECT_EQ(r->header().world_size, 1);
  EXPECT_EQ(r->header().zero_stage, 1);
  EXPECT_FALSE(r->header().created_utc.empty());
  EXPECT_FALSE(r->header().git_revision.empty());
  ASSERT_EQ(r->config().size(), want.config.size());
  for (const ConfigEntry& e : want.config) {
    const ConfigValue* got = r->FindConfig(e.key);
    ASSERT_NE(got, nullptr) << e.key;
    EXPECT_EQ(*got, e.value) << e.key;
  }
  EXPECT_EQ(r->adamw().step, 120);
  EXPECT_EQ(r->adamw().beta1, 0.9);
  EXPECT_EQ(r->adamw().beta2, 0.95);
  EXPECT_EQ(r->adamw().eps, 1e-8);
  EXPECT_EQ(r->adamw().weight_decay, 0.1);
  for (const StateArray& a : want.state) {
    absl::StatusOr<std::vector<int64_t>> v = r->ReadState(a.name);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(*v, a.values) << a.name;
  }
  absl::StatusOr<std::string> tok = r->ReadTokenizerModel();
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(*tok, testing::TokenizerBytes());
  const Buffers b(Total(layout));
  for (auto [which, expect] : {std::pair{FlatBuffer::kParams, &b.params}, std::pair{FlatBuffer::kAdamM, &b.m},
                               std::pair{FlatBuffer::kAdamV, &b.v}}) {
    std::vector<float> got(expect->size());
    ASSERT_TRUE(r->ReadRange(which, 0, absl::MakeSpan(got)).ok());
    EXPECT_EQ(got, *expect);
  }
}

TEST_F(RoundTripTest, H5pyReadsTheCheckpointWithoutMlatrain) {
  const std::string path = Save(120);
  const char* python = std::getenv("MLA_PYTHON");
  const char* source = std::getenv("MLA_SOURCE_DIR");
  ASSERT_NE(python, nullptr) << "MLA_PYTHON is not set (run through ctest)";
  ASSERT_NE(source, nullptr) << "MLA_SOURCE_DIR is not set (run through ctest)";
  const std::string command =
      std::string(python) + " " + source + "/tests/checkpoint/check_with_h5py.py " + path;
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

TEST_F(RoundTripTest, AnyRangeOfTheFlatBufferReadsBack) {
  const std::string path = Save(1);
  absl::StatusOr<CheckpointReader> r = CheckpointReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  const int64_t total = Total(SmallLayout());
  // Ranges starting and ending mid-row, inside one tensor and across several.
  for (auto [lo, hi] : {std::pair<int64_t, int64_t>{5, 6}, {13, 900}, {887, 1200}, {0, total}, {total - 3, total}}) {
    std::vector<float> got(hi - lo);
    ASSERT_TRUE(r->ReadRange(FlatBuffer::kAdamV, lo, absl::MakeSpan(got)).ok());
    for (int64_t i = lo; i < hi; ++i) ASSERT_EQ(got[i - lo], testing::MomentVAt(i)) << i;
  }
  std::vector<float> past(4);
  EXPECT_FALSE(r->ReadRange(FlatBuffer::kParams, total - 2, absl::MakeSpan(past)).ok());
}

TEST_F(RoundTripTest, LeftoverTmpIsIgnoredAndLatestNamesNewestComplete) {
  Save(10);
  Save(20);
  // A crashed save of a later step leaves only its .tmp behind.
  std::ofstream(dir_ + "/ckpt-30.h5.tmp") << "half-written";
  std::string latest;
  std::ifstream(dir_ + "/latest") >> latest;
  EXPECT_EQ(latest, "ckpt-20.h5");
  absl::StatusOr<std::string> from_dir = ResolveCheckpoint(dir_, "");
  ASSERT_TRUE(from_dir.ok()) << from_dir.status();
  EXPECT_EQ(*from_dir, dir_ + "/ckpt-20.h5");
  absl::StatusOr<std::string> automatic = ResolveCheckpoint("auto", dir_);
  ASSERT_TRUE(automatic.ok()) << automatic.status();
  EXPECT_EQ(*automatic, dir_ + "/ckpt-20.h5");
}

TEST_F(RoundTripTest, AutoWithoutCheckpointsIsNotFound) {
  std::ofstream(dir_ + "/ckpt-5.h5.tmp") << "half-written";
  absl::StatusOr<std::string> automatic = ResolveCheckpoint("auto", dir_);
  EXPECT_EQ(automatic.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RoundTripTest, CommitLeavesNoTmpFiles) {
  std::ofstream(dir_ + "/ckpt-5.h5.tmp") << "crashed save";
  Save(10);
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(RoundTripTest, RetentionKeepsLastKAndEveryMthStep) {
  for (int64_t step : {100, 200, 300, 400, 500, 600, 700}) Save(step, /*keep_last=*/2, /*keep_every=*/300);
  absl::StatusOr<std::vector<int64_t>> steps = ListCheckpointSteps(dir_);
  ASSERT_TRUE(steps.ok());
  EXPECT_EQ(*steps, (std::vector<int64_t>{300, 600, 700}));
}

TEST(StepsToKeepTest, KeepsTheNewestKPlusMultiplesOfM) {
  EXPECT_EQ(StepsToKeep({5, 10, 15, 20, 25}, 2, 10), (std::vector<int64_t>{10, 20, 25}));
  EXPECT_EQ(StepsToKeep({5, 10, 15}, 1, 0), (std::vector<int64_t>{15}));
  EXPECT_EQ(StepsToKeep({3, 1, 2}, 5, 0), (std::vector<int64_t>{1, 2, 3}));
}

TEST(EvenShardTest, TilesTheBufferWithSizesDifferingByAtMostOne) {
  const int64_t total = 1003;
  int64_t next = 0;
  for (int r = 0; r < 4; ++r) {
    FlatRange s = EvenShard(total, r, 4);
    EXPECT_EQ(s.lo, next);
    EXPECT_TRUE(s.size() == 250 || s.size() == 251);
    next = s.hi;
  }
  EXPECT_EQ(next, total);
}

}  // namespace
}  // namespace mla::ckpt
