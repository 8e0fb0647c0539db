// Data loader: batches are a function of (seed, epoch, step); rank slices
// compose the same global batch for any world size; state save/restore is
// exact; validation covers each window once across ranks.
#include "runtime/data/data_loader.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/runtime/data/data_test_util.h"

namespace mla {
namespace {

using ::testing::HasSubstr;
using testing_util::FreshDir;
using testing_util::WriteShard;

constexpr int kT = 8;
constexpr uint32_t kVocab = 65536;

// Token i is i, so a row's first input names its window: window = inputs[0] / T.
std::string MakeShard(int64_t tokens) {
  std::string path = FreshDir() + "/train.bin";
  std::vector<uint16_t> t(static_cast<size_t>(tokens));
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint16_t>(i);
  WriteShard(path, t, kVocab);
  return path;
}

using Batch = std::vector<int32_t>;
struct Rows {
  Batch inputs, targets;
};

Rows Next(DataLoader& loader) {
  Rows r{Batch(static_cast<size_t>(loader.rows_per_rank()) * kT),
         Batch(static_cast<size_t>(loader.rows_per_rank()) * kT)};
  loader.NextBatch(r.inputs.data(), r.targets.data());
  return r;
}

DataLoader MakeLoader(const std::string& path, int G, int rank, int world, uint64_t seed = 5) {
  auto loader = DataLoader::Create(path, {.seq_len = kT, .global_batch = G, .rank = rank,
                                          .world_size = world, .seed = seed});
  CHECK(loader.ok()) << loader.status();
  return std::move(*loader);
}

TEST(DataLoader, RowsAreWindowsWithNextTokenTargets) {
  std::string path = MakeShard(20 * kT + 1);
  DataLoader loader = MakeLoader(path, 4, 0, 1);
  EXPECT_EQ(loader.windows(), 20);
  EXPECT_EQ(loader.steps_per_epoch(), 5);
  Rows r = Next(loader);
  for (int row = 0; row < 4; ++row) {
    int32_t first = r.inputs[row * kT];
    EXPECT_EQ(first % kT, 0) << "rows start on window boundaries";
    for (int t = 0; t < kT; ++t) {
      EXPECT_EQ(r.inputs[row * kT + t], first + t);
      EXPECT_EQ(r.targets[row * kT + t], first + t + 1);
    }
  }
}

TEST(DataLoader, EpochVisitsDistinctWindowsAndNextEpochReshuffles) {
  std::string path = MakeShard(24 * kT + 1);
  DataLoader loader = MakeLoader(path, 6, 0, 1);
  std::vector<int32_t> epoch0, epoch1;
  for (int s = 0; s < 4; ++s) {
    Rows r = Next(loader);
    for (int row = 0; row < 6; ++row) epoch0.push_back(r.inputs[row * kT] / kT);
  }
  EXPECT_EQ(loader.state().epoch, 1);
  for (int s = 0; s < 4; ++s) {
    Rows r = Next(loader);
    for (int row = 0; row < 6; ++row) epoch1.push_back(r.inputs[row * kT] / kT);
  }
  EXPECT_EQ(std::set<int32_t>(epoch0.begin(), epoch0.end()).size(), 24u);
  EXPECT_EQ(std::set<int32_t>(epoch1.begin(), epoch1.end()).size(), 24u);
  EXPECT_NE(epoch0, epoch1);
}

TEST(DataLoader, SameSeedGivesSameBatchesAndOtherSeedDiffers) {
  std::string path = MakeShard(40 * kT + 1);
  DataLoader a = MakeLoader(path, 4, 0, 1, 11), b = MakeLoader(path, 4, 0, 1, 11),
             c = MakeLoader(path, 4, 0, 1, 12);
  bool any_diff = false;
  for (int s = 0; s < 25; ++s) {
    Rows ra = Next(a), rb = Next(b), rc = Next(c);
    EXPECT_EQ(ra.inputs, rb.inputs);
    EXPECT_EQ(ra.targets, rb.targets);
    any_diff |= ra.inputs != rc.inputs;
  }
  EXPECT_TRUE(any_diff);
}

TEST(DataLoader, UnionOfRankSlicesIsTheSingleRankGlobalBatch) {
  std::string path = MakeShard(50 * kT + 1);
  constexpr int G = 6;
  DataLoader single = MakeLoader(path, G, 0, 1);
  std::vector<Rows> reference;
  for (int s = 0; s < 20; ++s) reference.push_back(Next(single));  // crosses epochs
  for (int world : {2, 3}) {
    std::vector<DataLoader> ranks;
    for (int k = 0; k < world; ++k) ranks.push_back(MakeLoader(path, G, k, world));
    for (int s = 0; s < 20; ++s) {
      Batch inputs, targets;
      for (int k = 0; k < world; ++k) {
        Rows r = Next(ranks[k]);
        inputs.insert(inputs.end(), r.inputs.begin(), r.inputs.end());
        targets.insert(targets.end(), r.targets.begin(), r.targets.end());
      }
      EXPECT_EQ(inputs, reference[s].inputs) << "world " << world << " step " << s;
      EXPECT_EQ(targets, reference[s].targets) << "world " << world << " step " << s;
    }
  }
}

TEST(DataLoader, RestoredStateGivesIdenticalFollowingBatches) {
  std::string path = MakeShard(30 * kT + 1);
  DataLoader a = MakeLoader(path, 4, 1, 2);
  for (int s = 0; s < 9; ++s) Next(a);  // into epoch 1 (7 steps per epoch)
  LoaderState saved = a.state();
  EXPECT_EQ(saved, (LoaderState{1, 2, 5}));
  std::array<int64_t, LoaderState::kNumInts> ints = saved.ToInts();

  DataLoader b = MakeLoader(path, 4, 1, 2, /*seed=*/999);
  auto restored = LoaderState::FromInts(ints);
  ASSERT_TRUE(restored.ok());
  ASSERT_TRUE(b.Restore(*restored).ok());
  EXPECT_EQ(b.state(), saved);
  for (int s = 0; s < 12; ++s) {
    Rows ra = Next(a), rb = Next(b);
    ASSERT_EQ(ra.inputs, rb.inputs) << "step " << s << " after restore";
    ASSERT_EQ(ra.targets, rb.targets);
  }
}

TEST(LoaderState, FromIntsRejectsWrongLength) {
  std::vector<int64_t> two = {1, 2};
  EXPECT_FALSE(LoaderState::FromInts(two).ok());
}

TEST(DataLoader, RestoreRejectsStepOutsideEpoch) {
  std::string path = MakeShard(30 * kT + 1);
  DataLoader a = MakeLoader(path, 4, 0, 1);
  absl::Status s = a.Restore({0, 7, 5});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("7 steps"));
}

TEST(DataLoader, GlobalBatchNotDivisibleByWorldIsAnError) {
  std::string path = MakeShard(30 * kT + 1);
  auto loader = DataLoader::Create(path, {.seq_len = kT, .global_batch = 5, .rank = 0,
                                          .world_size = 2, .seed = 1});
  ASSERT_FALSE(loader.ok());
  EXPECT_THAT(loader.status().message(), HasSubstr("does not split over 2 ranks"));
}

TEST(DataLoader, ContextLongerThanTheDataIsAnErrorNamingTheFile) {
  std::string path = MakeShard(kT);  // fewer than T+1 tokens
  auto loader = DataLoader::Create(path, {.seq_len = kT, .global_batch = 1, .rank = 0,
                                          .world_size = 1, .seed = 1});
  ASSERT_FALSE(loader.ok());
  EXPECT_THAT(loader.status().message(), HasSubstr(path));
  EXPECT_THAT(loader.status().message(), HasSubstr("context longer than the data"));
}

TEST(DataLoader, FewerWindowsThanOneGlobalBatchIsAnError) {
  std::string path = MakeShard(3 * kT + 1);
  auto loader = DataLoader::Create(path, {.seq_len = kT, .global_batch = 4, .rank = 0,
                                          .world_size = 1, .seed = 1});
  ASSERT_FALSE(loader.ok());
  EXPECT_THAT(loader.status().message(), HasSubstr("fewer than one global batch"));
}

TEST(ValidationIterator, RanksCoverEachWindowExactlyOnceWithPartialBatches) {
  constexpr int64_t kWindows = 23;
  std::string path = MakeShard(kWindows * kT + 1 + 5);  // 5 tail tokens past the last window
  for (int world : {1, 2, 3}) {
    std::vector<int> seen(kWindows, 0);
    int64_t total = 0;
    for (int k = 0; k < world; ++k) {
      auto it = ValidationIterator::Create(path, kT, /*batch_rows=*/4, k, world);
      ASSERT_TRUE(it.ok()) << it.status();
      EXPECT_EQ(it->total_windows(), kWindows);
      EXPECT_EQ(it->uncovered_targets(), 5);
      Batch in(4 * kT), tg(4 * kT);
      int64_t mine = 0, batches = 0, last = -1;
      while (int rows = it->NextBatch(in.data(), tg.data())) {
        ++batches;
        for (int r = 0; r < rows; ++r) {
          int32_t w = in[r * kT] / kT;
          EXPECT_GT(w, last) << "windows in order";
          last = w;
          ++seen[w];
          EXPECT_EQ(tg[r * kT + kT - 1], (w + 1) * kT);
        }
        mine += rows;
      }
      EXPECT_EQ(mine, it->windows_for_rank());
      EXPECT_EQ(batches, it->batches_for_rank());
      total += mine;
      it->Reset();
      EXPECT_GT(it->NextBatch(in.data(), tg.data()), 0) << "Reset starts over";
    }
    EXPECT_EQ(total, kWindows) << "world " << world;
    for (int w = 0; w < kWindows; ++w) EXPECT_EQ(seen[w], 1) << "window " << w << " world " << world;
  }
}

}  // namespace
}  // namespace mla
