// Two ranks: a checkpoint written collectively with unequal ZeRO-1 ranges (cut
// mid-row, across tensors) reads back exactly at world size 1, and one written
// at world size 1 reads back exactly as unequal shards; an error on one rank
// fails the save on every rank instead of hanging; the integrity header that
// two ranks compute together over a file of several digest blocks is the one
// the format defines (recomputed by an independent Python checker).
#include <cstdlib>
#include <filesystem>

#include "checkpoint/integrity.h"
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

int Rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// This rank's half of `total` elements.
FlatRange HalfShard(int64_t total) { return EvenShard(total, Rank(), 2); }

// Unequal shards: rank 0 ends inside row 3 of blocks.0.attn.w_dkv.
FlatRange UnequalShard(int64_t total, int rank) {
  const int64_t cut = 888 + 24 + 3 * 24 + 7;
  return rank == 0 ? FlatRange{0, cut} : FlatRange{cut, total};
}

class TwoRankTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int world = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    ASSERT_EQ(world, 2) << "run under mpirun -np 2";
    dir_ = testing::SharedTempDir(MPI_COMM_WORLD);
  }
  void TearDown() override {
    MPI_Barrier(MPI_COMM_WORLD);
    if (Rank() == 0) std::filesystem::remove_all(dir_);
  }
  std::string dir_;
};

void ExpectWholeBuffersExact(const CheckpointReader& r, const Buffers& b) {
  for (auto [which, expect] : {std::pair{FlatBuffer::kParams, &b.params}, std::pair{FlatBuffer::kAdamM, &b.m},
                               std::pair{FlatBuffer::kAdamV, &b.v}}) {
    std::vector<float> got(expect->size());
    ASSERT_TRUE(r.ReadRange(which, 0, absl::MakeSpan(got)).ok());
    EXPECT_EQ(got, *expect) << FlatBufferGroup(which);
  }
}

TEST_F(TwoRankTest, UnequalZeroShardsFromTwoRanksReadBackAtWorldSizeOne) {
  const auto layout = SmallLayout();
  const int64_t total = Total(layout);
  const Buffers b(total);
  CheckpointState s = MakeState(layout, 7, b, HalfShard(total), UnequalShard(total, Rank()));
  absl::StatusOr<std::string> path = testing::SaveInto(MPI_COMM_WORLD, s, dir_);
  ASSERT_TRUE(path.ok()) << path.status();
  // Every rank reads the whole file alone, as a one-rank job would.
  absl::StatusOr<CheckpointReader> r = CheckpointReader::Open(*path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header().world_size, 2);
  ExpectWholeBuffersExact(*r, b);
}

TEST_F(TwoRankTest, WrittenAtWorldSizeOneReadsBackAsUnequalShards) {
  const auto layout = SmallLayout();
  const int64_t total = Total(layout);
  const Buffers b(total);
  std::string path = dir_ + "/ckpt-9.h5";
  if (Rank() == 0) {
    CheckpointState s = MakeState(layout, 9, b, {0, total}, {0, total});
    absl::StatusOr<std::string> saved = testing::SaveInto(MPI_COMM_SELF, s, dir_);
    EXPECT_TRUE(saved.ok()) << saved.status();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  absl::StatusOr<CheckpointReader> r = CheckpointReader::Open(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->header().world_size, 1);
  const FlatRange mine = UnequalShard(total, Rank());
  std::vector<float> m(mine.size()), v(mine.size());
  ASSERT_TRUE(r->ReadRange(FlatBuffer::kAdamM, mine.lo, absl::MakeSpan(m)).ok());
  ASSERT_TRUE(r->ReadRange(FlatBuffer::kAdamV, mine.lo, absl::MakeSpan(v)).ok());
  EXPECT_EQ(m, std::vector<float>(b.m.begin() + mine.lo, b.m.begin() + mine.hi));
  EXPECT_EQ(v, std::vector<float>(b.v.begin() + mine.lo, b.v.begin() + mine.hi));
}

TEST_F(TwoRankTest, TwoRanksSealAMultiBlockFileWithTheDigestTheFormatDefines) {
  // 3.7 MB of tensors: four digest blocks, split between the ranks.
  std::vector<TensorSpec> layout = {{"a", {300, 1000}, 0}, {"b", {83}, 300000}, {"c", {97, 89}, 300083}};
  const int64_t total = Total(layout);
  const Buffers b(total);
  CheckpointState s = MakeState(layout, 11, b, HalfShard(total), UnequalShard(total, Rank()));
  absl::StatusOr<std::string> path = testing::SaveInto(MPI_COMM_WORLD, s, dir_);
  ASSERT_TRUE(path.ok()) << path.status();
  absl::StatusOr<IntegrityHeader> h = CheckFileIntegrity(*path);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(DigestBlockCount(h->file_bytes), 4);
  if (Rank() == 0) {
    const char* python = std::getenv("MLA_PYTHON");
    const char* source = std::getenv("MLA_SOURCE_DIR");
    ASSERT_NE(python, nullptr) << "run through ctest";
    ASSERT_NE(source, nullptr) << "run through ctest";
    const std::string cmd = std::string(python) + " " + source + "/tests/checkpoint/check_integrity.py " + *path;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
}

TEST_F(TwoRankTest, ABadSliceOnOneRankFailsTheSaveOnEveryRank) {
  const auto layout = SmallLayout();
  const int64_t total = Total(layout);
  const Buffers b(total);
  CheckpointState s = MakeState(layout, 3, b, HalfShard(total), HalfShard(total));
  if (Rank() == 1) s.adam_v.lo = total;  // outside the buffer on rank 1 only
  absl::StatusOr<std::string> path = testing::SaveInto(MPI_COMM_WORLD, s, dir_);
  ASSERT_FALSE(path.ok());
  EXPECT_NE(path.status().message().find("rank 1"), std::string::npos) << path.status();
  EXPECT_NE(path.status().message().find("outside the buffer"), std::string::npos) << path.status();
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/ckpt-3.h5"));
}

TEST_F(TwoRankTest, OverlappingSlicesFailTheSaveOnEveryRank) {
  const auto layout = SmallLayout();
  const int64_t total = Total(layout);
  const Buffers b(total);
  // Both ranks claim all params.
  CheckpointState s = MakeState(layout, 4, b, {0, total}, HalfShard(total));
  absl::StatusOr<std::string> path = testing::SaveInto(MPI_COMM_WORLD, s, dir_);
  ASSERT_FALSE(path.ok());
  EXPECT_NE(path.status().message().find("overlap"), std::string::npos) << path.status();
}

TEST_F(TwoRankTest, RanksGivenDifferentMetadataFailTogether) {
  const auto layout = SmallLayout();
  const int64_t total = Total(layout);
  const Buffers b(total);
  CheckpointState s = MakeState(layout, 5, b, HalfShard(total), HalfShard(total));
  s.header.tokens_seen += Rank();
  absl::StatusOr<std::string> path = testing::SaveInto(MPI_COMM_WORLD, s, dir_);
  ASSERT_FALSE(path.ok());
  EXPECT_NE(path.status().message().find("different metadata"), std::string::npos) << path.status();
}

}  // namespace
}  // namespace mla::ckpt
